"""The subscription whose usage current_usage prices, read in one statement.

The usage endpoints read a subscription with its customer, promotion and plan, and the plan's
charges (with their metrics) and tiers. Through the ORM that is three queries (select_related,
then two prefetches), and compiling and running them was about half of the endpoint's CPU (the
ORM's query building more than the database's answers). Here one statement joins the seven
tables, one row per tier (or per charge without tiers), and the rows are turned into the same
model instances, with the same caches set, as `select_related("customer", "promotion", "plan")`
and `prefetch_related(charges_with_tiers("plan__charges"))` would set. Nothing is cached across
requests, so a change to the catalog (a plan, a charge, a tier, a metric's name) is seen by the
next request.

Only the usual answer is read here (exactly one subscription); the error cases (no customer,
no such subscription, several active ones) return None and the caller asks the ORM, which
words the error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from billing.models import Charge, Plan, Promotion, Subscription, SubscriptionStatus, Tier
from config.db import prepared_cursor
from customers.models import Customer
from metering.models import BillableMetric

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]

# The joined tables: alias and model, in the order of the statement's columns.
PARTS: tuple[tuple[str, type[Model]], ...] = (
    ("s", Subscription),
    ("cu", Customer),
    ("pr", Promotion),
    ("pl", Plan),
    ("ch", Charge),
    ("m", BillableMetric),
    ("t", Tier),
)


@dataclass(frozen=True)
class Part:
    """One joined model: where its columns are in a row, and how each is read (the backend's and
    the field's converters, as the ORM applies them: SQLite's decimals, dates and JSON)."""

    model: type[Model]
    start: int
    attnames: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Converter, ...], Any], ...]

    def build(self, row: Sequence[Any], connection: BaseDatabaseWrapper) -> Model | None:
        """The instance of this part of the row; None when the LEFT JOIN found none (no id)."""
        values = list(row[self.start : self.start + len(self.attnames)])
        if values[0] is None:
            return None
        for index, converters, expression in self.converters:
            value = values[index]
            for convert in converters:
                value = convert(value, expression, connection)
            values[index] = value
        return self.model.from_db(connection.alias, list(self.attnames), values)


@dataclass(frozen=True)
class Statement:
    by_external_id: str
    active: str
    parts: dict[str, Part]


_STATEMENTS: dict[str, Statement] = {}


def _fields(model: type[Model]) -> list[Field[Any, Any]]:
    """The model's columns, its primary key first (a part without an id is a missing LEFT JOIN)."""
    fields = list(model._meta.concrete_fields)
    pk = model._meta.pk
    assert pk is not None
    fields.remove(pk)
    return [pk, *fields]


def _column(field: Field[Any, Any]) -> str:
    assert field.column is not None  # a concrete field has its column
    return field.column


def _part(model: type[Model], alias: str, start: int, connection: BaseDatabaseWrapper) -> Part:
    converters = []
    for index, field in enumerate(_fields(model)):
        expression = field.get_col(alias)
        found = connection.ops.get_db_converters(expression) + field.get_db_converters(connection)
        if found:
            converters.append((index, tuple(found), expression))
    attnames = tuple(f.attname for f in _fields(model))
    return Part(model=model, start=start, attnames=attnames, converters=tuple(converters))


def _statement(connection: BaseDatabaseWrapper) -> Statement:
    """The statement for this database, built once from the models' metadata."""
    found = _STATEMENTS.get(connection.alias)
    if found is not None:
        return found
    q = connection.ops.quote_name
    columns, parts, start = [], {}, 0
    for alias, model in PARTS:
        fields = _fields(model)
        columns += [f"{alias}.{q(_column(f))}" for f in fields]
        parts[alias] = _part(model, alias, start, connection)
        start += len(fields)
    table = {alias: q(model._meta.db_table) for alias, model in PARTS}
    # The subscription(s) asked for, in the order of Subscription.Meta.ordering (as .first()).
    chosen = (
        f"SELECT s2.{q('id')} FROM {table['s']} s2 JOIN {table['cu']} c2 ON c2.{q('id')} = s2.{q('customer_id')} "
        f"WHERE c2.{q('external_id')} = %s AND c2.{q('deleted_at')} IS NULL AND {{condition}} "
        f"ORDER BY s2.{q('subscription_at')} DESC, s2.{q('id')} LIMIT {{limit}}"
    )
    body = (
        f"SELECT {', '.join(columns)} FROM {table['s']} s "
        f"JOIN {table['cu']} cu ON cu.{q('id')} = s.{q('customer_id')} "
        f"LEFT JOIN {table['pr']} pr ON pr.{q('id')} = s.{q('promotion_id')} "
        f"JOIN {table['pl']} pl ON pl.{q('id')} = s.{q('plan_id')} "
        f"LEFT JOIN {table['ch']} ch ON ch.{q('plan_id')} = pl.{q('id')} "
        f"LEFT JOIN {table['m']} m ON m.{q('id')} = ch.{q('metric_id')} "
        f"LEFT JOIN {table['t']} t ON t.{q('charge_id')} = ch.{q('id')} "
        f"WHERE s.{q('id')} IN ({{chosen}}) "
        f"ORDER BY s.{q('subscription_at')} DESC, s.{q('id')}, ch.{q('position')}, ch.{q('id')}, "
        f"t.{q('position')}, t.{q('id')}"
    )
    statement = Statement(
        by_external_id=body.format(chosen=chosen.format(condition=f"s2.{q('external_id')} = %s", limit=1)),
        active=body.format(chosen=chosen.format(condition=f"s2.{q('status')} = %s", limit=2)),
        parts=parts,
    )
    _STATEMENTS[connection.alias] = statement
    return statement


def usage_subscription(
    customer_external_id: str, external_subscription_id: str | None, *, using: str = "default"
) -> Subscription | None:
    """The customer's subscription `external_subscription_id` (else its one active subscription),
    with customer, promotion, plan, charges, metrics and tiers; None when there is not exactly
    one (the caller tells which error from the ORM)."""
    connection = connections[using]
    statement = _statement(connection)
    if external_subscription_id:
        sql, params = statement.by_external_id, [customer_external_id, external_subscription_id]
    else:
        sql, params = statement.active, [customer_external_id, SubscriptionStatus.ACTIVE.value]
    # Prepared (config.db.prepared_cursor): planning this seven-table join cost 1–2 ms of
    # database CPU on every request, ten times running it.
    with prepared_cursor() if using == DEFAULT_DB_ALIAS else connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows or len({row[0] for row in rows}) != 1:
        return None
    return _assemble(rows, statement.parts, connection)


def _assemble(rows: list[Sequence[Any]], parts: dict[str, Part], connection: BaseDatabaseWrapper) -> Subscription:
    """The models of one subscription's rows, with the caches select_related and the prefetches set."""
    first = rows[0]
    subscription = parts["s"].build(first, connection)
    plan = parts["pl"].build(first, connection)
    assert isinstance(subscription, Subscription) and isinstance(plan, Plan)
    Subscription.customer.field.set_cached_value(subscription, parts["cu"].build(first, connection))
    Subscription.promotion.field.set_cached_value(subscription, parts["pr"].build(first, connection))
    Subscription.plan.field.set_cached_value(subscription, plan)
    charges: list[Charge] = []
    tiers: dict[int, list[Tier]] = {}
    for row in rows:
        charge_id = row[parts["ch"].start]
        if charge_id is None:
            continue
        if not charges or charges[-1].pk != charge_id:
            charge = parts["ch"].build(row, connection)
            assert isinstance(charge, Charge)
            Charge.plan.field.set_cached_value(charge, plan)
            Charge.metric.field.set_cached_value(charge, parts["m"].build(row, connection))
            charges.append(charge)
            tiers[charge.pk] = []
        tier = parts["t"].build(row, connection)
        if isinstance(tier, Tier):
            Tier.charge.field.set_cached_value(tier, charges[-1])
            tiers[charge_id].append(tier)
    for charge in charges:
        _set_prefetched(charge, "tiers", tiers[charge.pk])
    _set_prefetched(plan, "charges", charges)
    return subscription


def _set_prefetched(instance: Model, name: str, objects: list[Any]) -> None:
    """`instance.<name>.all()` answers `objects` without a query, as after prefetch_related."""
    queryset = getattr(instance, name).get_queryset()
    queryset._result_cache = objects
    queryset._prefetch_done = True
    cache = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    cache[name] = queryset
