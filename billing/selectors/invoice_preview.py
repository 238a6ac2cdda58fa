"""Lago's invoice preview: the invoice a subscription would get, computed and never written.

Two questions, as Lago's Invoices::PreviewService answers them:
- a NEW subscription of a customer (an existing one, or one described inline and never saved) to
  a plan: the first invoice it would get. In arrears, the close of its first usage period: the
  base fee of the fee period ending with it, prorated from `subscription_at`, with the plan's
  promotion (a trial makes it 0); in advance, the advance invoice of its first fee period. As
  Lago's, nothing is measured yet, so no usage line;
- the NEXT invoice of an existing subscription: its open period as if it closed now (usage so
  far; Lago's projection), or at `terminated_at` within that period (the period then ends there
  and the base fee is prorated to it). These are the inputs period close reads
  (billing.selectors.invoice_inputs.period_invoice_inputs: usage, late usage, the commitment
  drawdown, the customer's coupons, taxes, credit-note credit and wallet), so what the preview
  shows is what closing the period would bill; with nothing late, no commitment, credit note or
  wallet, its total is current usage's `invoice_preview` total.

Coupons: as in Lago, the customer's active applied coupons when it has some; otherwise the
coupons of the request, applied to this preview only (an existing coupon by code, or one described
inline). Taxes: the customer's tax codes (those of the request for an inline description),
else the organization's.

Everything here reads: the subscription or customer a preview describes is an unsaved instance,
the lines come from the pure engine (billing.engine.invoice.invoice_lines), and no number,
webhook, email or row is produced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch

from billing.engine.adjustments import CouponCredit, TaxRate
from billing.engine.invoice import InvoiceInputs, invoice_lines
from billing.engine.lines import Line, total
from billing.engine.money import from_cents
from billing.engine.periods import ONE_MICROSECOND, Period
from billing.engine.vocabulary import BillingTime, CouponType, InvoiceKind, SubscriptionStatus
from billing.models import Coupon, Plan, Subscription, Tax
from billing.selectors.adjustments import coupon_credit, coupon_credits, tax_rates, wallet_credit
from billing.selectors.credit_notes import available_credits
from billing.selectors.invoice_inputs import period_invoice_inputs
from billing.selectors.plans import current_plan, plans_with_charges
from billing.selectors.usage import period_of, plan_spec_of, promotion_window
from billing.services.errors import FieldErrors
from billing.services.numbering import net_payment_term
from customers.models import Customer
from metering.days import local_date

MUST_BE_PERSISTED = "must be an existing customer (give its external_id) to preview its subscriptions"
PLAN_CODE_REQUIRED = "is required to preview a new subscription (or give subscriptions.external_ids)"
ONE_SUBSCRIPTION_ONLY = "one subscription per preview: each invoice here bills one subscription"
PLAN_CHANGE_NOT_SUPPORTED = "is not supported: a plan change preview is not available here"
TERMINATED_IN_PAST = "cannot be in the past"
TERMINATED_AFTER_PERIOD = "must be within the subscription's current billing period (ending {end})"
UNKNOWN_TAX_CODES = "unknown tax codes: {codes}"
UNKNOWN_COUPON = "no coupon {code!r}: give its coupon_type (and amount_cents or percentage_rate) to describe one"
COUPON_TYPE_REQUIRED = "is required to describe a coupon"
AMOUNT_REQUIRED = "is required for a fixed_amount coupon"
RATE_REQUIRED = "is required for a percentage coupon"
CURRENCY_MISMATCH = "must be the plan's currency ({currency})"


class PreviewError(FieldErrors):
    """The request cannot be previewed; messages by field (422)."""


class PreviewNotFound(Exception):
    """Something the request names does not exist: `resource` is Lago's (customer, plan, subscription)."""

    def __init__(self, resource: str) -> None:
        self.resource = resource
        super().__init__(f"{resource} not found")


@dataclass(frozen=True)
class CouponInput:
    """A coupon of the request: an existing one (`code` only), or one described inline."""

    code: str | None = None
    name: str | None = None
    coupon_type: str | None = None
    amount_cents: int | None = None
    amount_currency: str | None = None
    percentage_rate: Decimal | None = None
    frequency_duration: int | None = None
    plan_codes: tuple[str, ...] = ()
    metric_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreviewRequest:
    """What to preview. `customer_fields`: the customer's model fields as the request sets them
    (in memory only); `tax_codes`: its taxes for this preview (None: its own, or the organization's)."""

    customer_external_id: str | None = None
    customer_fields: dict[str, Any] | None = None
    tax_codes: tuple[str, ...] | None = None
    plan_code: str | None = None
    subscription_at: datetime | None = None
    billing_time: str | None = None
    external_ids: tuple[str, ...] = ()
    target_plan_code: str | None = None
    terminated_at: datetime | None = None
    coupons: tuple[CouponInput, ...] = ()


@dataclass(frozen=True)
class InvoicePreview:
    """The invoice as it would be: `subscription` and `customer` may be unsaved instances."""

    customer: Customer
    subscription: Subscription
    kind: str  # InvoiceKind.PERIOD or ADVANCE
    period: Period  # what the invoice covers
    currency: str
    lines: list[Line]
    issuing_date: date
    net_payment_term: int

    @property
    def total(self) -> Decimal:
        return total(self.lines)

    @property
    def payment_due_date(self) -> date:
        return self.issuing_date + timedelta(days=self.net_payment_term)


def invoice_preview(*, request: PreviewRequest, now: datetime) -> InvoicePreview:
    """The invoice `request` describes (PreviewError: 422; PreviewNotFound: 404)."""
    customer = _customer(request, now)
    taxes = _taxes(request.tax_codes) if request.tax_codes is not None else None
    if request.external_ids:
        return _next_invoice(request, customer, taxes, now)
    if not request.plan_code:
        raise PreviewError({"plan_code": [PLAN_CODE_REQUIRED]})
    try:
        plan = current_plan(request.plan_code)
    except Plan.DoesNotExist:
        raise PreviewNotFound("plan") from None
    at = request.subscription_at or now
    subscription = Subscription(
        customer=customer,
        plan=plan,
        external_id="",
        subscription_at=at,
        billing_time=request.billing_time or BillingTime.CALENDAR,
        status=SubscriptionStatus.ACTIVE,
        promotion=plan.promotion,
        promotion_start=at if plan.promotion is not None else None,
        created_at=now,
    )
    return _first_invoice(request, subscription, taxes)


def _customer(request: PreviewRequest, now: datetime) -> Customer:
    """The existing customer (with the request's fields set in memory), or an unsaved one."""
    if request.customer_external_id:
        found = Customer.objects.filter(external_id=request.customer_external_id).first()
        if found is None:
            raise PreviewNotFound("customer")
        customer = found
    else:
        customer = Customer(external_id="", created_at=now, updated_at=now)  # as Lago's unsaved customer
    for field, value in (request.customer_fields or {}).items():
        if value is not None:
            setattr(customer, field, value)
    return customer


def _taxes(codes: tuple[str, ...]) -> tuple[TaxRate, ...]:
    found = {tax.code: tax for tax in Tax.objects.filter(code__in=codes)}
    missing = [code for code in codes if code not in found]
    if missing:
        raise PreviewError({"customer.tax_codes": [UNKNOWN_TAX_CODES.format(codes=", ".join(missing))]})
    return tuple(TaxRate(tax.pk, tax.code, tax.name, tax.rate) for tax in sorted(found.values(), key=lambda t: t.code))


def _first_invoice(
    request: PreviewRequest, subscription: Subscription, taxes: tuple[TaxRate, ...] | None
) -> InvoicePreview:
    """The first invoice of a subscription that has not started (unsaved, or pending)."""
    plan = subscription.plan
    customer = subscription.customer
    start = subscription.subscription_at
    fee_period = period_of(subscription, at=start, interval=plan.interval)
    if plan.pay_in_advance:
        kind, period = InvoiceKind.ADVANCE, fee_period
        billed_fee: Period | None = fee_period
    else:
        kind, period = InvoiceKind.PERIOD, period_of(subscription, at=start)
        billed_fee = fee_period if fee_period.end == period.end else None
    persisted = customer.pk is not None
    inputs = InvoiceInputs(
        plan=plan_spec_of(plan),
        period=period,
        fee_period=billed_fee,
        promotion=promotion_window(subscription),
        credits=available_credits(customer.pk, currency=plan.currency) if persisted else (),
        coupons=coupon_credits(customer.pk, currency=plan.currency) if persisted else (),
        taxes=taxes if taxes is not None else tax_rates(customer.pk),
        wallet=wallet_credit(customer.pk, currency=plan.currency) if persisted else None,
    )
    return _preview(request, subscription, kind, inputs)


def _next_invoice(
    request: PreviewRequest, customer: Customer, taxes: tuple[TaxRate, ...] | None, now: datetime
) -> InvoicePreview:
    """The next invoice of the customer's subscription: its open period closed now or at
    `terminated_at`."""
    if customer.pk is None:
        raise PreviewError({"customer": [MUST_BE_PERSISTED]})
    if len(request.external_ids) > 1:
        raise PreviewError({"subscriptions.external_ids": [ONE_SUBSCRIPTION_ONLY]})
    if request.target_plan_code:
        raise PreviewError({"subscriptions.plan_code": [PLAN_CHANGE_NOT_SUPPORTED]})
    subscription = (
        Subscription.objects.filter(
            customer=customer,
            external_id=request.external_ids[0],
            status__in=(SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING),
        )
        .select_related("promotion")
        .prefetch_related(Prefetch("plan", queryset=plans_with_charges()))
        .order_by("-subscription_at", "-id")
        .first()
    )
    if subscription is None:
        raise PreviewNotFound("subscription")
    subscription.customer = customer  # the request's fields (timezone, …) apply, in memory
    if subscription.status == SubscriptionStatus.PENDING:
        return _first_invoice(request, subscription, taxes)  # as Lago: its first invoice
    plan = subscription.plan
    period = period_of(subscription, at=now)
    if request.terminated_at is not None:
        if request.terminated_at < now:
            raise PreviewError({"subscriptions.terminated_at": [TERMINATED_IN_PAST]})
        if request.terminated_at > period.end:
            end = period.end.isoformat().replace("+00:00", "Z")
            raise PreviewError({"subscriptions.terminated_at": [TERMINATED_AFTER_PERIOD.format(end=end)]})
        subscription.terminated_at = request.terminated_at  # in memory only: never saved
        period = period_of(subscription, at=request.terminated_at - ONE_MICROSECOND)
    inputs = period_invoice_inputs(subscription, plan, period, taxes=taxes)
    return _preview(request, subscription, InvoiceKind.PERIOD, inputs)


def _preview(request: PreviewRequest, subscription: Subscription, kind: str, inputs: InvoiceInputs) -> InvoicePreview:
    if not inputs.coupons and request.coupons:
        inputs = replace(inputs, coupons=_coupons(request.coupons, inputs.plan.currency))
    customer = subscription.customer
    lines = invoice_lines(inputs, keep_unmeasured=True)
    due = inputs.period.end if kind == InvoiceKind.PERIOD else inputs.period.start
    return InvoicePreview(
        customer=customer,
        subscription=subscription,
        kind=kind,
        period=inputs.period,
        currency=inputs.plan.currency,
        lines=lines,
        issuing_date=local_date(due, customer.timezone),
        net_payment_term=net_payment_term(customer),
    )


def _coupons(coupons: tuple[CouponInput, ...], currency: str) -> tuple[CouponCredit, ...]:
    """The request's coupons as this preview applies them, in the order given."""
    existing = {c.code: c for c in Coupon.objects.filter(code__in=[c.code for c in coupons if c.code])}
    out = []
    errors: dict[str, list[str]] = {}
    for i, given in enumerate(coupons):
        field = f"coupons.{i}"
        if given.frequency_duration == 0:
            continue  # a recurring coupon with no invoice left reduces none
        found = existing.get(given.code or "")
        if found is not None and given.coupon_type is None:
            out.append(coupon_credit(found))
            continue
        if given.coupon_type is None:
            message = UNKNOWN_COUPON.format(code=given.code) if given.code else COUPON_TYPE_REQUIRED
            errors[f"{field}.{'code' if given.code else 'coupon_type'}"] = [message]
            continue
        amount = None
        if given.coupon_type == CouponType.FIXED_AMOUNT:
            if given.amount_cents is None:
                errors[f"{field}.amount_cents"] = [AMOUNT_REQUIRED]
                continue
            if given.amount_currency and given.amount_currency != currency:
                errors[f"{field}.amount_currency"] = [CURRENCY_MISMATCH.format(currency=currency)]
                continue
            amount = from_cents(given.amount_cents, currency)
        elif given.percentage_rate is None:
            errors[f"{field}.percentage_rate"] = [RATE_REQUIRED]
            continue
        code = given.code or f"preview-coupon-{i + 1}"
        out.append(
            CouponCredit(
                applied_coupon_id=0,
                code=code,
                name=given.name or code,
                coupon_type=given.coupon_type,
                amount=amount,
                percentage_rate=given.percentage_rate,
                plan_codes=given.plan_codes,
                metric_codes=given.metric_codes,
            )
        )
    if errors:
        raise PreviewError(errors)
    return tuple(out)
