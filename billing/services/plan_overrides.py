"""A subscription's own prices (Lago's `plan_overrides`): override plans.

An override plan is a private copy of a catalog plan version for one subscription: `parent` is
that catalog plan; it is never current; it keeps the catalog plan's code and version (so the
subscription still says which catalog version its prices come from), currency and interval. The
catalog plan, its charges and tiers are never changed. The overrides are applied to the copy
through the catalog's own validation (billing.engine.catalog.parse_catalog: one rule, one place;
Lago's charge `properties` are read by billing.engine.charge_properties), and everything then
prices through the same engine: an invoice does not know its plan is an override.

What can be overridden (lago-python-client's PlanOverrides):
- `name`, `description`, `invoice_display_name` (invoices show it instead of the name);
- `amount_cents`: the base fee; `amount_currency` only as the plan's own currency;
- `trial_period`: the base-fee promotion (DESIGN §6): N days 100 % off the base fee, a promotion
  with those terms reused, or created as `trial-<N>d-base`; 0 removes the trial. It replaces
  whatever promotion the plan had, a plan-level one too (Lago has no other kind);
- `charges[]` by `id` (the id of a charge of the subscription's plan, or of the catalog plan it
  copies): `invoice_display_name`, and `properties`, which replace the charge's pricing as in
  Lago (a charge keeps its model, metric and usage limit).
Lago's `tax_codes`, `fixed_charges`, `minimum_commitment`, `usage_thresholds` and charge
`min_amount_cents` and `filters` are not supported: the API refuses them (422).

Unlike Lago, which ignores an override of a charge the plan does not have, an unknown charge id
is an error: nothing is stored when any part of an override is invalid.

A second override of the same subscription applies on top of its current prices. While the
subscription has no invoice, its override plan is changed in place. Once it has one (a draft or
a voided one too: anything that may have been priced with it), a new override plan is made, the
subscription moves to it, and the old one stays as it was, as a catalog plan version does: the
record of the prices earlier invoices were priced with. Invoices keep their lines either way
(a finalized invoice never changes), so repricing is about what is invoiced from now on: the
open period, an invoice still a draft when it is recomputed, and late usage priced after now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.db import transaction
from simple_history.utils import bulk_create_with_history

from billing.engine.catalog import CatalogError, PlanDef, parse_catalog
from billing.engine.charge_properties import PRICING_FIELDS, CatalogFields, catalog_fields
from billing.engine.money import from_cents
from billing.engine.vocabulary import AppliesTo, SubscriptionStatus
from billing.models import Charge, Invoice, Plan, Promotion, Subscription, Tier
from billing.selectors.catalog import plan_def, plan_dict
from billing.selectors.plans import plans_with_charges
from billing.services.catalog import create_charges, write_plan_fields

FIELD = "plan_overrides"
UNKNOWN_CHARGE = "no charge with id {id!r} on plan {plan!r}"
DUPLICATE_CHARGE = "charge {id!r} is already overridden by plan_overrides.charges.{index}"
CURRENCY_FIXED = "a subscription's own prices are in its plan's currency ({currency})"
CENTS_NOT_WHOLE = "must be a whole number of cents (a JSON integer)"
TRIAL_NOT_WHOLE = "must be a whole number of days (0: no trial)"
TRIAL_NEGATIVE = "must not be negative (0: no trial)"
TOO_LONG = "must be at most {n} characters"
NOT_A_LIST = "must be a list of charges"
NOT_AN_OBJECT = "must be an object with the charge's id"
TERMINATED = "the subscription is terminated: its prices can no longer change"
DISPLAY_NAME_MAX = 255

_TRIAL_PLACEHOLDER = "trial-override"  # the trial's code while it is validated, before it is stored
_CHARGE_PATH = re.compile(r"^plans\[0\]\.charges\[(\d+)\](?:\.(.+))?$")


class PlanOverrideError(Exception):
    """Invalid overrides; `errors` name each problem by its request field (plan_overrides.…)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {', '.join(messages)}" for field, messages in errors.items()))


@dataclass(frozen=True)
class OverriddenPrices:
    """A plan with overrides applied, validated, not stored."""

    plan: PlanDef  # its promotion is a placeholder code when `trial_days` is set (> 0)
    invoice_display_name: str
    charge_display_names: dict[str, str]  # by metric code
    trial_days: int | None  # None: the plan's promotion is kept

    def stored_plan(self, trial: Promotion | None) -> PlanDef:
        """The PlanDef to store, with the trial promotion chosen for `trial_days`."""
        if self.trial_days is None:
            return self.plan
        return replace(self.plan, promotion=trial.code if trial is not None else None)


def overridden_prices(*, plan: Plan, overrides: Mapping[str, Any]) -> OverriddenPrices:
    """`plan` (its charges and tiers prefetched: plans_with_charges) with `overrides` applied and
    checked by the catalog's rules. Raises PlanOverrideError listing every problem."""
    base = plan_def(plan)
    document = plan_dict(base)
    errors: dict[str, list[str]] = {}
    sources: dict[str, str] = {}  # catalog path → request field

    def error(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    for key in ("name", "description"):
        if overrides.get(key) is not None:
            document[key] = overrides[key]
            sources[f"plans[0].{key}"] = f"{FIELD}.{key}"
    cents = overrides.get("amount_cents")
    if isinstance(cents, bool) or not isinstance(cents, int | None):
        error(f"{FIELD}.amount_cents", CENTS_NOT_WHOLE)
    elif cents is not None:  # the catalog checks the amount (not negative, not too large)
        document["base_fee"] = from_cents(cents, plan.currency)
        sources["plans[0].base_fee"] = f"{FIELD}.amount_cents"
    currency = overrides.get("amount_currency")
    if currency is not None and currency != plan.currency:
        error(f"{FIELD}.amount_currency", CURRENCY_FIXED.format(currency=plan.currency))
    promotions: list[dict[str, Any]] = []
    trial_days = _trial_days(overrides.get("trial_period"), error)
    if trial_days:
        promotions.append(
            {
                "code": _TRIAL_PLACEHOLDER,
                "name": "trial",
                "percent_off": "100",
                "duration_days": trial_days,
                "applies_to": AppliesTo.BASE_FEE,
            }
        )
        document["promotion"] = _TRIAL_PLACEHOLDER
        sources["promotions[0].duration_days"] = f"{FIELD}.trial_period"
    elif trial_days == 0:
        document.pop("promotion", None)

    display_name = plan.invoice_display_name
    if overrides.get("invoice_display_name") is not None:
        display_name = _display_name(overrides["invoice_display_name"], f"{FIELD}.invoice_display_name", error)
    charges = list(plan.charges.all())
    display_names = {c.metric.code: c.invoice_display_name for c in charges}
    charge_sources: dict[int, tuple[str, CatalogFields]] = {}
    index = _charge_index(plan, charges)
    overridden_by: dict[int, int] = {}
    items = overrides.get("charges") or []
    if not isinstance(items, list):
        error(f"{FIELD}.charges", NOT_A_LIST)
        items = []
    for i, item in enumerate(items):
        path = f"{FIELD}.charges.{i}"
        if not isinstance(item, Mapping):
            error(path, NOT_AN_OBJECT)
            continue
        charge_id = str(item.get("id"))
        j = index.get(charge_id)
        if j is None:
            error(f"{path}.id", UNKNOWN_CHARGE.format(id=charge_id, plan=plan.code))
            continue
        if j in overridden_by:
            error(f"{path}.id", DUPLICATE_CHARGE.format(id=charge_id, index=overridden_by[j]))
            continue
        overridden_by[j] = i
        if item.get("invoice_display_name") is not None:
            display_names[charges[j].metric.code] = _display_name(
                item["invoice_display_name"], f"{path}.invoice_display_name", error
            )
        if item.get("properties") is not None:
            fields = catalog_fields(base.charges[j].model, item["properties"])
            charge = document["charges"][j]
            for key in PRICING_FIELDS:
                charge.pop(key, None)
            charge.update(fields.fields)
            charge_sources[j] = (f"{path}.properties", fields)
            for sub, message in fields.errors:
                error(f"{path}.properties" + (f".{sub}" if sub else ""), message)

    said = set(errors)  # a field the checks above named is not named again by the catalog
    try:
        catalog = parse_catalog(
            {"promotions": promotions, "plans": [document]},
            known_metrics=lambda code: True,  # the plan's own
            known_promotions=lambda code: True,  # the plan's own
        )
    except CatalogError as exc:
        for line in exc.errors:
            path, _, message = line.partition(": ")
            field = _request_field(path, sources, charge_sources)
            if field not in said:
                error(field, message)
    if errors:
        raise PlanOverrideError(errors)
    return OverriddenPrices(
        plan=catalog.plans[0],
        invoice_display_name=display_name,
        charge_display_names=display_names,
        trial_days=trial_days,
    )


def _trial_days(value: Any, error: Any) -> int | None:
    """Lago's trial_period (a float of days) as whole days; None when not given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        error(f"{FIELD}.trial_period", TRIAL_NOT_WHOLE)
        return None
    if value < 0:
        error(f"{FIELD}.trial_period", TRIAL_NEGATIVE)
        return None
    if value != int(value):
        error(f"{FIELD}.trial_period", TRIAL_NOT_WHOLE)
        return None
    return int(value)


def _display_name(value: Any, field: str, error: Any) -> str:
    if not isinstance(value, str):
        error(field, "must be a string")
        return ""
    if len(value) > DISPLAY_NAME_MAX:
        error(field, TOO_LONG.format(n=DISPLAY_NAME_MAX))
    return value


def _charge_index(plan: Plan, charges: list[Charge]) -> dict[str, int]:
    """Position in `charges` by charge id: the plan's own charges and, for an override plan,
    those of the catalog plan it copies (matched by metric: a plan has one charge per metric)."""
    index = {str(c.pk): j for j, c in enumerate(charges)}
    if plan.parent_id is not None:
        by_metric = {c.metric_id: j for j, c in enumerate(charges)}
        for pk, metric_id in Charge.objects.filter(plan_id=plan.parent_id).values_list("pk", "metric_id"):
            if metric_id in by_metric:
                index.setdefault(str(pk), by_metric[metric_id])
    return index


def _request_field(path: str, sources: dict[str, str], charge_sources: dict[int, tuple[str, CatalogFields]]) -> str:
    """The request field a catalog error path came from (plans[0].charges[0].tiers[1].up_to →
    plan_overrides.charges.3.properties.graduated_ranges.1.to_value)."""
    if path in sources:
        return sources[path]
    match = _CHARGE_PATH.match(path)
    if match is not None and int(match.group(1)) in charge_sources:
        prefix, fields = charge_sources[int(match.group(1))]
        inner = fields.lago_path(match.group(2)) if match.group(2) else None
        return f"{prefix}.{inner}" if inner else prefix
    return FIELD


def same_prices(plan: Plan, prices: OverriddenPrices) -> bool:
    """Whether the stored `plan` (charges prefetched) already has these prices and names."""
    stored = plan_def(plan)
    if prices.trial_days is None:
        same_promotion = stored.promotion == prices.plan.promotion
    elif prices.trial_days == 0:
        same_promotion = plan.promotion is None
    else:
        same_promotion = plan.promotion is not None and _is_trial(plan.promotion, prices.trial_days)
    names = {c.metric.code: c.invoice_display_name for c in plan.charges.all()}
    return (
        same_promotion
        and replace(stored, promotion=None) == replace(prices.plan, promotion=None)
        and plan.invoice_display_name == prices.invoice_display_name
        and names == prices.charge_display_names
    )


@transaction.atomic
def plan_override_create(
    *, overrides: Mapping[str, Any], subscription: Subscription | None = None, plan: Plan | None = None
) -> Plan:
    """Apply Lago's plan_overrides (see the module) and return the override plan.

    With `plan` (a new subscription's): a new override plan copying it, for the caller to
    subscribe to. With `subscription`: the subscription's own prices change, in place or in a
    new override plan it moves to (see the module), under the subscription's row lock (the
    period close takes it too). Raises PlanOverrideError, with nothing stored.
    """
    if (subscription is None) == (plan is None):
        raise TypeError("plan_override_create takes a subscription or a plan")
    if plan is not None:
        base = plans_with_charges().get(pk=plan.pk)
        prices = overridden_prices(plan=base, overrides=overrides)
        return _override_plan_create(parent=base.parent or base, prices=prices)

    assert subscription is not None
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status == SubscriptionStatus.TERMINATED:
        raise PlanOverrideError({FIELD: [TERMINATED]})
    current = plans_with_charges().get(pk=subscription.plan_id)
    prices = overridden_prices(plan=current, overrides=overrides)
    if current.parent is not None and not _has_billed(subscription, current):
        override = current
        _override_plan_write(override, prices)
    else:
        override = _override_plan_create(parent=current.parent or current, prices=prices)
        subscription.plan = override
    if prices.trial_days is not None:  # the subscription's promotion is the plan's trial now
        subscription.promotion = override.promotion
        start = subscription.promotion_start or subscription.subscription_at
        subscription.promotion_start = start if override.promotion is not None else None
    subscription.save(update_fields=["plan", "promotion", "promotion_start", "updated_at"])
    return override


def _has_billed(subscription: Subscription, plan: Plan) -> bool:
    """Anything may have been priced with the override plan: an invoice of the subscription
    (of any status), or another subscription on it (never made so, but then it is not ours)."""
    return (
        Invoice.objects.filter(subscription=subscription).exists()
        or Subscription.objects.filter(plan=plan).exclude(pk=subscription.pk).exists()
    )


def _override_plan_create(*, parent: Plan, prices: OverriddenPrices) -> Plan:
    override = Plan(code=parent.code, version=parent.version, is_current=False, parent=parent)
    write_plan_fields(override, prices.stored_plan(_trial_promotion(prices.trial_days)))
    override.invoice_display_name = prices.invoice_display_name
    override.save()
    create_charges(override, prices.plan.charges, prices.charge_display_names)
    return override


def _override_plan_write(override: Plan, prices: OverriddenPrices) -> None:
    """Reprice an override plan in place; its charges keep their ids (clients may hold them)."""
    write_plan_fields(override, prices.stored_plan(_trial_promotion(prices.trial_days)))
    override.invoice_display_name = prices.invoice_display_name
    override.save()
    stored = {c.metric.code: c for c in override.charges.all()}
    for c in prices.plan.charges:
        charge = stored[c.metric]
        charge.unit_amount = c.unit_amount
        charge.package_size = c.package_size
        charge.package_amount = c.package_amount
        charge.free_units = c.free_units
        charge.usage_limit = c.usage_limit
        charge.invoice_display_name = prices.charge_display_names.get(c.metric, "")
        charge.save()
        if tuple(t.spec() for t in charge.tiers.all()) != c.tiers:
            charge.tiers.all().delete()
            bulk_create_with_history(
                [
                    Tier(charge=charge, position=k, up_to=t.up_to, unit_amount=t.unit_amount, flat_amount=t.flat_amount)
                    for k, t in enumerate(c.tiers)
                ],
                Tier,
            )


def _is_trial(promotion: Promotion, days: int) -> bool:
    return (
        promotion.percent_off == 100 and promotion.duration_days == days and promotion.applies_to == AppliesTo.BASE_FEE
    )


def _trial_promotion(days: int | None) -> Promotion | None:
    """The promotion of a `days`-day trial (100 % off the base fee): one with those terms if
    there is one, else a new `trial-<days>d-base` (its terms never change once subscribed)."""
    if not days:
        return None
    terms = Promotion.objects.filter(percent_off=100, duration_days=days, applies_to=AppliesTo.BASE_FEE)
    found = terms.order_by("id").first()
    if found is not None:
        return found
    code, n = f"trial-{days}d-base", 1
    while True:
        promotion, _ = Promotion.objects.get_or_create(
            code=code,
            defaults={
                "name": f"{days}-day free trial",
                "percent_off": Decimal(100),
                "duration_days": days,
                "applies_to": AppliesTo.BASE_FEE,
            },
        )
        if _is_trial(promotion, days):
            return promotion
        n += 1  # the code is taken by a promotion with other terms
        code = f"trial-{days}d-base-{n}"
