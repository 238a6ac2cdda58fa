"""The credit notes API (DESIGN §6 "Credit notes"): create, estimate, find, find_all with Lago's
filters, update (refund_status, metadata), void, download, the metadata routes, and the credit
consumed by the customer's next invoice.

The invoices are tests/billing/api/test_invoice_actions.py's, read on 2026-11-01 at noon UTC:
acme's August INV-2026-000001 ($120.00 base fee less $54.19 of trial: $65.81), September
INV-2026-000002 ($120.00 base fee + $235.00 of usage: $355.00), an October draft ($120.00);
globex's September ($64.00). Responses are parsed with lago-python-client's CreditNoteResponse,
CreditNoteEstimatedResponse and InvoiceResponse; every refused request is checked to store nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from lago_python_client.client import Client as LagoClient
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.credit_note import CreditNote as LagoCreditNote
from lago_python_client.models.credit_note import (
    CreditNoteEstimate,
    CreditNoteEstimatedResponse,
    CreditNoteResponse,
    CreditNoteUpdate,
)
from lago_python_client.models.invoice import Invoice as LagoInvoice
from lago_python_client.models.invoice import InvoiceResponse
from lago_python_client.models.payment import Payment as LagoPayment
from rest_framework.test import APIClient

from billing.models import CreditNote, CreditStatus, Invoice
from billing.services.credit_notes import (
    ALREADY_VOIDED,
    FEE_TWICE,
    ITEM_NOT_POSITIVE,
    ITEM_TOO_LARGE,
    NO_ITEMS,
    NOT_FINALIZED,
    NOT_REFUNDED,
    OFFSET_TOO_LARGE,
    PARTS_DO_NOT_ADD_UP,
    REFUND_TOO_LARGE,
    UNKNOWN_FEE,
)
from billing.services.period_close import close_periods
from config.api import NOT_AN_INTEGER, NOT_SUPPORTED
from customers.services import api_key_create
from tests.billing.api.test_invoice_actions import (
    NOW,
    fee_ids,
    invoice_body,
    make_invoices,
    open_pdf_link,
    put,
    stored,
)
from tests.helpers import delete, errors, get, post

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]

NEXT_CLOSE = datetime(2026, 11, 2, 1, tzinfo=UTC)  # October's grace is over: its drafts are finalized


@pytest.fixture
def invoices(settings: Any) -> dict[str, Invoice]:
    return make_invoices(settings)


def create_note(
    api: APIClient, invoice: Invoice, items: list[tuple[str, int]], expect: int = 200, **fields: Any
) -> dict[str, Any]:
    """POST /api/v1/credit_notes; the note, checked against lago-python-client's CreditNoteResponse."""
    body = {
        "invoice_id": str(invoice.pk),
        "items": [{"fee_id": fee, "amount_cents": cents} for fee, cents in items],
        **fields,
    }
    note: dict[str, Any] = post(api, "/api/v1/credit_notes", {"credit_note": body}, expect=expect)["credit_note"]
    CreditNoteResponse.parse_obj(note)
    return note


def estimate(api: APIClient, invoice: Invoice, items: list[tuple[str, int]]) -> dict[str, Any]:
    body = {"invoice_id": str(invoice.pk), "items": [{"fee_id": fee, "amount_cents": cents} for fee, cents in items]}
    estimated: dict[str, Any] = post(api, "/api/v1/credit_notes/estimate", {"credit_note": body})[
        "estimated_credit_note"
    ]
    CreditNoteEstimatedResponse.parse_obj(estimated)
    return estimated


def pay(api: APIClient, invoice: Invoice, cents: int) -> None:
    post(api, "/api/v1/payments", {"payment": {"invoice_id": str(invoice.pk), "amount_cents": cents, "reference": "w"}})


def numbers(body: dict[str, Any]) -> set[str]:
    return {note["number"] for note in body["credit_notes"]}


# --- create --------------------------------------------------------------------------------------


def test_a_credit_note_in_lagos_shape(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    fees = fee_ids(api, september)
    note = create_note(
        api,
        september,
        [(fees["subscription"], 5000)],
        reason="order_change",
        description="Seats removed",
        credit_amount_cents=5000,
        metadata={"ticket": "T-1"},
    )

    stored_note = CreditNote.objects.get()
    assert note["lago_id"] == str(stored_note.pk)
    assert (note["number"], note["sequential_id"]) == ("INV-2026-000002-CN1", 1)
    assert (note["lago_invoice_id"], note["invoice_number"]) == (str(september.pk), "INV-2026-000002")
    assert note["issuing_date"] == "2026-11-01"
    assert (note["credit_status"], note["refund_status"]) == ("available", None)
    assert (note["reason"], note["description"], note["currency"]) == ("order_change", "Seats removed", "USD")
    assert {key: note[key] for key in note if key.endswith("_cents")} == {
        "total_amount_cents": 5000,
        "credit_amount_cents": 5000,
        "balance_amount_cents": 5000,
        "refund_amount_cents": 0,
        "offset_amount_cents": 0,
        "taxes_amount_cents": 0,
        "sub_total_excluding_taxes_amount_cents": 5000,
        "coupons_adjustment_amount_cents": 0,
    }
    assert note["file_url"].startswith("http://testserver/documents/")
    assert note["created_at"] == "2026-11-01T12:00:00Z"
    assert note["metadata"] == {"ticket": "T-1"}
    assert note["customer"]["external_id"] == "acme"
    [item] = note["items"]
    assert (item["amount_cents"], item["amount_currency"]) == (5000, "USD")
    assert item["fee"]["lago_id"] == fees["subscription"]
    assert (item["fee"]["item"]["type"], item["fee"]["item"]["code"]) == ("subscription", "team")

    # A credit is the customer's, for later invoices: this invoice's amount due does not move.
    invoice = invoice_body(api, september)
    assert (invoice["total_due_amount_cents"], invoice["credit_notes_amount_cents"]) == (35500, 0)
    assert invoice["payment_status"] == "pending"


def test_the_issuing_date_is_the_customers_day(api: APIClient, invoices: dict[str, Invoice]) -> None:
    globex = invoices["globex-09"]
    with time_machine.travel(datetime(2026, 11, 1, 23, 30, tzinfo=UTC), tick=False):  # Nov 2, 00:30 in Paris
        note = create_note(api, globex, [(fee_ids(api, globex)["subscription"], 1000)], offset_amount_cents=533)
    assert note["issuing_date"] == "2026-11-02"
    assert (
        get(api, "/api/v1/credit_notes", issuing_date_from="2026-11-02")["credit_notes"][0]["number"] == note["number"]
    )


def test_notes_are_numbered_per_invoice(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september, august = invoices["acme-09"], invoices["acme-08"]
    sep_fees, aug_fees = fee_ids(api, september), fee_ids(api, august)
    first = create_note(api, september, [(sep_fees["charge"], 1000)], credit_amount_cents=1000)
    other = create_note(api, august, [(aug_fees["subscription"], 1000)], credit_amount_cents=548)
    second = create_note(api, september, [(sep_fees["charge"], 1000)], credit_amount_cents=1000)
    assert [(n["number"], n["sequential_id"]) for n in (first, other, second)] == [
        ("INV-2026-000002-CN1", 1),
        ("INV-2026-000001-CN1", 1),
        ("INV-2026-000002-CN2", 2),
    ]
    # A voided note keeps its number: the next one does not reuse it.
    put(api, f"/api/v1/credit_notes/{second['lago_id']}/void")
    third = create_note(api, september, [(sep_fees["subscription"], 1000)], credit_amount_cents=1000)
    assert third["number"] == "INV-2026-000002-CN3"


def test_a_discounted_fee_is_credited_net_of_its_discount(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august = invoices["acme-08"]  # base fee 120.00, of which 54.19 was the trial
    base = fee_ids(api, august)["subscription"]
    half = create_note(api, august, [(base, 6000)], credit_amount_cents=3290)
    # 60.00 × 54.19 / 120.00 = 27.095, rounded half up once: 27.10
    assert (half["coupons_adjustment_amount_cents"], half["sub_total_excluding_taxes_amount_cents"]) == (2710, 3290)
    assert half["total_amount_cents"] == 3290
    rest = create_note(api, august, [(base, 6000)], credit_amount_cents=3290)
    assert rest["total_amount_cents"] == 3290
    # Together the notes never credit more than was charged (65.81): a cent of rounding is the most.
    assert half["total_amount_cents"] + rest["total_amount_cents"] <= 6581 + 1


def test_an_offset_reduces_what_is_due_and_may_settle_the_invoice(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    fees = fee_ids(api, september)
    pay(api, september, 10000)
    note = create_note(api, september, [(fees["charge"], 23500)], offset_amount_cents=23500)
    assert (note["offset_amount_cents"], note["credit_amount_cents"], note["balance_amount_cents"]) == (23500, 0, 0)

    invoice = invoice_body(api, september)
    assert invoice["total_offsetted_credit_note_amount_cents"] == 23500
    assert (invoice["total_paid_amount_cents"], invoice["total_due_amount_cents"]) == (10000, 2000)
    assert (
        invoice["total_paid_amount_cents"]
        + invoice["total_offsetted_credit_note_amount_cents"]
        + invoice["total_due_amount_cents"]
        == invoice["total_amount_cents"]
    )
    assert invoice["payment_status"] == "pending"

    # A payment can only take what payments and offsets left due.
    before = stored()
    body = {"invoice_id": str(september.pk), "amount_cents": 2001, "reference": "w"}
    assert list(errors(api.post("/api/v1/payments", {"payment": body}, format="json"))) == ["amount_cents"]
    assert stored() == before

    create_note(api, september, [(fees["subscription"], 2000)], offset_amount_cents=2000)
    settled = invoice_body(api, september)
    assert (settled["total_due_amount_cents"], settled["payment_status"]) == (0, "succeeded")
    assert settled["payment_overdue"] is False


def test_a_refund_and_marking_it_done(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    fees = fee_ids(api, september)
    pay(api, september, 10000)
    note = create_note(
        api, september, [(fees["subscription"], 12000)], refund_amount_cents=10000, credit_amount_cents=2000
    )
    assert (note["refund_amount_cents"], note["refund_status"], note["credit_amount_cents"]) == (10000, "pending", 2000)

    updated = put(api, f"/api/v1/credit_notes/{note['lago_id']}", {"credit_note": {"refund_status": "succeeded"}})
    CreditNoteResponse.parse_obj(updated["credit_note"])
    assert updated["credit_note"]["refund_status"] == "succeeded"
    assert updated["credit_note"]["refunded_at"] == "2026-11-01T12:00:00Z"
    assert CreditNote.objects.get().refund_status == "succeeded"

    # The payment is refunded: nothing is left to refund on the invoice.
    before = stored()
    details = errors(
        api.post(
            "/api/v1/credit_notes",
            {
                "credit_note": {
                    "invoice_id": str(september.pk),
                    "items": [{"fee_id": fees["charge"], "amount_cents": 100}],
                    "refund_amount_cents": 100,
                }
            },
            format="json",
        )
    )
    assert details == {"refund_amount_cents": [REFUND_TOO_LARGE.format(left="0.00")]}
    assert stored() == before


def test_update_metadata_merges_as_lago(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    note = create_note(
        api, september, [(fee_ids(api, september)["charge"], 100)], credit_amount_cents=100, metadata={"a": "1"}
    )
    updated = put(api, f"/api/v1/credit_notes/{note['lago_id']}", {"credit_note": {"metadata": {"b": "2"}}})
    assert updated["credit_note"]["metadata"] == {"a": "1", "b": "2"}
    same = put(api, f"/api/v1/credit_notes/{note['lago_id']}", {"credit_note": {"metadata": None}})
    assert same["credit_note"]["metadata"] == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"refund_status": "succeeded"}, "refund_status", NOT_REFUNDED.format(note="INV-2026-000002-CN1")),
        ({"refund_status": "done"}, "refund_status", None),
        ({"credit_status": "voided"}, "credit_status", NOT_SUPPORTED),
        ({"metadata": {"a": 1}}, "metadata", None),
        ({"metadata": ["a"]}, "metadata", None),
    ],
)
def test_bad_update_is_422_and_changes_nothing(
    api: APIClient, invoices: dict[str, Invoice], body: dict[str, Any], field: str, message: str | None
) -> None:
    september = invoices["acme-09"]
    note = create_note(api, september, [(fee_ids(api, september)["charge"], 100)], credit_amount_cents=100)
    before = stored()
    details = errors(api.put(f"/api/v1/credit_notes/{note['lago_id']}", {"credit_note": body}, format="json"))
    assert list(details) == [field], details
    if message is not None:
        assert details[field] == [message]
    assert stored() == before


# --- refused notes -------------------------------------------------------------------------------


def bad_note_cases() -> list[Any]:
    """(what to send, the field named, the message's start), on September's invoice: fees given as
    "base" / "usage" (September's) and "aug-base" (August's); "paid": after a $300.00 payment
    ($55.00 due). A field of None is a control case: the same request within the limits, accepted."""

    def items(fee: Any, cents: Any, **extra: Any) -> dict[str, Any]:
        return {"items": [{"fee_id": fee, "amount_cents": cents, **extra}]}

    base = {"fee_id": "base", "amount_cents": 5000}
    paid = {"paid": True, "credit_amount_cents": 0}
    case = pytest.param
    return [
        case({"items": []}, "items", NO_ITEMS, id="no-items"),
        case({"items": None}, "items", None, id="items-null"),
        case({"items": [base, base]}, "items.1.fee_id", FEE_TWICE, id="fee-twice"),
        case(items("999999", 5000), "items.0.fee_id", UNKNOWN_FEE, id="fee-unknown"),
        case(items("abc", 5000), "items.0.fee_id", None, id="fee-not-an-id"),
        case(items("aug-base", 5000), "items.0.fee_id", UNKNOWN_FEE, id="fee-of-another-invoice"),
        case(items(3, 5000), "items", None, id="fee-id-a-number"),
        case(items("base", 0), "items.0.amount_cents", ITEM_NOT_POSITIVE, id="item-zero"),
        case(items("base", -1), "items", None, id="item-negative"),
        case(items("base", "5000"), "items", None, id="item-a-string"),
        case(items("base", 50.5), "items", None, id="item-a-float"),
        case(items("base", 12001), "items.0.amount_cents", ITEM_TOO_LARGE, id="item-over-the-fee"),
        case(items("base", 5000, units=1), "items", None, id="item-unknown-field"),
        case({"credit_amount_cents": 4000}, "credit_amount_cents", PARTS_DO_NOT_ADD_UP, id="parts-short"),
        case(
            {"credit_amount_cents": 5000, "offset_amount_cents": 1},
            "credit_amount_cents",
            PARTS_DO_NOT_ADD_UP,
            id="parts-over",
        ),
        case({"credit_amount_cents": 0}, "credit_amount_cents", PARTS_DO_NOT_ADD_UP, id="parts-none"),
        case({"credit_amount_cents": -5000}, "credit_amount_cents", None, id="credit-negative"),
        case({"credit_amount_cents": "5000"}, "credit_amount_cents", NOT_AN_INTEGER, id="credit-a-string"),
        case({"credit_amount_cents": 5000.0}, "credit_amount_cents", NOT_AN_INTEGER, id="credit-a-float"),
        case(
            {"credit_amount_cents": 0, "refund_amount_cents": 5000},
            "refund_amount_cents",
            REFUND_TOO_LARGE,
            id="refund-over-paid",
        ),
        case({**paid, "refund_amount_cents": 5000}, None, None, id="refund-within-paid"),
        case(
            {**paid, **items("usage", 6000), "offset_amount_cents": 5000, "refund_amount_cents": 1000},
            None,
            None,
            id="offset-within-due",
        ),
        case(
            {**paid, **items("usage", 5600), "offset_amount_cents": 5600},
            "offset_amount_cents",
            OFFSET_TOO_LARGE,
            id="offset-over-due",
        ),
        case({"reason": "mistake"}, "reason", None, id="reason-not-lagos"),
        case({"reason": None}, "reason", None, id="reason-null"),
        case({"description": 5}, "description", None, id="description-a-number"),
        case({"metadata": {"a": 1}}, "metadata", None, id="metadata-value-a-number"),
        case({"invoice_id": "999999"}, "invoice_id", None, id="invoice-unknown"),
        case({"invoice_id": "draft"}, "invoice_id", NOT_FINALIZED, id="invoice-draft"),
        case({"invoice_id": "voided"}, "invoice_id", NOT_FINALIZED, id="invoice-voided"),
        case({"total_amount_cents": 5000}, "total_amount_cents", NOT_SUPPORTED, id="unknown-field"),
        case({"envelope-extra": 1}, "extra", NOT_SUPPORTED, id="unknown-top-level-field"),
    ]


@pytest.mark.parametrize(("change", "field", "message"), bad_note_cases())
def test_bad_credit_note_is_422_naming_the_field_and_stores_nothing(
    api: APIClient, invoices: dict[str, Invoice], change: dict[str, Any], field: str | None, message: str | None
) -> None:
    september, august = invoices["acme-09"], invoices["acme-08"]
    fees = fee_ids(api, september)
    names = {
        "base": fees["subscription"],
        "usage": fees["charge"],
        "aug-base": fee_ids(api, august)["subscription"],
    }
    change = dict(change)
    if change.pop("paid", False):
        pay(api, september, 30000)
    post(api, f"/api/v1/invoices/{august.pk}/void", {})  # the voided invoice of "invoice-voided"
    refs = {"draft": str(invoices["acme-10"].pk), "voided": str(august.pk)}
    body: dict[str, Any] = {"invoice_id": str(september.pk), "items": [{"fee_id": "base", "amount_cents": 5000}]}
    body["credit_amount_cents"] = 5000
    body.update({k: v for k, v in change.items() if k != "envelope-extra"})
    if isinstance(body.get("items"), list):
        body["items"] = [
            {**item, "fee_id": names.get(item["fee_id"], item["fee_id"])}
            if isinstance(item.get("fee_id"), str)
            else item
            for item in body["items"]
        ]
    if isinstance(body.get("invoice_id"), str):
        body["invoice_id"] = refs.get(body["invoice_id"], body["invoice_id"])
    envelope: dict[str, Any] = {"credit_note": body}
    if "envelope-extra" in change:
        envelope["extra"] = 1

    before = stored()
    response = api.post("/api/v1/credit_notes", envelope, format="json")
    if field is None:  # the control cases: the same with amounts within the limits
        assert response.status_code == 200, response.content
        return
    details = errors(response)
    assert list(details) == [field], details
    if message is not None:
        prefix = message.split("{")[0]
        assert all(text.startswith(prefix) for text in details[field]), details
    assert stored() == before


def test_only_fees_are_credited_not_discount_lines(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august = invoices["acme-08"]
    trial = august.lines.get(kind="promotion")
    assert str(trial.pk) not in fee_ids(api, august).values()
    before = stored()
    body = {
        "invoice_id": str(august.pk),
        "items": [{"fee_id": str(trial.pk), "amount_cents": 100}],
        "credit_amount_cents": 100,
    }
    details = errors(api.post("/api/v1/credit_notes", {"credit_note": body}, format="json"))
    assert details == {"items.0.fee_id": [UNKNOWN_FEE.format(fee=trial.pk)]}
    assert stored() == before


def test_a_fee_is_credited_at_most_once_in_total(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    base = fee_ids(api, september)["subscription"]
    first = create_note(api, september, [(base, 10000)], credit_amount_cents=10000)
    put(api, f"/api/v1/credit_notes/{first['lago_id']}/void")  # voided notes' items still count, as in Lago
    before = stored()
    body = {
        "invoice_id": str(september.pk),
        "items": [{"fee_id": base, "amount_cents": 2001}],
        "credit_amount_cents": 2001,
    }
    details = errors(api.post("/api/v1/credit_notes", {"credit_note": body}, format="json"))
    assert details == {"items.0.amount_cents": [ITEM_TOO_LARGE.format(fee=base, left="20.00")]}
    assert stored() == before
    assert create_note(api, september, [(base, 2000)], credit_amount_cents=2000)["total_amount_cents"] == 2000


# --- estimate ------------------------------------------------------------------------------------


def test_estimate_says_the_most_that_may_be_credited_refunded_and_offset(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september = invoices["acme-09"]
    fees = fee_ids(api, september)
    pay(api, september, 10000)
    before = stored()
    estimated = estimate(api, september, [(fees["subscription"], 12000), (fees["charge"], 23500)])
    assert stored() == before  # an estimate writes nothing
    assert estimated == {
        "lago_invoice_id": str(september.pk),
        "invoice_number": "INV-2026-000002",
        "currency": "USD",
        "max_creditable_amount_cents": 35500,
        "max_refundable_amount_cents": 10000,
        "max_offsettable_amount_cents": 25500,
        "taxes_amount_cents": 0,
        "taxes_rate": 0.0,
        "sub_total_excluding_taxes_amount_cents": 35500,
        "coupons_adjustment_amount_cents": 0,
        "items": [
            {"amount_cents": 12000, "lago_fee_id": fees["subscription"]},
            {"amount_cents": 23500, "lago_fee_id": fees["charge"]},
        ],
        "applied_taxes": [],
    }
    small = estimate(api, september, [(fees["charge"], 5000)])
    assert (small["max_creditable_amount_cents"], small["max_refundable_amount_cents"]) == (5000, 5000)
    assert small["max_offsettable_amount_cents"] == 5000


def test_estimate_of_a_discounted_fee(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august = invoices["acme-08"]
    estimated = estimate(api, august, [(fee_ids(api, august)["subscription"], 12000)])
    assert estimated["coupons_adjustment_amount_cents"] == 5419
    assert estimated["sub_total_excluding_taxes_amount_cents"] == 6581
    assert (estimated["max_creditable_amount_cents"], estimated["max_refundable_amount_cents"]) == (6581, 0)
    assert estimated["max_offsettable_amount_cents"] == 6581


@pytest.mark.parametrize(
    ("items", "invoice_key", "field"),
    [
        ([("charge", 23501)], "acme-09", "items.0.amount_cents"),
        ([("999999", 100)], "acme-09", "items.0.fee_id"),
        ([], "acme-09", "items"),
        ([("charge", 100)], "acme-10", "invoice_id"),
    ],
)
def test_bad_estimate_is_422_naming_the_field(
    api: APIClient, invoices: dict[str, Invoice], items: list[tuple[str, int]], invoice_key: str, field: str
) -> None:
    fees = fee_ids(api, invoices["acme-09"])
    body = {
        "invoice_id": str(invoices[invoice_key].pk),
        "items": [{"fee_id": fees.get(fee, fee), "amount_cents": cents} for fee, cents in items],
    }
    before = stored()
    details = errors(api.post("/api/v1/credit_notes/estimate", {"credit_note": body}, format="json"))
    assert list(details) == [field], details
    assert stored() == before
    extra = errors(
        api.post("/api/v1/credit_notes/estimate", {"credit_note": {**body, "reason": "other"}}, format="json")
    )
    assert extra == {"reason": [NOT_SUPPORTED]}


# --- find, find_all ------------------------------------------------------------------------------


@pytest.fixture
def three_notes(api: APIClient, invoices: dict[str, Invoice]) -> dict[str, dict[str, Any]]:
    """acme's September: CN1 (credit $10.00, order_change), CN2 (refund $50.00 after a $100.00
    payment, other); globex's September: CN1 (offset $64.00, duplicated_charge)."""
    september, globex = invoices["acme-09"], invoices["globex-09"]
    fees = fee_ids(api, september)
    pay(api, september, 10000)
    return {
        "credit": create_note(
            api, september, [(fees["charge"], 1000)], credit_amount_cents=1000, reason="order_change"
        ),
        "refund": create_note(api, september, [(fees["subscription"], 5000)], refund_amount_cents=5000),
        "offset": create_note(
            api,
            globex,
            [(fee_ids(api, globex)["subscription"], 12000)],
            offset_amount_cents=6400,
            reason="duplicated_charge",
        ),
    }


def test_find_a_credit_note(api: APIClient, three_notes: dict[str, dict[str, Any]]) -> None:
    for note in three_notes.values():
        found = get(api, f"/api/v1/credit_notes/{note['lago_id']}")["credit_note"]
        CreditNoteResponse.parse_obj(found)
        assert found == note
    downloaded = post(api, f"/api/v1/credit_notes/{three_notes['credit']['lago_id']}/download", {})["credit_note"]
    assert downloaded["lago_id"] == three_notes["credit"]["lago_id"]


def test_find_all_newest_first_with_lagos_filters(
    api: APIClient, invoices: dict[str, Invoice], three_notes: dict[str, dict[str, Any]]
) -> None:
    cn = {key: note["number"] for key, note in three_notes.items()}
    everything = get(api, "/api/v1/credit_notes")
    assert [n["number"] for n in everything["credit_notes"]] == [cn["offset"], cn["refund"], cn["credit"]]
    assert everything["meta"]["total_count"] == 3
    for note in everything["credit_notes"]:
        CreditNoteResponse.parse_obj(note)

    def found(**params: Any) -> set[str]:
        return numbers(get(api, "/api/v1/credit_notes", **params))

    assert found(external_customer_id="acme") == {cn["credit"], cn["refund"]}
    assert found(external_customer_id="nobody") == set()
    assert found(invoice_id=str(invoices["globex-09"].pk)) == {cn["offset"]}
    assert found(invoice_number="INV-2026-000002") == {cn["credit"], cn["refund"]}
    assert found(currency="USD") == set(cn.values())
    assert found(currency="EUR") == set()
    assert found(reason="order_change") == {cn["credit"]}
    assert found(**{"reason[]": ["order_change", "duplicated_charge"]}) == {cn["credit"], cn["offset"]}
    assert found(credit_status="available") == set(cn.values())
    assert found(refund_status="pending") == {cn["refund"]}
    assert found(types="credit") == {cn["credit"]}
    assert found(types="refund") == {cn["refund"]}
    assert found(types="offset") == {cn["offset"]}
    assert found(**{"types[]": ["credit", "offset"]}) == {cn["credit"], cn["offset"]}
    assert found(amount_from="5000") == {cn["refund"], cn["offset"]}
    assert found(amount_from="1000", amount_to="5000") == {cn["credit"], cn["refund"]}
    assert found(amount_to="999") == set()
    assert found(issuing_date_from="2026-11-01", issuing_date_to="2026-11-01") == set(cn.values())
    assert found(issuing_date_from="2026-11-02") == set()
    assert found(search_term="globex") == {cn["offset"]}
    assert found(search_term="-cn2") == {cn["refund"]}
    assert found(self_billed="false") == set(cn.values())
    assert found(self_billed="true") == set()
    paged = get(api, "/api/v1/credit_notes", per_page=2, page=2)
    assert numbers(paged) == {cn["credit"]}
    assert paged["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1, "total_pages": 2, "total_count": 3}


@pytest.mark.parametrize(
    "params",
    [
        {"credit_status": "gone"},
        {"refund_status": "done"},
        {"reason": "mistake"},
        {"types": "discount"},
        {"invoice_id": "abc"},
        {"issuing_date_from": "2026-13-01"},
        {"amount_from": "-1"},
        {"amount_to": "ten"},
        {"self_billed": "maybe"},
        {"page": "0"},
    ],
)
def test_bad_list_filter_is_422_naming_it(
    api: APIClient, three_notes: dict[str, dict[str, Any]], params: dict[str, str]
) -> None:
    assert list(get(api, "/api/v1/credit_notes", expect=422, **params)["error_details"]) == list(params)


# --- void ----------------------------------------------------------------------------------------


def test_void_voids_what_is_left_of_the_credit(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    note = create_note(api, september, [(fee_ids(api, september)["charge"], 5000)], credit_amount_cents=5000)
    voided = put(api, f"/api/v1/credit_notes/{note['lago_id']}/void")["credit_note"]
    CreditNoteResponse.parse_obj(voided)
    assert (voided["credit_status"], voided["balance_amount_cents"]) == ("voided", 0)
    assert voided["voided_at"] == "2026-11-01T12:00:00Z"
    assert (voided["credit_amount_cents"], voided["total_amount_cents"]) == (5000, 5000)  # what it was stays

    before = stored()
    details = errors(api.put(f"/api/v1/credit_notes/{note['lago_id']}/void"))
    assert details == {"credit_status": [ALREADY_VOIDED.format(note=note["number"])]}
    assert stored() == before


# --- the credit, consumed by the next invoice ----------------------------------------------------


def test_the_next_invoice_consumes_the_credit_and_voiding_it_gives_it_back(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september, october = invoices["acme-09"], invoices["acme-10"]
    note = create_note(api, september, [(fee_ids(api, september)["charge"], 5000)], credit_amount_cents=5000)

    # The draft shows what it would consume once refreshed; nothing moves until it is finalized.
    draft = put(api, f"/api/v1/invoices/{october.pk}/refresh")["invoice"]
    assert (draft["credit_notes_amount_cents"], draft["total_amount_cents"]) == (5000, 7000)
    assert get(api, f"/api/v1/credit_notes/{note['lago_id']}")["credit_note"]["balance_amount_cents"] == 5000

    close_periods(now=NEXT_CLOSE)

    body = invoice_body(api, october)
    assert body["status"] == "finalized"
    assert (body["fees_amount_cents"], body["credit_notes_amount_cents"], body["total_amount_cents"]) == (
        12000,
        5000,
        7000,
    )
    assert body["total_due_amount_cents"] == 7000
    [credit] = body["credits"]
    assert (credit["amount_cents"], credit["before_taxes"]) == (5000, False)
    assert (credit["item"]["type"], credit["item"]["lago_item_id"]) == ("credit_note", note["lago_id"])
    consumed = get(api, f"/api/v1/credit_notes/{note['lago_id']}")["credit_note"]
    assert (consumed["balance_amount_cents"], consumed["credit_status"]) == (0, "consumed")
    assert numbers(get(api, "/api/v1/credit_notes", credit_status="consumed")) == {note["number"]}

    voided = post(api, f"/api/v1/invoices/{october.pk}/void", {})["invoice"]
    InvoiceResponse.parse_obj(voided)
    assert voided["status"] == "voided"
    back = get(api, f"/api/v1/credit_notes/{note['lago_id']}")["credit_note"]
    assert (back["balance_amount_cents"], back["credit_status"]) == (5000, "available")


def test_a_credit_larger_than_the_next_invoice_is_consumed_in_part(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september, october = invoices["acme-09"], invoices["acme-10"]
    note = create_note(api, september, [(fee_ids(api, september)["charge"], 20000)], credit_amount_cents=20000)
    body = put(api, f"/api/v1/invoices/{october.pk}/finalize")["invoice"]
    InvoiceResponse.parse_obj(body)
    assert (body["credit_notes_amount_cents"], body["total_amount_cents"], body["total_due_amount_cents"]) == (
        12000,
        0,
        0,
    )
    assert body["payment_status"] == "succeeded"  # an invoice of 0.00 is settled at once
    left = get(api, f"/api/v1/credit_notes/{note['lago_id']}")["credit_note"]
    assert (left["balance_amount_cents"], left["credit_status"]) == (8000, "available")


def test_credit_is_consumed_oldest_note_first(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september, august, october = invoices["acme-09"], invoices["acme-08"], invoices["acme-10"]
    older = create_note(api, september, [(fee_ids(api, september)["charge"], 9000)], credit_amount_cents=9000)
    newer = create_note(api, august, [(fee_ids(api, august)["subscription"], 12000)], credit_amount_cents=6581)
    close_periods(now=NEXT_CLOSE)
    body = invoice_body(api, october)
    assert (body["credit_notes_amount_cents"], body["total_amount_cents"]) == (12000, 0)
    assert [(c["item"]["lago_item_id"], c["amount_cents"]) for c in body["credits"]] == [
        (older["lago_id"], 9000),
        (newer["lago_id"], 3000),
    ]
    left = {n["lago_id"]: n for n in get(api, "/api/v1/credit_notes")["credit_notes"]}
    assert (left[older["lago_id"]]["balance_amount_cents"], left[older["lago_id"]]["credit_status"]) == (0, "consumed")
    assert (left[newer["lago_id"]]["balance_amount_cents"], left[newer["lago_id"]]["credit_status"]) == (
        3581,
        "available",
    )


def test_a_voided_note_gives_no_credit(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september, october = invoices["acme-09"], invoices["acme-10"]
    note = create_note(api, september, [(fee_ids(api, september)["charge"], 5000)], credit_amount_cents=5000)
    put(api, f"/api/v1/credit_notes/{note['lago_id']}/void")
    close_periods(now=NEXT_CLOSE)
    body = invoice_body(api, october)
    assert (body["credit_notes_amount_cents"], body["total_amount_cents"]) == (0, 12000)


def test_another_customers_credit_is_not_consumed(api: APIClient, invoices: dict[str, Invoice]) -> None:
    globex = invoices["globex-09"]
    create_note(api, globex, [(fee_ids(api, globex)["subscription"], 12000)], credit_amount_cents=6400)
    close_periods(now=NEXT_CLOSE)
    assert invoice_body(api, invoices["acme-10"])["credit_notes_amount_cents"] == 0
    assert invoice_body(api, invoices["globex-10"])["credit_notes_amount_cents"] == 6400


def test_a_consumed_note_cannot_be_voided(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    note = create_note(api, september, [(fee_ids(api, september)["charge"], 5000)], credit_amount_cents=5000)
    close_periods(now=NEXT_CLOSE)
    assert CreditNote.objects.get().credit_status == CreditStatus.CONSUMED
    before = stored()
    response = api.put(f"/api/v1/credit_notes/{note['lago_id']}/void")
    assert response.status_code == 422, response.content
    assert list(response.json()["error_details"]) == ["balance_amount_cents"]
    assert stored() == before


# --- metadata routes -----------------------------------------------------------------------------


def test_metadata_routes(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    note = create_note(api, september, [(fee_ids(api, september)["charge"], 100)], credit_amount_cents=100)
    path = f"/api/v1/credit_notes/{note['lago_id']}/metadata"

    assert post(api, path, {"metadata": {"a": "1", "b": "2"}}) == {"metadata": {"a": "1", "b": "2"}}
    assert post(api, path, {"metadata": {"c": "3"}}) == {"metadata": {"c": "3"}}  # POST replaces
    merged = api.patch(path, {"metadata": {"d": None, "c": "4"}}, format="json")
    assert merged.json() == {"metadata": {"c": "4", "d": None}}  # PATCH merges
    assert api.patch(path, {}, format="json").json() == {"metadata": {"c": "4", "d": None}}
    assert delete(api, f"{path}/c") == {"metadata": {"d": None}}
    assert delete(api, f"{path}/nothing") == {"metadata": {"d": None}}  # as Lago: no such key, no change
    assert delete(api, path) == {"metadata": {}}
    assert delete(api, f"{path}/d", expect=404)["code"] == "metadata_not_found"
    assert get(api, f"/api/v1/credit_notes/{note['lago_id']}")["credit_note"]["metadata"] == {}
    assert post(api, path, {}) == {"metadata": {}}

    before = stored()
    assert list(errors(api.post(path, {"metadata": {"a": 1}}, format="json"))) == ["metadata"]
    assert list(errors(api.patch(path, {"metadata": "a"}, format="json"))) == ["metadata"]
    assert errors(api.post(path, {"metadata": {}, "extra": 1}, format="json")) == {"extra": [NOT_SUPPORTED]}
    assert stored() == before


# --- download ------------------------------------------------------------------------------------


def test_download_answers_a_file_url_serving_the_pdf_without_a_key(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september = invoices["acme-09"]
    note = create_note(api, september, [(fee_ids(api, september)["charge"], 4000)], credit_amount_cents=4000)
    body = post(api, f"/api/v1/credit_notes/{note['lago_id']}/download", {})["credit_note"]
    CreditNoteResponse.parse_obj(body)
    assert body["file_url"].startswith("http://testserver/documents/")
    response = open_pdf_link(body["file_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="INV-2026-000002-CN1.pdf"'
    assert response.content.startswith(b"%PDF-")


# --- not found, unauthenticated ------------------------------------------------------------------

ROUTES = [
    ("get", ""),
    ("put", ""),
    ("put", "/void"),
    ("post", "/download"),
    ("post", "/metadata"),
    ("patch", "/metadata"),
    ("delete", "/metadata"),
    ("delete", "/metadata/key"),
]


@pytest.mark.parametrize(("method", "suffix"), ROUTES)
@pytest.mark.parametrize("ref", ["999999", "abc"])
def test_an_unknown_credit_note_is_lagos_404(
    api: APIClient, invoices: dict[str, Invoice], method: str, suffix: str, ref: str
) -> None:
    response = getattr(api, method)(f"/api/v1/credit_notes/{ref}{suffix}", {"metadata": {"a": "b"}}, format="json")
    assert response.status_code == 404, response.content
    body = response.json()
    assert (body["status"], body["error"], body["code"]) == (404, "Not Found", "credit_note_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        *((method, f"/api/v1/credit_notes/1{suffix}") for method, suffix in ROUTES),
        ("get", "/api/v1/credit_notes"),
        ("post", "/api/v1/credit_notes"),
        ("post", "/api/v1/credit_notes/estimate"),
    ],
)
def test_credit_notes_need_an_api_key(invoices: dict[str, Invoice], method: str, path: str) -> None:
    before = stored()
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert stored() == before


# --- Lago's SDK, end to end ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_lagos_sdk_drives_payments_invoices_and_credit_notes(live_server: Any, settings: Any) -> None:
    """lago-python-client 1.55, unmodified, over HTTP: every route these tests cover, as it calls them."""
    invoices = make_invoices(settings)
    _, key = api_key_create(name="lago sdk")
    # Any: the SDK's mixins type `self` in a way mypy cannot match to its clients.
    lago: Any = LagoClient(api_key=key, api_url=live_server.url)
    september, october = invoices["acme-09"], invoices["acme-10"]

    payment = lago.payments.create(
        LagoPayment.parse_obj({"invoice_id": str(september.pk), "amount_cents": 10000, "reference": "wire"})
    )
    assert payment is not None and payment.amount_cents == 10000
    assert lago.payments.find(payment.lago_id).invoice_ids == [str(september.pk)]
    assert [p.lago_id for p in lago.payments.find_all({"invoice_id": str(september.pk)})["payments"]] == [
        payment.lago_id
    ]
    with pytest.raises(LagoApiError) as refused:
        lago.payments.create(
            LagoPayment.parse_obj({"invoice_id": str(september.pk), "amount_cents": 99999, "reference": "too much"})
        )
    assert refused.value.status_code == 422
    assert list(refused.value.response["error_details"]) == ["amount_cents"]

    tagged = lago.invoices.update(
        LagoInvoice.parse_obj({"metadata": [{"key": "po", "value": "42"}]}), str(september.pk)
    )
    assert [(m.key, m.value) for m in tagged.metadata.__root__] == [("po", "42")]
    assert lago.invoices.download(str(september.pk)).file_url.startswith(live_server.url)

    fees = {fee.item.type: fee.lago_id for fee in lago.invoices.find(str(september.pk)).fees.__root__}
    items = [{"fee_id": fees["subscription"], "amount_cents": 12000}]
    estimated = lago.credit_notes.estimate(
        CreditNoteEstimate.parse_obj({"invoice_id": str(september.pk), "items": items})
    )
    assert (estimated.max_creditable_amount_cents, estimated.max_refundable_amount_cents) == (12000, 10000)

    note = lago.credit_notes.create(
        LagoCreditNote.parse_obj(
            {
                "invoice_id": str(september.pk),
                "reason": "order_change",
                "credit_amount_cents": 2000,
                "refund_amount_cents": 10000,
                "items": items,
                "metadata": {"ticket": "T-1"},
            }
        )
    )
    assert note is not None
    assert (note.number, note.total_amount_cents, note.refund_status) == ("INV-2026-000002-CN1", 12000, "pending")
    assert lago.credit_notes.find(note.lago_id).lago_id == note.lago_id
    assert [n.lago_id for n in lago.credit_notes.find_all({"types": ["refund", "offset"]})["credit_notes"]] == [
        note.lago_id
    ]
    refunded = lago.credit_notes.update(CreditNoteUpdate.parse_obj({"refund_status": "succeeded"}), note.lago_id)
    assert refunded.refund_status == "succeeded"
    assert lago.credit_notes.replace_metadata(note.lago_id, {"a": "1"}) == {"a": "1"}
    assert lago.credit_notes.merge_metadata(note.lago_id, {"b": None}) == {"a": "1", "b": None}
    assert lago.credit_notes.delete_metadata_key(note.lago_id, "a") == {"b": None}
    assert lago.credit_notes.delete_all_metadata(note.lago_id) == {}
    assert lago.credit_notes.download(note.lago_id).file_url.startswith(live_server.url)

    refreshed = lago.invoices.refresh(str(october.pk))
    assert (refreshed.status, refreshed.credit_notes_amount_cents, refreshed.total_amount_cents) == (
        "draft",
        2000,
        10000,
    )
    finalized = lago.invoices.finalize(str(october.pk))
    assert (finalized.status, finalized.total_amount_cents) == ("finalized", 10000)
    assert lago.credit_notes.find(note.lago_id).credit_status == "consumed"
    voided = lago.invoices.void(str(october.pk))
    assert voided.status == "voided"
    assert lago.credit_notes.find(note.lago_id).balance_amount_cents == 2000
    assert lago.credit_notes.void(note.lago_id).credit_status == "voided"

    august = lago.invoices.void_invoice(
        str(invoices["acme-08"].pk), {"generate_credit_note": True, "credit_amount": 1000}
    )
    assert august.status == "voided"
    assert [n.number for n in lago.credit_notes.find_all({"invoice_number": "INV-2026-000001"})["credit_notes"]] == [
        "INV-2026-000001-CN1"
    ]
    paid = lago.invoices.update(LagoInvoice.parse_obj({"payment_status": "succeeded"}), str(september.pk))
    assert (paid.payment_status, paid.total_due_amount_cents) == ("succeeded", 0)
