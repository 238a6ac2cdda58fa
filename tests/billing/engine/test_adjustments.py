"""Steps 4–7 of an invoice (billing.engine.adjustments through billing.engine.invoice): coupons,
taxes, credit notes and the wallet, to the cent, and the properties that hold for any inputs
(the total is never negative; every line is rounded once; credits never exceed what is due; the
fees' discount and tax shares add up to the lines; the same inputs give the same lines)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.engine.adjustments import CouponCredit, Shares, TaxRate, WalletCredit, taxed
from billing.engine.invoice import AvailableCredit, CommitmentBalance, InvoiceInputs, invoice_lines
from billing.engine.lines import Line, total
from billing.engine.money import quantize_money
from billing.engine.vocabulary import CommitmentCovers, CouponType, LineKind
from tests.billing.engine.test_invoice import TEAM, month, mtus

D = Decimal
SEPTEMBER = month(date(2026, 1, 1), date(2026, 9, 10))
VAT20 = TaxRate(1, "vat20", "VAT", D("20"))
TAX5 = TaxRate(2, "org5", "Sales tax", D("5"))


def percent(rate: str, *, n: int = 1, metrics: tuple[str, ...] = (), plans: tuple[str, ...] = ()) -> CouponCredit:
    return CouponCredit(
        n, f"pct{n}", f"{rate} % off", CouponType.PERCENTAGE, percentage_rate=D(rate), metric_codes=metrics,
        plan_codes=plans,
    )  # fmt: skip


def fixed(amount: str, *, n: int = 1, metrics: tuple[str, ...] = (), plans: tuple[str, ...] = ()) -> CouponCredit:
    return CouponCredit(
        n, f"fix{n}", f"${amount} off", CouponType.FIXED_AMOUNT, amount=D(amount), metric_codes=metrics,
        plan_codes=plans,
    )  # fmt: skip


def september(users: int = 30_000, **inputs: object) -> list[Line]:
    return invoice_lines(
        InvoiceInputs(plan=TEAM, period=SEPTEMBER, fee_period=SEPTEMBER, promotion=None, usage=(mtus(users),), **inputs)  # type: ignore[arg-type]
    )


def kinds_and_amounts(lines: list[Line]) -> list[tuple[str, Decimal]]:
    return [(line.kind, line.amount) for line in lines]


# --- the worked cases (the acceptance) --------------------------------------------------


def test_a_ten_percent_forever_coupon_and_a_twenty_percent_tax_on_355() -> None:
    lines = september(coupons=(percent("10"),), taxes=(VAT20,))
    assert kinds_and_amounts(lines) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.USAGE, D("235.00")),
        (LineKind.COUPON, D("-35.50")),
        (LineKind.TAX, D("63.90")),
    ]
    assert total(lines) == D("383.40")
    base, usage = lines[0], lines[1]
    assert (base.discount_amount, usage.discount_amount) == (D("12.00"), D("23.50"))
    assert (base.tax_amount, usage.tax_amount) == (D("21.60"), D("42.30"))


def test_a_fifty_dollar_once_coupon_on_the_base_fee_with_five_percent_tax() -> None:
    lines = september(users=0, coupons=(fixed("50"),), taxes=(TAX5,))
    assert kinds_and_amounts(lines) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.COUPON, D("-50.00")),
        (LineKind.TAX, D("3.50")),
    ]
    assert total(lines) == D("73.50")


def test_a_wallet_of_100_pays_up_to_100_after_tax() -> None:
    lines = september(users=0, taxes=(VAT20,), wallet=WalletCredit(7, D("100")))
    assert kinds_and_amounts(lines) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.TAX, D("24.00")),
        (LineKind.PREPAID_CREDITS, D("-100.00")),
    ]
    assert total(lines) == D("44.00")
    small = september(users=0, taxes=(VAT20,), wallet=WalletCredit(7, D("500")))
    assert small[-1].amount == D("-144.00") and total(small) == 0  # never below zero


def test_a_one_off_invoice_of_two_set_up_fees_with_twenty_percent_tax() -> None:
    fee = Line(kind=LineKind.ADD_ON, description="Set-up fee", quantity=D(2), unit_amount=D("125"), amount=D("250"))
    lines = taxed([fee], (VAT20,), "USD")
    assert kinds_and_amounts(lines) == [(LineKind.ADD_ON, D("250")), (LineKind.TAX, D("50.00"))]
    assert total(lines) == D("300.00") and lines[0].tax_amount == D("50.00")


def test_a_drawdown_lowers_the_taxable_base() -> None:
    lines = september(
        users=0,
        commitment=CommitmentBalance(1, CommitmentCovers.BASE_FEE, D("1440"), "USD"),
        taxes=(VAT20,),
    )
    assert kinds_and_amounts(lines) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.COMMITMENT_DRAWDOWN, D("-120.00")),
        (LineKind.TAX, D("0.00")),
    ]
    prepayment = taxed(
        [Line(kind=LineKind.COMMITMENT, description="Prepaid", quantity=D(1), amount=D("1440"))], (VAT20,), "USD"
    )
    assert total(prepayment) == D("1728.00")  # the prepayment is taxed once


# --- coupons: order, limits, fixed amounts --------------------------------------------------------


def test_coupons_limited_to_metrics_apply_first_then_plans_then_the_others() -> None:
    coupons = (fixed("100", n=1), percent("50", n=2, plans=("team",)), fixed("10", n=3, metrics=("mtu",)))
    lines = september(coupons=coupons)
    applied = [line.details["applied_coupon"] for line in lines if line.kind == LineKind.COUPON]
    assert applied == [3, 2, 1]
    # mtu: 235 − 10 = 225; 50 % of what is left (120 + 225) = 172.50; then 100 of 172.50
    assert [line.amount for line in lines if line.kind == LineKind.COUPON] == [D("-10"), D("-172.50"), D("-100")]
    assert total(lines) == D("72.50")


def test_a_coupon_limited_to_another_plan_or_metric_takes_nothing() -> None:
    lines = september(coupons=(fixed("10", plans=("pro",)), fixed("10", n=2, metrics=("api_calls",))))
    assert not [line for line in lines if line.kind == LineKind.COUPON]


def test_a_fixed_coupon_takes_at_most_the_eligible_amount() -> None:
    lines = september(coupons=(fixed("300", metrics=("mtu",)),))
    assert [line.amount for line in lines if line.kind == LineKind.COUPON] == [D("-235.00")]


def test_credit_notes_come_after_tax_and_the_wallet_last() -> None:
    lines = september(
        users=0,
        taxes=(VAT20,),
        credits=(AvailableCredit(1, "INV-1-CN1", D("44")),),
        wallet=WalletCredit(1, D("1000")),
    )
    assert kinds_and_amounts(lines)[-2:] == [(LineKind.CREDIT_NOTE, D("-44")), (LineKind.PREPAID_CREDITS, D("-100.00"))]
    assert total(lines) == 0


# --- properties ------------------------------------------------------------------------------------

money = st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)
rates = st.decimals(min_value=D("0.01"), max_value=D("100"), places=2)
coupon_specs = st.lists(
    st.one_of(
        st.builds(lambda r, n: percent(str(r), n=n), rates, st.integers(1, 99)),
        st.builds(lambda a, n: fixed(str(a), n=n), money, st.integers(1, 99)),
        st.builds(lambda a, n: fixed(str(a), n=n, metrics=("mtu",)), money, st.integers(1, 99)),
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    users=st.integers(0, 200_000),
    coupons=coupon_specs,
    tax_rates=st.lists(rates, max_size=3),
    credit=st.one_of(st.none(), money),
    wallet=st.one_of(st.none(), money),
)
def test_any_inputs_give_a_total_never_negative_with_every_line_rounded_and_shares_that_add_up(
    users: int, coupons: list[CouponCredit], tax_rates: list[Decimal], credit: Decimal | None, wallet: Decimal | None
) -> None:
    taxes = tuple(TaxRate(i, f"t{i}", f"Tax {i}", rate) for i, rate in enumerate(tax_rates))
    inputs = {
        "coupons": tuple(coupons),
        "taxes": taxes,
        "credits": (AvailableCredit(1, "CN1", credit),) if credit is not None else (),
        "wallet": WalletCredit(1, wallet) if wallet is not None else None,
    }
    lines = september(users, **inputs)
    assert lines == september(users, **inputs)  # the same inputs, the same lines
    assert total(lines) >= 0
    assert all(line.amount == quantize_money(line.amount, "USD") for line in lines)
    fees = [line for line in lines if line.kind in (LineKind.BASE_FEE, LineKind.USAGE)]
    reductions = -sum((line.amount for line in lines if line.kind in (LineKind.PROMOTION, LineKind.COUPON)), D(0))
    assert sum((fee.discount_amount for fee in fees), D(0)) == reductions
    assert sum((fee.tax_amount for fee in fees), D(0)) == sum(
        (line.amount for line in lines if line.kind == LineKind.TAX), D(0)
    )
    # coupons never take a fee below zero; credits never exceed what was due before them
    assert all(fee.discount_amount <= fee.amount for fee in fees)
    before_credits = sum(
        (line.amount for line in lines if line.kind not in (LineKind.CREDIT_NOTE, LineKind.PREPAID_CREDITS)), D(0)
    )
    taken = -sum((line.amount for line in lines if line.kind in (LineKind.CREDIT_NOTE, LineKind.PREPAID_CREDITS)), D(0))
    assert taken <= max(before_credits, D(0))
    if credit is not None and wallet is not None:
        assert taken <= credit + wallet


def test_a_coupon_takes_its_rate_of_the_net_left_and_never_takes_the_invoice_below_zero() -> None:
    # A negative late usage lowers what a coupon may take: 50 % of (100 − 60), not of 100.
    fees = [
        Line(kind=LineKind.BASE_FEE, description="Fee", quantity=D(1), amount=D("100.00")),
        Line(kind=LineKind.LATE_USAGE, description="Late", quantity=D(-1), amount=D("-60.00"), metric_code="mtu"),
    ]
    half = CouponCredit(1, "half", "Half", CouponType.PERCENTAGE, percentage_rate=D("50"))
    [line] = Shares(fees, "USD").coupon_lines([half], "team", None)
    assert line.amount == D("-20.00")
    big = CouponCredit(2, "big", "Big", CouponType.FIXED_AMOUNT, amount=D("500"))
    [line] = Shares(fees, "USD").coupon_lines([big], "team", None)
    assert line.amount == D("-40.00")  # lines 1–4 end at 0.00, not below
