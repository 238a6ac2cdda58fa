"""Admin for payments: the append-only list, and "Record payment" on a finalized invoice.

- Payments are recorded from the invoice page's "Record payment" button (…/invoice/<id>/record-payment/),
  a form of amount, reference and when the money was received, for staff who may add payments.
  It calls billing.services.payments.payment_create, which decides everything under the
  invoice's lock (finalized only, not more than is due, the currency's precision): its refusal
  is shown next to the input it is about and nothing is stored. "Mark selected as paid" on the
  invoice list stays the quick way to pay what is left.
- The payment list is read-only: a payment is never edited or deleted (a mistake is answered by
  a credit note with a refund), so there is no add, change or delete page.
- "Paid at" is typed in the site's time zone (settings.TIME_ZONE), as the admin shows times.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path
from django.utils import timezone

from billing.admin.money_input import MoneyField, add_service_errors
from billing.admin.shared import CustomerFilter, admin_link, admin_page, admin_url, viewable_object
from billing.documents.formats import format_amount, format_money
from billing.models import Invoice, InvoiceStatus, Payment
from billing.selectors.receivables import settlements
from billing.services.payments import PaymentError, payment_create

# Messages are constants so tests can match them.
PAYMENT_RECORDED = "A payment of {amount} was recorded on invoice {invoice}: {rest}."
PAID_IN_FULL = "it is paid in full"
STILL_DUE = "{due} is still due"
PAID_AT_IN_FUTURE = "Money cannot have been received in the future."
NOT_PAYABLE_DRAFT = "Invoice {invoice} is a draft: only a finalized invoice can be paid."
NOT_PAYABLE_VOIDED = "Invoice {invoice} is voided: it is no longer payable."
NOTHING_DUE = "Nothing is due on invoice {invoice}: it is paid (or offset by credit notes) in full."

PAYMENT_FIELDS = {"amount_cents": "amount", "reference": "reference", "paid_at": "paid_at"}

# The permission that records a payment (the Finance role has it; read-only staff do not).
ADD_PAYMENT = "billing.add_payment"


def may_record_payments(request: HttpRequest) -> bool:
    return request.user.has_perm(ADD_PAYMENT)


def payable_note(invoice: Invoice, due: Decimal) -> str:
    """Why no payment can be recorded on the invoice, or "" when one can."""
    if invoice.status == InvoiceStatus.DRAFT:
        return NOT_PAYABLE_DRAFT.format(invoice=invoice)
    if invoice.status == InvoiceStatus.VOIDED:
        return NOT_PAYABLE_VOIDED.format(invoice=invoice)
    if due <= 0:
        return NOTHING_DUE.format(invoice=invoice)
    return ""


class PaymentForm(forms.Form):
    amount = forms.DecimalField()  # replaced by a MoneyField in the invoice's currency
    reference = forms.CharField(
        max_length=255,
        help_text="The bank transfer's reference, a receipt or cheque number: what finds the money again.",
    )
    paid_at = forms.DateTimeField(
        label="Paid at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, invoice: Invoice, now: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now
        self.fields["amount"] = MoneyField(
            currency=invoice.currency,
            label=f"Amount ({invoice.currency})",
            help_text="All that is due, or part of it; never more.",
        )
        self.fields["paid_at"].help_text = f"When the money was received ({settings.TIME_ZONE})."

    def clean_paid_at(self) -> Any:
        paid_at = self.cleaned_data["paid_at"]
        if paid_at > self.now:
            raise forms.ValidationError(PAID_AT_IN_FUTURE)
        return paid_at


def _invoice_summary(invoice: Invoice) -> dict[str, Any]:
    settled = settlements(Invoice.objects.filter(pk=invoice.pk))
    paid = settled.paid.get(invoice.pk, Decimal(0))
    offset = settled.offset.get(invoice.pk, Decimal(0))
    due = invoice.total - paid - offset if invoice.status == InvoiceStatus.FINALIZED else Decimal(0)
    currency = invoice.currency
    return {
        "invoice": invoice,
        "invoice_url": admin_url("billing_invoice_change", invoice.pk),
        "customer": invoice.customer,
        "total": format_money(invoice.total, currency),
        "paid": format_money(paid, currency),
        "offset": format_money(offset, currency) if offset else "",
        "due": due,
        "due_display": format_money(due, currency),
        "payments": [
            {
                "paid_at": payment.paid_at,
                "reference": payment.reference,
                "created_by": payment.created_by or "API",
                "amount": format_money(payment.amount, payment.currency),
            }
            for payment in invoice.payments.select_related("created_by").order_by("paid_at", "id")
        ],
    }


def record_payment_view(request: HttpRequest, object_id: str, model_admin: admin.ModelAdmin[Invoice]) -> HttpResponse:
    """The "Record payment" page of one invoice: the form (GET), then payment_create (POST)."""
    if not may_record_payments(request):
        raise PermissionDenied
    invoice = viewable_object(model_admin, request, object_id)
    if isinstance(invoice, HttpResponse):
        return invoice
    now = timezone.now()
    summary = _invoice_summary(invoice)
    if request.method == "POST":
        form = PaymentForm(request.POST, invoice=invoice, now=now)
        if form.is_valid():
            try:
                payment_create(
                    invoice=invoice,
                    amount=form.cleaned_data["amount"],
                    reference=form.cleaned_data["reference"],
                    paid_at=form.cleaned_data["paid_at"],
                    now=now,
                    user=cast("User", request.user),
                )
            except PaymentError as exc:
                add_service_errors(form, exc.errors, PAYMENT_FIELDS.get)
            else:
                after = _invoice_summary(invoice)
                rest = STILL_DUE.format(due=after["due_display"]) if after["due"] > 0 else PAID_IN_FULL
                model_admin.message_user(
                    request,
                    PAYMENT_RECORDED.format(
                        amount=format_money(form.cleaned_data["amount"], invoice.currency), invoice=invoice, rest=rest
                    ),
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(summary["invoice_url"])
    else:
        initial: dict[str, Any] = {"paid_at": timezone.localtime(now).replace(second=0, microsecond=0)}
        if summary["due"] > 0:
            initial["amount"] = format_amount(summary["due"], invoice.currency).replace(",", "")
        form = PaymentForm(initial=initial, invoice=invoice, now=now)
    return admin_page(
        model_admin,
        request,
        "admin/billing/invoice/record_payment.html",
        title=f"Record a payment on {invoice}",
        form=form,
        note=payable_note(invoice, summary["due"]),
        **summary,
    )


def payment_urls(model_admin: admin.ModelAdmin[Invoice]) -> list[URLPattern]:
    """The "Record payment" page, under the invoice admin."""
    return [
        path(
            "<path:object_id>/record-payment/",
            model_admin.admin_site.admin_view(record_payment_view),
            {"model_admin": model_admin},
            name="billing_invoice_record_payment",
        )
    ]


# --- The payment list ---------------------------------------------------------------------------


class PaymentCustomerFilter(CustomerFilter):
    path = "invoice__customer"


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin[Payment]):
    """Every payment, searchable; read-only (payments are append-only)."""

    list_display = (
        "paid_at",
        "invoice_display",
        "customer_display",
        "amount_display",
        "reference",
        "recorded_by",
        "created_at",
    )
    list_filter = ("currency", PaymentCustomerFilter)
    list_select_related = ("invoice__customer", "created_by")
    search_fields = ("reference", "invoice__number", "invoice__customer__external_id", "invoice__customer__name")
    search_help_text = "Reference, invoice number, or the customer's external id or name."
    ordering = ("-paid_at", "-id")
    show_full_result_count = False
    fields = (
        "invoice_display",
        "customer_display",
        "amount_display",
        "reference",
        "paid_at",
        "created_by",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Payment]:
        return super().get_queryset(request).select_related("invoice__customer", "created_by")

    @admin.display(description="invoice", ordering="invoice__number")
    def invoice_display(self, obj: Payment) -> str:
        return admin_link("billing_invoice_change", obj.invoice_id, str(obj.invoice))

    @admin.display(description="customer", ordering="invoice__customer__external_id")
    def customer_display(self, obj: Payment) -> str:
        customer = obj.invoice.customer
        return admin_link("customers_customer_change", customer.pk, str(customer))

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="recorded by", ordering="created_by__username")
    def recorded_by(self, obj: Payment) -> str:
        """Who recorded it in the admin; "API" for a payment posted to /api/v1/payments."""
        return obj.created_by.get_username() if obj.created_by is not None else "API"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # recorded on an invoice's page

    def has_change_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        return False
