"""Admin for invoices: the list, the read-only invoice page, its document, and the invoicing actions.

- Invoices are made by closing periods (billing.services.period_close), never typed in: there is no add
  page, every field and line is read-only, and no invoice page has a Save button. A draft, too,
  changes only by "Recompute selected drafts" (billing.services.invoices.invoice_recompute); a finalized
  invoice never changes at all (DESIGN §3).
- Money after the invoice (DESIGN §6): "Record payment" and "Issue credit note" on a finalized
  invoice's page (billing.admin.payments, billing.admin.credit_note_issue); its page shows what
  was paid, offset and is still due, its payments and its credit notes (billing.admin.invoice_money).
  "Void and regenerate" voids finalized invoices with a reason and makes each period's invoice again from the data
  stored now (billing.services.invoices.invoice_regenerate); it reports the new numbers.
- The "payment" filter lists the finalized invoices not paid yet, or those overdue (past their
  due date in the customer's time zone); "Receivables aging" (billing.admin.receivables) is linked
  from the list.
- Only a draft may be deleted (it has no number yet, so nothing leaves a gap, and the next close
  run builds it again); the bulk delete action is removed.
- Actions call the invoicing services and report what they did with counts; what a service
  refuses (e.g. voiding a paid invoice) is listed by invoice with a warning. Finalizing goes
  through invoice_finalize, which recomputes the draft from the events stored now before it
  numbers it (oldest period first, so numbers follow the periods). Voiding and regenerating ask
  for a reason on a confirmation page first (billing.admin.invoice_corrections).
- "View invoice" opens the HTML document (billing.documents.invoice) at …/<id>/document/; "Download PDF"
  returns the same document as PDF (billing.documents.pdf) at …/<id>/pdf/.
- "Resend invoice email" emails finalized invoices to their customers again (billing.admin.emails,
  which also holds the read-only log of invoice emails).
- "Export selected to CSV" streams the selected invoices (or all those the filters match) as CSV.
- Usage lines link to the distinct values they counted (billing.admin.audit); the billing
  dashboard (billing.admin.dashboard) lives under these URLs too, at …/invoice/dashboard/.
- "Close ended periods" (on the list) runs billing.services.period_close.close_periods now, as the hourly
  schedule and `manage.py close_period` do, and reports what it created and finalized.
- The period columns and the period filter use local days in each customer's time zone: a
  period shows as its first and last day (the stored bounds are half-open [start, end)).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import ngettext

from billing.admin.audit import audit_urls
from billing.admin.credit_note_issue import credit_note_urls
from billing.admin.dashboard import dashboard_urls
from billing.admin.emails import resend_invoice_email
from billing.admin.invoice_corrections import InvoiceCorrections
from billing.admin.invoice_filters import (
    InvoiceCustomerFilter,
    InvoicePlanFilter,
    PeriodMonthFilter,
    SettlementFilter,
    period_days,
)
from billing.admin.invoice_lines import InvoiceLineInline
from billing.admin.invoice_money import InvoiceMoney
from billing.admin.payments import payment_urls
from billing.admin.receivables import receivables_urls
from billing.admin.shared import (
    admin_page,
    admin_url,
    changelist_url,
    csv_response,
    report_refusals,
    viewable_object,
)
from billing.documents.formats import format_amount, format_day
from billing.documents.invoice import billing_details, customer_block, render_invoice_html
from billing.documents.pdf import PdfUnavailable, invoice_pdf_filename, render_invoice_pdf
from billing.engine.money import quantize_money
from billing.models import Invoice, InvoiceKind, InvoiceStatus
from billing.services.invoices import (
    InvoiceError,
    invoice_finalize,
    invoice_recompute,
)
from billing.services.payments import PaymentError, invoice_mark_paid
from billing.services.period_close import close_periods

# Messages are constants so tests can match them.
INVOICES_FINALIZED = ("%(count)d invoice was finalized.", "%(count)d invoices were finalized.")
INVOICES_PAID = ("%(count)d invoice was marked paid.", "%(count)d invoices were marked paid.")
DRAFTS_RECOMPUTED = (
    "%(count)d draft was recomputed: %(changed)d changed, %(unchanged)d unchanged.",
    "%(count)d drafts were recomputed: %(changed)d changed, %(unchanged)d unchanged.",
)
CLOSE_SUMMARY = (
    "Closed ended periods: %(created)d invoices created, %(recomputed)d drafts recomputed, "
    "%(finalized)d finalized, %(unchanged)d unchanged, %(errors)d errors."
)
CLOSE_ERROR = "Close failed for %(error)s"
LOCKED_NOTE = (
    "Invoices are computed, never edited: a draft changes only by “Recompute selected drafts” (or when "
    "it is finalized, which recomputes it one last time), and a finalized invoice never changes: a wrong "
    "one is voided. Late usage of a finalized period is billed on the customer's next invoice."
)

CSV_HEADER = (
    "number",
    "customer external id",
    "customer name",
    "type",
    "status",
    "period start",
    "period end",
    "issued on",
    "currency",
    "total",
)

# The list's short names of the kinds (their full labels say more, on the invoice's page).
KIND_SHORT = {
    InvoiceKind.PERIOD: "Usage period",
    InvoiceKind.ADVANCE: "Fee in advance",
    InvoiceKind.COMMITMENT: "Prepayment",
    InvoiceKind.ONE_OFF: "One-off",
    InvoiceKind.CREDIT: "Wallet credit",
}


# --- Invoices -----------------------------------------------------------------------------------


@admin.register(Invoice)
class InvoiceAdmin(InvoiceMoney, InvoiceCorrections):
    list_display = (
        "number_display",
        "customer_display",
        "subscription_display",
        "kind_short",
        "period_short",
        "status_short",
        "total_display",
        "issued_on",
    )
    list_filter = (
        "status",
        "payment_status",
        SettlementFilter,
        "kind",
        PeriodMonthFilter,
        InvoicePlanFilter,
        InvoiceCustomerFilter,
    )
    list_select_related = ("customer", "subscription__plan")
    search_fields = ("number", "customer__external_id", "customer__name")
    search_help_text = "Invoice number, or the customer's external id or name."
    ordering = ("-period_start", "-id")
    show_full_result_count = False
    inlines = [InvoiceLineInline]
    actions = (
        "finalize_selected",
        "mark_paid_selected",
        "recompute_selected",
        "void_selected",
        "regenerate_selected",
        resend_invoice_email,  # billing.admin.emails
        "export_csv",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "number_display",
                    "status",
                    "kind",
                    "customer",
                    "subscription_display",
                    "period_display",
                    "currency",
                    "total_display",
                    "issued_on",
                ),
                "description": LOCKED_NOTE,
            },
        ),
        (
            "Payment",
            {
                "fields": (
                    "payment_status",
                    "payment_due_date",
                    "paid_display",
                    "due_display",
                    "payments_display",
                    "credit_notes_display",
                )
            },
        ),
        ("Lifecycle", {"fields": ("finalized_at", "paid_at", "voided_at", "void_reason")}),
        ("Billing details", {"fields": ("seller_display", "billing_details_display")}),
        ("History", {"fields": ("period_start", "period_end", "created_at", "updated_at"), "classes": ("collapse",)}),
    )
    readonly_fields = (
        "number_display",
        "status",
        "kind",
        "customer",
        "subscription_display",
        "period_display",
        "currency",
        "total_display",
        "issued_on",
        "payment_status",
        "payment_due_date",
        "paid_display",
        "due_display",
        "payments_display",
        "credit_notes_display",
        "finalized_at",
        "paid_at",
        "voided_at",
        "void_reason",
        "seller_display",
        "billing_details_display",
        "period_start",
        "period_end",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invoice]:
        return super().get_queryset(request).select_related("customer", "subscription__plan")

    # --- columns and fields ---

    @admin.display(description="number", ordering="number")
    def number_display(self, obj: Invoice) -> str:
        return obj.number or f"Draft #{obj.pk}"

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_display(self, obj: Invoice) -> str:
        return str(obj.customer)

    @admin.display(description="subscription (plan)", ordering="subscription__external_id")
    def subscription_display(self, obj: Invoice) -> str:
        subscription = obj.subscription
        if subscription is None:
            return "—"
        plan = subscription.plan
        label = f"{subscription.external_id} ({plan.code} v{plan.version})"
        url = admin_url("billing_subscription_change", subscription.pk)
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    @admin.display(description="period start", ordering="period_start")
    def period_start_display(self, obj: Invoice) -> date:
        return period_days(obj)[0]

    @admin.display(description="period end", ordering="period_end")
    def period_end_display(self, obj: Invoice) -> date:
        return period_days(obj)[1]

    @admin.display(description="kind", ordering="kind")
    def kind_short(self, obj: Invoice) -> str:
        return KIND_SHORT.get(InvoiceKind(obj.kind), obj.get_kind_display())

    @admin.display(description="period", ordering="period_start")
    def period_short(self, obj: Invoice) -> str:
        """The period's local days, first – last; a dated invoice's day."""
        first, last = period_days(obj)
        if first == last:
            return format_day(first)
        return f"{format_day(first)} – {format_day(last)}"

    @admin.display(description="status", ordering="status")
    def status_short(self, obj: Invoice) -> str:
        """The status, and for a finalized invoice its payment status ("Finalized · pending")."""
        if obj.status != InvoiceStatus.FINALIZED:
            return obj.get_status_display()
        return f"{obj.get_status_display()} · {obj.get_payment_status_display().lower()}"

    @admin.display(description="period")
    def period_display(self, obj: Invoice) -> str:
        first, last = period_days(obj)
        if obj.period_start == obj.period_end:
            return f"None: dated {format_day(first)} (in {obj.customer.timezone})"
        return f"{format_day(first)} – {format_day(last)} (days in {obj.customer.timezone})"

    @admin.display(description="total", ordering="total")
    def total_display(self, obj: Invoice) -> str:
        return f"{format_amount(obj.total, obj.currency)} {obj.currency}"

    @admin.display(description="seller")
    def seller_display(self, obj: Invoice) -> str:
        if obj.is_draft:
            return "Set at finalization"
        return obj.seller_name

    @admin.display(description="bill to")
    def billing_details_display(self, obj: Invoice) -> str:
        block = customer_block(billing_details(obj))
        lines = [block["display_name"], block["trading_name"], *block["address"], block["email"]]
        if block["tax_identification_number"]:
            lines.append(f"Tax ID: {block['tax_identification_number']}")
        note = "The customer's current details; they are snapshotted at finalization." if obj.is_draft else ""
        html = format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines if line))
        return format_html("{}<br><span class='help'>{}</span>", html, note) if note else html

    # --- permissions ---

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invoices come from closing periods

    def has_change_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        # Model-level change permission (obj None) is what the actions and "Close ended periods"
        # need. No single invoice is editable on its page: finalized ones never change, drafts
        # only through recompute, so the page shows it read-only, without a Save button.
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        if obj is not None and obj.status != InvoiceStatus.DRAFT:
            return False  # a numbered invoice is kept forever: void it instead
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # The bulk delete would reach finalized invoices; drafts are deleted from their page.
        actions.pop("delete_selected", None)
        return actions

    def get_readonly_fields(self, request: HttpRequest, obj: Invoice | None = None) -> tuple[str, ...]:
        return self.readonly_fields

    # --- pages ---

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts
        prefix = f"{opts.app_label}_{opts.model_name}"
        return [
            path(
                "close-periods/",
                self.admin_site.admin_view(self.close_periods_view),
                name=f"{prefix}_close_periods",
            ),
            path(
                "<path:object_id>/document/",
                self.admin_site.admin_view(self.document_view),
                name=f"{prefix}_document",
            ),
            path("<path:object_id>/pdf/", self.admin_site.admin_view(self.pdf_view), name=f"{prefix}_pdf"),
            *dashboard_urls(self),
            *receivables_urls(self),
            *payment_urls(self),
            *credit_note_urls(self),
            *audit_urls(self),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_close_periods": self.has_change_permission(request),
            "receivables_url": admin_url("billing_receivables"),
        }
        return super().changelist_view(request, extra_context)

    def document_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The invoice as its self-contained HTML document (billing.documents.invoice)."""
        obj = viewable_object(self, request, object_id)
        if isinstance(obj, HttpResponse):
            return obj
        response = HttpResponse(render_invoice_html(obj), content_type="text/html; charset=utf-8")
        filename = obj.number or f"draft-{obj.pk}"
        response["Content-Disposition"] = f'inline; filename="{filename}.html"'
        return response

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The invoice document as a PDF download (billing.documents.pdf), e.g. INV-2026-000001.pdf."""
        obj = viewable_object(self, request, object_id)
        if isinstance(obj, HttpResponse):
            return obj
        try:
            pdf = render_invoice_pdf(obj)
        except PdfUnavailable as exc:
            self.message_user(request, str(exc), messages.ERROR)
            change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
            return HttpResponseRedirect(change_url)
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_pdf_filename(obj)}"'
        return response

    def close_periods_view(self, request: HttpRequest) -> HttpResponse:
        """Confirm (GET), then run close_periods now (POST) and report its summary."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            report = close_periods(now=timezone.now())
            counts = {
                "created": len(report.created),
                "recomputed": len(report.recomputed),
                "finalized": len(report.finalized),
                "unchanged": report.unchanged,
                "errors": len(report.errors),
            }
            self.message_user(request, CLOSE_SUMMARY % counts, messages.WARNING if report.errors else messages.SUCCESS)
            report_refusals(self, request, report.errors, CLOSE_ERROR)
            return HttpResponseRedirect(changelist_url(self))
        return admin_page(self, request, "admin/billing/invoice/close_periods.html", title="Close ended periods")

    # --- actions ---

    @staticmethod
    def _each(queryset: QuerySet[Invoice], service: Callable[..., object]) -> tuple[int, list[str]]:
        """Apply a service to each invoice, oldest period first (so gap-free numbers follow the
        periods); returns how many it applied to and the refusals."""
        frozen_now = timezone.now()
        done, refusals = 0, []
        for invoice in queryset.order_by("period_start", "id"):
            try:
                service(invoice=invoice, now=frozen_now)
            except (InvoiceError, PaymentError) as exc:
                refusals.append(str(exc))
            else:
                done += 1
        return done, refusals

    @admin.action(description="Finalize selected drafts", permissions=["change"])
    def finalize_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        done, refusals = self._each(queryset, invoice_finalize)
        self._report(request, done, INVOICES_FINALIZED, refusals)

    @admin.action(description="Mark selected as paid", permissions=["change"])
    def mark_paid_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        def pay_the_rest(*, invoice: Invoice, now: datetime) -> Invoice:
            # A payment row for what is left ("Marked paid"), recorded as this user's.
            return invoice_mark_paid(invoice=invoice, now=now, user=cast("User", request.user))

        done, refusals = self._each(queryset, pay_the_rest)
        self._report(request, done, INVOICES_PAID, refusals)

    @admin.action(description="Recompute selected drafts", permissions=["change"])
    def recompute_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        changed = unchanged = 0
        refusals = []
        for invoice in queryset.order_by("period_start", "id"):
            try:
                if invoice_recompute(invoice=invoice):
                    changed += 1
                else:
                    unchanged += 1
            except (InvoiceError, ValueError) as exc:  # ValueError: a stored charge the engine cannot price
                refusals.append(str(exc) if isinstance(exc, InvoiceError) else f"invoice {invoice}: {exc}")
        done = changed + unchanged
        self.message_user(
            request,
            ngettext(*DRAFTS_RECOMPUTED, done) % {"count": done, "changed": changed, "unchanged": unchanged},
            messages.SUCCESS if done else messages.WARNING,
        )
        report_refusals(self, request, refusals)

    # "change", as every action here: read-only staff are offered no action (tests/billing/admin/test_roles.py).
    @admin.action(description="Export selected to CSV", permissions=["change"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> StreamingHttpResponse:
        """The selected invoices (or all that match the filters) as CSV, streamed, in the list's order.

        Periods are local days in each customer's zone, first and last day inclusive, as in the
        list; the total is rounded to the currency's minor unit, without symbol or grouping.
        """
        invoices = queryset.select_related("customer").iterator(chunk_size=2_000)
        rows = (
            (
                invoice.number or "",
                invoice.customer.external_id,
                invoice.customer.name,
                invoice.kind,
                invoice.status,
                *(day.isoformat() for day in period_days(invoice)),
                invoice.issued_on.isoformat() if invoice.issued_on else "",
                invoice.currency,
                str(quantize_money(invoice.total, invoice.currency)),
            )
            for invoice in invoices
        )
        return csv_response(f"invoices-{timezone.localdate():%Y-%m-%d}.csv", CSV_HEADER, rows)
