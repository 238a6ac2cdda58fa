"""An invoice's lines from its inputs (billing.engine.invoice): pure, table-tested, and with
properties that must hold for any inputs (the same inputs give the same lines; a drawdown never
exceeds the balance nor what it covers; each line is rounded once)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.engine.invoice import (
    CommitmentBalance,
    InvoiceInputs,
    LatePeriod,
    due_fee_period,
    invoice_lines,
)
from billing.engine.lines import MeasuredCharge, PlanChargeSpec, PlanSpec, PromotionWindow, total
from billing.engine.money import quantize_money
from billing.engine.periods import Period, period_containing
from billing.engine.pricing import ChargeSpec, TierSpec
from billing.engine.vocabulary import AppliesTo, BillingTime, ChargeModel, CommitmentCovers, Interval, LineKind

D = Decimal
TEAM_MTU = ChargeSpec(
    model=ChargeModel.GRADUATED,
    tiers=(
        TierSpec(up_to=D("10000"), unit_amount=D("0")),
        TierSpec(up_to=D("25000"), unit_amount=D("0.012")),
        TierSpec(up_to=D("100000"), unit_amount=D("0.011")),
        TierSpec(up_to=None, unit_amount=D("0.010")),
    ),
)
MTU = PlanChargeSpec(metric_code="mtu", metric_name="Monthly tracked users", charge=TEAM_MTU)
TEAM = PlanSpec(code="team", name="Team", currency="USD", interval=Interval.MONTH, base_fee=D("120"), charges=(MTU,))


def month(start: date, at: date, *, interval: str = Interval.MONTH) -> Period:
    return period_containing(
        subscription_at=datetime.combine(start, datetime.min.time(), tzinfo=UTC),
        terminated_at=None,
        billing_time=BillingTime.CALENDAR,
        interval=interval,
        tz="UTC",
        at=datetime.combine(at, datetime.min.time(), tzinfo=UTC),
    )


def mtus(quantity: int, outside: int | None = None) -> MeasuredCharge:
    return MeasuredCharge(
        "mtu", "Monthly tracked users", TEAM_MTU, D(quantity), None if outside is None else D(outside)
    )


def trial(start: date, scope: str = AppliesTo.BASE_FEE) -> PromotionWindow:
    return PromotionWindow("trial", "14-day free trial", D("100"), scope, start, start + timedelta(days=14))


def kinds_and_amounts(inputs: InvoiceInputs, **kwargs: bool) -> list[tuple[str, Decimal]]:
    return [(line.kind, line.amount) for line in invoice_lines(inputs, **kwargs)]


OCTOBER = month(date(2026, 8, 1), date(2026, 10, 15))


# --- the worked examples of DESIGN §1, as one invoice each ---------------------------------------


def test_team_plan_at_30000_mtus_is_355() -> None:
    inputs = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=OCTOBER, promotion=None, usage=(mtus(30_000),))
    lines = invoice_lines(inputs)
    assert [(line.kind, line.amount) for line in lines] == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.USAGE, D("235.00")),
    ]
    assert total(lines) == D("355.00")
    assert all(line.period_start == OCTOBER.start and line.period_end == OCTOBER.end for line in lines)


def test_the_order_is_fees_with_their_promotions_then_late_usage_then_the_drawdown() -> None:
    september = month(date(2026, 8, 1), date(2026, 9, 15))
    inputs = InvoiceInputs(
        plan=TEAM,
        period=OCTOBER,
        fee_period=OCTOBER,
        promotion=trial(date(2026, 10, 1), AppliesTo.PLAN),
        usage=(mtus(12_000, outside=7_000),),
        late=(
            LatePeriod(
                period=september,
                charges=TEAM.charges,
                currency="USD",
                promotion=None,
                measured={"mtu": (D(11_000), None)},
                billed={"mtu": (D(10_500), None)},
            ),
        ),
        commitment=CommitmentBalance(
            commitment_id=7, covers=CommitmentCovers.BASE_FEE, balance=D("1440"), currency="USD"
        ),
    )
    assert kinds_and_amounts(inputs) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.PROMOTION, D("-54.19")),  # 120 × 14/31
        (LineKind.USAGE, D("24.00")),
        (LineKind.PROMOTION, D("-24.00")),  # the 5,000 MTUs seen only during the trial: all of them paid
        (LineKind.LATE_USAGE, D("6.00")),  # September grew from 10,500 to 11,000: 500 × 0.012
        (LineKind.COMMITMENT_DRAWDOWN, D("-65.81")),  # the base fee after its promotion
    ]


def test_no_fee_period_means_no_base_fee_on_this_invoice() -> None:
    inputs = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=None, promotion=None, usage=(mtus(30_000),))
    assert kinds_and_amounts(inputs) == [(LineKind.USAGE, D("235.00"))]


def test_an_unmeasured_charge_prints_no_line_on_an_invoice_but_shows_in_a_preview() -> None:
    inputs = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=OCTOBER, promotion=None, usage=(mtus(0),))
    assert kinds_and_amounts(inputs) == [(LineKind.BASE_FEE, D("120.00"))]
    assert kinds_and_amounts(inputs, keep_unmeasured=True) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.USAGE, D("0.00")),
    ]
    included = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=OCTOBER, promotion=None, usage=(mtus(8_000),))
    assert kinds_and_amounts(included)[-1] == (LineKind.USAGE, D("0.00"))  # included usage does print


def test_a_usage_line_stores_its_measured_quantities_and_tiers() -> None:
    inputs = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=None, promotion=None, usage=(mtus(10_001, outside=3),))
    [line] = invoice_lines(inputs)
    assert line.details["quantity"] == "10001"
    assert line.details["quantity_outside_promotion"] == "3"
    assert [tier["units"] for tier in line.details["tiers"]] == ["10000", "1", "0", "0"]


# --- the commitment drawdown (step 3) ------------------------------------------------------------


def balance(amount: str, covers: str = CommitmentCovers.BASE_FEE) -> CommitmentBalance:
    return CommitmentBalance(commitment_id=1, covers=covers, balance=D(amount), currency="USD")


def test_a_base_fee_commitment_draws_the_base_fee_only() -> None:
    inputs = InvoiceInputs(
        plan=TEAM, period=OCTOBER, fee_period=OCTOBER, promotion=None, usage=(mtus(30_000),), commitment=balance("1440")
    )
    lines = invoice_lines(inputs)
    assert lines[-1].kind == LineKind.COMMITMENT_DRAWDOWN and lines[-1].amount == D("-120")
    assert lines[-1].details == {"commitment": 1, "balance_before": "1440"}
    assert total(lines) == D("235.00")


def test_a_commitment_covering_all_draws_usage_too_up_to_the_balance() -> None:
    inputs = InvoiceInputs(
        plan=TEAM,
        period=OCTOBER,
        fee_period=OCTOBER,
        promotion=None,
        usage=(mtus(30_000),),
        commitment=balance("300", CommitmentCovers.ALL),
    )
    lines = invoice_lines(inputs)
    assert lines[-1].amount == D("-300")  # 355 covered, 300 left: the rest is billed in cash
    assert total(lines) == D("55.00")


def test_an_empty_balance_or_nothing_covered_draws_nothing() -> None:
    empty = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=OCTOBER, promotion=None, commitment=balance("0"))
    assert LineKind.COMMITMENT_DRAWDOWN not in [line.kind for line in invoice_lines(empty)]
    no_fee = InvoiceInputs(
        plan=TEAM, period=OCTOBER, fee_period=None, promotion=None, usage=(mtus(30_000),), commitment=balance("100")
    )
    assert LineKind.COMMITMENT_DRAWDOWN not in [line.kind for line in invoice_lines(no_fee)]


# --- late usage (step 1, earlier periods) --------------------------------------------------------


def late(measured: int, billed: int, outside: tuple[int | None, int | None] = (None, None)) -> LatePeriod:
    return LatePeriod(
        period=month(date(2026, 8, 1), date(2026, 9, 15)),
        charges=TEAM.charges,
        currency="USD",
        promotion=None,
        measured={"mtu": (D(measured), None if outside[0] is None else D(outside[0]))},
        billed={"mtu": (D(billed), None if outside[1] is None else D(outside[1]))},
    )


def test_late_usage_bills_the_difference_of_the_period_priced_with_and_without_it() -> None:
    inputs = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=None, promotion=None, late=(late(30_000, 25_000),))
    [line] = invoice_lines(inputs)
    assert (line.kind, line.quantity, line.amount) == (LineKind.LATE_USAGE, D(5000), D("55.00"))
    assert line.description == "Late Monthly tracked users for Sep 1 – Sep 30, 2026: 25000 → 30000"
    assert line.details == {"quantity": "30000", "previously_billed_quantity": "25000"}


def test_a_period_measured_as_it_was_billed_adds_no_line() -> None:
    inputs = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=None, promotion=None, late=(late(30_000, 30_000),))
    assert invoice_lines(inputs) == []


def test_late_usage_inside_the_included_units_is_shown_at_zero() -> None:
    inputs = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=None, promotion=None, late=(late(9_000, 8_000),))
    assert kinds_and_amounts(inputs) == [(LineKind.LATE_USAGE, D("0.00"))]


# --- which fee period an invoice bills -----------------------------------------------------------


def test_arrears_bill_the_fee_period_that_ends_with_the_usage_period() -> None:
    year = month(date(2026, 1, 1), date(2026, 10, 15), interval=Interval.YEAR)
    december = month(date(2026, 1, 1), date(2026, 12, 15))
    assert due_fee_period(usage_period=OCTOBER, fee_period=year, pay_in_advance=False) is None
    assert due_fee_period(usage_period=december, fee_period=year, pay_in_advance=False) == year


def test_in_advance_the_fee_period_that_starts_with_the_usage_period() -> None:
    year = month(date(2026, 1, 1), date(2026, 10, 15), interval=Interval.YEAR)
    january = month(date(2026, 1, 1), date(2026, 1, 15))
    assert due_fee_period(usage_period=january, fee_period=year, pay_in_advance=True) == year
    assert due_fee_period(usage_period=OCTOBER, fee_period=year, pay_in_advance=True) is None


# --- properties ----------------------------------------------------------------------------------

quantities = st.integers(min_value=0, max_value=2_000_000)
amounts = st.decimals(min_value=0, max_value=100_000, places=2)


@settings(max_examples=200, deadline=None)
@given(
    q=quantities,
    q_out=quantities,
    available=amounts,
    covers=st.sampled_from(CommitmentCovers.values),
    scope=st.sampled_from(AppliesTo.values),
    trial_day=st.integers(min_value=-20, max_value=40),
)
def test_any_invoice_is_rounded_once_per_line_draws_at_most_what_it_may_and_is_repeatable(
    q: int, q_out: int, available: Decimal, covers: str, scope: str, trial_day: int
) -> None:
    inputs = InvoiceInputs(
        plan=TEAM,
        period=OCTOBER,
        fee_period=OCTOBER,
        promotion=trial(OCTOBER.start_day + timedelta(days=trial_day), scope),
        usage=(mtus(q, outside=min(q, q_out)),),
        commitment=balance(str(available), covers),
    )
    lines = invoice_lines(inputs)
    assert lines == invoice_lines(inputs)  # the same inputs always give the same lines
    for line in lines:
        if line.kind != LineKind.COMMITMENT_DRAWDOWN:
            assert line.amount == quantize_money(line.amount, "USD")
    drawn = -sum((line.amount for line in lines if line.kind == LineKind.COMMITMENT_DRAWDOWN), D(0))
    before = total([line for line in lines if line.kind != LineKind.COMMITMENT_DRAWDOWN])
    assert D(0) <= drawn <= available
    assert drawn <= max(before, D(0))  # never more than the fees after their promotions
    assert total(lines) >= 0  # promotions and the drawdown never take the invoice below zero
