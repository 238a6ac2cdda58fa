"""Prepaid commitments and their ledger (DESIGN §3 "Commitments").

- A commitment is created from the plan's default terms when a subscription starts.
- At its term start it is invoiced in full on its own invoice (line kind `commitment`) and a
  `purchase` entry credits the balance.
- Each period invoice draws the covered fees (the base fee after promotions; with
  covers=all, usage too) from the balance, never below zero: a `commitment_drawdown` line on
  the invoice, and a `drawdown` ledger entry (one per invoice, database-unique) when it is
  finalized. Anything beyond the balance is billed in cash.
- At term end the unused balance expires (`expiry`); an auto-renewing commitment then starts a
  new term with a new prepayment invoice.
- Finance staff may record `adjustment`s (± with a reason).

The balance is the sum of the ledger; it is never stored apart from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.lines import DraftLine
from billing.models import (
    Commitment,
    CommitmentCovers,
    CommitmentStatus,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
    LedgerEntry,
    LedgerKind,
    LineKind,
    Subscription,
    SubscriptionStatus,
)
from billing.money import ZERO, quantize_money
from billing.numbering import assign_number
from billing.periods import _add_months, _clamped, end_day
from config.db import exact_sum
from metering.days import day_start, local_date

COVERED_BASE_FEE = {LineKind.BASE_FEE}
COVERED_ALL = {LineKind.BASE_FEE, LineKind.USAGE, LineKind.LATE_USAGE}
ADJUSTMENT_REASON_REQUIRED = "an adjustment needs a reason"
ADJUSTMENT_BELOW_ZERO = "the adjustment would take the balance below zero ({balance} {currency} left)"
ADJUSTMENT_ZERO = "the adjustment amount must not be zero"
NOT_EDITABLE = "commitment {commitment} has started; it can only be canceled or adjusted"
ALREADY_FINISHED = "commitment {commitment} is {status}"


class CommitmentError(Exception):
    pass


def term_end(term_start: datetime, months: int, tz: str) -> datetime:
    """Local midnight `months` after the term's first day (day clamped to the month's end)."""
    first = local_date(term_start, tz)
    year, month = _add_months(first.year, first.month, months)
    return day_start(_clamped(year, month, first.day), tz)


def balance(commitment: Commitment) -> Decimal:
    return exact_sum(commitment.entries.all(), "amount") or ZERO


def commitment_from_plan(*, subscription: Subscription, today: date) -> Commitment | None:
    """The plan's default commitment for a new subscription, prepaid at once if it has started."""
    plan = subscription.plan
    if plan.commitment_amount is None or plan.commitment_months is None:
        return None
    tz = subscription.customer.timezone
    start = day_start(local_date(subscription.subscription_at, tz), tz)
    commitment = Commitment.objects.create(
        subscription=subscription,
        amount=plan.commitment_amount,
        currency=plan.currency,
        term_start=start,
        term_end=term_end(start, plan.commitment_months, tz),
        months=plan.commitment_months,
        covers=plan.commitment_covers,
        auto_renew=plan.commitment_auto_renew,
    )
    if local_date(start, tz) <= today:
        commitment_activate(commitment=commitment)
    return commitment


@transaction.atomic
def commitment_activate(*, commitment: Commitment) -> Invoice:
    """Invoice the prepayment (finalized at once) and credit the balance with the purchase."""
    commitment = Commitment.objects.select_for_update().select_related("subscription__customer").get(pk=commitment.pk)
    if commitment.invoice_id is not None:
        return commitment.invoice  # type: ignore[return-value]
    subscription = commitment.subscription
    invoice = Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        invoice_type=InvoiceType.COMMITMENT,
        period_start=commitment.term_start,
        period_end=commitment.term_end,
        currency=commitment.currency,
        total=quantize_money(commitment.amount, commitment.currency),
    )
    tz = subscription.customer.timezone
    InvoiceLine.objects.create(
        invoice=invoice,
        kind=LineKind.COMMITMENT,
        description=f"Prepaid commitment, {commitment.months} months from "
        f"{local_date(commitment.term_start, tz):%b %-d, %Y}",
        quantity=Decimal(1),
        unit_amount=commitment.amount,
        amount=invoice.total,
        currency=commitment.currency,
        period_start=commitment.term_start,
        period_end=commitment.term_end,
    )
    invoice = assign_number(invoice=invoice, now=timezone.now())
    LedgerEntry.objects.create(
        commitment=commitment, kind=LedgerKind.PURCHASE, amount=invoice.total, invoice=invoice,
        reason=f"Prepayment {invoice.number}",
    )
    commitment.invoice = invoice
    commitment.status = CommitmentStatus.ACTIVE
    commitment.save(update_fields=["invoice", "status", "updated_at"])
    return invoice


def commitment_for_period(subscription: Subscription, period_start: datetime) -> Commitment | None:
    return (
        Commitment.objects.filter(
            subscription=subscription,
            status=CommitmentStatus.ACTIVE,
            term_start__lte=period_start,
            term_end__gt=period_start,
        )
        .order_by("-term_start")
        .first()
    )


def drawdown_lines(
    *, subscription: Subscription, lines: list[DraftLine], period_start: datetime, period_end: datetime
) -> list[DraftLine]:
    """The `commitment_drawdown` line for an invoice with these lines, if a commitment covers it."""
    commitment = commitment_for_period(subscription, period_start)
    if commitment is None:
        return []
    kinds = COVERED_ALL if commitment.covers == CommitmentCovers.ALL else COVERED_BASE_FEE
    covered = ZERO
    for line in lines:
        if line.kind in kinds:
            covered += line.amount
        elif line.kind == LineKind.PROMOTION and (line.metric_code is None or kinds is COVERED_ALL):
            covered += line.amount  # fees are covered after their promotions
    available = balance(commitment)
    draw = min(max(covered, ZERO), max(available, ZERO))
    if draw <= 0:
        return []
    currency = commitment.currency
    return [
        DraftLine(
            kind=LineKind.COMMITMENT_DRAWDOWN,
            description=f"Drawn from the prepaid commitment (balance {quantize_money(available, currency)} → "
            f"{quantize_money(available - draw, currency)} {currency})",
            quantity=Decimal(1),
            amount=-draw,
            period_start=period_start,
            period_end=period_end,
            details={"commitment": commitment.pk, "balance_before": str(available)},
        )
    ]


def drawdown_record(*, invoice: Invoice, lines: list[DraftLine] | None = None) -> LedgerEntry | None:
    """At finalization: the ledger's drawdown entry for the invoice's drawdown line (once).

    `lines`: the invoice's lines as its caller has just stored them, saving reading them back.
    """
    line: InvoiceLine | DraftLine | None
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
            commitment=commitment, kind=LedgerKind.ADJUSTMENT, amount=-left, invoice=invoice,
            reason=f"Prepayment {invoice.number} voided: unused balance taken back",
        )
    commitment.status = CommitmentStatus.CANCELED
    commitment.auto_renew = False
    commitment.save(update_fields=["status", "auto_renew", "updated_at"])
    return entry


@transaction.atomic
def adjustment_create(*, commitment: Commitment, amount: Decimal, reason: str, user: object | None) -> LedgerEntry:
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
        raise CommitmentError(ALREADY_FINISHED.format(commitment=commitment, status=commitment.status))
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
            subscription=subscription, invoice_type=InvoiceType.PERIOD, period_start__lt=end, period_end__gte=end
        )
        .exclude(status=InvoiceStatus.DRAFT)
        .exists()
    )


def _process_one(commitment_id: int, today: date, report: CommitmentReport) -> None:
    with transaction.atomic():
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
        # A successor set up by hand (e.g. new terms for next year) replaces the automatic renewal,
        # which would overlap it (or collide with it on the same start, every day, forever).
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
            renewal = Commitment.objects.create(
                subscription=subscription,
                amount=commitment.amount,
                currency=commitment.currency,
                term_start=commitment.term_end,
                term_end=term_end(commitment.term_end, commitment.months, tz),
                months=commitment.months,
                covers=commitment.covers,
                auto_renew=True,
                renewed_from=commitment,
            )
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
                _process_one(commitment_id, today, report)
            except Exception as exc:  # report and go on with the others
                report.errors.append(f"commitment {commitment_id}: {exc}")
            if progress is not None:
                progress(done, len(ids), report)

