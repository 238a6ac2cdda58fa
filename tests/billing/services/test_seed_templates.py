"""The two seed documents as end-to-end tests, through the API and the management commands.

- Lago's template: `team`, monthly, 14-day trial on the base fee; October with 30,000 users.
- Amberflo's template: `team-annual`, $1,440 prepaid for 12 months and drawn down by the base
  fee, a 14-day trial on the whole plan, auto-renewing.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from rest_framework.test import APIClient

from billing.models import Commitment, Invoice, InvoiceKind, LedgerEntry
from billing.selectors.commitments import balance
from tests.helpers import api_client, at, post

pytestmark = pytest.mark.django_db


def send_users(api: APIClient, customer: str, user_ids: range, when: datetime) -> None:
    events = [
        {
            "transaction_id": f"{when:%Y%m%d}-u{u}",
            "external_customer_id": customer,
            "code": "mtu",
            "timestamp": when.isoformat(),
            "properties": {"user_id": f"u{u}"},
        }
        for u in user_ids
    ]
    for i in range(0, len(events), 1000):
        post(api, "/api/v1/events/batch", {"events": events[i : i + 1000]})


def run(command: str, now: datetime, *args: str) -> str:
    out = StringIO()
    with time_machine.travel(now, tick=False):
        call_command(command, *args, stdout=out)
    return out.getvalue()


def lines(invoice: Invoice) -> list[tuple[str, Decimal]]:
    return [(line.kind, line.amount.quantize(Decimal("0.01"))) for line in invoice.lines.order_by("position")]


def period_invoice(year: int, month: int) -> Invoice:
    return Invoice.objects.get(kind=InvoiceKind.PERIOD, period_start=at(year, month, 1))


def test_lago_template_team_plan_october_invoices_355() -> None:
    call_command("load_catalog", stdout=StringIO())
    api = api_client()
    with time_machine.travel(at(2026, 9, 1, 9), tick=False):
        post(api, "/api/v1/customers", {"customer": {"external_id": "acme", "name": "Acme", "currency": "USD"}})
        post(
            api,
            "/api/v1/subscriptions",
            {
                "subscription": {
                    "external_customer_id": "acme",
                    "plan_code": "team",
                    "external_id": "acme-team",
                    "subscription_at": "2026-09-01T00:00:00Z",
                    "billing_time": "calendar",
                }
            },
        )
    run("close_period", at(2026, 10, 1, 0, 5))
    with time_machine.travel(at(2026, 10, 25), tick=False):
        send_users(api, "acme", range(30_000), at(2026, 10, 24))
    run("close_period", at(2026, 11, 1, 0, 5))

    october = period_invoice(2026, 10)
    assert lines(october) == [("base_fee", Decimal("120.00")), ("usage", Decimal("235.00"))]
    assert october.total == Decimal("355.00")


def test_amberflo_template_annual_commitment_drawn_down_and_renewed() -> None:
    call_command("load_catalog", stdout=StringIO())
    api = api_client()

    # 2026-03-01: the subscription starts; the commitment is invoiced in full.
    with time_machine.travel(at(2026, 3, 1, 0, 10), tick=False):
        post(api, "/api/v1/customers", {"customer": {"external_id": "initech", "name": "Initech", "currency": "USD"}})
        post(
            api,
            "/api/v1/subscriptions",
            {
                "subscription": {
                    "external_customer_id": "initech",
                    "plan_code": "team-annual",
                    "external_id": "initech-annual",
                    "subscription_at": "2026-03-01T00:00:00Z",
                    "billing_time": "calendar",
                }
            },
        )
    prepayment = Invoice.objects.get(kind=InvoiceKind.COMMITMENT)
    assert prepayment.total == Decimal("1440.00") and prepayment.number
    assert lines(prepayment) == [("commitment", Decimal("1440.00"))]
    first_term = Commitment.objects.get()

    # March: u1–u5000 only during the trial (March 1–14), u5001–u12000 on March 20.
    with time_machine.travel(at(2026, 3, 20, 12), tick=False):
        send_users(api, "initech", range(1, 5001), at(2026, 3, 5))
        send_users(api, "initech", range(5001, 12001), at(2026, 3, 20))
    run("close_period", at(2026, 4, 1, 0, 5))
    march = period_invoice(2026, 3)
    assert lines(march) == [
        ("base_fee", Decimal("120.00")),
        ("promotion", Decimal("-54.19")),  # 14 of 31 days
        ("usage", Decimal("24.00")),  # 12,000 users
        ("promotion", Decimal("-24.00")),  # the 7,000 users seen after the trial cost 0
        ("commitment_drawdown", Decimal("-65.81")),
    ]
    assert march.total == Decimal("0.00")

    # April: 30,000 users.
    with time_machine.travel(at(2026, 4, 20), tick=False):
        send_users(api, "initech", range(30_000), at(2026, 4, 15))
    run("close_period", at(2026, 5, 1, 0, 5))
    april = period_invoice(2026, 4)
    assert lines(april) == [
        ("base_fee", Decimal("120.00")),
        ("usage", Decimal("235.00")),
        ("commitment_drawdown", Decimal("-120.00")),
    ]
    assert april.total == Decimal("235.00")
    assert balance(first_term) == Decimal("1254.19")

    # Close every month through February 2027, then process the commitments on 2027-03-01.
    for year, month in [(2026, m) for m in range(6, 13)] + [(2027, 1), (2027, 2), (2027, 3)]:
        run("close_period", at(year, month, 1, 0, 5))
    assert balance(first_term) == Decimal("54.19")
    run("process_commitments", at(2027, 3, 1, 0, 10), "--date", "2027-03-01")

    expiry = LedgerEntry.objects.get(commitment=first_term, kind="expiry")
    assert expiry.amount == Decimal("-54.19")
    assert balance(first_term) == 0
    renewal = Commitment.objects.get(renewed_from=first_term)
    assert renewal.invoice is not None and renewal.invoice.total == Decimal("1440.00")
    assert renewal.term_start == at(2027, 3, 1) and renewal.term_end == at(2028, 3, 1)

    # March 2027's base fee is drawn from the new term, and there is no second trial.
    run("close_period", at(2027, 4, 1, 0, 5))
    march_2027 = period_invoice(2027, 3)
    assert lines(march_2027) == [("base_fee", Decimal("120.00")), ("commitment_drawdown", Decimal("-120.00"))]
    assert balance(renewal) == Decimal("1320.00")

    # Idempotent: the same date again changes nothing.
    before = (Invoice.objects.count(), LedgerEntry.objects.count(), Commitment.objects.count())
    run("process_commitments", at(2027, 3, 2), "--date", "2027-03-01")
    assert (Invoice.objects.count(), LedgerEntry.objects.count(), Commitment.objects.count()) == before
    assert date(2027, 3, 1) == renewal.term_start.date()
