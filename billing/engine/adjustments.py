"""What comes after an invoice's fees (pure; DESIGN §6 "Order of an invoice", steps 2–7).

`Shares` follows each fee through the lines that reduce it: promotions (2) and the commitment
drawdown (3) already computed, then coupons (4), which it computes itself since a coupon's
eligible amount is what earlier reductions left of its fees. Every reducing amount is split over
the fees it reduces in proportion to what is left of them, largest remainder first, so the
shares add up to the lines exactly (`Line.discount_amount`, which credit notes use). Taxes (5)
are one line per tax, its rate on the sum of lines 1–4 floored at zero, rounded once; each tax
line is split over the fees the same way (`Line.tax_amount`). Credit notes (6) and the wallet (7)
then settle what is left, never below zero.

Coupons apply in Lago's order: those limited to metrics first, then those limited to plans, then
the others, each group in the order given (oldest applied first). A percentage coupon takes its
rate of the eligible amount; a fixed one the smaller of its amount and the eligible amount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from billing.engine.lines import Line
from billing.engine.money import ZERO, quantize_money, split_proportionally
from billing.engine.periods import Period
from billing.engine.vocabulary import FEE_KINDS, CommitmentCovers, CouponType, LineKind

HUNDRED = Decimal(100)
COVERED_BASE_FEE = frozenset({LineKind.BASE_FEE})
COVERED_ALL = frozenset({LineKind.BASE_FEE, LineKind.USAGE, LineKind.LATE_USAGE})
USAGE_KINDS = frozenset({LineKind.USAGE, LineKind.LATE_USAGE})


@dataclass(frozen=True)
class CouponCredit:
    """An applied coupon as an invoice may use it (step 4).

    `amount`: a fixed coupon's most for this invoice (what is left of a `once` coupon, the amount
    of a recurring or forever one); `percentage_rate`: a percentage coupon's rate.
    `plan_codes` / `metric_codes`: its limitation (empty: every fee).
    """

    applied_coupon_id: int
    code: str
    name: str
    coupon_type: str
    amount: Decimal | None = None
    percentage_rate: Decimal | None = None
    plan_codes: tuple[str, ...] = ()
    metric_codes: tuple[str, ...] = ()

    @property
    def group(self) -> int:
        """Lago's order: limited to metrics (0), to plans (1), the others (2)."""
        return 0 if self.metric_codes else 1 if self.plan_codes else 2


@dataclass(frozen=True)
class TaxRate:
    tax_id: int
    code: str
    name: str
    rate: Decimal  # percent


@dataclass(frozen=True)
class WalletCredit:
    """The customer's wallet balance an invoice may use (step 7)."""

    wallet_id: int
    balance: Decimal


def _line(kind: str, description: str, amount: Decimal, period: Period | None, details: dict[str, object]) -> Line:
    return Line(
        kind=kind,
        description=description,
        quantity=Decimal(1),
        amount=amount,
        period_start=period.start if period is not None else None,
        period_end=period.end if period is not None else None,
        details=details,
    )


class Shares:
    """Each fee's share of what reduces it and of the taxes, as the lines are added."""

    def __init__(self, lines: list[Line], currency: str, covers: str | None = None) -> None:
        self.lines = lines
        self.currency = currency
        self.fees = [i for i, line in enumerate(lines) if line.kind in FEE_KINDS]
        self.left = {i: lines[i].amount for i in self.fees}
        self.discounts = dict.fromkeys(self.fees, ZERO)
        self.taxes = dict.fromkeys(self.fees, ZERO)
        for line in lines:
            if line.kind in (LineKind.PROMOTION, LineKind.COMMITMENT_DRAWDOWN):
                self._reduce(self._reduced_by(line, covers), -line.amount)

    def _reduced_by(self, line: Line, covers: str | None) -> list[int]:
        """The fees (indexes into `lines`) a promotion or drawdown line reduces."""
        if line.kind == LineKind.PROMOTION:
            if line.metric_code is None:
                return [i for i in self.fees if self.lines[i].kind == LineKind.BASE_FEE]
            return [
                i
                for i in self.fees
                if self.lines[i].kind == LineKind.USAGE and self.lines[i].metric_code == line.metric_code
            ]
        kinds = COVERED_ALL if covers == CommitmentCovers.ALL else COVERED_BASE_FEE
        return [i for i in self.fees if self.lines[i].kind in kinds]

    def _reduce(self, targets: list[int], amount: Decimal) -> None:
        parts = split_proportionally(amount, [self.left[i] for i in targets], self.currency)
        for i, part in zip(targets, parts, strict=True):
            self.left[i] -= part
            self.discounts[i] += part

    def _eligible(self, coupon: CouponCredit, plan_code: str) -> list[int]:
        if coupon.metric_codes:
            return [
                i
                for i in self.fees
                if self.lines[i].kind in USAGE_KINDS and self.lines[i].metric_code in coupon.metric_codes
            ]
        if coupon.plan_codes and plan_code not in coupon.plan_codes:
            return []
        return list(self.fees)

    def coupon_lines(self, coupons: Iterable[CouponCredit], plan_code: str, period: Period | None) -> list[Line]:
        """Step 4: a line per coupon that takes something, in Lago's order."""
        out = []
        for coupon in sorted(coupons, key=lambda c: c.group):  # stable: oldest first within a group
            targets = self._eligible(coupon, plan_code)
            # What its fees have left, net (a negative late usage lowers it), and never more than
            # what the invoice has left so far: a coupon never takes lines 1–4 below zero.
            left_in_all = max(sum((self.left[i] for i in self.fees), ZERO), ZERO)
            eligible = min(max(sum((self.left[i] for i in targets), ZERO), ZERO), left_in_all)
            if eligible <= 0:
                continue
            if coupon.coupon_type == CouponType.PERCENTAGE:
                take = quantize_money(eligible * (coupon.percentage_rate or ZERO) / HUNDRED, self.currency)
            else:
                take = quantize_money(min(coupon.amount or ZERO, eligible), self.currency)
            if take <= 0:
                continue
            self._reduce([i for i in targets if self.left[i] > 0], take)
            out.append(
                _line(
                    LineKind.COUPON,
                    f"Coupon {coupon.name}",
                    -take,
                    period,
                    {"applied_coupon": coupon.applied_coupon_id, "coupon_code": coupon.code},
                )
            )
        return out

    def tax_lines(self, lines: list[Line], taxes: Iterable[TaxRate], period: Period | None) -> list[Line]:
        """Step 5: one line per tax, its rate on `lines` (steps 1–4) floored at zero, rounded
        once; each split over the fees in proportion to what is left of them."""
        base = max(sum((line.amount for line in lines), ZERO), ZERO)
        out = []
        for tax in taxes:
            amount = quantize_money(base * tax.rate / HUNDRED, self.currency)
            parts = split_proportionally(amount, [self.left[i] for i in self.fees], self.currency)
            for i, part in zip(self.fees, parts, strict=True):
                self.taxes[i] += part
            out.append(
                _line(
                    LineKind.TAX,
                    f"{tax.name} ({tax.rate.normalize():f} %)",
                    amount,
                    period,
                    {"tax": tax.tax_id, "tax_code": tax.code, "tax_name": tax.name, "rate": f"{tax.rate:f}"},
                )
            )
        return out

    def apply(self, lines: list[Line]) -> list[Line]:
        """`lines` (these, and those added after) with each fee's discount and tax shares."""
        return [
            replace(line, discount_amount=self.discounts[i], tax_amount=self.taxes[i]) if i in self.discounts else line
            for i, line in enumerate(lines)
        ]


def prepaid_credit_lines(wallet: WalletCredit | None, lines: list[Line], period: Period | None) -> list[Line]:
    """Step 7: the wallet's balance, up to what is left to pay (never below zero)."""
    if wallet is None:
        return []
    take = min(wallet.balance, sum((line.amount for line in lines), ZERO))
    if take <= 0:
        return []
    return [_line(LineKind.PREPAID_CREDITS, "Prepaid credits", -take, period, {"wallet": wallet.wallet_id})]


def taxed(fees: list[Line], taxes: Iterable[TaxRate], currency: str, period: Period | None = None) -> list[Line]:
    """Fees and their tax lines, each fee with its tax share: a one-off invoice or a commitment
    prepayment (no coupons, credit notes or wallet apply to them)."""
    shares = Shares(fees, currency)
    lines = fees + shares.tax_lines(fees, taxes, period)
    return shares.apply(lines)
