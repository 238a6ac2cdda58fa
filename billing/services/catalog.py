"""Catalog as code: load a catalog document into the database (DESIGN §4); its export is
billing.selectors.catalog. The API's /billable_metrics and /plans (billing.api.billable_metrics,
billing.api.plans) write through the same services, `metric_save` and `plan_save`, under the
same rules.

Loading is atomic (an invalid file changes nothing) and idempotent (loading the same file twice
changes nothing). It creates and updates; it never deletes what the file leaves out.

A plan that has subscriptions is never repriced in place: when the file changes anything a
subscriber pays (fee, interval, currency, charges, tiers, promotion, commitment), a new version
of the plan is created and becomes current; existing subscriptions keep the version they bought.
A plan's metadata (Lago's) is not pricing: changing it never makes a version, and a new version
keeps it; a plan saved without it (`PlanDef.metadata` None) keeps the metadata it has.
A metric or promotion in use by subscriptions cannot change how it bills; the load is refused
with a message saying so (create a new code instead).

Override plans (a subscription's own prices, billing.services.plan_overrides) are not catalog:
a load never reads or changes them, and they do not count as versions of their code. They are
copies, so repricing the catalog plan they were made from leaves them as they are.

Deleting (the API's destroy; Lago soft-deletes, terminates the plan's subscriptions and detaches
a metric's charges, none of which is safe for money already sold):
- a plan with active or pending subscriptions (on any version, its subscriptions' own prices
  included) is refused; one whose subscriptions are all terminated is retired: no version is
  current any more (the versions stay, the record of what was billed), so it is gone from the
  catalog and a plan created later with its code starts at the next version; a plan never
  subscribed is deleted with its charges and tiers;
- a metric billed by any plan version, or with events, is refused; an unused one is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, ProtectedError
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
from billing.engine.vocabulary import AppliesTo, SubscriptionStatus
from billing.models import AddOn, Charge, Plan, Promotion, Subscription, Tier
from billing.selectors.catalog import plan_def
from billing.selectors.plans import plans_with_charges
from billing.services.addons import AddOnError, add_on_create, add_on_update
from customers.validators import validate_currency
from metering.models import BillableMetric, EventCount

METRIC_IN_USE = "metric {code!r} is billed on subscribed plans; its aggregation and field cannot change"
PROMOTION_IN_USE = "promotion {code!r} is attached to {count} subscription(s); its terms cannot change (use a new code)"
ALREADY_EXISTS = "a {what} with code {code!r} already exists"
METRIC_CODE_IN_USE = "metric {code!r} is billed by plans or has events, which name it: its code cannot change"
METRIC_BILLED_BY = "metric {code!r} is billed by plan(s) {plans}: remove its charges first"
METRIC_HAS_RECORDS = "metric {code!r} has events, alerts or invoice lines: it cannot be deleted"
PLAN_SUBSCRIBED = "plan {code!r} has {count} active or pending subscription(s): terminate them first"


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
        try:
            _, done = metric_save(metric=metric, path=f"billable_metrics[{i}]")
            report.add("metric", metric.code, done)
        except CatalogError as exc:
            errors += exc.errors
    for i, promotion in enumerate(catalog.promotions):
        _load_promotion(promotion, f"promotions[{i}]", report, errors)
    for i, add_on in enumerate(catalog.add_ons):
        _load_add_on(add_on, f"add_ons[{i}]", report, errors)
    if errors:
        raise CatalogError(errors)
    for i, plan in enumerate(catalog.plans):
        saved = plan_save(plan=plan, path=f"plans[{i}]")
        report.add("plan", plan.code, saved.action)
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


def _at(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


@transaction.atomic
def metric_save(
    *, metric: MetricDef, stored_code: str | None = None, new: bool = False, path: str = ""
) -> tuple[BillableMetric, str]:
    """Create or update the metric `stored_code` (default: its own code) to `metric`; returns it and
    what was done ("created", "updated", "unchanged"). `new`: refuse a code already taken.

    A metric billed on subscribed plans cannot change how it bills (aggregation, field), and one
    billed by any plan or with events cannot change its code (events name it): CatalogError, with
    `path` before each field.
    """
    code = stored_code or metric.code
    stored = BillableMetric.objects.select_for_update().filter(code=code).first()
    if stored is None or (new and stored is not None):
        if stored is not None or (code != metric.code and BillableMetric.objects.filter(code=metric.code).exists()):
            raise CatalogError([f"{_at(path, 'code')}: " + ALREADY_EXISTS.format(what="billable metric", code=code)])
        try:
            with transaction.atomic():  # a concurrent create of the same code: the unique code decides
                created = BillableMetric.objects.create(
                    code=metric.code,
                    name=metric.name,
                    aggregation=metric.aggregation,
                    field=metric.field,
                    description=metric.description,
                )
        except IntegrityError:
            raise CatalogError(
                [f"{_at(path, 'code')}: " + ALREADY_EXISTS.format(what="billable metric", code=metric.code)]
            ) from None
        return created, "created"
    errors: list[str] = []
    if metric.code != stored.code:
        if BillableMetric.objects.filter(code=metric.code).exists():
            errors.append(f"{_at(path, 'code')}: " + ALREADY_EXISTS.format(what="billable metric", code=metric.code))
        elif stored.charges.exists() or EventCount.objects.filter(metric=stored).exists():
            errors.append(f"{_at(path, 'code')}: " + METRIC_CODE_IN_USE.format(code=stored.code))
    if (stored.aggregation, stored.field) != (metric.aggregation, metric.field) and Subscription.objects.filter(
        plan__charges__metric=stored
    ).exists():
        changed = "aggregation" if stored.aggregation != metric.aggregation else "field"
        errors.append(f"{_at(path, changed)}: " + METRIC_IN_USE.format(code=stored.code))
    if errors:
        raise CatalogError(errors)
    new_values = (metric.code, metric.name, metric.aggregation, metric.field, metric.description)
    if (stored.code, stored.name, stored.aggregation, stored.field, stored.description) == new_values:
        return stored, "unchanged"
    stored.code, stored.name, stored.aggregation, stored.field, stored.description = new_values
    stored.save()
    return stored, "updated"


@transaction.atomic
def metric_destroy(*, metric: BillableMetric) -> None:
    """Delete a metric nothing uses; CatalogError (field `code`) when a plan version bills it or
    it has events, alerts or invoice lines."""
    metric = BillableMetric.objects.select_for_update().get(pk=metric.pk)
    plans = sorted(set(Charge.objects.filter(metric=metric).values_list("plan__code", flat=True)))
    if plans:
        raise CatalogError(["code: " + METRIC_BILLED_BY.format(code=metric.code, plans=", ".join(plans))])
    if EventCount.objects.filter(metric=metric).exists():
        raise CatalogError(["code: " + METRIC_HAS_RECORDS.format(code=metric.code)])
    try:
        with transaction.atomic():
            metric.delete()
    except (ProtectedError, IntegrityError):
        raise CatalogError(["code: " + METRIC_HAS_RECORDS.format(code=metric.code)]) from None


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


@dataclass(frozen=True)
class PlanSaved:
    plan: Plan  # the current version
    action: str  # "created", "unchanged", "updated", "new version N"


@transaction.atomic
def plan_save(
    *,
    plan: PlanDef,
    trial_days: int | None = None,
    invoice_display_name: str | None = None,
    charge_display_names: Mapping[str, str] | None = None,
    new: bool = False,
    path: str = "",
) -> PlanSaved:
    """Create or update the plan `plan.code` (see the module: a subscribed plan is versioned).

    `trial_days` (Lago's trial_period): the plan's promotion is N days 100 % off the base fee
    (`trial_promotion`), 0 none; None keeps `plan.promotion`. `invoice_display_name` and
    `charge_display_names` (by metric code): None keeps the stored ones (a catalog file has none).
    `new`: refuse a code that has a current version (CatalogError naming `code`).
    `plan.metadata` None keeps the stored metadata.
    """
    if trial_days is not None:
        trial = trial_promotion(trial_days)
        plan = replace(plan, promotion=trial.code if trial is not None else None)
    stored = plans_with_charges().select_for_update(of=("self",)).filter(code=plan.code, is_current=True).first()
    if stored is not None and new:
        raise CatalogError([f"{_at(path, 'code')}: " + ALREADY_EXISTS.format(what="plan", code=plan.code)])
    metadata = plan.metadata if plan.metadata is not None or stored is None else stored.metadata
    plan = replace(plan, metadata=dict(metadata or {}) or None)  # as plan_def shows it: none is None
    if stored is None:
        try:
            with transaction.atomic():  # a concurrent create of the same code: one current version decides
                created = _create_plan(
                    plan,
                    version=_next_version(plan.code),
                    display_name=invoice_display_name,
                    charge_names=charge_display_names,
                )
        except IntegrityError:
            raise CatalogError(
                [f"{_at(path, 'code')}: " + ALREADY_EXISTS.format(what="plan", code=plan.code)]
            ) from None
        return PlanSaved(plan=created, action="created")
    names = {c.metric.code: c.invoice_display_name for c in stored.charges.all()}
    wanted_names = {c.metric: (charge_display_names or {}).get(c.metric, names.get(c.metric, "")) for c in plan.charges}
    display_name = stored.invoice_display_name if invoice_display_name is None else invoice_display_name
    current = plan_def(stored)
    if current == plan and display_name == stored.invoice_display_name and wanted_names == names:
        return PlanSaved(plan=stored, action="unchanged")
    # A staged downgrade (Subscription.next_plan) has sold this version too: it starts on it later.
    sold = stored.subscriptions.exists() or Subscription.objects.filter(next_plan=stored).exists()
    if current.pricing() != plan.pricing() and sold:
        # Never reprice what was sold: the old version keeps its subscribers.
        version = _next_version(plan.code)
        stored.is_current = False
        stored.save(update_fields=["is_current", "updated_at"])  # save(), not update(): keeps its history
        created = _create_plan(plan, version=version, display_name=display_name, charge_names=wanted_names)
        return PlanSaved(plan=created, action=f"new version {version}")
    write_plan_fields(stored, plan)
    stored.invoice_display_name = display_name
    stored.save()
    if current.charges != plan.charges:
        stored.charges.all().delete()
        create_charges(stored, plan.charges, wanted_names)
    elif wanted_names != names:
        for charge in stored.charges.all():
            if charge.invoice_display_name != wanted_names[charge.metric.code]:
                charge.invoice_display_name = wanted_names[charge.metric.code]
                charge.save(update_fields=["invoice_display_name"])
    return PlanSaved(plan=plans_with_charges().get(pk=stored.pk), action="updated")


def _next_version(code: str) -> int:
    """The version a new catalog plan `code` gets: after every version it had (a retired plan's
    versions stay), not counting the override plans, which keep their catalog plan's version."""
    latest = Plan.objects.catalog().filter(code=code).aggregate(latest=Max("version"))["latest"]
    return (latest or 0) + 1


@transaction.atomic
def plan_destroy(*, plan: Plan) -> str:
    """Delete or retire the plan family of `plan` (see the module); returns "deleted" or
    "retired". CatalogError (field `code`) when it has active or pending subscriptions."""
    code = plan.code
    versions = list(Plan.objects.select_for_update().filter(code=code).order_by("pk"))
    subscriptions = Subscription.objects.filter(plan__code=code)
    ended = [SubscriptionStatus.TERMINATED, SubscriptionStatus.CANCELED]
    # Live ones, and staged downgrades to it (they start on it at their period's end).
    live = subscriptions.exclude(status__in=ended).count()
    live += Subscription.objects.filter(next_plan__code=code).exclude(status__in=ended).count()
    if live:
        raise CatalogError(["code: " + PLAN_SUBSCRIBED.format(code=code, count=live)])
    if subscriptions.exists():
        for version in versions:
            if version.is_current:
                version.is_current = False
                version.save(update_fields=["is_current", "updated_at"])
        return "retired"
    # Never subscribed: no override plans either (each is one subscription's), nothing billed.
    for version in versions:
        version.delete()
    return "deleted"


def trial_promotion(days: int) -> Promotion | None:
    """The promotion of a `days`-day trial (100 % off the base fee; Lago's trial_period): one
    with those terms if there is one, else a new `trial-<days>d-base`; None for 0 days. Its terms
    never change here, so a plan that takes it never changes another plan's trial."""
    if not days:
        return None
    terms = {"percent_off": Decimal(100), "duration_days": days, "applies_to": AppliesTo.BASE_FEE}
    found = Promotion.objects.filter(**terms).order_by("id").first()
    if found is not None:
        return found
    code, n = f"trial-{days}d-base", 1
    while Promotion.objects.filter(code=code).exists():  # taken by a promotion with other terms
        n += 1
        code = f"trial-{days}d-base-{n}"
    return Promotion.objects.create(code=code, name=f"{days}-day free trial", **terms)


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
    stored.metadata = dict(plan.metadata or {})


def _create_plan(
    plan: PlanDef, *, version: int, display_name: str | None = None, charge_names: Mapping[str, str] | None = None
) -> Plan:
    stored = Plan(code=plan.code, version=version, is_current=True, invoice_display_name=display_name or "")
    write_plan_fields(stored, plan)
    stored.save()
    create_charges(stored, plan.charges, charge_names)
    return plans_with_charges().get(pk=stored.pk)


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
