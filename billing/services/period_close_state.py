"""What closing one subscription reads, under its lock: the run's catalog cache (plans with
their charges, read once a run), the subscription locked with its customer (checked unchanged
since the chunk read it, or read again), and its period and advance invoices.
billing.services.period_close uses them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef

from billing.engine.adjustments import TaxRate
from billing.models import (
    AppliedCoupon,
    Commitment,
    CommitmentStatus,
    CouponStatus,
    CreditNote,
    CreditStatus,
    CustomerTax,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Plan,
    Subscription,
    Wallet,
    WalletStatus,
)
from billing.selectors.adjustments import tax_rates
from billing.selectors.plans import plans_with_charges
from config.db import raw_timestamp
from customers.models import Customer


class SubscriptionBusy(Exception):
    """Raised by a close asked to skip locked rows when another transaction holds the
    subscription's or its customer's lock (or the row is gone: the blocking retry tells)."""


# --- closing periods ------------------------------------------------------------------------


class RunCache:
    """What a close run reads once rather than once per subscription: plans with their charges
    and tiers, by id, and metric ids by code. Its size follows the catalog, not the customer
    count. A plan's prices never change in place once it has subscribers (the catalog makes a
    new version), so a run sees each plan as it was when first needed."""

    def __init__(self) -> None:
        self.plans: dict[int, Plan] = {}
        self.metric_ids: dict[str, int] = {}
        self._org_taxes: tuple[TaxRate, ...] | None = None

    def taxes(self, subscription: Subscription) -> tuple[TaxRate, ...]:
        """The customer's taxes: its own codes if it has any, else the organization's (read once
        a run: taxes are catalog, not per customer)."""
        if getattr(subscription, "has_own_taxes", True):
            return tax_rates(subscription.customer_id)
        if self._org_taxes is None:
            self._org_taxes = tax_rates(None)
        return self._org_taxes

    def plan(self, plan_id: int) -> Plan:
        plan = self.plans.get(plan_id)
        if plan is None:
            plan = self.plans[plan_id] = plans_with_charges().get(pk=plan_id)
            for charge in plan.charges.all():
                self.metric_ids.setdefault(charge.metric.code, charge.metric_id)
        return plan


@dataclass
class Known:
    """The invoices of the locked subscription (one read, then kept up to date by this close)."""

    invoices: dict[tuple[str, datetime], tuple[int, str]]  # (kind, period start) → (id, status)
    finalized_periods: list[tuple[datetime, datetime]]  # (start, end) of finalized period invoices
    has_commitment: bool  # an active commitment, which period and advance invoices may draw from
    has_credit: bool  # credit the customer's invoices may consume: credit notes, coupons, a wallet

    def done(self, kind: str, start: datetime) -> bool:
        """Finalized, or voided: a voided period is rebuilt only by an explicit regenerate."""
        found = self.invoices.get((kind, start))
        return found is not None and found[1] != InvoiceStatus.DRAFT

    def draft(self, kind: str, start: datetime) -> bool:
        found = self.invoices.get((kind, start))
        return found is not None and found[1] == InvoiceStatus.DRAFT

    def add(self, pk: int, kind: str, start: datetime, end: datetime, status: str) -> None:
        current = self.invoices.get((kind, start))
        if current is None or current[1] == InvoiceStatus.VOIDED:  # the live one wins
            self.invoices[(kind, start)] = (pk, status)
        if kind == InvoiceKind.PERIOD and status == InvoiceStatus.FINALIZED:
            self.finalized_periods.append((start, end))

    def record(self, invoice: Invoice) -> None:
        self.invoices[(invoice.kind, invoice.period_start)] = (invoice.pk, invoice.status)
        if invoice.kind == InvoiceKind.PERIOD and invoice.status == InvoiceStatus.FINALIZED:
            self.finalized_periods.append((invoice.period_start, invoice.period_end))


def _close_flags() -> tuple[str, list[str]]:
    """The columns a close reads with its lock, over the subscription `s` and its customer `c`:
    whether the subscription has an active commitment, whether the customer has credit to
    consume (credit notes, coupons, a wallet), whether it has tax codes of its own; and their
    parameters."""
    commitments, notes = Commitment._meta.db_table, CreditNote._meta.db_table
    coupons, wallets = AppliedCoupon._meta.db_table, Wallet._meta.db_table
    own_taxes = CustomerTax._meta.db_table
    sql = (  # table names from _meta, values as parameters
        f"EXISTS (SELECT 1 FROM {commitments} m WHERE m.subscription_id = s.id AND m.status = %s), "
        f"EXISTS (SELECT 1 FROM {notes} n WHERE n.customer_id = c.id AND n.credit_status = %s "
        f"AND n.balance_amount > 0) "
        f"OR EXISTS (SELECT 1 FROM {coupons} a WHERE a.customer_id = c.id AND a.status = %s) "
        f"OR EXISTS (SELECT 1 FROM {wallets} w WHERE w.customer_id = c.id AND w.status = %s "
        f"AND w.balance > 0), "
        f"EXISTS (SELECT 1 FROM {own_taxes} t WHERE t.customer_id = c.id)"
    )
    return sql, [CommitmentStatus.ACTIVE, CreditStatus.AVAILABLE, CouponStatus.ACTIVE, WalletStatus.ACTIVE]


def lock_unchanged(
    subscription_id: int, read: Subscription, skip_locked: bool = False
) -> tuple[bool, bool, bool, bool]:
    """Lock the subscription's and its customer's rows; return whether they are as in `read` (by
    their updated_at, which every save() sets), whether the subscription has an active
    commitment, whether the customer has credit to consume (credit notes, coupons, a wallet),
    and whether it has tax codes of its own.

    The customer is locked as well because finalizing consumes the customer's credit (DESIGN §6:
    under the customer's lock). One lean statement instead of the ORM's locking read with joins:
    the rows themselves were read beforehand, in a chunk (close_periods). `skip_locked`: a row
    another transaction holds is not waited for (SubscriptionBusy).
    """
    subscriptions, customers = Subscription._meta.db_table, Customer._meta.db_table
    flags, flag_params = _close_flags()
    lock = " FOR UPDATE OF s, c" if connection.features.has_select_for_update_of else ""
    if lock and skip_locked and connection.features.has_select_for_update_skip_locked:
        lock += " SKIP LOCKED"
    stamp = Subscription._meta.get_field("updated_at")
    customer_stamp = Customer._meta.get_field("updated_at")
    with connection.cursor() as cursor:
        cursor.execute(  # table names from _meta, values as parameters
            f"SELECT s.updated_at = %s AND c.updated_at = %s, {flags} "
            f"FROM {subscriptions} s INNER JOIN {customers} c ON c.id = s.customer_id WHERE s.id = %s{lock}",
            [
                stamp.get_db_prep_value(read.updated_at, connection),
                customer_stamp.get_db_prep_value(read.customer.updated_at, connection),
                *flag_params,
                subscription_id,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        if skip_locked:
            raise SubscriptionBusy(subscription_id)
        raise Subscription.DoesNotExist(f"subscription {subscription_id} does not exist")
    return bool(row[0]), bool(row[1]), bool(row[2]), bool(row[3])


def lock_group(subscription_ids: list[int], read: dict[int, Subscription]) -> dict[int, Subscription]:
    """Lock the subscriptions (and their customers) that no other transaction holds, in one
    statement with SKIP LOCKED (PostgreSQL): never waiting, a group's lock cannot deadlock with
    another closer's. Returns those locked that are unchanged since `read` (by updated_at), with
    has_commitment, has_credit and has_own_taxes set as locked_subscription sets them; the others
    (held elsewhere, changed, gone) are left to the one-by-one path."""
    subscriptions, customers = Subscription._meta.db_table, Customer._meta.db_table
    flags, flag_params = _close_flags()
    with connection.cursor() as cursor:
        cursor.execute(  # table names from _meta, values as parameters
            f"SELECT s.id, s.updated_at, c.updated_at, {flags} "
            f"FROM {subscriptions} s INNER JOIN {customers} c ON c.id = s.customer_id WHERE s.id = ANY(%s) "
            f"FOR UPDATE OF s, c SKIP LOCKED",
            [*flag_params, list(subscription_ids)],
        )
        rows = cursor.fetchall()
    locked: dict[int, Subscription] = {}
    for pk, stamp, customer_stamp, has_commitment, has_credit, has_own_taxes in rows:
        subscription = read.get(pk)
        if subscription is None:
            continue
        if (stamp, customer_stamp) != (subscription.updated_at, subscription.customer.updated_at):
            continue  # changed since read: the one-by-one path reads it again
        subscription.has_commitment = has_commitment  # type: ignore[attr-defined]
        subscription.has_credit = has_credit  # type: ignore[attr-defined]
        subscription.has_own_taxes = has_own_taxes  # type: ignore[attr-defined]
        locked[pk] = subscription
    return locked


def locked_subscription(
    subscription_id: int, cache: RunCache, read: Subscription | None = None, skip_locked: bool = False
) -> Subscription:
    """The subscription, locked with its customer, with its promotion and plan (from the run's
    cache), whether it has an active commitment (`has_commitment`) and whether the customer has
    credit to consume (`has_credit`).

    `read`: the subscription with its customer and promotion as read shortly before, outside
    the lock; used if neither row has changed since (checked under the lock), else read again.
    `skip_locked`: raise SubscriptionBusy rather than wait for another transaction's lock.
    """
    if read is not None:
        unchanged, has_commitment, has_credit, has_own_taxes = lock_unchanged(subscription_id, read, skip_locked)
        if unchanged:
            read.has_commitment = has_commitment  # type: ignore[attr-defined]
            read.has_credit = has_credit  # type: ignore[attr-defined]
            read.has_own_taxes = has_own_taxes  # type: ignore[attr-defined]
            read.plan = cache.plan(read.plan_id)
            return read
    active = Commitment.objects.filter(subscription=OuterRef("pk"), status=CommitmentStatus.ACTIVE)
    credit = CreditNote.objects.filter(
        customer=OuterRef("customer_id"), credit_status=CreditStatus.AVAILABLE, balance_amount__gt=0
    )
    coupon = AppliedCoupon.objects.filter(customer=OuterRef("customer_id"), status=CouponStatus.ACTIVE)
    wallet = Wallet.objects.filter(customer=OuterRef("customer_id"), status=WalletStatus.ACTIVE, balance__gt=0)
    own_tax = CustomerTax.objects.filter(customer=OuterRef("customer_id"))
    locked = (
        # of=self and customer: the promotion join is nullable, and PostgreSQL cannot lock an
        # outer join's side.
        Subscription.objects.select_related("customer", "promotion")
        .select_for_update(of=("self", "customer"), skip_locked=skip_locked)
        .annotate(
            has_commitment=Exists(active),
            has_credit=Exists(credit) | Exists(coupon) | Exists(wallet),
            has_own_taxes=Exists(own_tax),
        )
        .filter(pk=subscription_id)
        .first()
    )
    if locked is None:
        if skip_locked:
            raise SubscriptionBusy(subscription_id)
        raise Subscription.DoesNotExist(f"subscription {subscription_id} does not exist")
    subscription = locked
    subscription.plan = cache.plan(subscription.plan_id)
    return subscription


def known_invoices(subscription: Subscription) -> Known:
    """The subscription's period and advance invoices, read after its lock was taken (so a
    closer that held it before has committed its invoices). Raw SQL: on the hot path of a run,
    the ORM's query building cost several times the query."""
    return known_invoices_of([subscription])[subscription.pk]


def known_invoices_of(subscriptions: list[Subscription]) -> dict[int, Known]:
    """known_invoices of several locked subscriptions (a close's group), in one statement, by
    subscription id."""
    known = {
        s.pk: Known(
            invoices={},
            finalized_periods=[],
            has_commitment=s.has_commitment,  # type: ignore[attr-defined]
            has_credit=s.has_credit,  # type: ignore[attr-defined]
        )
        for s in subscriptions
    }
    if not known:
        return known
    with connection.cursor() as cursor:
        cursor.execute(  # table name from _meta, values as parameters
            f"SELECT subscription_id, id, kind, period_start, period_end, status FROM {Invoice._meta.db_table} "
            f"WHERE subscription_id {'= %s' if len(known) == 1 else 'IN (' + ', '.join(['%s'] * len(known)) + ')'} "
            "AND kind IN (%s, %s)",
            [*known, InvoiceKind.PERIOD, InvoiceKind.ADVANCE],
        )
        rows = cursor.fetchall()
    for subscription_id, pk, kind, start, end, status in rows:
        known[subscription_id].add(pk, kind, raw_timestamp(start), raw_timestamp(end), status)
    return known
