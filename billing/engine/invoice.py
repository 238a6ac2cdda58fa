"""An invoice's lines, in the order of DESIGN §6, from what its period needs (pure).

The selectors gather once what a period needs (billing.selectors.invoice_inputs: the plan, the
period's quantities, what earlier periods billed, the commitment balance) into `InvoiceInputs`;
`invoice_lines` computes every line from them; a service writes them (billing.services.invoices,
billing.services.period_close). Period close, the current-usage preview and the invoice preview
call this one function.

The order (steps of DESIGN §6 built so far):
1. fees: the base fee (when this invoice bills it), usage per charge, late usage of earlier
   periods;
2. promotion lines, each right after the fee it reduces;
3. the commitment drawdown: the covered fees after their promotions, up to the balance;
6. credit-note lines: the customer's available credit, oldest note first, never taking the
   total below zero.
Each promotion and drawdown amount is then split over the fees it reduces, in proportion to what
is left of them, largest remainder first (`Line.discount_amount`): credit notes credit a fee
net of its share.

Late usage: for each earlier finalized period of the subscription (or of those it replaced by
plan changes) that can still receive events, its usage measured now minus what was billed for
it (by its invoice and earlier late lines), each priced with that period's plan and promotion.
Late events are simply counted in their old period again, so nothing is lost and nothing is
billed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from billing.engine.lines import (
    Line,
    MeasuredCharge,
    PlanChargeSpec,
    PlanSpec,
    PromotionWindow,
    base_fee_lines,
    net_usage_by_metric,
    usage_lines,
)
from billing.engine.money import ZERO, format_decimal, quantize_money, split_proportionally
from billing.engine.periods import Period
from billing.engine.vocabulary import FEE_KINDS, CommitmentCovers, LineKind

COVERED_BASE_FEE = frozenset({LineKind.BASE_FEE})
COVERED_ALL = frozenset({LineKind.BASE_FEE, LineKind.USAGE, LineKind.LATE_USAGE})

Quantities = dict[str, tuple[Decimal, Decimal | None]]  # metric code → (q_all, q_outside_promotion)


@dataclass(frozen=True)
class LatePeriod:
    """An earlier finalized usage period: what it measures now, and what was billed for it."""

    period: Period
    charges: tuple[PlanChargeSpec, ...]  # of the plan it was billed on
    currency: str
    promotion: PromotionWindow | None
    measured: Quantities
    billed: Quantities


@dataclass(frozen=True)
class CommitmentBalance:
    commitment_id: int
    covers: str
    balance: Decimal
    currency: str


@dataclass(frozen=True)
class AvailableCredit:
    """A credit note's credit not yet consumed, as an invoice may draw it (step 6)."""

    credit_note_id: int
    number: str
    balance: Decimal


@dataclass(frozen=True)
class InvoiceInputs:
    """Everything one invoice's lines are computed from.

    `period`: what the invoice covers (a usage period, or the fee period of an advance
    invoice). `fee_period`: the base-fee period this invoice bills, if any. `usage`: the
    measured charges of `period` (none on an advance invoice).
    """

    plan: PlanSpec
    period: Period
    fee_period: Period | None
    promotion: PromotionWindow | None
    usage: tuple[MeasuredCharge, ...] = ()
    late: tuple[LatePeriod, ...] = ()
    commitment: CommitmentBalance | None = None
    credits: tuple[AvailableCredit, ...] = ()  # oldest first


def invoice_lines(inputs: InvoiceInputs, *, keep_unmeasured: bool = False) -> list[Line]:
    """The invoice's lines, in order. A charge nothing was measured for prints no line on an
    invoice ("no usage"; included usage does print 0.00); a preview (`keep_unmeasured`) shows
    every charge."""
    plan = inputs.plan
    lines: list[Line] = []
    if inputs.fee_period is not None:
        lines += base_fee_lines(
            plan_name=plan.name,
            base_fee=plan.base_fee,
            currency=plan.currency,
            period=inputs.fee_period,
            promotion=inputs.promotion,
        )
    usage = usage_lines(
        charges=list(inputs.usage), currency=plan.currency, period=inputs.period, promotion=inputs.promotion
    )
    lines += usage if keep_unmeasured else [ln for ln in usage if ln.quantity != 0 or ln.amount != 0]
    for late in inputs.late:
        lines += late_usage_lines(late)
    if inputs.commitment is not None:
        lines += drawdown_lines(inputs.commitment, lines, inputs.period)
    lines += credit_note_lines(inputs.credits, lines, inputs.period)
    return allocate_discounts(lines, plan.currency, inputs.commitment)


def credit_note_lines(credits: tuple[AvailableCredit, ...], lines: list[Line], period: Period) -> list[Line]:
    """Step 6: available credit, oldest note first, up to what is left to pay (never below zero)."""
    left = sum((line.amount for line in lines), ZERO)
    out = []
    for credit in credits:
        take = min(credit.balance, left)
        if take <= 0:
            break
        out.append(
            Line(
                kind=LineKind.CREDIT_NOTE,
                description=f"Credit note {credit.number}",
                quantity=Decimal(1),
                amount=-take,
                period_start=period.start,
                period_end=period.end,
                details={"credit_note": credit.credit_note_id},
            )
        )
        left -= take
    return out


def _reduced_fees(line: Line, fees: list[int], lines: list[Line], covers: str | None) -> list[int]:
    """The fees (indexes into `lines`) that a promotion or drawdown line reduces."""
    if line.kind == LineKind.PROMOTION:
        if line.metric_code is None:
            return [i for i in fees if lines[i].kind == LineKind.BASE_FEE]
        return [i for i in fees if lines[i].kind == LineKind.USAGE and lines[i].metric_code == line.metric_code]
    kinds = COVERED_ALL if covers == CommitmentCovers.ALL else COVERED_BASE_FEE
    return [i for i in fees if lines[i].kind in kinds]


def allocate_discounts(lines: list[Line], currency: str, commitment: CommitmentBalance | None) -> list[Line]:
    """Each fee's share of the promotion and drawdown lines that reduce it (DESIGN §6): every
    reducing amount is split over its fees in proportion to what is left of them (after the
    reductions before it), largest remainder first, so the shares add up to the lines exactly."""
    fees = [i for i, line in enumerate(lines) if line.kind in FEE_KINDS]
    left = {i: lines[i].amount for i in fees}
    shares = dict.fromkeys(fees, ZERO)
    covers = commitment.covers if commitment is not None else None
    for line in lines:
        if line.kind not in (LineKind.PROMOTION, LineKind.COMMITMENT_DRAWDOWN):
            continue
        targets = _reduced_fees(line, fees, lines, covers)
        for i, part in zip(
            targets, split_proportionally(-line.amount, [left[i] for i in targets], currency), strict=True
        ):
            left[i] -= part
            shares[i] += part
    return [replace(line, discount_amount=shares[i]) if i in shares else line for i, line in enumerate(lines)]


def _days_label(period: Period) -> str:
    return f"{period.start_day:%b %-d} – {period.end_day - timedelta(days=1):%b %-d, %Y}"


def late_usage_lines(late: LatePeriod) -> list[Line]:
    """One late_usage line per metric whose usage of the old period changed since it was billed."""
    if late.measured == {code: late.billed.get(code, (ZERO, None)) for code in late.measured}:
        return []
    net = {
        key: net_usage_by_metric(
            charges=late.charges,
            currency=late.currency,
            period=late.period,
            promotion=late.promotion,
            quantities=quantities,
        )
        for key, quantities in (("now", late.measured), ("billed", late.billed))
    }
    names = {c.metric_code: c.metric_name for c in late.charges}
    label = _days_label(late.period)
    lines = []
    for code, (q_now, q_out_now) in late.measured.items():
        delta = net["now"].get(code, ZERO) - net["billed"].get(code, ZERO)
        q_billed = late.billed.get(code, (ZERO, None))[0]
        if q_now == q_billed and delta == 0:
            continue
        details = {"quantity": format_decimal(q_now), "previously_billed_quantity": format_decimal(q_billed)}
        if q_out_now is not None:
            details["quantity_outside_promotion"] = format_decimal(q_out_now)
        lines.append(
            Line(
                kind=LineKind.LATE_USAGE,
                description=f"Late {names.get(code, code)} for {label}: "
                f"{format_decimal(q_billed)} → {format_decimal(q_now)}",
                quantity=q_now - q_billed,
                amount=delta,
                metric_code=code,
                period_start=late.period.start,
                period_end=late.period.end,
                details=details,
            )
        )
    return lines


def drawdown_lines(commitment: CommitmentBalance, lines: list[Line], period: Period) -> list[Line]:
    """The `commitment_drawdown` line: the covered fees after their promotions (base fee only, or
    with covers=all usage and late usage too), up to the balance, never below zero."""
    kinds = COVERED_ALL if commitment.covers == CommitmentCovers.ALL else COVERED_BASE_FEE
    covered = ZERO
    for line in lines:
        if line.kind in kinds:
            covered += line.amount
        elif line.kind == LineKind.PROMOTION and (line.metric_code is None or kinds is COVERED_ALL):
            covered += line.amount  # fees are covered after their promotions
    available = commitment.balance
    draw = min(max(covered, ZERO), max(available, ZERO))
    if draw <= 0:
        return []
    currency = commitment.currency
    return [
        Line(
            kind=LineKind.COMMITMENT_DRAWDOWN,
            description=f"Drawn from the prepaid commitment (balance {quantize_money(available, currency)} → "
            f"{quantize_money(available - draw, currency)} {currency})",
            quantity=Decimal(1),
            amount=-draw,
            period_start=period.start,
            period_end=period.end,
            details={"commitment": commitment.commitment_id, "balance_before": str(available)},
        )
    ]


def due_fee_period(*, usage_period: Period, fee_period: Period, pay_in_advance: bool) -> Period | None:
    """The base-fee period a usage period's invoice (or preview) bills: in arrears, the fee period
    that ends with it; in advance (previews only), the one that starts with it."""
    if pay_in_advance:
        return fee_period if fee_period.start == usage_period.start else None
    return fee_period if fee_period.end == usage_period.end else None
