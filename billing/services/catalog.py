"""Catalog as code: load a catalog document into the database (DESIGN §4); its export is
billing.selectors.catalog.

Loading is atomic (an invalid file changes nothing) and idempotent (loading the same file twice
changes nothing). It creates and updates; it never deletes what the file leaves out.

A plan that has subscriptions is never repriced in place: when the file changes anything a
subscriber pays (fee, interval, currency, charges, tiers, promotion, commitment), a new version
of the plan is created and becomes current; existing subscriptions keep the version they bought.
A metric or promotion in use by subscriptions cannot change how it bills; the load is refused
with a message saying so (create a new code instead).

Override plans (a subscription's own prices, billing.services.plan_overrides) are not catalog:
a load never reads or changes them, and they do not count as versions of their code. They are
copies, so repricing the catalog plan they were made from leaves them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from simple_history.utils import bulk_create_with_history

from billing.engine.catalog import (
    AddOnDef,
    Catalog,
    CatalogError,
    ChargeDef,
    MetricDef,
    PlanDef,
    PromotionDef,
    parse_catalog,
)
from billing.models import AddOn, Charge, Plan, Promotion, Subscription, Tier
from billing.selectors.catalog import plan_def
from billing.selectors.plans import plans_with_charges
from billing.services.addons import AddOnError, add_on_create, add_on_update
from customers.validators import validate_currency
from metering.models import BillableMetric

METRIC_IN_USE = "metric {code!r} is billed on subscribed plans; its aggregation and field cannot change"
PROMOTION_IN_USE = "promotion {code!r} is attached to {count} subscription(s); its terms cannot change (use a new code)"


@dataclass
class LoadReport:
    actions: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, code, action)

    def add(self, kind: str, code: str, action: str) -> None:
        self.actions.append((kind, code, action))

    @property
    def changed(self) -> bool:
        return any(action != "unchanged" for _, _, action in self.actions)


def _is_currency(code: str) -> bool:
    try:
        validate_currency(code)
    except ValidationError:
        return False
    return True


def parse_stored_catalog(data: Any) -> Catalog:
    """Validate a catalog document against the stored metrics and promotions."""
    return parse_catalog(
        data,
        known_metrics=lambda code: BillableMetric.objects.filter(code=code).exists(),
        known_promotions=lambda code: Promotion.objects.filter(code=code).exists(),
        valid_currency=_is_currency,
    )


@transaction.atomic
def catalog_load(
    *, data: Any, dry_run: bool = False, progress: Callable[[str, str, str], None] | None = None
) -> LoadReport:
    """Create or update metrics, promotions, plans and add-ons from a parsed catalog document."""
    catalog = parse_stored_catalog(data)
    report = LoadReport()
    errors: list[str] = []
    for i, metric in enumerate(catalog.metrics):
        _load_metric(metric, f"billable_metrics[{i}]", report, errors)
    for i, promotion in enumerate(catalog.promotions):
        _load_promotion(promotion, f"promotions[{i}]", report, errors)
    for i, add_on in enumerate(catalog.add_ons):
        _load_add_on(add_on, f"add_ons[{i}]", report, errors)
    if errors:
        raise CatalogError(errors)
    for plan in catalog.plans:
        _load_plan(plan, report)
    if progress:
        for action in report.actions:
            progress(*action)
    if dry_run:
        transaction.set_rollback(True)
    return report


def _load_add_on(add_on: AddOnDef, path: str, report: LoadReport, errors: list[str]) -> None:
    """Create or update the add-on by code, through its service (an add-on is a price-list entry:
    invoices keep what they billed, so it changes in place)."""
    stored = AddOn.objects.filter(code=add_on.code).first()
    wanted = (add_on.name, add_on.amount, add_on.currency, add_on.invoice_display_name, add_on.description)
    try:
        if stored is None:
            add_on_create(
                code=add_on.code,
                name=add_on.name,
                amount=add_on.amount,
                currency=add_on.currency,
                invoice_display_name=add_on.invoice_display_name,
                description=add_on.description,
            )
            report.add("add-on", add_on.code, "created")
        elif (stored.name, stored.amount, stored.currency, stored.invoice_display_name, stored.description) == wanted:
            report.add("add-on", add_on.code, "unchanged")
        else:
            add_on_update(
                add_on=stored,
                name=add_on.name,
                amount=add_on.amount,
                currency=add_on.currency,
                invoice_display_name=add_on.invoice_display_name,
                description=add_on.description,
            )
            report.add("add-on", add_on.code, "updated")
    except AddOnError as exc:
        errors += [f"{path}.{field}: {message}" for field, messages in exc.errors.items() for message in messages]


def _load_metric(metric: MetricDef, path: str, report: LoadReport, errors: list[str]) -> None:
    stored = BillableMetric.objects.filter(code=metric.code).first()
    if stored is None:
        BillableMetric.objects.create(
            code=metric.code,
            name=metric.name,
            aggregation=metric.aggregation,
            field=metric.field,
            description=metric.description,
        )
        report.add("metric", metric.code, "created")
        return
    changes_billing = (stored.aggregation, stored.field) != (metric.aggregation, metric.field)
    if changes_billing and Subscription.objects.filter(plan__charges__metric=stored).exists():
        errors.append(f"{path}.aggregation: " + METRIC_IN_USE.format(code=metric.code))
        return
    new = (metric.name, metric.aggregation, metric.field, metric.description)
    if (stored.name, stored.aggregation, stored.field, stored.description) == new:
        report.add("metric", metric.code, "unchanged")
        return
    stored.name, stored.aggregation, stored.field, stored.description = new
    stored.save()
    report.add("metric", metric.code, "updated")


def _load_promotion(promotion: PromotionDef, path: str, report: LoadReport, errors: list[str]) -> None:
    stored = Promotion.objects.filter(code=promotion.code).first()
    terms = (promotion.percent_off, promotion.duration_days, promotion.applies_to)
    if stored is None:
        Promotion.objects.create(
            code=promotion.code,
            name=promotion.name,
            percent_off=promotion.percent_off,
            duration_days=promotion.duration_days,
            applies_to=promotion.applies_to,
        )
        report.add("promotion", promotion.code, "created")
        return
    if (stored.percent_off, stored.duration_days, stored.applies_to) != terms:
        count = stored.subscriptions.count()
        if count:
            errors.append(f"{path}.percent_off: " + PROMOTION_IN_USE.format(code=promotion.code, count=count))
            return
    elif stored.name == promotion.name:
        report.add("promotion", promotion.code, "unchanged")
        return
    stored.name = promotion.name
    stored.percent_off, stored.duration_days, stored.applies_to = terms
    stored.save()
    report.add("promotion", promotion.code, "updated")


def _load_plan(plan: PlanDef, report: LoadReport) -> None:
    stored = plans_with_charges().select_for_update(of=("self",)).filter(code=plan.code, is_current=True).first()
    if stored is None:
        _create_plan(plan, version=1)
        report.add("plan", plan.code, "created")
        return
    current = plan_def(stored)
    if current == plan:
        report.add("plan", plan.code, "unchanged")
        return
    if current.pricing() != plan.pricing() and stored.subscriptions.exists():
        # Never reprice what was sold: the old version keeps its subscribers.
        catalog_versions = Plan.objects.filter(code=plan.code, parent__isnull=True)  # not the override plans
        latest = catalog_versions.order_by("-version").values_list("version", flat=True)[0]
        stored.is_current = False
        stored.save(update_fields=["is_current", "updated_at"])  # save(), not update(): keeps its history
        _create_plan(plan, version=latest + 1)
        report.add("plan", plan.code, f"new version {latest + 1}")
        return
    write_plan_fields(stored, plan)
    stored.save()
    if current.charges != plan.charges:
        stored.charges.all().delete()
        create_charges(stored, plan.charges)
    report.add("plan", plan.code, "updated")


def write_plan_fields(stored: Plan, plan: PlanDef) -> None:
    """Set a stored plan's fields (not its charges) to the PlanDef's; the caller saves it."""
    stored.name = plan.name
    stored.description = plan.description
    stored.interval = plan.interval
    stored.currency = plan.currency
    stored.base_fee = plan.base_fee
    stored.pay_in_advance = plan.pay_in_advance
    stored.promotion = Promotion.objects.get(code=plan.promotion) if plan.promotion else None
    c = plan.commitment
    stored.commitment_amount = c.amount if c else None
    stored.commitment_months = c.months if c else None
    stored.commitment_covers = c.covers if c else "base_fee"
    stored.commitment_auto_renew = c.auto_renew if c else True


def _create_plan(plan: PlanDef, *, version: int) -> Plan:
    stored = Plan(code=plan.code, version=version, is_current=True)
    write_plan_fields(stored, plan)
    stored.save()
    create_charges(stored, plan.charges)
    return stored


def create_charges(plan: Plan, charges: tuple[ChargeDef, ...], display_names: Mapping[str, str] | None = None) -> None:
    """Store the charges (and tiers) of a plan; `display_names` are their invoice_display_name by
    metric code (none in a catalog file)."""
    metrics = {m.code: m for m in BillableMetric.objects.filter(code__in=[c.metric for c in charges])}
    for position, c in enumerate(charges):
        charge = Charge.objects.create(
            plan=plan,
            metric=metrics[c.metric],
            position=position,
            model=c.model,
            invoice_display_name=(display_names or {}).get(c.metric, ""),
            unit_amount=c.unit_amount,
            package_size=c.package_size,
            package_amount=c.package_amount,
            free_units=c.free_units,
            usage_limit=c.usage_limit,
        )
        bulk_create_with_history(
            [
                Tier(charge=charge, position=k, up_to=t.up_to, unit_amount=t.unit_amount, flat_amount=t.flat_amount)
                for k, t in enumerate(c.tiers)
            ],
            Tier,
        )
