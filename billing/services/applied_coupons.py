"""Applied coupons (DESIGN §6 "Coupons"; Lago's AppliedCoupons services): giving a coupon to a
customer, and stopping it. What invoices use of them: billing.services.coupons.

- `applied_coupon_create` gives a coupon to a customer (by external id) under the customer's row
  lock, so two applications at once cannot both pass the reusable check, and the coupon's, so it
  is not terminated, changed or deleted meanwhile (lock order: customer, then coupon; nothing
  takes them the other way round). Refused with a CouponError naming the field, nothing stored:
  an unknown customer (`external_customer_id`); an unknown, terminated or expired coupon
  (`coupon_code`; expired: its `expiration_at` has come); a non-reusable coupon the customer
  ever had, even terminated (as Lago); a coupon limited to plans or metrics that overlap those
  of a coupon the customer has active (Lago's plan_overlapping; `coupon_code`); a fixed amount in
  another currency than the customer's (`amount_currency`). `amount_cents`, `amount_currency`,
  `percentage_rate`, `frequency` and `frequency_duration` override the coupon's (as Lago; each
  checked as the coupon's own would be, and only for the kind of coupon it fits). The terms are
  copied into the AppliedCoupon, which keeps what is left of them: `amount_remaining` = the
  amount for a `once` fixed coupon, `frequency_duration_remaining` = the duration for a
  recurring one.
- `applied_coupon_terminate` stops it: no invoice finalized afterwards uses it (Lago's
  DELETE /customers/<id>/applied_coupons/<id>). Terminating a terminated one changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.engine.money import from_cents, to_cents
from billing.engine.vocabulary import CouponExpiration, CouponFrequency, CouponStatus, CouponType
from billing.models import AppliedCoupon, Charge, Coupon
from billing.services.coupons import (
    ONLY_FIXED,
    ONLY_PERCENTAGE,
    ONLY_RECURRING,
    CouponError,
    Errors,
    check_cents,
    check_choice,
    check_currency,
    check_duration,
    check_rate,
)
from customers.models import Customer

# Error messages are constants so tests can match them.
UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
UNKNOWN_COUPON = "unknown coupon {ref!r}"
COUPON_TERMINATED = "coupon {code!r} is terminated"
COUPON_EXPIRED = "coupon {code!r} expired at {at}"
NOT_REUSABLE = "coupon {code!r} is not reusable and this customer already had it"
CURRENCY_MISMATCH = "{currency} is not the customer's currency ({customer_currency})"
LIMITATION_OVERLAPS = (
    "coupon {code!r} is limited to plans or billable metrics that coupon {other!r}, active for this customer, "
    "is limited to already"
)


@dataclass(frozen=True)
class CouponOverrides:
    """What an application overrides of the coupon's terms (None: the coupon's), as Lago's
    POST /applied_coupons."""

    amount_cents: int | None = None
    amount_currency: str | None = None
    percentage_rate: Decimal | None = None
    frequency: str | None = None
    frequency_duration: int | None = None


def overlapping(customer: Customer, coupon: Coupon) -> AppliedCoupon | None:
    """An active applied coupon of the customer whose limitation overlaps the coupon's: the same
    plans or metrics, or metrics the coupon's plans charge, or plans that charge its metrics
    (Lago's plan_overlapping). None when the coupon is not limited."""
    plans, metrics = set(coupon.plan_codes or []), set(coupon.billable_metric_codes or [])
    if not plans and not metrics:
        return None
    if metrics:
        plans |= set(Charge.objects.filter(metric__code__in=metrics).values_list("plan__code", flat=True))
    if coupon.plan_codes:
        metrics |= set(Charge.objects.filter(plan__code__in=coupon.plan_codes).values_list("metric__code", flat=True))
    active = AppliedCoupon.objects.filter(customer=customer, status=CouponStatus.ACTIVE).select_related("coupon")
    for other in active.order_by("created_at", "id"):
        if plans & set(other.coupon.plan_codes or []) or metrics & set(other.coupon.billable_metric_codes or []):
            return other
    return None


def _refusals(customer: Customer, coupon: Coupon, now: datetime) -> Errors:
    """Why the coupon may not be given to the customer now (on `coupon_code`), if it may not."""
    errors = Errors()
    if coupon.status == CouponStatus.TERMINATED:
        errors.add("coupon_code", COUPON_TERMINATED.format(code=coupon.code))
    elif coupon.expiration == CouponExpiration.TIME_LIMIT and coupon.expiration_at and coupon.expiration_at <= now:
        errors.add("coupon_code", COUPON_EXPIRED.format(code=coupon.code, at=coupon.expiration_at.isoformat()))
    elif not coupon.reusable and AppliedCoupon.objects.filter(customer=customer, coupon=coupon).exists():
        errors.add("coupon_code", NOT_REUSABLE.format(code=coupon.code))
    else:
        other = overlapping(customer, coupon)
        if other is not None:
            errors.add("coupon_code", LIMITATION_OVERLAPS.format(code=coupon.code, other=other.coupon.code))
    return errors


def _copy_amount(applied: AppliedCoupon, coupon: Coupon, overrides: CouponOverrides, customer: Customer) -> Errors:
    """The fixed amount or the rate, the coupon's or the overrides'."""
    errors = Errors()
    if coupon.coupon_type == CouponType.FIXED_AMOUNT:
        currency = coupon.currency
        if overrides.amount_currency is not None:
            currency = check_currency(errors, "amount_currency", overrides.amount_currency) or currency
        if currency != customer.currency and "amount_currency" not in errors:
            errors.add(
                "amount_currency", CURRENCY_MISMATCH.format(currency=currency, customer_currency=customer.currency)
            )
        # Lago keeps cents: an amount_currency alone reads the coupon's cents in that currency.
        cents = to_cents(coupon.amount or Decimal(0), coupon.currency)
        if overrides.amount_cents is not None:
            cents = check_cents(errors, "amount_cents", overrides.amount_cents) or cents
        if overrides.percentage_rate is not None:
            errors.add("percentage_rate", ONLY_PERCENTAGE)
        if not errors:
            applied.amount, applied.currency = from_cents(cents, currency), currency
        return errors
    applied.percentage_rate = coupon.percentage_rate
    if overrides.percentage_rate is not None:
        applied.percentage_rate = check_rate(errors, "percentage_rate", overrides.percentage_rate)
    for field in ("amount_cents", "amount_currency"):
        if getattr(overrides, field) is not None:
            errors.add(field, ONLY_FIXED)
    return errors


def _copy_frequency(applied: AppliedCoupon, coupon: Coupon, overrides: CouponOverrides) -> Errors:
    """The frequency and duration, the coupon's or the overrides' (a duration for recurring only)."""
    errors = Errors()
    frequency = coupon.frequency
    if overrides.frequency is not None:
        frequency = check_choice(errors, "frequency", overrides.frequency, CouponFrequency.values) or frequency
    applied.frequency = frequency
    if frequency == CouponFrequency.RECURRING:
        wanted = coupon.frequency_duration if overrides.frequency_duration is None else overrides.frequency_duration
        duration = check_duration(errors, "frequency_duration", wanted)
        applied.frequency_duration = applied.frequency_duration_remaining = duration
    elif overrides.frequency_duration is not None:
        errors.add("frequency_duration", ONLY_RECURRING)
    return errors


@transaction.atomic
def applied_coupon_create(
    *,
    external_customer_id: str,
    coupon_code: str,
    overrides: CouponOverrides | None = None,
    now: datetime | None = None,
) -> AppliedCoupon:
    """Give the coupon to the customer (Lago's POST /applied_coupons), its terms copied from the
    coupon unless overridden."""
    now = now or timezone.now()
    overrides = overrides or CouponOverrides()
    errors = Errors()
    customer = Customer.objects.select_for_update().filter(external_id=external_customer_id).first()
    if customer is None:
        errors.add("external_customer_id", UNKNOWN_CUSTOMER.format(ref=external_customer_id))
    coupon = Coupon.objects.select_for_update().filter(code=coupon_code).first()
    if coupon is None:
        errors.add("coupon_code", UNKNOWN_COUPON.format(ref=coupon_code))
    if customer is None or coupon is None:
        raise CouponError(errors)
    applied = AppliedCoupon(coupon=coupon, customer=customer, coupon_type=coupon.coupon_type, reusable=coupon.reusable)
    for found in (
        _refusals(customer, coupon, now),
        _copy_amount(applied, coupon, overrides, customer),
        _copy_frequency(applied, coupon, overrides),
    ):
        for field, messages in found.items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise CouponError(errors)
    if applied.frequency == CouponFrequency.ONCE and applied.coupon_type == CouponType.FIXED_AMOUNT:
        applied.amount_remaining = applied.amount
    applied.save()
    return applied


@transaction.atomic
def applied_coupon_terminate(*, applied_coupon: AppliedCoupon, now: datetime | None = None) -> AppliedCoupon:
    """Stop the customer's coupon: no invoice finalized from now on uses it. The customer's lock
    first, as finalizing an invoice takes it before the applied coupons'."""
    Customer.all_objects.select_for_update().filter(pk=applied_coupon.customer_id).first()
    applied = AppliedCoupon.objects.select_for_update().get(pk=applied_coupon.pk)
    if applied.status != CouponStatus.TERMINATED:
        applied.status, applied.terminated_at = CouponStatus.TERMINATED, now or timezone.now()
        applied.save(update_fields=["status", "terminated_at", "updated_at"])
    return applied
