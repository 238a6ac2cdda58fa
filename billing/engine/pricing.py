"""The pricing engine: pure functions over Decimal and frozen dataclasses (DESIGN §3).

No ORM, no clock, no settings. A charge is priced for a quantity; the result carries the exact
amount, the amount rounded once to the currency's minor unit, and a per-tier breakdown whose
exact amounts add up to the exact amount.

Quantities below zero (a `sum` of negative values) are priced as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, localcontext

from billing.engine.money import ZERO, format_decimal, quantize_money
from billing.engine.vocabulary import ChargeModel

TIERS_REQUIRED = "at least one tier is required"
TIER_NOT_ASCENDING = "must be greater than {previous}"
TIER_NOT_POSITIVE = "must be greater than 0"
TIER_UNBOUNDED_NOT_LAST = "only the last tier may be unbounded (null)"
TIER_LAST_BOUNDED = "the last tier must be unbounded (null)"
NEGATIVE_PRICE = "must not be negative"


@dataclass(frozen=True)
class TierSpec:
    up_to: Decimal | None  # inclusive upper bound; None on the last tier
    unit_amount: Decimal
    flat_amount: Decimal = ZERO


@dataclass(frozen=True)
class ChargeSpec:
    model: str
    tiers: tuple[TierSpec, ...] = ()
    unit_amount: Decimal = ZERO
    package_size: int | None = None
    package_amount: Decimal = ZERO
    free_units: Decimal = ZERO
    usage_limit: Decimal | None = None


@dataclass(frozen=True)
class TierLine:
    """How one tier priced its units. `from_units` is exclusive: the tier starts at from+1."""

    position: int
    from_units: Decimal
    up_to: Decimal | None
    units: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    amount: Decimal  # exact, not rounded


@dataclass(frozen=True)
class PricedCharge:
    quantity: Decimal  # as measured
    billed_units: Decimal  # after the usage limit
    exact_amount: Decimal
    amount: Decimal  # rounded once to the currency's minor unit
    tiers: tuple[TierLine, ...] = field(default=())
    packages: int | None = None
    limit_exceeded: bool = False


def tier_errors(tiers: Sequence[TierSpec]) -> list[tuple[int, str, str]]:
    """Problems with a tier table as (tier index, field, message); empty when it is valid."""
    if not tiers:
        return [(0, "tiers", TIERS_REQUIRED)]
    errors: list[tuple[int, str, str]] = []
    previous: Decimal | None = ZERO
    last = len(tiers) - 1
    for i, tier in enumerate(tiers):
        if tier.up_to is None:
            if i != last:
                errors.append((i, "up_to", TIER_UNBOUNDED_NOT_LAST))
        elif i == last:
            errors.append((i, "up_to", TIER_LAST_BOUNDED))
        elif previous is not None and tier.up_to <= previous:
            message = TIER_NOT_POSITIVE if i == 0 else TIER_NOT_ASCENDING.format(previous=format_decimal(previous))
            errors.append((i, "up_to", message))
        if tier.unit_amount < 0:
            errors.append((i, "unit_amount", NEGATIVE_PRICE))
        if tier.flat_amount < 0:
            errors.append((i, "flat_amount", NEGATIVE_PRICE))
        if tier.up_to is not None and (previous is None or tier.up_to > previous):
            previous = tier.up_to
    return errors


def _graduated(tiers: Sequence[TierSpec], q: Decimal) -> tuple[TierLine, ...]:
    lines = []
    lower = ZERO
    for i, tier in enumerate(tiers):
        units = max(ZERO, q - lower)
        if tier.up_to is not None:
            units = min(units, tier.up_to - lower)
        # A tier's flat fee is due once the quantity reaches it: always for the first tier.
        flat = tier.flat_amount if (i == 0 or q > lower) else ZERO
        amount = units * tier.unit_amount + flat
        lines.append(TierLine(i + 1, lower, tier.up_to, units, tier.unit_amount, flat, amount))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return tuple(lines)


def _volume(tiers: Sequence[TierSpec], q: Decimal) -> tuple[TierLine, ...]:
    lines = []
    lower = ZERO
    found = False
    for i, tier in enumerate(tiers):
        contains = not found and (tier.up_to is None or q <= tier.up_to)
        units = q if contains else ZERO
        flat = tier.flat_amount if contains else ZERO
        amount = units * tier.unit_amount + flat
        lines.append(TierLine(i + 1, lower, tier.up_to, units, tier.unit_amount, flat, amount))
        found = found or contains
        if tier.up_to is None:
            break
        lower = tier.up_to
    return tuple(lines)


def price_charge(charge: ChargeSpec, quantity: Decimal, currency: str) -> PricedCharge:
    """Price `quantity` units under `charge`; the amount is rounded once, here."""
    # Columns hold 30 digits (20 + 10 places) and a product doubles that: compute with room to
    # spare so no intermediate is silently rounded by the default 28-digit context.
    with localcontext(prec=80):
        return _price_charge(charge, quantity, currency)


def _price_charge(charge: ChargeSpec, quantity: Decimal, currency: str) -> PricedCharge:
    limit_exceeded = charge.usage_limit is not None and quantity > charge.usage_limit
    billed = max(ZERO, quantity)
    if charge.usage_limit is not None:
        billed = min(billed, charge.usage_limit)

    tiers: tuple[TierLine, ...] = ()
    packages: int | None = None
    if charge.model == ChargeModel.STANDARD:
        exact = billed * charge.unit_amount
    elif charge.model == ChargeModel.GRADUATED:
        tiers = _graduated(charge.tiers, billed)
        exact = sum((t.amount for t in tiers), ZERO)
    elif charge.model == ChargeModel.VOLUME:
        tiers = _volume(charge.tiers, billed)
        exact = sum((t.amount for t in tiers), ZERO)
    elif charge.model == ChargeModel.PACKAGE:
        if not charge.package_size or charge.package_size <= 0:
            raise ValueError("package_size must be greater than 0")
        chargeable = max(ZERO, billed - charge.free_units)
        packages = int((chargeable / charge.package_size).to_integral_value(rounding=ROUND_CEILING))
        exact = packages * charge.package_amount
    else:
        raise ValueError(f"unknown charge model {charge.model!r}")

    return PricedCharge(
        quantity=quantity,
        billed_units=billed,
        exact_amount=exact,
        amount=quantize_money(exact, currency),
        tiers=tiers,
        packages=packages,
        limit_exceeded=limit_exceeded,
    )
