"""Admin for credit notes: the list, the read-only note page with its items and documents, and
the actions "Mark refund done" and "Void remaining credit" (DESIGN §6 "Credit notes").

- Notes are issued from a finalized invoice's page ("Issue credit note",
  billing.admin.credit_note_issue), never typed in: there is no add page, and a note's page is
  read-only. Its amounts change only through billing.services.credit_notes: finance marks a
  refund done (credit_note_update) or voids the credit left (credit_note_void); later invoices
  consume the credit when they are finalized.
- "Mark refund done" applies to notes with a refund not marked done yet; "Void remaining credit"
  asks for confirmation first and applies to notes with credit left (a consumed note has nothing
  left to void). What a service refuses is listed note by note.
- "View credit note" opens its HTML document (billing.documents.credit_note) at …/<id>/document/,
  "Download PDF" returns it as PDF (billing.documents.pdf) at …/<id>/pdf/.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import ngettext

from billing.admin.shared import CustomerFilter, action_page, admin_link, admin_url, report_refusals, viewable_object
from billing.documents.credit_note import render_credit_note_html
from billing.documents.formats import format_amount, format_money
from billing.documents.pdf import PdfUnavailable, credit_note_pdf_filename, render_credit_note_pdf
from billing.models import CreditApplication, CreditNote, CreditNoteItem, CreditStatus, RefundStatus
from billing.services.credit_notes import CreditNoteError, credit_note_update, credit_note_void

# Messages are constants so tests can match them.
REFUNDS_DONE = ("%(count)d refund was marked done.", "%(count)d refunds were marked done.")
REFUND_DONE_ALREADY = "{note}: its refund is marked done already."
CREDITS_VOIDED = (
    "The remaining credit of %(count)d credit note was voided.",
    "The remaining credit of %(count)d credit notes was voided.",
)
NOTHING_TO_VOID = "None of the selected credit notes has credit left to void."
NOTHING_LEFT = "{note}: no credit is left to void ({status})."
LOCKED_NOTE = (
    "A credit note is issued from its invoice and never edited: its refund is marked done and its remaining "
    "credit voided with the actions on the credit note list."
)


def money(amount: Any, currency: str) -> str:
    return f"{format_amount(amount, currency)} {currency}"


def has_credit_left(note: CreditNote) -> bool:
    return note.credit_status == CreditStatus.AVAILABLE and note.balance_amount > 0


class CreditNoteCustomerFilter(CustomerFilter):
    path = "customer"


@admin.register(CreditNote)
class CreditNoteAdmin(admin.ModelAdmin[CreditNote]):
    list_display = (
        "number",
        "customer_display",
        "invoice_display",
        "total_detail",
        "parts_display",
        "balance_display",
        "statuses_display",
        "issued_on",
    )
    list_filter = ("credit_status", "refund_status", "reason", "currency", CreditNoteCustomerFilter)
    list_select_related = ("customer", "invoice")
    search_fields = ("number", "invoice__number", "customer__external_id", "customer__name")
    search_help_text = "Credit note or invoice number, or the customer's external id or name."
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    actions = ("mark_refund_done", "void_credit_selected")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "number",
                    "invoice_display",
                    "customer_display",
                    "reason",
                    "description",
                    "issued_on",
                    "created_by",
                    "created_at",
                ),
                "description": LOCKED_NOTE,
            },
        ),
        (
            "Amounts",
            {
                "fields": (
                    "items_display",
                    "items_amount_display",
                    "adjustment_display",
                    "sub_total_display",
                    "taxes_display",
                    "total_detail",
                )
            },
        ),
        (
            "Where the total goes",
            {
                "fields": (
                    "credit_detail",
                    "balance_detail",
                    "credit_status",
                    "applications_display",
                    "refund_detail",
                    "refund_status_display",
                    "refunded_at",
                    "offset_detail",
                    "voided_at",
                )
            },
        ),
        ("Metadata", {"fields": ("metadata",), "classes": ("collapse",)}),
    )
    readonly_fields = (
        "number",
        "invoice_display",
        "customer_display",
        "reason",
        "description",
        "issued_on",
        "created_by",
        "created_at",
        "items_display",
        "items_amount_display",
        "adjustment_display",
        "sub_total_display",
        "taxes_display",
        "total_detail",
        "credit_detail",
        "balance_detail",
        "credit_status",
        "applications_display",
        "refund_detail",
        "refund_status_display",
        "refunded_at",
        "offset_detail",
        "voided_at",
        "metadata",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[CreditNote]:
        return (
            super()
            .get_queryset(request)
            .select_related("customer", "invoice", "created_by")
            .prefetch_related(
                Prefetch("items", queryset=CreditNoteItem.objects.select_related("fee").order_by("id")),
                Prefetch("applications", queryset=CreditApplication.objects.select_related("invoice").order_by("id")),
            )
        )

    # --- columns and fields ---

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_display(self, obj: CreditNote) -> str:
        return admin_link("customers_customer_change", obj.customer_id, str(obj.customer))

    @admin.display(description="invoice", ordering="invoice__number")
    def invoice_display(self, obj: CreditNote) -> str:
        return admin_link("billing_invoice_change", obj.invoice_id, str(obj.invoice))

    @admin.display(description="credit / refund / offset")
    def parts_display(self, obj: CreditNote) -> str:
        return " / ".join(
            format_amount(amount, obj.currency) for amount in (obj.credit_amount, obj.refund_amount, obj.offset_amount)
        )

    @admin.display(description="credit left", ordering="balance_amount")
    def balance_display(self, obj: CreditNote) -> str:
        return format_amount(obj.balance_amount, obj.currency)

    @admin.display(description="refund status", ordering="refund_status")
    def refund_status_display(self, obj: CreditNote) -> str:
        return obj.get_refund_status_display() if obj.refund_status else "—"

    @admin.display(description="credit / refund")
    def statuses_display(self, obj: CreditNote) -> str:
        """The credit's status, and the refund's when there is one ("Available · refund pending")."""
        refund = f" · refund {obj.get_refund_status_display().lower()}" if obj.refund_status else ""
        return f"{obj.get_credit_status_display()}{refund}"

    # Amounts with their currency (the list's other columns are the number alone).

    @admin.display(description="total", ordering="total_amount")
    def total_detail(self, obj: CreditNote) -> str:
        return money(obj.total_amount, obj.currency)

    @admin.display(description="credit")
    def credit_detail(self, obj: CreditNote) -> str:
        return money(obj.credit_amount, obj.currency)

    @admin.display(description="credit left")
    def balance_detail(self, obj: CreditNote) -> str:
        return money(obj.balance_amount, obj.currency)

    @admin.display(description="refund")
    def refund_detail(self, obj: CreditNote) -> str:
        return money(obj.refund_amount, obj.currency)

    @admin.display(description="offset")
    def offset_detail(self, obj: CreditNote) -> str:
        return money(obj.offset_amount, obj.currency)

    @admin.display(description="items (fees before discounts and tax)")
    def items_display(self, obj: CreditNote) -> str:
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td class="number">{}</td><td class="number">{}</td></tr>',
            (
                (item.fee.description, money(item.fee.amount, obj.currency), money(item.amount, obj.currency))
                for item in obj.items.all()
            ),
        )
        return format_html(
            '<table class="credit-note-items"><thead><tr><th>Fee</th><th class="number">Fee amount</th>'
            '<th class="number">Credited</th></tr></thead><tbody>{}</tbody></table>',
            rows,
        )

    @admin.display(description="items")
    def items_amount_display(self, obj: CreditNote) -> str:
        return money(obj.items_amount, obj.currency)

    @admin.display(description="coupons adjustment")
    def adjustment_display(self, obj: CreditNote) -> str:
        return money(-obj.coupons_adjustment_amount, obj.currency)

    @admin.display(description="sub-total excluding taxes")
    def sub_total_display(self, obj: CreditNote) -> str:
        return money(obj.sub_total_excluding_taxes_amount, obj.currency)

    @admin.display(description="taxes")
    def taxes_display(self, obj: CreditNote) -> str:
        return money(obj.taxes_amount, obj.currency)

    @admin.display(description="consumed by")
    def applications_display(self, obj: CreditNote) -> str:
        applications = list(obj.applications.all())
        if not applications:
            return "—"
        return format_html_join(
            mark_safe("<br>"),  # a constant: format_html without arguments is deprecated (Django 6.0)
            "{}: {}{}",
            (
                (
                    admin_link("billing_invoice_change", a.invoice_id, str(a.invoice)),
                    money(a.amount, obj.currency),
                    " (given back: the invoice was voided)" if a.reversed_at else "",
                )
                for a in applications
            ),
        )

    # --- permissions ---

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # issued from an invoice's page

    def has_change_permission(self, request: HttpRequest, obj: CreditNote | None = None) -> bool:
        # Model-level change permission is what the actions need; no note is edited on its page.
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: CreditNote | None = None) -> bool:
        return False

    # --- pages ---

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/document/",
                self.admin_site.admin_view(self.document_view),
                name=f"{prefix}_document",
            ),
            path("<path:object_id>/pdf/", self.admin_site.admin_view(self.pdf_view), name=f"{prefix}_pdf"),
            *super().get_urls(),
        ]

    def document_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The credit note as its self-contained HTML document (billing.documents.credit_note)."""
        note = viewable_object(self, request, object_id)
        if isinstance(note, HttpResponse):
            return note
        response = HttpResponse(render_credit_note_html(note), content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="{note.number}.html"'
        return response

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The credit note document as a PDF download (billing.documents.pdf)."""
        note = viewable_object(self, request, object_id)
        if isinstance(note, HttpResponse):
            return note
        try:
            pdf = render_credit_note_pdf(note)
        except PdfUnavailable as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:billing_creditnote_change", args=[note.pk]))
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{credit_note_pdf_filename(note)}"'
        return response

    # --- actions ---

    @admin.action(description="Mark refund done", permissions=["change"])
    def mark_refund_done(self, request: HttpRequest, queryset: QuerySet[CreditNote]) -> None:
        """The refund was paid out: refund_status succeeded (credit_note_update)."""
        frozen_now = timezone.now()
        done, refusals = 0, []
        for note in queryset.order_by("created_at", "id"):
            if note.refund_status == RefundStatus.SUCCEEDED:
                # The service would stamp refunded_at again: the first date is the one that stands.
                refusals.append(REFUND_DONE_ALREADY.format(note=note))
                continue
            try:
                credit_note_update(credit_note=note, refund_status=RefundStatus.SUCCEEDED, now=frozen_now)
            except CreditNoteError as exc:  # e.g. a note without a refund
                refusals.append(f"{note}: {exc}")
            else:
                done += 1
        self.message_user(
            request, ngettext(*REFUNDS_DONE, done) % {"count": done}, messages.SUCCESS if done else messages.WARNING
        )
        report_refusals(self, request, refusals)

    def _row(self, note: CreditNote) -> dict[str, Any]:
        return {
            "note": note,
            "url": admin_url("billing_creditnote_change", note.pk),
            "customer": str(note.customer),
            "invoice": str(note.invoice),
            "balance": format_money(note.balance_amount, note.currency),
            "status": note.get_credit_status_display(),
        }

    @admin.action(description="Void remaining credit", permissions=["change"])
    def void_credit_selected(self, request: HttpRequest, queryset: QuerySet[CreditNote]) -> HttpResponse | None:
        """Confirm, then void the credit left on the selected notes (credit_note_void); their
        refunds and offsets stand."""
        notes = list(queryset.select_related("customer", "invoice").order_by("created_at", "id"))
        voidable = [note for note in notes if has_credit_left(note)]
        left_alone = [note for note in notes if not has_credit_left(note)]
        if not voidable:
            self.message_user(request, NOTHING_TO_VOID, messages.WARNING)
            return None
        if "apply" in request.POST:
            frozen_now = timezone.now()
            done, refusals = 0, []
            for note in voidable:
                try:
                    credit_note_void(credit_note=note, now=frozen_now)
                except CreditNoteError as exc:
                    refusals.append(f"{note}: {exc}")
                else:
                    done += 1
            refusals += [
                NOTHING_LEFT.format(note=note, status=note.get_credit_status_display().lower()) for note in left_alone
            ]
            self.message_user(
                request,
                ngettext(*CREDITS_VOIDED, done) % {"count": done},
                messages.SUCCESS if done else messages.WARNING,
            )
            report_refusals(self, request, refusals)
            return None
        return action_page(
            self,
            request,
            "admin/billing/creditnote/void_confirmation.html",
            action_name="void_credit_selected",
            selected_ids=[note.pk for note in notes],
            title="Void remaining credit",
            voidable=[self._row(note) for note in voidable],
            refused=[self._row(note) for note in left_alone],
        )
