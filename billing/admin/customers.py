"""Admin for what billing adds to a customer: its subscriptions, the current usage of each, and
its account (invoices, payments, credit notes, available credit and what it owes).

The customer admin (customers.admin.CustomerAdmin) is replaced by a subclass that counts each
customer's active subscriptions, lists its subscriptions on its page, and shows a read-only
"Current usage" panel per active subscription: the open period, each charge's units, amount,
tier and distance to the next tier or to the usage limit, and the invoice preview. The panel
is billing.selectors.usage.current_usage, the same measurement and pricing as the API and
invoices; nothing is priced here. The currency and time zone turn read-only when
billing.services.customers says they are locked (the rule the API applies too), and a change is
saved through that service, which checks the rule again under the customer's lock.

The customer's tax codes (its own taxes, which replace the organization's) are edited with the
billing fields and saved through billing.services.taxes.customer_taxes_set; read-only staff see
them listed.

The customer's wallets (balance in money and credits, ongoing balance) show with its account.
The "Account" panel (billing.selectors.receivables.customer_account) lists the customer's latest
invoices with what is still due on each, its payments and credit notes (each with a link to the
full list when there are more), its available credit (the balance left on its available credit
notes, per currency) and what it owes per currency, overdue or not. The payment term (days from
the issuing date to the due date; empty: BILLING_NET_PAYMENT_TERM_DAYS) is edited with the
billing fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from billing.admin.audit import customer_usage_charts
from billing.admin.coupons import customer_coupons_html
from billing.admin.invoice_filters import period_days
from billing.admin.shared import admin_link, admin_url, may_view
from billing.admin.subscriptions import promotion_end_display
from billing.admin.wallets import customer_wallets
from billing.documents.formats import (
    format_amount,
    format_day,
    format_moment,
    format_money,
    format_quantity,
    term_days,
    tier_range_label,
)
from billing.engine.pricing import PricedCharge, TierLine
from billing.models import (
    AppliedCoupon,
    Commitment,
    CreditNote,
    Invoice,
    InvoiceStatus,
    Payment,
    Subscription,
    SubscriptionStatus,
    Tax,
    Wallet,
)
from billing.selectors.adjustments import PreviewAdjustments, preview_adjustments
from billing.selectors.commitments import commitment_panels
from billing.selectors.plans import plans_with_charges
from billing.selectors.receivables import BUCKETS, CustomerAccount, customer_account
from billing.selectors.usage import ChargeUsage, PeriodUsage, current_usage
from billing.services.customers import CustomerError, customer_destroy, customer_update, destroy_blockers, locked_fields
from billing.services.taxes import TaxError, customer_taxes_set
from customers.admin import CustomerAdmin
from customers.models import Customer
from metering.days import local_date
from metering.models import Event

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

# Messages are constants so tests can match them.
PAYMENT_TERM_HELP = (
    "Days from an invoice's issuing date to its payment due date; empty: the default ({days}). "
    "Copied onto each invoice when it is finalized."
)
CUSTOMER_LOCKED_NOTE = (
    "This customer has subscriptions or usage events, so its currency and time zone are read-only: "
    "they decide what its plans bill and where its billing periods start and end."
)
TIMEZONE_LOCKED_NOTE = (
    "This customer has usage events, so its time zone is read-only: its local days cut the billing "
    "periods and the daily counts of its events. Its currency may change until it has a subscription."
)
USAGE_UNAVAILABLE = "Current usage could not be priced: {error}"
TAX_CODES_HELP = (
    "The customer's own taxes: they replace the organization's taxes for this customer. None checked: the "
    "organization's taxes apply. Invoices computed from now on use them; finalized ones keep theirs."
)
NO_TAX_CODES = "None: the organization's taxes apply"


# --- The current usage panel --------------------------------------------------------------------


def _current_tier(priced: PricedCharge) -> tuple[int, TierLine] | None:
    """The tier the billed units are in: the first whose upper bound they do not pass."""
    for index, tier in enumerate(priced.tiers):
        if tier.up_to is None or priced.billed_units <= tier.up_to:
            return index, tier
    return None


def charge_row(usage: ChargeUsage, currency: str) -> dict[str, Any]:
    """One charge of the panel, as display strings; every number comes from the pricing engine."""
    priced = usage.line.priced
    assert priced is not None
    spec = usage.measured.charge
    tier = "—"
    to_next = "—"
    found = _current_tier(priced)
    if found is not None:
        index, current = found
        tier = f"Tier {current.position}: {tier_range_label(current.from_units, current.up_to)}"
        if current.up_to is None:
            to_next = "Top tier"
        elif index + 1 < len(priced.tiers):
            following = priced.tiers[index + 1]
            next_range = tier_range_label(following.from_units, following.up_to)
            to_next = (
                f"{format_quantity(current.up_to - priced.billed_units)} more until tier {following.position} "
                f"({next_range} at {format_quantity(following.unit_amount)})"
            )
    limit = None
    if spec.usage_limit is not None:
        quantity = usage.measured.quantity
        cap = format_quantity(spec.usage_limit)
        if priced.limit_exceeded:
            limit = (
                f"Exceeded by {format_quantity(quantity - spec.usage_limit)} (limit {cap}; the excess is not billed)"
            )
        else:
            limit = f"{format_quantity(spec.usage_limit - quantity)} left of {cap}"
    return {
        "metric_code": usage.measured.metric_code,
        "metric_name": usage.measured.metric_name,
        "units": format_quantity(usage.measured.quantity),
        "billed_units": format_quantity(priced.billed_units),
        "events_count": f"{usage.events_count:,}",
        "amount": format_amount(usage.line.amount, currency),
        "tier": tier,
        "to_next_tier": to_next,
        "usage_limit": limit,
        "limit_exceeded": priced.limit_exceeded,
    }


def usage_panel(usage: PeriodUsage) -> dict[str, Any]:
    """The panel of one subscription's open period, as display strings for the template."""
    period = usage.period
    currency = usage.currency
    subscription = usage.subscription
    return {
        "subscription": subscription,
        "subscription_url": admin_url("billing_subscription_change", subscription.pk),
        "plan": subscription.plan,
        "timezone": subscription.customer.timezone,
        "first_day": period.start_day,
        "last_day": period.end_day - timedelta(days=1),
        "start": period.start,
        "end": period.end,
        "is_partial": period.is_partial,
        "currency": currency,
        "charges": [charge_row(c, currency) for c in usage.charges],
        "lines": [
            {
                "kind": line.kind,
                "description": line.description,
                "quantity": format_quantity(line.quantity) if line.quantity != 1 or line.kind == "usage" else "",
                "amount": format_amount(line.amount, currency),
            }
            for line in usage.lines
        ],
        "usage_amount": format_amount(usage.usage_amount, currency),
        "total": format_amount(usage.total, currency),
        "error": None,
    }


def current_usage_panels(customer: Customer, at: Any) -> list[dict[str, Any]]:
    """One panel per active subscription of the customer, at the moment `at`."""
    subscriptions = (
        Subscription.objects.filter(customer=customer, status=SubscriptionStatus.ACTIVE)
        .select_related("customer", "promotion")
        .prefetch_related(Prefetch("plan", queryset=plans_with_charges()))
        .order_by("subscription_at", "id")
    )
    panels = []
    adjustments: dict[str, PreviewAdjustments] = {}  # by currency: read once for every panel
    for subscription in subscriptions:
        currency = subscription.plan.currency
        if currency not in adjustments:
            adjustments[currency] = preview_adjustments(customer.pk, currency=currency)
        try:
            panels.append(
                usage_panel(current_usage(subscription=subscription, at=at, adjustments=adjustments[currency]))
            )
        except ValueError as exc:  # a stored charge the engine cannot price: say so, keep the page
            panels.append(
                {"subscription": subscription, "plan": subscription.plan, "error": USAGE_UNAVAILABLE.format(error=exc)}
            )
    return panels


# --- Recent events ------------------------------------------------------------------------------

RECENT_EVENTS = 10
RECENT_DAYS = 35  # BILLING_EVENT_MAX_AGE_DAYS' default: what may still arrive late


def recent_events(customer: Customer) -> list[dict[str, Any]]:
    """The customer's latest events by timestamp (its events index: customer, metric, timestamp),
    each at its time in the customer's zone, linked to its page."""
    # Bounded to the last RECENT_DAYS: the index (customer, metric, timestamp) and, on PostgreSQL,
    # the monthly partitions then read a few days, never the customer's whole history.
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    events = (
        Event.objects.filter(customer=customer, timestamp__gte=since)
        .select_related("metric")
        .order_by("-timestamp", "-id")
    )
    return [
        {
            "when": format_moment(event.timestamp, customer.timezone, named=False),
            "metric": event.metric.code,
            "link": admin_link("metering_event_change", event.pk, event.transaction_id),
            "properties": json.dumps(event.properties, sort_keys=True)[:120],
            "is_late": event.is_late,
        }
        for event in events[:RECENT_EVENTS]
    ]


# --- The commitments panel ----------------------------------------------------------------------


def commitment_rows(customer: Customer, *, may_view_commitments: bool, may_view_invoices: bool) -> list[dict[str, Any]]:
    """The customer's commitments and their latest ledger entries as display strings: days in
    the customer's time zone (as the commitment's page and its invoices show them), amounts with
    their currency, invoice numbers as links."""
    tz = customer.timezone
    rows = []
    for panel in commitment_panels(customer):
        commitment = panel.commitment
        currency = commitment.currency
        rows.append(
            {
                "subscription": commitment.subscription.external_id,
                "amount": format_money(commitment.amount, currency),
                "months": commitment.months,
                "term": term_days(commitment),
                "status": commitment.get_status_display(),
                "balance": format_money(panel.balance, currency),
                "drawn": format_money(panel.drawn, currency),
                "link": admin_link("billing_commitment_change", commitment.pk, "details")
                if may_view_commitments
                else "",
                "entries": [
                    {
                        "day": format_day(local_date(entry.created_at, tz)),
                        "kind": entry.get_kind_display(),
                        "invoice": (
                            admin_link("billing_invoice_change", entry.invoice.pk, str(entry.invoice.number))
                            if may_view_invoices
                            else str(entry.invoice.number)
                        )
                        if entry.invoice is not None and entry.invoice.number
                        else "",
                        "reason": entry.reason,
                        "amount": format_money(entry.amount, currency),
                    }
                    for entry in panel.entries
                ],
            }
        )
    return rows


# --- The account panel ----------------------------------------------------------------------------


def _list_url(name: str, query: str, allowed: bool = True) -> str | None:
    url = admin_url(name) if allowed else None
    return f"{url}?{query}" if url else None


def account_panel(
    customer: Customer, account: CustomerAccount, may_list: Callable[[type[Model]], bool] = lambda model: True
) -> dict[str, Any]:
    """The customer's money, as display strings for the template; the full lists are linked for
    whoever `may_list` them."""
    invoices = []
    for row in account.invoices:
        invoice = row.invoice
        first, last = period_days(invoice)
        invoices.append(
            {
                "number": admin_link("billing_invoice_change", invoice.pk, str(invoice)),
                # A dated invoice (one-off, wallet purchase) has no period: its kind instead.
                "period": f"{format_day(first)} – {format_day(last)}"
                if invoice.period_start != invoice.period_end
                else f"{invoice.get_kind_display()}, {format_day(first)}",
                "status": invoice.get_status_display(),
                "payment_status": invoice.get_payment_status_display()
                if invoice.status == InvoiceStatus.FINALIZED
                else "—",
                "total": format_money(invoice.total, invoice.currency),
                "due": format_money(row.due, invoice.currency) if row.due is not None else "—",
                "due_date": format_day(invoice.payment_due_date) if row.due else "",
                "overdue_days": row.days_overdue,
            }
        )
    external_id = customer.external_id
    return {
        "invoices": invoices,
        "invoices_url": _list_url("billing_invoice_changelist", f"customer={external_id}", may_list(Invoice)),
        "more_invoices": account.more_invoices,
        "payments": [
            {
                "paid_at": payment.paid_at,
                "invoice": admin_link("billing_invoice_change", payment.invoice_id, str(payment.invoice)),
                "amount": format_money(payment.amount, payment.currency),
                "reference": payment.reference,
                "created_by": payment.created_by or "API",
            }
            for payment in account.payments
        ],
        "payments_url": _list_url("billing_payment_changelist", f"customer={external_id}", may_list(Payment)),
        "more_payments": account.more_payments,
        "credit_notes": [
            {
                "number": admin_link("billing_creditnote_change", note.pk, note.number),
                "invoice": admin_link("billing_invoice_change", note.invoice_id, str(note.invoice)),
                "issued_on": format_day(note.issued_on),
                "total": format_money(note.total_amount, note.currency),
                "balance": format_money(note.balance_amount, note.currency),
                "credit_status": note.get_credit_status_display(),
                "refund": format_money(note.refund_amount, note.currency) if note.refund_amount else "—",
            }
            for note in account.credit_notes
        ],
        "credit_notes_url": _list_url("billing_creditnote_changelist", f"customer={external_id}", may_list(CreditNote)),
        "more_credit_notes": account.more_credit_notes,
        "available_credit": [format_money(amount, currency) for currency, amount in account.available_credit.items()],
        "owed": [
            {
                "currency": currency,
                "total": format_money(total.total, currency),
                "overdue": format_money(total.overdue, currency) if total.overdue else "",
                "buckets": [
                    (bucket.label, format_money(amount, currency))
                    for bucket, amount in zip(BUCKETS, total.amounts, strict=True)
                    if amount
                ],
            }
            for currency, total in account.aging.totals.items()
        ],
    }


# --- Customers ----------------------------------------------------------------------------------


class SubscriptionInline(admin.TabularInline[Subscription, Customer]):
    """The customer's subscriptions, read-only: they are created and ended from the subscription admin."""

    model = Subscription
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("plan_display", "status", "started", "billing_time", "promotion_end", "ended")
    readonly_fields = fields
    ordering = ("-subscription_at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return super().get_queryset(request).select_related("plan", "promotion", "customer")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="plan")
    def plan_display(self, obj: Subscription) -> str:
        return str(obj.plan)

    @admin.display(description="trial / promotion ends")
    def promotion_end(self, obj: Subscription) -> str:
        return promotion_end_display(obj)

    # The customer's own clock, as its periods run on it (the zone is the page's: its time zone).
    @admin.display(description="started")
    def started(self, obj: Subscription) -> str:
        return format_moment(obj.subscription_at, obj.customer.timezone, named=False)

    @admin.display(description="terminated")
    def ended(self, obj: Subscription) -> str:
        return format_moment(obj.terminated_at, obj.customer.timezone, named=False) if obj.terminated_at else "—"


class _ActiveSubscriptionCount(TypedDict):
    active_subscription_count: int  # BilledCustomerAdmin.get_queryset


class CustomerTaxesForm(forms.ModelForm[Customer]):
    """The customer's form with its tax codes (saved by billing.services.taxes.customer_taxes_set)."""

    tax_codes = forms.ModelMultipleChoiceField(
        queryset=Tax.objects.order_by("code"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=TAX_CODES_HELP,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "tax_codes" in self.fields and not self.instance._state.adding:
            self.initial["tax_codes"] = list(
                Tax.objects.filter(customer_taxes__customer=self.instance).values_list("pk", flat=True)
            )


class BilledCustomerAdmin(CustomerAdmin):
    """The customer admin with what billing knows: subscriptions and their current usage."""

    form = CustomerTaxesForm

    list_display = (
        "external_id",
        "name",
        "email",
        "currency",
        "timezone",
        "active_subscriptions",
    )
    inlines = [SubscriptionInline]
    # + the account panel; it extends billing.admin.audit's page (the MTU charts).
    change_form_template = "admin/billing/customer/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # The count is part of the list query: no query per row.
        return (
            super()
            .get_queryset(request)
            .annotate(
                active_subscription_count=Count(
                    "subscriptions", filter=Q(subscriptions__status=SubscriptionStatus.ACTIVE)
                )
            )
        )

    # Deleting is the API's soft delete (billing.services.customers.customer_destroy), with its
    # rules: never Django's row delete, and one customer at a time (no bulk action). A customer
    # that may not be deleted yet is sent back to its page with the reasons.
    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        customer = self.get_object(request, unquote(object_id))
        # Django's own refusals first (no permission: 403), then the service's rules.
        allowed = customer is not None and self.has_delete_permission(request, customer)
        blockers = destroy_blockers(customer) if allowed and customer is not None else {}
        if customer is not None and blockers:
            for reasons in blockers.values():
                for reason in reasons:
                    self.message_user(request, f"{customer} cannot be deleted yet: {reason}.", level=messages.ERROR)
            return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # A soft delete removes no row: nothing cascades, and no protected row stands in the way.
        return [str(obj) for obj in objs], {}, set(), []

    def delete_model(self, request: HttpRequest, obj: Customer) -> None:
        customer_destroy(customer=obj, now=timezone.now())

    @admin.display(description="active subscriptions", ordering="active_subscription_count")
    def active_subscriptions(self, obj: WithAnnotations[Customer, _ActiveSubscriptionCount]) -> int:
        return obj.active_subscription_count

    def locked(self, request: HttpRequest, obj: Customer | None) -> dict[str, str]:
        """The fields that may no longer change (billing.services.customers); asked once per
        customer and request."""
        if obj is None or obj.pk is None:
            return {}
        cache: dict[int, dict[str, str]] = request.__dict__.setdefault("_billing_locked_customers", {})
        if obj.pk not in cache:
            cache[obj.pk] = locked_fields(obj)
        return cache[obj.pk]

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, *sorted(self.locked(request, obj)))

    def get_fieldsets(self, request: HttpRequest, obj: Customer | None = None) -> Any:
        fieldsets = [
            # The payment term and tax codes sit with the billing fields (customers' admin knows
            # nothing of them).
            (name, {**options, "fields": (*options["fields"], "net_payment_term", "tax_codes")})
            if name == "Billing"
            else (name, options)
            for name, options in super().get_fieldsets(request, obj)
        ]
        locked = self.locked(request, obj)
        if not locked:
            return fieldsets
        note = CUSTOMER_LOCKED_NOTE if "currency" in locked else TIMEZONE_LOCKED_NOTE
        return [
            (name, {**options, "description": note}) if name == "Billing" else (name, options)
            for name, options in fieldsets
        ]

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "net_payment_term" and field is not None:
            field.help_text = PAYMENT_TERM_HELP.format(days=settings.BILLING_NET_PAYMENT_TERM_DAYS)
        return field

    @admin.display(description="tax codes")
    def tax_codes(self, obj: Customer) -> str:
        """The tax codes, as read-only staff see them (others edit them: CustomerTaxesForm)."""
        taxes = [str(tax) for tax in Tax.objects.filter(customer_taxes__customer=obj).order_by("code")]
        return ", ".join(taxes) or NO_TAX_CODES

    def save_model(self, request: HttpRequest, obj: Customer, form: Any, change: bool) -> None:
        fields = [name for name in form.changed_data if name != "tax_codes"]
        if not change:
            super().save_model(request, obj, form, change)
        else:
            # Through the service, which checks the currency and time zone rule again under the lock.
            try:
                saved = customer_update(customer=obj, changes={name: getattr(obj, name) for name in fields})
            except CustomerError as exc:
                raise PermissionDenied(str(exc)) from exc
            obj.updated_at = saved.updated_at
        if "tax_codes" in form.changed_data:
            try:
                customer_taxes_set(customer=obj, tax_codes=[tax.code for tax in form.cleaned_data["tax_codes"]])
            except TaxError as exc:  # a tax deleted since the form was shown
                raise PermissionDenied(str(exc)) from exc

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Customer | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            now = timezone.now()
            context["current_usage"] = current_usage_panels(obj, now)
            subscriptions = [panel["subscription"] for panel in context["current_usage"]]
            context["usage_charts"] = customer_usage_charts(obj, subscriptions, now)
            context["current_usage_shown"] = True
            context["commitment_panels"] = commitment_rows(
                obj,
                may_view_commitments=may_view(request, self, Commitment),
                may_view_invoices=may_view(request, self, Invoice),
            )
            context["account"] = account_panel(
                obj, customer_account(obj, now=now), lambda model: may_view(request, self, model)
            )
            if may_view(request, self, AppliedCoupon):
                applied_admin = self.admin_site._registry.get(AppliedCoupon)
                may_apply = applied_admin is not None and applied_admin.has_add_permission(request)
                context["applied_coupons"] = customer_coupons_html(obj, may_apply=may_apply)
            if may_view(request, self, Wallet):
                context["wallets"] = customer_wallets(obj)
                wallet_admin = self.admin_site._registry.get(Wallet)
                add_wallet = admin_url("billing_wallet_add")
                if add_wallet is not None and wallet_admin is not None and wallet_admin.has_add_permission(request):
                    context["add_wallet_url"] = f"{add_wallet}?customer={obj.external_id}"
            if may_view(request, self, Event):
                context["recent_events"] = recent_events(obj)
            events_url = admin_url("metering_event_changelist")
            if events_url is not None:
                context["customer_events_url"] = f"{events_url}?customer__id__exact={obj.pk}"
            add_url = admin_url("billing_subscription_add")
            subscription_admin = self.admin_site._registry.get(Subscription)
            # Only offer the button to someone who may use it (read-only staff would get a 403).
            if add_url is not None and subscription_admin and subscription_admin.has_add_permission(request):
                context["add_subscription_url"] = f"{add_url}?customer={obj.pk}"
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


admin.site.unregister(Customer)
admin.site.register(Customer, BilledCustomerAdmin)
