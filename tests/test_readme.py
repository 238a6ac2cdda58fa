"""The README's stated rules, each pinned to the code that applies it (issue 17: the README tells
the truth). Each test quotes the README's sentence, so changing the rule without the README (or
the README without the rule) fails here."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billing.engine.invoice import InvoiceInputs
from billing.engine.periods import period_containing
from billing.engine.vocabulary import BillingTime, Interval, LineKind
from billing.services.addons import add_on_create
from billing.services.one_off_invoices import OneOffFee, one_off_invoice_create
from tests.billing.engine.test_invoice import OCTOBER, TEAM, kinds_and_amounts, mtus
from tests.factories import CustomerFactory

README = re.sub(r"\s+", " ", (Path(__file__).resolve().parent.parent / "README.md").read_text())


def says(sentence: str) -> None:
    assert re.sub(r"\s+", " ", sentence) in README, f"the README no longer says: {sentence}"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_the_day_a_subscription_is_terminated_does_not_count() -> None:
    says("the day it is terminated does not count, wherever in that day the termination falls")
    says("terminated on Oct 16 at 10:00, it is billed for Oct 1–15")
    for moment in (utc(2026, 10, 16), utc(2026, 10, 16, 10), utc(2026, 10, 16, 23, 59)):
        period = period_containing(
            subscription_at=utc(2026, 9, 1),
            terminated_at=moment,
            billing_time=BillingTime.CALENDAR,
            interval=Interval.MONTH,
            tz="UTC",
            at=utc(2026, 10, 10),
        )
        assert (period.start, period.end, period.days) == (utc(2026, 10, 1), utc(2026, 10, 16), 15)


def test_a_charge_nothing_was_measured_for_prints_no_line_included_usage_a_zero_line() -> None:
    says("A charge nothing was measured for prints no line; included usage prints a 0.00 line.")
    nothing = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=OCTOBER, promotion=None, usage=(mtus(0),))
    assert [kind for kind, _ in kinds_and_amounts(nothing)] == [LineKind.BASE_FEE]
    included = InvoiceInputs(plan=TEAM, period=OCTOBER, fee_period=OCTOBER, promotion=None, usage=(mtus(8_000),))
    assert kinds_and_amounts(included)[-1] == (LineKind.USAGE, Decimal("0.00"))


@pytest.mark.django_db
def test_an_invoice_number_takes_the_year_of_the_customer_local_issue_date() -> None:
    says("gap-free number `INV-YYYY-NNNNNN` (the year of the customer-local issue date")
    add_on_create(code="setup", name="Set-up fee", amount=Decimal("10"), currency="USD")
    new_year_eve = utc(2026, 12, 31, 23, 30)  # already 2027 in Paris, still 2026 in Los Angeles
    numbers = {}
    for tz in ("Europe/Paris", "America/Los_Angeles"):
        customer = CustomerFactory(currency="USD", timezone=tz)
        invoice = one_off_invoice_create(customer=customer, fees=[OneOffFee("setup")], now=new_year_eve)
        numbers[tz] = (invoice.number, invoice.issued_on.isoformat() if invoice.issued_on else None)
    assert numbers == {
        "Europe/Paris": ("INV-2027-000001", "2027-01-01"),
        "America/Los_Angeles": ("INV-2026-000001", "2026-12-31"),
    }
