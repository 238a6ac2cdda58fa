"""The invoice list's corrections: "Void selected invoices" and "Void and regenerate selected
invoices" (DESIGN §6 "Void and regenerate"); billing.admin.invoices.InvoiceAdmin has them.

- Both ask for a reason on a confirmation page first, listing what will be done and what cannot
  be (only finalized invoices are voided; only finalized or voided period and advance invoices
  are regenerated), then call billing.services.invoices (invoice_void, invoice_regenerate) for
  each invoice and list what a service refused (e.g. an invoice with payments: credit it instead).
- Regenerating voids a finalized invoice with the reason, then makes its subscription's invoice
  for the same period again from the data stored now, finalized at once with a new number; the
  message names each old and new number. A voided invoice is only made again, unless its period
  has a live invoice already (one live invoice per period is a database constraint).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import ngettext

from billing.admin.invoice_filters import period_days
from billing.admin.shared import action_page, admin_url, report_refusals
from billing.documents.formats import format_day, format_money
from billing.models import Invoice, InvoiceKind, InvoiceStatus
from billing.services.invoices import InvoiceError, invoice_regenerate, invoice_void
from billing.services.payments import PaymentError

# Messages are constants so tests can match them.
INVOICES_VOIDED = ("%(count)d invoice was voided.", "%(count)d invoices were voided.")
NOTHING_TO_VOID = "None of the selected invoices can be voided: only finalized invoices can."
INVOICES_REGENERATED = (
    "%(count)d invoice was regenerated: %(numbers)s.",
    "%(count)d invoices were regenerated: %(numbers)s.",
)
NOTHING_TO_REGENERATE = (
    "None of the selected invoices can be regenerated: only finalized (or voided) period and advance invoices can."
)
REGENERATE_PERIOD_TAKEN = (
    "{invoice}: its period has a live invoice already ({live}); void that one to regenerate the period."
)
REGENERATED_LISTED = 20  # new numbers named in the message; past that, "…"
VOID_REASON_MISSING = "Give a reason: an invoice is never voided without one."


class VoidReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Shown on the voided invoice and kept with it.",
        error_messages={"required": VOID_REASON_MISSING},
    )


class InvoiceCorrections(admin.ModelAdmin[Invoice]):
    """The void and regenerate actions of the invoice admin."""

    def _report(self, request: HttpRequest, done: int, counted: tuple[str, str], refusals: list[str]) -> None:
        self.message_user(
            request, ngettext(*counted, done) % {"count": done}, messages.SUCCESS if done else messages.WARNING
        )
        report_refusals(self, request, refusals)

    @staticmethod
    def _void_row(invoice: Invoice) -> dict[str, Any]:
        first, last = period_days(invoice)
        return {
            "invoice": invoice,
            "url": admin_url("billing_invoice_change", invoice.pk),
            "customer": str(invoice.customer),
            "period": f"{format_day(first)} – {format_day(last)}",
            "total": format_money(invoice.total, invoice.currency),
            "status": invoice.get_status_display(),
        }

    @admin.action(description="Void selected invoices", permissions=["change"])
    def void_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        """Ask for a reason on a confirmation page, then void the finalized invoices selected."""
        invoices = list(queryset.order_by("period_start", "id"))
        voidable = [invoice for invoice in invoices if invoice.status == InvoiceStatus.FINALIZED]
        if not voidable:
            self.message_user(request, NOTHING_TO_VOID, messages.WARNING)
            return None
        form = VoidReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            frozen_now = timezone.now()
            done, refusals = 0, []
            for invoice in invoices:
                try:
                    invoice_void(invoice=invoice, reason=form.cleaned_data["reason"], now=frozen_now)
                except InvoiceError as exc:
                    refusals.append(str(exc))
                else:
                    done += 1
            self._report(request, done, INVOICES_VOIDED, refusals)
            return None
        refused = [invoice for invoice in invoices if invoice.status != InvoiceStatus.FINALIZED]
        return action_page(
            self,
            request,
            "admin/billing/invoice/void_confirmation.html",
            action_name="void_selected",
            selected_ids=[invoice.pk for invoice in invoices],
            title="Void invoices",
            form=form,
            voidable=[self._void_row(invoice) for invoice in voidable],
            refused=[self._void_row(invoice) for invoice in refused],
        )

    @staticmethod
    def _regenerable(invoice: Invoice) -> bool:
        return invoice.status != InvoiceStatus.DRAFT and invoice.kind in (InvoiceKind.PERIOD, InvoiceKind.ADVANCE)

    @staticmethod
    def _live_in_period(invoices: list[Invoice]) -> dict[tuple[int, str, Any], Invoice]:
        """The live invoice of each voided invoice's subscription, kind and period (one query):
        a period has one at most (a database constraint), so it cannot be regenerated then."""
        voided = [i for i in invoices if i.status == InvoiceStatus.VOIDED]
        condition = Q(pk__in=[])
        for i in voided:
            condition |= Q(subscription_id=i.subscription_id, kind=i.kind, period_start=i.period_start)
        live = Invoice.objects.filter(condition).exclude(status=InvoiceStatus.VOIDED) if voided else []
        return {(i.subscription_id or 0, i.kind, i.period_start): i for i in live}

    @admin.action(description="Void and regenerate selected invoices", permissions=["change"])
    def regenerate_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        """Ask for a reason, then void each finalized invoice selected and make its period's invoice
        again from the data stored now (invoice_regenerate); a voided one is only made again."""
        invoices = list(queryset.select_related("customer").order_by("period_start", "id"))
        live = self._live_in_period(invoices)
        taken = {
            i.pk: live[(i.subscription_id or 0, i.kind, i.period_start)]
            for i in invoices
            if i.status == InvoiceStatus.VOIDED and (i.subscription_id or 0, i.kind, i.period_start) in live
        }
        regenerable = [i for i in invoices if self._regenerable(i) and i.pk not in taken]
        if not regenerable:
            self.message_user(request, NOTHING_TO_REGENERATE, messages.WARNING)
            report_refusals(
                self,
                request,
                [
                    REGENERATE_PERIOD_TAKEN.format(invoice=i, live=live_one)
                    for i in invoices
                    if (live_one := taken.get(i.pk))
                ],
            )
            return None
        form = VoidReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            frozen_now = timezone.now()
            regenerated: list[str] = []
            refusals = [REGENERATE_PERIOD_TAKEN.format(invoice=i, live=taken[i.pk]) for i in invoices if i.pk in taken]
            for invoice in regenerable:
                try:
                    new = invoice_regenerate(invoice=invoice, reason=form.cleaned_data["reason"], now=frozen_now)
                except (InvoiceError, PaymentError) as exc:
                    refusals.append(str(exc))
                except ValueError as exc:  # a stored charge the engine cannot price
                    refusals.append(f"invoice {invoice}: {exc}")
                else:
                    regenerated.append(f"{invoice} → {new}")
            done = len(regenerated)
            numbers = ", ".join(regenerated[:REGENERATED_LISTED]) + (", …" if done > REGENERATED_LISTED else "")
            self.message_user(
                request,
                ngettext(*INVOICES_REGENERATED, done) % {"count": done, "numbers": numbers or "none"},
                messages.SUCCESS if done else messages.WARNING,
            )
            report_refusals(self, request, refusals)
            return None
        refused = [i for i in invoices if i not in regenerable]
        return action_page(
            self,
            request,
            "admin/billing/invoice/regenerate_confirmation.html",
            action_name="regenerate_selected",
            selected_ids=[invoice.pk for invoice in invoices],
            title="Void and regenerate invoices",
            form=form,
            regenerable=[self._void_row(invoice) for invoice in regenerable],
            refused=[
                {**self._void_row(invoice), "why": self._why_not_regenerable(invoice, taken.get(invoice.pk))}
                for invoice in refused
            ],
        )

    @staticmethod
    def _why_not_regenerable(invoice: Invoice, live: Invoice | None) -> str:
        if live is not None:
            return f"its period has a live invoice already ({live})"
        if invoice.status == InvoiceStatus.DRAFT:
            return "a draft: it is recomputed, not regenerated"
        return f"a {invoice.get_kind_display().lower()} invoice: only period and advance invoices are regenerated"
