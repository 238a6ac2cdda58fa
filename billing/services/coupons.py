"""Coupons (DESIGN §6 "Coupons"; Lago's coupons): writing them, and what invoices use of the
customers' applied coupons (applying them: billing.services.applied_coupons).

Writing, under the coupon's row lock, refused with a CouponError naming each field as the API
does ("amount_cents", "applies_to.plan_codes"), nothing stored:
- `coupon_create` / `coupon_update`: a `fixed_amount` coupon has `amount_cents` > 0 and an ISO
  4217 `amount_currency` in use; a `percentage` one a `percentage_rate` in (0, 100] (at most 4
  decimals); `frequency_duration` ≥ 1 for, and only for, `recurring`; `expiration_at` in the
  future for, and only for, `time_limit`; `applies_to` names existing plan codes or existing
  billable metric codes, not both; `code` is unique. An update sends only what changes: a field
  that no longer applies after it (the amount of a coupon that becomes a percentage one) is
  cleared, unless it was sent, which is refused. Once a coupon has been applied, only its name,
  description, expiration and expiration_at may change (Lago's UpdateService ignores the rest:
  here a different value is refused, the same value accepted).
- `coupon_terminate`: no new application; the customers' applied coupons go on (as Lago).
- `coupon_destroy`: a coupon never applied is deleted; one that was applied is kept (its
  applications are invoices' history) and can only be terminated.

Consuming, when an invoice is finalized (under the customer's lock, the applied coupons locked as
they were read): each coupon line writes a CouponApplication (once per applied coupon and
invoice, a database constraint) and moves the applied coupon on: a `once` fixed coupon keeps what
it did not use for the next invoice (`amount_remaining`), a `once` percentage coupon is used up, a
recurring one counts down `frequency_duration_remaining`; a coupon used up is terminated
(`used_up`). Voiding the invoice gives all of that back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict, cast

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.engine.lines import Line
from billing.engine.money import from_cents, to_cents
from billing.engine.vocabulary import CouponExpiration, CouponFrequency, CouponStatus, CouponType, LineKind
from billing.models import AppliedCoupon, Coupon, CouponApplication, Invoice, Plan
from billing.services.errors import FieldErrors
from customers.validators import INVALID_CURRENCY, validate_currency
from metering.models import BillableMetric

# Error messages are constants so tests can match them.
REQUIRED = "is required"
TOO_LONG = "must be at most {n} characters"
BAD_CHOICE = "must be one of: {choices}"
NOT_A_BOOLEAN = "must be true or false"
CODE_SLASH = "must not contain '/' (the code is part of the coupon's URL)"
CODE_TAKEN = "a coupon with code {code!r} already exists"
AMOUNT_NOT_POSITIVE = "must be greater than 0"
TOO_LARGE = "must be at most {n}"
ONLY_FIXED = f"is only for {CouponType.FIXED_AMOUNT} coupons"
ONLY_PERCENTAGE = f"is only for {CouponType.PERCENTAGE} coupons"
RATE_RANGE = "must be greater than 0 and at most 100"
RATE_DECIMALS = "must have at most {n} decimal places"
DURATION_REQUIRED = f"is required for {CouponFrequency.RECURRING} coupons: the number of invoices it reduces"
DURATION_NOT_POSITIVE = "must be at least 1"
ONLY_RECURRING = f"is only for {CouponFrequency.RECURRING} coupons"
EXPIRATION_AT_REQUIRED = f"is required for {CouponExpiration.TIME_LIMIT} coupons"
EXPIRATION_AT_PAST = "must be in the future"
ONLY_TIME_LIMIT = f"is only for {CouponExpiration.TIME_LIMIT} coupons"
UNKNOWN_PLANS = "unknown plan codes: {codes}"
UNKNOWN_METRICS = "unknown billable metric codes: {codes}"
ONE_LIMITATION = "a coupon is limited to plans or to billable metrics, not both"
FIXED_ONCE_APPLIED = (
    "cannot change once the coupon has been applied (only name, description, expiration and expiration_at can)"
)
APPLIED_NOT_DELETED = "has been applied to customers: it cannot be deleted, only terminated"

NAME_LENGTH = 255
CODE_LENGTH = 255
MAX_AMOUNT_CENTS = 10**15
RATE_PLACES = 4  # billing.models.coupons.rate_field
MAX_FREQUENCY_DURATION = 2**31 - 1  # a PositiveIntegerField
HUNDRED = Decimal(100)
# The fields an applied coupon's terms do not depend on: they may change after it was applied.
CHANGEABLE_ONCE_APPLIED = frozenset({"name", "description", "expiration", "expiration_at"})


class CouponError(FieldErrors):
    """The coupon or its application is refused; `errors` are messages by field, as the API names them."""


class CouponFields(TypedDict, total=False):
    """A coupon's fields as Lago names them (applies_to's two lists flattened); to create, every
    field that has no default; to update, only those that change (None: set to nothing)."""

    name: str | None
    code: str | None
    description: str | None
    coupon_type: str | None
    amount_cents: int | None
    amount_currency: str | None
    percentage_rate: Decimal | None
    frequency: str | None
    frequency_duration: int | None
    expiration: str | None
    expiration_at: datetime | None
    reusable: bool | None
    plan_codes: list[str] | None
    billable_metric_codes: list[str] | None


class Errors(dict[str, list[str]]):
    """Messages by field, as they are found."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)


# --- checking values -------------------------------------------------------------------------------


def _text(errors: Errors, field: str, value: str | None, length: int) -> str | None:
    if value is None or not value.strip():
        errors.add(field, REQUIRED)
        return None
    if len(value) > length:
        errors.add(field, TOO_LONG.format(n=length))
        return None
    return value


def check_choice(errors: Errors, field: str, value: str | None, choices: list[str]) -> str | None:
    if value is None:
        errors.add(field, REQUIRED)
    elif value not in choices:
        errors.add(field, BAD_CHOICE.format(choices=", ".join(choices)))
    else:
        return value
    return None


def check_cents(errors: Errors, field: str, value: int | None) -> int | None:
    if value is None:
        errors.add(field, REQUIRED)
    elif value <= 0:
        errors.add(field, AMOUNT_NOT_POSITIVE)
    elif value > MAX_AMOUNT_CENTS:
        errors.add(field, TOO_LARGE.format(n=MAX_AMOUNT_CENTS))
    else:
        return value
    return None


def check_currency(errors: Errors, field: str, value: str | None) -> str | None:
    if value is None:
        errors.add(field, REQUIRED)
        return None
    try:
        validate_currency(value)
    except ValidationError:
        errors.add(field, INVALID_CURRENCY.format(value=value))
        return None
    return value


def check_rate(errors: Errors, field: str, value: Decimal | None) -> Decimal | None:
    if value is None:
        errors.add(field, REQUIRED)
    elif not value.is_finite() or not 0 < value <= HUNDRED:
        errors.add(field, RATE_RANGE)
    elif -int(value.normalize().as_tuple().exponent) > RATE_PLACES:
        errors.add(field, RATE_DECIMALS.format(n=RATE_PLACES))
    else:
        return value
    return None


def check_duration(errors: Errors, field: str, value: int | None) -> int | None:
    if value is None:
        errors.add(field, DURATION_REQUIRED)
    elif value < 1:
        errors.add(field, DURATION_NOT_POSITIVE)
    elif value > MAX_FREQUENCY_DURATION:
        errors.add(field, TOO_LARGE.format(n=MAX_FREQUENCY_DURATION))
    else:
        return value
    return None


def _unique(codes: Iterable[str] | None) -> list[str]:
    """Codes without repeats, in the order given (Lago: compact.uniq)."""
    return list(dict.fromkeys(code for code in codes or () if code))


def _known(errors: Errors, field: str, codes: list[str], model: type[Plan] | type[BillableMetric]) -> None:
    found = set(model.objects.filter(code__in=codes).values_list("code", flat=True))
    unknown = [code for code in codes if code not in found]
    if unknown:
        template = UNKNOWN_PLANS if model is Plan else UNKNOWN_METRICS
        errors.add(field, template.format(codes=", ".join(unknown)))


# --- coupons ---------------------------------------------------------------------------------------


def _terms(coupon: Coupon) -> dict[str, Any]:
    """The coupon's terms as the API writes them: what may not change once it is applied."""
    return {
        "code": coupon.code,
        "coupon_type": coupon.coupon_type,
        "amount_cents": to_cents(coupon.amount, coupon.currency) if coupon.amount is not None else None,
        "amount_currency": coupon.currency or None,
        "percentage_rate": coupon.percentage_rate,
        "frequency": coupon.frequency,
        "frequency_duration": coupon.frequency_duration,
        "reusable": coupon.reusable,
        "plan_codes": sorted(coupon.plan_codes or []),
        "billable_metric_codes": sorted(coupon.billable_metric_codes or []),
    }


def _api_field(field: str) -> str:
    return f"applies_to.{field}" if field in ("plan_codes", "billable_metric_codes") else field


def _changed_terms(coupon: Coupon, sent: CouponFields) -> Errors:
    """A coupon already applied: the sent terms that differ from its own."""
    errors = Errors()
    terms = _terms(coupon)
    for field, value in sent.items():
        if field in CHANGEABLE_ONCE_APPLIED:
            continue
        if field in ("plan_codes", "billable_metric_codes"):
            value = sorted(_unique(cast("list[str] | None", value)))
        if value != terms[field]:
            errors.add(_api_field(field), FIXED_ONCE_APPLIED)
    return errors


def _set_fields(coupon: Coupon, sent: CouponFields, *, creating: bool, now: datetime) -> Errors:
    """Check `sent` against the coupon's other fields and set it on `coupon` (not saved)."""
    errors = Errors()
    if creating or "name" in sent:
        name = _text(errors, "name", sent.get("name"), NAME_LENGTH)
        coupon.name = name if name is not None else coupon.name
    if creating or "code" in sent:
        code = _text(errors, "code", sent.get("code"), CODE_LENGTH)
        if code is not None and "/" in code:
            errors.add("code", CODE_SLASH)
        elif code is not None and Coupon.objects.filter(code=code).exclude(pk=coupon.pk).exists():
            errors.add("code", CODE_TAKEN.format(code=code))
        elif code is not None:
            coupon.code = code
    if "description" in sent:
        coupon.description = sent["description"] or ""
    for field, choices, default in (
        ("coupon_type", CouponType.values, None),
        ("frequency", CouponFrequency.values, CouponFrequency.ONCE),
        ("expiration", CouponExpiration.values, CouponExpiration.NO_EXPIRATION),
    ):
        if field in sent or (creating and default is None):
            chosen = check_choice(errors, field, cast("str | None", sent.get(field)), choices)
            if chosen is not None:
                setattr(coupon, field, chosen)
        elif creating:
            setattr(coupon, field, default)
    if "reusable" in sent:
        if sent["reusable"] is None:
            errors.add("reusable", NOT_A_BOOLEAN)
        else:
            coupon.reusable = bool(sent["reusable"])
    _set_amount(coupon, sent, errors)
    _set_frequency(coupon, sent, errors)
    _set_expiration(coupon, sent, errors, now)
    _set_limitation(coupon, sent, errors)
    return errors


def _set_amount(coupon: Coupon, sent: CouponFields, errors: Errors) -> None:
    if coupon.coupon_type == CouponType.FIXED_AMOUNT:
        stored_cents = to_cents(coupon.amount, coupon.currency) if coupon.amount is not None else None
        if "amount_currency" in sent or not coupon.currency:
            currency = check_currency(errors, "amount_currency", sent.get("amount_currency"))
        else:
            currency = coupon.currency
        # The amount is kept in cents, as Lago: a new currency alone reads the same cents in it.
        if "amount_cents" in sent or stored_cents is None:
            cents = check_cents(errors, "amount_cents", sent.get("amount_cents"))
        else:
            cents = stored_cents
        if sent.get("percentage_rate") is not None:
            errors.add("percentage_rate", ONLY_PERCENTAGE)
        if currency is not None and cents is not None:
            coupon.currency, coupon.amount = currency, from_cents(cents, currency)
        coupon.percentage_rate = None
    elif coupon.coupon_type == CouponType.PERCENTAGE:
        if "percentage_rate" in sent or coupon.percentage_rate is None:
            rate = check_rate(errors, "percentage_rate", sent.get("percentage_rate"))
            coupon.percentage_rate = rate if rate is not None else coupon.percentage_rate
        for field in ("amount_cents", "amount_currency"):
            if sent.get(field) is not None:
                errors.add(field, ONLY_FIXED)
        coupon.amount, coupon.currency = None, ""


def _set_frequency(coupon: Coupon, sent: CouponFields, errors: Errors) -> None:
    if coupon.frequency == CouponFrequency.RECURRING:
        if "frequency_duration" in sent or coupon.frequency_duration is None:
            duration = check_duration(errors, "frequency_duration", sent.get("frequency_duration"))
            coupon.frequency_duration = duration if duration is not None else coupon.frequency_duration
    elif coupon.frequency in CouponFrequency.values:
        if sent.get("frequency_duration") is not None:
            errors.add("frequency_duration", ONLY_RECURRING)
        coupon.frequency_duration = None


def _set_expiration(coupon: Coupon, sent: CouponFields, errors: Errors, now: datetime) -> None:
    if coupon.expiration == CouponExpiration.TIME_LIMIT:
        if "expiration_at" in sent or coupon.expiration_at is None:
            at = sent.get("expiration_at")
            if at is None:
                errors.add("expiration_at", EXPIRATION_AT_REQUIRED)
            elif at <= now:
                errors.add("expiration_at", EXPIRATION_AT_PAST)
            else:
                coupon.expiration_at = at
    elif coupon.expiration in CouponExpiration.values:
        if sent.get("expiration_at") is not None:
            errors.add("expiration_at", ONLY_TIME_LIMIT)
        coupon.expiration_at = None


def _set_limitation(coupon: Coupon, sent: CouponFields, errors: Errors) -> None:
    """`applies_to`: each list sent replaces the coupon's; a list of plans sent alone replaces a
    limitation to metrics, and the other way round (as Lago)."""
    plans = _unique(sent.get("plan_codes")) if "plan_codes" in sent else list(coupon.plan_codes or [])
    metrics = (
        _unique(sent.get("billable_metric_codes"))
        if "billable_metric_codes" in sent
        else list(coupon.billable_metric_codes or [])
    )
    if "plan_codes" in sent:
        _known(errors, "applies_to.plan_codes", plans, Plan)
        if plans and "billable_metric_codes" not in sent:
            metrics = []
    if "billable_metric_codes" in sent:
        _known(errors, "applies_to.billable_metric_codes", metrics, BillableMetric)
        if metrics and "plan_codes" not in sent:
            plans = []
    if plans and metrics:
        errors.add("applies_to", ONE_LIMITATION)
    coupon.plan_codes, coupon.billable_metric_codes = plans, metrics


def _save(coupon: Coupon) -> None:
    try:
        with transaction.atomic():  # a savepoint: a code taken meanwhile is refused, not a 500
            coupon.save()
    except IntegrityError:
        if Coupon.objects.filter(code=coupon.code).exclude(pk=coupon.pk).exists():
            raise CouponError({"code": [CODE_TAKEN.format(code=coupon.code)]}) from None
        raise


@transaction.atomic
def coupon_create(*, fields: CouponFields, now: datetime | None = None) -> Coupon:
    """A new coupon (Lago's POST /coupons); `reusable` defaults to true, `frequency` to once,
    `expiration` to no_expiration."""
    coupon = Coupon()
    errors = _set_fields(coupon, fields, creating=True, now=now or timezone.now())
    if errors:
        raise CouponError(errors)
    _save(coupon)
    return coupon


@transaction.atomic
def coupon_update(*, coupon: Coupon, fields: CouponFields, now: datetime | None = None) -> Coupon:
    """Change the fields sent (Lago's PUT /coupons/<code>), under the coupon's row lock."""
    coupon = Coupon.objects.select_for_update().get(pk=coupon.pk)
    if coupon.applied.exists():
        errors = _changed_terms(coupon, fields)
        if errors:
            raise CouponError(errors)
    errors = _set_fields(coupon, fields, creating=False, now=now or timezone.now())
    if errors:
        raise CouponError(errors)
    _save(coupon)
    return coupon


@transaction.atomic
def coupon_terminate(*, coupon: Coupon, now: datetime | None = None) -> Coupon:
    """No new application of the coupon from now on; customers who have it keep it (as Lago).
    Terminating a terminated coupon changes nothing."""
    coupon = Coupon.objects.select_for_update().get(pk=coupon.pk)
    if coupon.status != CouponStatus.TERMINATED:
        coupon.status, coupon.terminated_at = CouponStatus.TERMINATED, now or timezone.now()
        coupon.save(update_fields=["status", "terminated_at", "updated_at"])
    return coupon


@transaction.atomic
def coupon_destroy(*, coupon: Coupon) -> None:
    """Delete a coupon that was never applied; one that was is refused (terminate it instead)."""
    coupon = Coupon.objects.select_for_update().get(pk=coupon.pk)
    if coupon.applied.exists():
        raise CouponError({"coupon": [APPLIED_NOT_DELETED]})
    coupon.delete()


# --- consumption by invoices -----------------------------------------------------------------------


def coupon_applications_record(*, invoice: Invoice, lines: list[Line] | None = None) -> None:
    """At finalization: what the invoice's coupon lines took, once per applied coupon."""
    drawn = lines if lines is not None else list(invoice.lines.filter(kind=LineKind.COUPON))
    now = timezone.now()
    for line in drawn:
        if line.kind != LineKind.COUPON:
            continue
        applied = AppliedCoupon.objects.select_for_update().get(pk=line.details["applied_coupon"])
        take = -line.amount
        CouponApplication.objects.create(applied_coupon=applied, invoice=invoice, amount=take)
        if applied.frequency == CouponFrequency.ONCE:
            if applied.coupon_type == CouponType.FIXED_AMOUNT:
                remaining = applied.amount_remaining if applied.amount_remaining is not None else applied.amount
                applied.amount_remaining = (remaining if remaining is not None else take) - take
                used_up = applied.amount_remaining <= 0  # the database refuses below zero
            else:
                used_up = True
        elif applied.frequency == CouponFrequency.RECURRING:
            applied.frequency_duration_remaining = max((applied.frequency_duration_remaining or 0) - 1, 0)
            used_up = applied.frequency_duration_remaining == 0
        else:
            used_up = False
        if used_up:
            applied.status, applied.terminated_at, applied.used_up = CouponStatus.TERMINATED, now, True
        applied.save()


def coupon_applications_reverse(*, invoice: Invoice, now: datetime) -> None:
    """A voided invoice gives back what it took of its coupons (a coupon it used up is active
    again; one terminated by hand stays terminated)."""
    for application in CouponApplication.objects.select_for_update().filter(invoice=invoice, reversed_at=None):
        application.reversed_at = now
        application.save(update_fields=["reversed_at"])
        applied = AppliedCoupon.objects.select_for_update().get(pk=application.applied_coupon_id)
        if applied.frequency == CouponFrequency.ONCE and applied.coupon_type == CouponType.FIXED_AMOUNT:
            applied.amount_remaining = (applied.amount_remaining or 0) + application.amount
        elif applied.frequency == CouponFrequency.RECURRING:
            applied.frequency_duration_remaining = (applied.frequency_duration_remaining or 0) + 1
        if applied.used_up:
            applied.status, applied.terminated_at, applied.used_up = CouponStatus.ACTIVE, None, False
        applied.save()
