"""Prepaid commitments and their ledger: every write (DESIGN §3 "Commitments").

- A commitment belongs to a subscription: created from the plan's default terms when a
  subscription starts, by finance staff in the admin, or as the renewal of an ended term. One
  service creates them all (`commitment_create`), under the subscription's row lock, and refuses
  a term on a terminated subscription, a term before the subscription starts, a second term on
  the same day, a term overlapping a pending or active one, and an amount finer than the
  currency's minor unit.
- At its term start it is invoiced in full on its own invoice (line kind `commitment`) and a
  `purchase` entry credits the balance (`commitment_activate`).
- Each period invoice draws the covered fees from the balance, never below zero: the engine
  computes the `commitment_drawdown` line (billing.engine.invoice); the `drawdown` ledger entry
  (one per invoice, database-unique) is written when the invoice is finalized.
- At term end the unused balance expires (`expiry`); an auto-renewing commitment then starts a
  new term with a new prepayment invoice.
- Finance staff may record `adjustment`s (± with a reason).

The balance is the sum of the ledger (billing.selectors.commitments.balance); it is never
stored apart from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from billing.documents.formats import commitment_label
from billing.engine.adjustments import taxed
from billing.engine.lines import Line, total
from billing.engine.money import currency_minor_digits, quantize_money
from billing.engine.periods import Period, end_day, term_end
from billing.models import (
    Commitment,
    CommitmentStatus,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    LineKind,
    Subscription,
    SubscriptionStatus,
)
from billing.selectors.adjustments import tax_rates
from billing.selectors.commitments import balance
from billing.services.invoice_events import invoice_finalized
from billing.services.numbering import assign_number
from metering.days import day_start, local_date

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Messages are constants so tests can match them.
ADJUSTMENT_REASON_REQUIRED = "an adjustment needs a reason"
ADJUSTMENT_BELOW_ZERO = "the adjustment would take the balance below zero ({balance} {currency} left)"
ADJUSTMENT_ZERO = "the adjustment amount must not be zero"
NOT_PENDING = "{commitment} has started; it can only be canceled or adjusted"
ALREADY_FINISHED = "commitment {commitment} is {status}"
SUBSCRIPTION_TERMINATED = "Subscription {subscription} is terminated: a commitment needs a live subscription."
STARTS_BEFORE_SUBSCRIPTION = "The term cannot start before the subscription does ({day})."
TERM_OVERLAPS = "The term overlaps commitment {commitment} ({status}) of this subscription."
TERM_TAKEN = "Subscription {subscription} already has a commitment starting on {day}."
AMOUNT_PRECISION = "{currency} amounts have at most {digits} decimal places."
AMOUNT_NOT_POSITIVE = "The amount must be greater than 0."
MONTHS_NOT_POSITIVE = "A term lasts at least 1 month."


class CommitmentError(Exception):
    """A commitment change refused; `field` names the input at fault, if one is."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Term:
    start: datetime
    end: datetime


def commitment_term(
    *,
    subscription: Subscription,
    amount: Decimal,
    start_day: date,
    months: int,
    exclude: Commitment | None = None,
) -> Term:
    """The term [start, end) of a commitment from its first local day and length, checked against
    the subscription and its other commitments; raises CommitmentError naming the field."""
    if subscription.status == SubscriptionStatus.TERMINATED:
        raise CommitmentError(SUBSCRIPTION_TERMINATED.format(subscription=subscription.external_id))
    currency = subscription.plan.currency
    if amount <= 0:
        raise CommitmentError(AMOUNT_NOT_POSITIVE, field="amount")
    if amount != quantize_money(amount, currency):
        raise CommitmentError(
            AMOUNT_PRECISION.format(currency=currency, digits=currency_minor_digits(currency)), field="amount"
        )
    if months < 1:
        raise CommitmentError(MONTHS_NOT_POSITIVE, field="months")
    tz = subscription.customer.timezone
    first_day = local_date(subscription.subscription_at, tz)
    if start_day < first_day:
        raise CommitmentError(STARTS_BEFORE_SUBSCRIPTION.format(day=first_day.isoformat()), field="start_day")
    start = day_start(start_day, tz)
    end = term_end(start, months, tz)
    # pk=None excludes nothing (Django compares with IS NULL); the stubs refuse None for a NOT NULL column.
    others = Commitment.objects.filter(subscription=subscription).exclude(pk=exclude.pk if exclude else None)  # type: ignore[misc]
    if others.filter(term_start=start).exists():
        raise CommitmentError(
            TERM_TAKEN.format(subscription=subscription.external_id, day=start_day.isoformat()), field="start_day"
        )
    overlapping = (
        others.filter(status__in=[CommitmentStatus.PENDING, CommitmentStatus.ACTIVE])
        .filter(term_start__lt=end, term_end__gt=start)
        .select_related("subscription__customer")
        .first()
    )
    if overlapping is not None:
        raise CommitmentError(
            TERM_OVERLAPS.format(
                commitment=commitment_label(overlapping), status=overlapping.get_status_display().lower()
            ),
            field="start_day",
        )
    return Term(start=start, end=end)


def _locked_subscription(subscription: Subscription) -> Subscription:
    # of=self: the promotion join is nullable, and PostgreSQL cannot lock an outer join's side.
    return (
        Subscription.objects.select_for_update(of=("self",)).select_related("customer", "plan").get(pk=subscription.pk)
    )


@transaction.atomic
def commitment_create(
    *,
    subscription: Subscription,
    amount: Decimal,
    start_day: date,
    months: int,
    covers: str,
    auto_renew: bool,
    renewed_from: Commitment | None = None,
) -> Commitment:
    """A pending commitment of the subscription, its term checked under the subscription's lock
    (two at once cannot both pass the overlap check). `commitment_activate` prepays it."""
    subscription = _locked_subscription(subscription)
    term = commitment_term(subscription=subscription, amount=amount, start_day=start_day, months=months)
    return Commitment.objects.create(
        subscription=subscription,
        amount=amount,
        currency=subscription.plan.currency,
        term_start=term.start,
        term_end=term.end,
        months=months,
        covers=covers,
        auto_renew=auto_renew,
        renewed_from=renewed_from,
    )


@transaction.atomic
def commitment_update(
    *, commitment: Commitment, amount: Decimal, start_day: date, months: int, covers: str, auto_renew: bool
) -> Commitment:
    """Change a pending commitment's terms (a started one is only canceled or adjusted)."""
    subscription = _locked_subscription(commitment.subscription)
    commitment = Commitment.objects.select_for_update().get(pk=commitment.pk)
    if commitment.status != CommitmentStatus.PENDING:
        raise CommitmentError(NOT_PENDING.format(commitment=commitment_label(commitment)))
    term = commitment_term(
        subscription=subscription, amount=amount, start_day=start_day, months=months, exclude=commitment
    )
    commitment.amount = amount
    commitment.term_start, commitment.term_end = term.start, term.end
    commitment.months = months
    commitment.covers = covers
    commitment.auto_renew = auto_renew
    commitment.save()
    return commitment


def commitment_from_plan(*, subscription: Subscription, today: date, now: datetime | None = None) -> Commitment | None:
    """The plan's default commitment for a new subscription, prepaid at once if it has started
    (invoiced at `now`, the subscription's creation; default the clock's)."""
    plan = subscription.plan
    if plan.commitment_amount is None or plan.commitment_months is None:
        return None
    tz = subscription.customer.timezone
    first_day = local_date(subscription.subscription_at, tz)
    commitment = commitment_create(
        subscription=subscription,
        amount=plan.commitment_amount,
        start_day=first_day,
        months=plan.commitment_months,
        covers=plan.commitment_covers,
        auto_renew=plan.commitment_auto_renew,
    )
    if first_day <= today:
        commitment_activate(commitment=commitment, now=now)
    return commitment


@transaction.atomic
def commitment_activate(*, commitment: Commitment, now: datetime | None = None) -> Invoice:
    """Invoice the prepayment (finalized at once, with its taxes) and credit the balance with the
    purchase: the amount before tax, as the fees it pays for are drawn before tax."""
    # billing.services.invoices imports this module (drawdowns, prepayment voids).
    from billing.services.invoices import insert_lines

    commitment = Commitment.objects.select_for_update().select_related("subscription__customer").get(pk=commitment.pk)
    if commitment.invoice_id is not None:
        return commitment.invoice  # type: ignore[return-value]
    subscription = commitment.subscription
    customer = subscription.customer
    tz = customer.timezone
    amount = quantize_money(commitment.amount, commitment.currency)
    first_day, end = local_date(commitment.term_start, tz), local_date(commitment.term_end, tz)
    term = Period(
        commitment.term_start,
        commitment.term_end,
        commitment.term_start,
        commitment.term_end,
        first_day,
        end,
        first_day,
        end,
    )
    fee = Line(
        kind=LineKind.COMMITMENT,
        description=f"Prepaid commitment, {commitment.months} months from {first_day:%b %-d, %Y}",
        quantity=Decimal(1),
        unit_amount=commitment.amount,
        amount=amount,
        period_start=commitment.term_start,
        period_end=commitment.term_end,
    )
    # The prepayment is taxed with the customer's taxes (DESIGN §6); the drawdowns it pays for
    # then lower the taxable base of the period invoices, so nothing is taxed twice.
    lines = taxed([fee], tax_rates(customer.pk), commitment.currency, term)
    invoice = Invoice(
        customer=customer,
        subscription=subscription,
        kind=InvoiceKind.COMMITMENT,
        period_start=commitment.term_start,
        period_end=commitment.term_end,
        currency=commitment.currency,
        total=total(lines),
    )
    invoice = assign_number(invoice=invoice, now=now or timezone.now())  # saves: the INSERT
    insert_lines(invoice, lines, {})
    LedgerEntry.objects.create(
        commitment=commitment,
        kind=LedgerKind.PURCHASE,
        amount=amount,  # the balance is drawn by fees before tax: it is the amount before tax
        invoice=invoice,
        reason=f"Prepayment {invoice.number}",
    )
    commitment.invoice = invoice
    commitment.status = CommitmentStatus.ACTIVE
    commitment.save(update_fields=["invoice", "status", "updated_at"])
    invoice_finalized(invoice=invoice)
    return invoice


def drawdown_record(*, invoice: Invoice, lines: list[Line] | None = None) -> LedgerEntry | None:
    """At finalization: the ledger's drawdown entry for the invoice's drawdown line (once).

    `lines`: the invoice's lines as its caller has just stored them, saving reading them back.
    """
    line: InvoiceLine | Line | None
    if lines is None:
        line = invoice.lines.filter(kind=LineKind.COMMITMENT_DRAWDOWN).first()
    else:
        line = next((ln for ln in lines if ln.kind == LineKind.COMMITMENT_DRAWDOWN), None)
    if line is None:
        return None
    commitment = Commitment.objects.select_for_update().get(pk=line.details["commitment"])
    recorded = LedgerEntry.objects.filter(invoice=invoice, kind=LedgerKind.DRAWDOWN).first()
    if recorded is not None:
        # Already in the balance: checking it against the balance again would count it twice.
        return recorded
    if balance(commitment) + line.amount < 0:
        raise CommitmentError(f"drawdown of {-line.amount} exceeds the balance of {commitment}")
    entry, _ = LedgerEntry.objects.get_or_create(
        invoice=invoice,
        kind=LedgerKind.DRAWDOWN,
        defaults={"commitment": commitment, "amount": line.amount, "reason": f"Invoice {invoice.number}"},
    )
    return entry


def drawdown_reverse(*, invoice: Invoice) -> LedgerEntry | None:
    """When a finalized invoice is voided, its drawdown goes back to the balance."""
    entry = LedgerEntry.objects.filter(invoice=invoice, kind=LedgerKind.DRAWDOWN).first()
    if entry is None:
        return None
    return LedgerEntry.objects.create(
        commitment=entry.commitment,
        kind=LedgerKind.ADJUSTMENT,
        amount=-entry.amount,
        invoice=invoice,
        reason=f"Invoice {invoice.number} voided: drawdown returned",
    )


def prepayment_reverse(*, invoice: Invoice) -> LedgerEntry | None:
    """When a prepayment invoice is voided, the commitment it paid for is canceled and what is
    left of its balance is taken back (an unpaid credit must not be drawn)."""
    commitment = Commitment.objects.select_for_update().filter(invoice=invoice).first()
    if commitment is None:
        return None
    left = balance(commitment)
    entry = None
    if left > 0:
        entry = LedgerEntry.objects.create(
            commitment=commitment,
            kind=LedgerKind.ADJUSTMENT,
            amount=-left,
            invoice=invoice,
            reason=f"Prepayment {invoice.number} voided: unused balance taken back",
        )
    commitment.status = CommitmentStatus.CANCELED
    commitment.auto_renew = False
    commitment.save(update_fields=["status", "auto_renew", "updated_at"])
    return entry


@transaction.atomic
def adjustment_create(*, commitment: Commitment, amount: Decimal, reason: str, user: User | None) -> LedgerEntry:
    commitment = Commitment.objects.select_for_update().get(pk=commitment.pk)
    if not reason.strip():
        raise CommitmentError(ADJUSTMENT_REASON_REQUIRED)
    amount = quantize_money(amount, commitment.currency)
    if amount == 0:
        raise CommitmentError(ADJUSTMENT_ZERO)
    current = balance(commitment)
    if current + amount < 0:
        raise CommitmentError(
            ADJUSTMENT_BELOW_ZERO.format(
                balance=quantize_money(current, commitment.currency), currency=commitment.currency
            )
        )
    return LedgerEntry.objects.create(
        commitment=commitment, kind=LedgerKind.ADJUSTMENT, amount=amount, reason=reason.strip(), created_by=user
    )


@transaction.atomic
def commitment_cancel(*, commitment: Commitment) -> Commitment:
    """Stop a commitment: no more drawdowns, no renewal. Its ledger stays as it is."""
    commitment = Commitment.objects.select_for_update().get(pk=commitment.pk)
    if commitment.status in (CommitmentStatus.EXPIRED, CommitmentStatus.CANCELED):
        raise CommitmentError(
            ALREADY_FINISHED.format(commitment=commitment_label(commitment), status=commitment.status)
        )
    commitment.status = CommitmentStatus.CANCELED
    commitment.auto_renew = False
    commitment.save(update_fields=["status", "auto_renew", "updated_at"])
    return commitment


@dataclass
class CommitmentReport:
    prepaid: list[Invoice] = field(default_factory=list)
    expired: list[LedgerEntry] = field(default_factory=list)
    renewed: list[Commitment] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, other: CommitmentReport) -> None:
        """Count what another (committed) run did."""
        self.prepaid += other.prepaid
        self.expired += other.expired
        self.renewed += other.renewed
        self.waiting += other.waiting
        self.errors += other.errors


def _last_period_invoiced(commitment: Commitment) -> bool:
    """Whether the invoice of the term's last period is final (so its drawdown is in the ledger)."""
    subscription = commitment.subscription
    end = commitment.term_end
    if subscription.terminated_at is not None:
        tz = subscription.customer.timezone
        # The subscription's last period ends at the start of its termination day.
        end = min(end, day_start(end_day(subscription.terminated_at, tz), tz))
        if end <= max(commitment.term_start, subscription.subscription_at):
            return True  # it ended before this term billed anything
    return (
        Invoice.objects.filter(
            subscription=subscription, kind=InvoiceKind.PERIOD, period_start__lt=end, period_end__gte=end
        )
        .exclude(status=InvoiceStatus.DRAFT)
        .exists()
    )


def _process_one(commitment_id: int, today: date, report: CommitmentReport) -> None:
    with transaction.atomic():
        # Lock order as everywhere: the subscription, then its commitment (a close locks the
        # subscription and then draws from the commitment; a renewal is created under both).
        subscription_id = Commitment.objects.values_list("subscription_id", flat=True).get(pk=commitment_id)
        Subscription.objects.select_for_update().filter(pk=subscription_id).first()
        commitment = (
            Commitment.objects.select_for_update()
            .select_related("subscription__customer", "subscription__plan")
            .get(pk=commitment_id)
        )
        tz = commitment.subscription.customer.timezone
        if commitment.status == CommitmentStatus.PENDING and local_date(commitment.term_start, tz) <= today:
            report.prepaid.append(commitment_activate(commitment=commitment))
            commitment.refresh_from_db()
        if commitment.status != CommitmentStatus.ACTIVE or local_date(commitment.term_end, tz) > today:
            return
        if not _last_period_invoiced(commitment):
            report.waiting.append(f"{commitment}: the term's last period is not invoiced yet")
            return
        left = balance(commitment)
        if left > 0:
            report.expired.append(
                LedgerEntry.objects.create(
                    commitment=commitment, kind=LedgerKind.EXPIRY, amount=-left, reason="Unused balance at term end"
                )
            )
        commitment.status = CommitmentStatus.EXPIRED
        commitment.save(update_fields=["status", "updated_at"])
        subscription = commitment.subscription
        live = subscription.status != SubscriptionStatus.TERMINATED or (
            subscription.terminated_at is not None and subscription.terminated_at > commitment.term_end
        )
        # A successor set up by hand (e.g. new terms for next year) replaces the automatic renewal.
        succeeded = (
            Commitment.objects.filter(
                subscription=subscription,
                status__in=[CommitmentStatus.PENDING, CommitmentStatus.ACTIVE],
                term_start__gte=commitment.term_end,
            )
            .exclude(pk=commitment.pk)
            .exists()
        )
        if commitment.auto_renew and live and not succeeded:
            try:
                renewal = commitment_create(
                    subscription=subscription,
                    amount=commitment.amount,
                    start_day=local_date(commitment.term_end, tz),
                    months=commitment.months,
                    covers=commitment.covers,
                    auto_renew=True,
                    renewed_from=commitment,
                )
            except CommitmentError as exc:  # e.g. a term set up by hand overlaps it
                report.waiting.append(f"{commitment_label(commitment)}: not renewed: {exc}")
            else:
                report.renewed.append(renewal)


def process_commitments(
    *, today: date, progress: Callable[[int, int, CommitmentReport], None] | None = None
) -> CommitmentReport:
    """Prepay terms that have started, expire and renew terms that have ended, as of `today`.

    Idempotent for any date; catches up missed days (and whole missed terms: a renewal made
    here is processed in the same run).
    """
    report = CommitmentReport()
    seen: set[int] = set()
    while True:
        ids = list(
            Commitment.objects.filter(status__in=[CommitmentStatus.PENDING, CommitmentStatus.ACTIVE])
            .exclude(pk__in=seen)
            .filter(term_start__lt=day_start(today + timedelta(days=2), "UTC"))
            .order_by("term_start", "id")
            .values_list("id", flat=True)
        )
        if not ids:
            return report
        for done, commitment_id in enumerate(ids, start=1):
            seen.add(commitment_id)
            try:
                # Counted once its transaction has committed: a failure raises before `add`.
                one = CommitmentReport()
                _process_one(commitment_id, today, one)
                report.add(one)
            except Exception as exc:  # report and go on with the others
                report.errors.append(f"commitment {commitment_id}: {exc}")
            if progress is not None:
                progress(done, len(ids), report)
