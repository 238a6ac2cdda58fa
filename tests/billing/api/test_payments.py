"""POST /api/v1/payments, GET /api/v1/payments[/<id>] (DESIGN §6 "Payment terms and payments").

The invoices are tests/billing/api/test_invoice_actions.py's (acme's September: $355.00, due
2026-10-02; August: $65.81; October: a draft; globex's September: $64.00), read on 2026-11-01 at
noon UTC. Every response is parsed with lago-python-client's PaymentResponse and InvoiceResponse;
every refused request is checked to store nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from lago_python_client.models.invoice import InvoiceResponse
from lago_python_client.models.payment import PaymentResponse
from rest_framework.test import APIClient

from billing.models import Invoice, Payment, PaymentStatus
from billing.services.payments import NOT_FINALIZED, OVERPAID
from config.api import NOT_AN_INTEGER, NOT_SUPPORTED
from tests.billing.api.test_invoice_actions import NOW, invoice_body, make_invoices, stored
from tests.helpers import errors, get, post

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def invoices(settings: Any) -> dict[str, Invoice]:
    return make_invoices(settings)


def pay(api: APIClient, invoice: Invoice, cents: int, reference: str = "wire", **extra: Any) -> dict[str, Any]:
    """POST /api/v1/payments; the payment, checked against lago-python-client's PaymentResponse."""
    body = {"invoice_id": str(invoice.pk), "amount_cents": cents, "reference": reference, **extra}
    payment: dict[str, Any] = post(api, "/api/v1/payments", {"payment": body})["payment"]
    PaymentResponse.parse_obj(payment)
    return payment


def test_a_partial_payment_is_recorded_in_lagos_shape(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    payment = pay(api, september, 10000, "wire-2026-10-15", paid_at="2026-10-15T09:30:00Z")

    stored_payment = Payment.objects.get()
    assert payment == {
        "lago_id": str(stored_payment.pk),
        "invoice_ids": [str(september.pk)],
        "invoice_numbers": [september.number],
        "amount_cents": 10000,
        "amount_currency": "USD",
        "payment_status": "succeeded",
        "type": "manual",
        "reference": "wire-2026-10-15",
        "external_payment_id": None,
        "created_at": "2026-11-01T12:00:00Z",
        "amount": "100.00",
        "paid_at": "2026-10-15T09:30:00Z",
    }
    assert (stored_payment.amount, stored_payment.currency, stored_payment.created_by) == (
        Decimal("100.00"),
        "USD",
        None,
    )

    invoice = invoice_body(api, september)
    assert invoice["payment_status"] == "pending"
    assert (invoice["total_paid_amount_cents"], invoice["total_due_amount_cents"]) == (10000, 25500)
    assert invoice["total_paid_amount_cents"] + invoice["total_due_amount_cents"] == invoice["total_amount_cents"]
    assert invoice["payment_overdue"] is True  # still something due after 2026-10-02
    assert invoice["paid_at"] is None


def test_payments_that_settle_the_total_make_it_succeeded(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    pay(api, september, 10000, "first")
    pay(api, september, 20000, "second")
    assert Invoice.objects.get(pk=september.pk).payment_status == PaymentStatus.PENDING
    pay(api, september, 5500, "last")

    invoice = invoice_body(api, september)
    assert invoice["payment_status"] == "succeeded"
    assert (invoice["total_paid_amount_cents"], invoice["total_due_amount_cents"]) == (35500, 0)
    assert invoice["paid_at"] == "2026-11-01T12:00:00Z"
    assert invoice["payment_overdue"] is False
    assert {fee["payment_status"] for fee in invoice["fees"]} == {"succeeded"}


def test_a_whole_payment_at_once(api: APIClient, invoices: dict[str, Invoice]) -> None:
    payment = pay(api, invoices["acme-08"], 6581)
    assert payment["amount_cents"] == 6581
    invoice = invoice_body(api, invoices["acme-08"])
    assert (invoice["payment_status"], invoice["total_due_amount_cents"]) == ("succeeded", 0)


def test_paid_at_defaults_to_now_and_accepts_a_date(api: APIClient, invoices: dict[str, Invoice]) -> None:
    assert pay(api, invoices["acme-09"], 100)["paid_at"] == "2026-11-01T12:00:00Z"
    assert pay(api, invoices["acme-09"], 100, paid_at=None)["paid_at"] == "2026-11-01T12:00:00Z"
    assert pay(api, invoices["acme-09"], 100, paid_at="2026-10-20")["paid_at"] == "2026-10-20T00:00:00Z"


def test_find_and_list_payments(api: APIClient, invoices: dict[str, Invoice]) -> None:
    first = pay(api, invoices["acme-09"], 100, "a")
    second = pay(api, invoices["acme-08"], 200, "b")
    third = pay(api, invoices["globex-09"], 300, "c")

    found = get(api, f"/api/v1/payments/{first['lago_id']}")["payment"]
    assert found == first

    everything = get(api, "/api/v1/payments")
    assert [p["lago_id"] for p in everything["payments"]] == [third["lago_id"], second["lago_id"], first["lago_id"]]
    assert everything["meta"]["total_count"] == 3
    for payment in everything["payments"]:
        PaymentResponse.parse_obj(payment)
    by_invoice = get(api, "/api/v1/payments", invoice_id=str(invoices["acme-09"].pk))["payments"]
    assert [p["lago_id"] for p in by_invoice] == [first["lago_id"]]
    by_customer = get(api, "/api/v1/payments", external_customer_id="acme")["payments"]
    assert {p["lago_id"] for p in by_customer} == {first["lago_id"], second["lago_id"]}
    assert get(api, "/api/v1/payments", external_customer_id="nobody")["payments"] == []
    paged = get(api, "/api/v1/payments", per_page=2, page=2)
    assert [p["lago_id"] for p in paged["payments"]] == [first["lago_id"]]
    assert paged["meta"]["prev_page"] == 1
    assert list(get(api, "/api/v1/payments", expect=422, invoice_id="x")["error_details"]) == ["invoice_id"]


@pytest.mark.parametrize(
    ("payment", "field", "message"),
    [
        ({"amount_cents": 0}, "amount_cents", None),
        ({"amount_cents": -100}, "amount_cents", None),
        ({"amount_cents": 100.5}, "amount_cents", NOT_AN_INTEGER),
        ({"amount_cents": 100.0}, "amount_cents", NOT_AN_INTEGER),
        ({"amount_cents": "100"}, "amount_cents", NOT_AN_INTEGER),
        ({"amount_cents": True}, "amount_cents", NOT_AN_INTEGER),
        ({"amount_cents": None}, "amount_cents", None),
        ({"amount_cents": 10**16}, "amount_cents", None),
        (
            {"amount_cents": 35501},
            "amount_cents",
            OVERPAID.format(invoice="INV-2026-000002", due="355.00", currency="USD"),
        ),
        ({"reference": None}, "reference", None),
        ({"reference": ""}, "reference", None),
        ({"reference": "   "}, "reference", None),
        ({"reference": 42}, "reference", None),
        ({"paid_at": "garbage"}, "paid_at", None),
        ({"paid_at": "2026-02-30"}, "paid_at", None),
        ({"paid_at": "9999-01-01T00:00:00Z"}, "paid_at", None),
        ({"invoice_id": "999999"}, "invoice_id", "unknown invoice '999999'"),
        ({"invoice_id": "abc"}, "invoice_id", "unknown invoice 'abc'"),
        ({"invoice_id": 2}, "invoice_id", None),
        ({"currency": "USD"}, "currency", NOT_SUPPORTED),
        ({"external_payment_id": "x"}, "external_payment_id", NOT_SUPPORTED),
    ],
)
def test_bad_payment_is_422_naming_the_field_and_stores_nothing(
    api: APIClient, invoices: dict[str, Invoice], payment: dict[str, Any], field: str, message: str | None
) -> None:
    september = invoices["acme-09"]
    assert september.number == "INV-2026-000002"
    body = {"invoice_id": str(september.pk), "amount_cents": 100, "reference": "wire", **payment}
    before = stored()
    details = errors(api.post("/api/v1/payments", {"payment": body}, format="json"))
    assert list(details) == [field], details
    if message is not None:
        assert details[field] == [message]
    assert stored() == before


@pytest.mark.parametrize("missing", ["invoice_id", "amount_cents", "reference"])
def test_a_missing_required_field_is_named(api: APIClient, invoices: dict[str, Invoice], missing: str) -> None:
    body = {"invoice_id": str(invoices["acme-09"].pk), "amount_cents": 100, "reference": "wire"}
    del body[missing]
    before = stored()
    assert list(errors(api.post("/api/v1/payments", {"payment": body}, format="json"))) == [missing]
    assert stored() == before


def test_unknown_top_level_field_or_missing_envelope_is_refused(api: APIClient, invoices: dict[str, Invoice]) -> None:
    payment = {"invoice_id": str(invoices["acme-09"].pk), "amount_cents": 100, "reference": "wire"}
    before = stored()
    assert errors(api.post("/api/v1/payments", {"payment": payment, "extra": 1}, format="json")) == {
        "extra": [NOT_SUPPORTED]
    }
    assert list(errors(api.post("/api/v1/payments", {}, format="json"))) == ["payment"]
    assert "invoice_id" in errors(api.post("/api/v1/payments", payment, format="json"))  # outside the envelope
    assert stored() == before


def test_paying_more_than_is_left_after_a_partial_payment_is_refused(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september = invoices["acme-09"]
    pay(api, september, 30000)
    before = stored()
    details = errors(
        api.post(
            "/api/v1/payments",
            {"payment": {"invoice_id": str(september.pk), "amount_cents": 5501, "reference": "w"}},
            format="json",
        )
    )
    assert details == {"amount_cents": [OVERPAID.format(invoice=september.number, due="55.00", currency="USD")]}
    assert stored() == before
    pay(api, september, 5500)  # exactly what is left is fine
    before = stored()
    details = errors(
        api.post(
            "/api/v1/payments",
            {"payment": {"invoice_id": str(september.pk), "amount_cents": 1, "reference": "w"}},
            format="json",
        )
    )
    assert details == {"amount_cents": [OVERPAID.format(invoice=september.number, due="0.00", currency="USD")]}
    assert stored() == before


def test_paying_a_draft_or_a_voided_invoice_is_refused(api: APIClient, invoices: dict[str, Invoice]) -> None:
    draft, august = invoices["acme-10"], invoices["acme-08"]
    post(api, f"/api/v1/invoices/{august.pk}/void", {})
    before = stored()
    for invoice, status in ((draft, "draft"), (august, "voided")):
        invoice.refresh_from_db()
        details = errors(
            api.post(
                "/api/v1/payments",
                {"payment": {"invoice_id": str(invoice.pk), "amount_cents": 100, "reference": "w"}},
                format="json",
            )
        )
        assert details == {"invoice_id": [NOT_FINALIZED.format(invoice=invoice, status=status)]}
    assert stored() == before


def test_partial_payment_then_put_succeeded_pays_the_rest(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    pay(api, september, 12345)
    response = api.put(f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": "succeeded"}}, format="json")
    assert response.status_code == 200, response.content
    invoice = InvoiceResponse.parse_obj(response.json()["invoice"])
    assert (invoice.total_paid_amount_cents, invoice.total_due_amount_cents) == (35500, 0)
    listed = get(api, "/api/v1/payments", invoice_id=str(september.pk))["payments"]
    assert sorted(p["amount_cents"] for p in listed) == [12345, 35500 - 12345]
    assert {p["reference"] for p in listed} == {"wire", "Marked paid"}


def test_a_payment_settles_only_its_own_invoice(api: APIClient, invoices: dict[str, Invoice]) -> None:
    pay(api, invoices["globex-09"], 6400)
    assert invoice_body(api, invoices["globex-09"])["payment_status"] == "succeeded"
    assert invoice_body(api, invoices["acme-09"])["payment_status"] == "pending"
    assert get(api, "/api/v1/payments", external_customer_id="acme")["payments"] == []


@pytest.mark.parametrize("ref", ["999999", "abc", "-1", "1" * 40])
def test_unknown_payment_is_lagos_404(api: APIClient, invoices: dict[str, Invoice], ref: str) -> None:
    body = get(api, f"/api/v1/payments/{ref}", expect=404)
    assert (body["status"], body["error"], body["code"]) == (404, "Not Found", "payment_not_found")


def test_payments_need_an_api_key(invoices: dict[str, Invoice]) -> None:
    client = APIClient()
    before = stored()
    body = {"payment": {"invoice_id": str(invoices["acme-09"].pk), "amount_cents": 100, "reference": "w"}}
    assert client.post("/api/v1/payments", body, format="json").status_code == 401
    assert client.get("/api/v1/payments").status_code == 401
    assert client.get("/api/v1/payments/1").status_code == 401
    assert stored() == before
