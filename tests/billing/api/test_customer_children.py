"""Lago's customer-scoped lists (billing.api.customer_children) with lago-python-client 1.55 against
the live API: GET /api/v1/customers/<external_id>/invoices, /credit_notes and /payments answer
what the top-level lists answer with external_customer_id=<external_id>, every other filter and
the pagination included; an unknown customer is Lago's 404 customer_not_found; another
customer's rows never show, whatever the query string says.

The SDK's customer-scoped find_all sends no API key (getlago/lago-python-client#410, still open;
the fix proposed is #421), so against any Lago server it gets 401. The `lago` fixture adds the
client's own headers to a GET the SDK sends without any, as that fix does; the requests and the
parsing of the answers are the SDK's own.

The world, as tests/billing/api/test_lago_lifecycle.py builds it relative to today (the server
runs on the real clock): acme and globex on the scaled-down Team plan (tests.factories) since
M0, three months ago; in M1 acme has 300 users ($355.00) and globex 120 ($144.00); both months
are closed at the start of M2. acme has two payments and two credit notes on its M1 invoice,
globex one of each; initech has no subscription, so nothing billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.utils import timezone
from lago_python_client import mixins
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.services.request import make_headers

from billing.engine.periods import add_months, month_start
from billing.models import CreditNote, Invoice, LineKind, Payment, Plan
from billing.services.credit_notes import credit_note_create
from billing.services.payments import payment_create
from billing.services.period_close import close_periods
from customers.services import api_key_create
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users

pytestmark = pytest.mark.django_db(transaction=True)

KINDS = ("invoices", "credit_notes", "payments")


def moment(day: date, hours: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hours, tzinfo=UTC)


@dataclass
class Server:
    lago: Client
    url: str
    key: str

    def get(self, path: str, params: dict[str, Any] | None = None, key: bool = True) -> httpx.Response:
        """A plain GET of /api/v1/<path>, to compare the raw answers."""
        headers = make_headers(api_key=self.key) if key else {}
        return httpx.get(f"{self.url}/api/v1/{path}", params=params, headers=headers)


@pytest.fixture
def server(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Server:
    scaled_team_plan()
    _, raw_key = api_key_create(name="lago sdk")
    send = mixins.send_get_request

    def send_with_key(url: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", make_headers(api_key=raw_key))  # what #421 sends
        return send(url, **kwargs)

    monkeypatch.setattr(mixins, "send_get_request", send_with_key)
    return Server(Client(api_key=raw_key, api_url=live_server.url), live_server.url, raw_key)


@dataclass
class World:
    m1: date
    acme_m0: Invoice
    acme_m1: Invoice
    globex_m1: Invoice


def _fee(invoice: Invoice, kind: str) -> int:
    return int(invoice.lines.get(kind=kind).pk)


def _note(invoice: Invoice, cents: int, reason: str) -> CreditNote:
    amount = Decimal(cents) / 100
    return credit_note_create(
        invoice=invoice,
        items=[(_fee(invoice, LineKind.USAGE), amount)],
        reason=reason,
        credit_amount=amount,
        refund_amount=Decimal(0),
        offset_amount=Decimal(0),
        now=timezone.now(),
    )


def _pay(invoice: Invoice, cents: int, reference: str) -> Payment:
    now = timezone.now()
    return payment_create(invoice=invoice, amount=Decimal(cents) / 100, reference=reference, paid_at=now, now=now)


@pytest.fixture
def world(server: Server) -> World:
    m0 = add_months(month_start(timezone.now().date()), -3)
    m1, m2 = add_months(m0, 1), add_months(m0, 2)
    plan = Plan.objects.get(code="team")
    for external_id, users in (("acme", 300), ("globex", 120)):
        customer = CustomerFactory(external_id=external_id, name=external_id.title())
        SubscriptionFactory(customer=customer, plan=plan, external_id=f"{external_id}-team", subscription_at=moment(m0))
        store_users(customer, range(users), moment(m1 + timedelta(days=19)), external_id)
    CustomerFactory(external_id="initech", name="Initech")
    close_periods(now=moment(m2, hours=9))  # M0 and M1 end: invoiced and finalized

    def invoice(external_id: str, start: date) -> Invoice:
        return Invoice.objects.get(customer__external_id=external_id, period_start=moment(start))

    acme_m1, globex_m1 = invoice("acme", m1), invoice("globex", m1)
    assert (acme_m1.total, globex_m1.total) == (Decimal("355.00"), Decimal("144.00"))
    _pay(acme_m1, 10000, "acme-wire-1")
    _pay(acme_m1, 5000, "acme-wire-2")
    _pay(globex_m1, 4400, "globex-wire-1")
    _note(acme_m1, 3000, "duplicated_charge")
    _note(acme_m1, 1500, "order_change")
    _note(globex_m1, 2400, "duplicated_charge")
    return World(m1, invoice("acme", m0), acme_m1, globex_m1)


def _without_links(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without its signed PDF links: they embed the second they were signed at."""
    return {
        key: [{k: v for k, v in row.items() if k != "file_url"} for row in rows] if key in KINDS else rows
        for key, rows in body.items()
    }


def assert_same_as_top_level(server: Server, kind: str, external_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The customer's list answers what the top-level list answers for that customer; returns it."""
    scoped = server.get(f"customers/{external_id}/{kind}", params)
    top = server.get(kind, {**params, "external_customer_id": external_id})
    assert scoped.status_code == top.status_code, scoped.text
    assert _without_links(scoped.json()) == _without_links(top.json())
    body: dict[str, Any] = scoped.json()
    return body


def test_a_customers_invoices_with_filters_and_pages(server: Server, world: World) -> None:
    lago = server.lago
    listed = lago.customer_invoices.find_all("acme", {"status": "finalized", "period_from": world.m1.isoformat()})
    assert [invoice.lago_id for invoice in listed["invoices"]] == [str(world.acme_m1.pk)]
    assert listed["invoices"][0].customer.external_id == "acme"
    assert listed["meta"] == {
        "current_page": 1,
        "next_page": None,
        "prev_page": None,
        "total_pages": 1,
        "total_count": 1,
    }

    # Both of acme's invoices are finalized and partly paid at most: newest period first, one a page.
    params = {"status": "finalized", "payment_status": "pending", "per_page": 1}
    first = lago.customer_invoices.find_all("acme", params)
    second = lago.customer_invoices.find_all("acme", {**params, "page": 2})
    assert [i.lago_id for i in first["invoices"] + second["invoices"]] == [str(world.acme_m1.pk), str(world.acme_m0.pk)]
    assert first["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 2, "total_count": 2}
    assert second["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1, "total_pages": 2, "total_count": 2}

    for query in (
        {},
        params,
        {**params, "page": 2},
        {"status": "finalized", "period_from": world.m1.isoformat()},
        {"invoice_type": "subscription", "payment_overdue": "false", "issuing_date_to": "2099-12-31"},
        {"status": "refunded"},  # 422 naming status, as the top-level list
        {"per_page": "0"},
    ):
        assert_same_as_top_level(server, "invoices", "acme", query)


def test_a_customers_credit_notes_with_filters_and_pages(server: Server, world: World) -> None:
    lago = server.lago
    filters = {"reason": "duplicated_charge", "credit_status": "available", "amount_from": 2000}
    listed = lago.customer_credit_notes.find_all("acme", filters)
    assert [(n.lago_invoice_id, n.total_amount_cents) for n in listed["credit_notes"]] == [
        (str(world.acme_m1.pk), 3000)
    ]
    assert listed["meta"]["total_count"] == 1
    everyone = lago.credit_notes.find_all(filters)["credit_notes"]  # globex's note matches too
    assert sorted(n.customer.external_id for n in everyone) == ["acme", "globex"]

    # Several reasons (Lago's clients repeat the name); newest first, one a page.
    params = {"reason": ["duplicated_charge", "order_change"], "per_page": 1, "page": 2}
    page = lago.customer_credit_notes.find_all("acme", params)
    assert [n.total_amount_cents for n in page["credit_notes"]] == [3000]  # the older of acme's two
    assert page["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1, "total_pages": 2, "total_count": 2}

    for query in ({}, filters, params, {"types[]": ["credit"], "search_term": "CN"}, {"amount_from": "-1"}):
        assert_same_as_top_level(server, "credit_notes", "acme", query)


def test_a_customers_payments_with_filters_and_pages(server: Server, world: World) -> None:
    lago = server.lago
    params = {"invoice_id": str(world.acme_m1.pk), "per_page": 1, "page": 2}
    page = lago.customer_payments.find_all("acme", params)
    assert [(p.reference, p.amount_cents) for p in page["payments"]] == [("acme-wire-1", 10000)]
    assert page["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1, "total_pages": 2, "total_count": 2}

    # Another customer's invoice is no filter onto its payments.
    other = lago.customer_payments.find_all("acme", {"invoice_id": str(world.globex_m1.pk)})
    assert other["payments"] == [] and other["meta"]["total_count"] == 0

    for query in ({}, params, {"invoice_id": str(world.globex_m1.pk)}, {"invoice_id": "x"}, {"page": "two"}):
        assert_same_as_top_level(server, "payments", "acme", query)


def test_another_customers_rows_never_show(server: Server, world: World) -> None:
    lago = server.lago
    # The path's customer wins over an external_customer_id in the query string.
    sneaky = {"external_customer_id": "acme"}
    invoices = lago.customer_invoices.find_all("globex", sneaky)["invoices"]
    notes = lago.customer_credit_notes.find_all("globex", sneaky)["credit_notes"]
    payments = lago.customer_payments.find_all("globex", sneaky)["payments"]
    assert {i.customer.external_id for i in invoices} == {"globex"} and len(invoices) == 2
    assert [(n.customer.external_id, n.total_amount_cents) for n in notes] == [("globex", 2400)]
    assert [p.reference for p in payments] == ["globex-wire-1"]

    # A customer with nothing billed has empty lists, not a 404.
    for kind in KINDS:
        body = server.get(f"customers/initech/{kind}", sneaky).json()
        assert body == {
            kind: [],
            "meta": {"current_page": 1, "next_page": None, "prev_page": None, "total_pages": 1, "total_count": 0},
        }


def test_an_unknown_customer_is_lagos_404(server: Server, world: World) -> None:
    lago = server.lago
    for client in (lago.customer_invoices, lago.customer_credit_notes, lago.customer_payments):
        with pytest.raises(LagoApiError) as caught:
            client.find_all("nobody", {"status": "nonsense", "page": "0"})  # the customer is looked up first
        assert caught.value.status_code == 404
        assert caught.value.response == {
            "status": 404,
            "error": "Not Found",
            "code": "customer_not_found",
            "message": "customer not found",
        }
    # External ids are matched exactly.
    assert server.get("customers/ACME/invoices").status_code == 404


def test_the_customer_lists_need_an_api_key(server: Server, world: World) -> None:
    for kind in KINDS:
        response = server.get(f"customers/acme/{kind}", key=False)
        assert response.status_code == 401
        assert response.json()["status"] == 401
