"""An invoice's lines, in the order of DESIGN §6, from what its period needs (pure).

The selectors gather once what a period needs (billing.selectors.invoice_inputs: the plan, the
period's quantities, what earlier periods billed, the commitment balance) into `InvoiceInputs`;
`invoice_lines` computes every line from them; a service writes them (billing.services.invoices,
billing.services.period_close). Period close, the current-usage preview and the invoice preview
call this one function.

The order (DESIGN §6):
1. fees: the base fee (when this invoice bills it), usage per charge, late usage of earlier
   periods;
2. promotion lines, each right after the fee it reduces;
3. the commitment drawdown: the covered fees after their promotions, up to the balance;
4. coupon lines: the customer's applied coupons, in Lago's order, on what is left of the fees
   they may reduce;
5. tax lines: one per tax, its rate on lines 1–4 floored at zero;
6. credit-note lines: the customer's available credit, oldest note first;
7. prepaid credits: the customer's wallet balance.
Steps 6 and 7 never take the total below zero. Each reducing amount and each tax is split over
the fees, in proportion to what is left of them, largest remainder first (`Line.discount_amount`,
`Line.tax_amount`; billing.engine.adjustments): credit notes credit a fee net of its share.

Late usage: for each earlier finalized period of the subscription (or of those it replaced by
plan changes) that can still receive events, its usage measured now minus what was billed for
it (by its invoice and earlier late lines), each priced with that period's plan and promotion.
Late events are simply counted in their old period again, so nothing is lost and nothing is
billed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from billing.engine.adjustments import (
    COVERED_ALL,
    COVERED_BASE_FEE,
    CouponCredit,
    Shares,
    TaxRate,
    WalletCredit,
    prepaid_credit_lines,
)
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
from billing.engine.money import ZERO, format_decimal, quantize_money
from billing.engine.periods import Period
from billing.engine.vocabulary import CommitmentCovers, LineKind

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
    coupons: tuple[CouponCredit, ...] = ()  # oldest applied first
    taxes: tuple[TaxRate, ...] = ()
    wallet: WalletCredit | None = None


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
    shares = Shares(lines, plan.currency, inputs.commitment.covers if inputs.commitment is not None else None)
    lines += shares.coupon_lines(inputs.coupons, plan.code, inputs.period)
    lines += shares.tax_lines(lines, inputs.taxes, inputs.period)
    lines += credit_note_lines(inputs.credits, lines, inputs.period)
    lines += prepaid_credit_lines(inputs.wallet, lines, inputs.period)
    return shares.apply(lines)


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
