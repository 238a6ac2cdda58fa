"""The invoice actions of the API (DESIGN §6): PUT /invoices/<id> (payment_status, metadata),
PUT …/finalize and …/refresh, POST …/void (with generate_credit_note) and …/download, and the
list's filters payment_status, invoice_type and payment_overdue.

The invoices are made as tests/billing/api/test_invoices.py makes them: the Team plan scaled down a
hundredfold (tests.factories.scaled_team_plan: tiers end at 100, 250 and 1,000 MTUs at $1.20,
$1.10 and $1.00, so September's $355.00 needs 300 users) with its 14-day trial on the base fee,
closed by close_periods with a 24 h grace period, and read on 2026-11-01 at noon UTC:
- acme (UTC, the default payment term of 0 days) since Aug 1: August (base fee less the trial,
  $65.81, due 2026-09-02), September ($355.00, due 2026-10-02), October a draft ($120.00);
- globex (Europe/Paris, net_payment_term 60) since Sep 1: September ($64.00: 14 of 30 days
  free, due 2026-12-01), October a draft.
Every refused request is checked to store nothing (`stored()` before and after).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import Client
from lago_python_client.models.invoice import InvoiceResponse
from rest_framework.test import APIClient

from billing.documents.links import UNAVAILABLE_STATUS
from billing.models import (
    CreditApplication,
    CreditNote,
    CreditNoteItem,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    Plan,
    Subscription,
)
from billing.services.invoices import CANNOT_VOID, NOT_A_DRAFT, VOID_PAID
from billing.services.payments import MARKED_PAID, NOTHING_DUE
from billing.services.period_close import close_periods
from customers.models import Customer
from metering.days import local_date
from tests.factories import scaled_team_plan, store_users
from tests.helpers import errors, get, post

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


# --- the invoices ---------------------------------------------------------------------------------


def subscribe(customer: Customer, plan: Plan, external_id: str, at: datetime) -> Subscription:
    """A calendar-billed subscription with the plan's promotion, as SubscriptionFactory makes it."""
    return Subscription.objects.create(
        customer=customer, plan=plan, external_id=external_id, subscription_at=at, promotion=plan.promotion
    )


def make_invoices(settings: Any) -> dict[str, Invoice]:
    """The invoices of the module docstring, keyed "<customer>-<month of the period's start>"."""
    settings.BILLING_GRACE_PERIOD_HOURS = 24
    plan = scaled_team_plan()
    acme = Customer.objects.create(external_id="acme", name="Acme", email="acme@example.com")
    globex = Customer.objects.create(
        external_id="globex", name="Globex", email="globex@example.com", timezone="Europe/Paris", net_payment_term=60
    )
    subscribe(acme, plan, "acme-team", datetime(2026, 8, 1, tzinfo=UTC))
    subscribe(globex, plan, "globex-team", datetime(2026, 8, 31, 22, tzinfo=UTC))  # Sep 1, Paris
    store_users(acme, range(300), datetime(2026, 9, 20, tzinfo=UTC), "sep")
    close_periods(now=datetime(2026, 9, 2, 1, tzinfo=UTC))  # August, after its grace
    close_periods(now=datetime(2026, 10, 2, 1, tzinfo=UTC))  # September
    close_periods(now=datetime(2026, 11, 1, 1, tzinfo=UTC))  # October: drafts inside the grace
    by_key = {
        f"{inv.customer.external_id}-{local_date(inv.period_start, inv.customer.timezone):%m}": inv
        for inv in Invoice.objects.select_related("customer")
    }
    assert sorted(by_key) == ["acme-08", "acme-09", "acme-10", "globex-09", "globex-10"]
    assert [by_key[k].total for k in sorted(by_key)] == [
        Decimal("65.81"),
        Decimal("355.00"),
        Decimal("120.00"),
        Decimal("64.00"),
        Decimal("120.00"),
    ]
    return by_key


@pytest.fixture
def invoices(settings: Any) -> dict[str, Invoice]:
    return make_invoices(settings)


def invoice_body(api: APIClient, invoice: Invoice) -> dict[str, Any]:
    """GET /api/v1/invoices/<id>, checked against lago-python-client's InvoiceResponse."""
    body: dict[str, Any] = get(api, f"/api/v1/invoices/{invoice.pk}")["invoice"]
    InvoiceResponse.parse_obj(body)
    return body


def fee_ids(api: APIClient, invoice: Invoice) -> dict[str, str]:
    """The invoice's fees' lago_ids by Lago item type ("subscription": base fee, "charge": usage)."""
    return {fee["item"]["type"]: fee["lago_id"] for fee in invoice_body(api, invoice)["fees"]}


def stored() -> dict[str, list[Any]]:
    """Every row a payment, credit note or invoice action could write, to compare before and after."""
    return {
        "payments": list(Payment.objects.order_by("id").values()),
        "credit_notes": list(CreditNote.objects.order_by("id").values()),
        "credit_note_items": list(CreditNoteItem.objects.order_by("id").values()),
        "credit_applications": list(CreditApplication.objects.order_by("id").values()),
        "invoices": list(Invoice.objects.order_by("id").values()),
        "invoice_lines": list(InvoiceLine.objects.order_by("id").values()),
    }


def put(api: APIClient, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> dict[str, Any]:
    response = api.put(path, body, format="json")
    assert response.status_code == expect, response.content
    parsed: dict[str, Any] = response.json()
    return parsed


def ids(body: dict[str, Any]) -> set[str]:
    return {inv["lago_id"] for inv in body["invoices"]}


def open_pdf_link(url: str) -> Any:
    """GET a file_url as anyone holding it would (no key, no login); skips the test when this
    machine cannot make PDFs (WeasyPrint or its system libraries missing: the link answers 503)."""
    response = Client().get(url)
    if response.status_code == UNAVAILABLE_STATUS:
        pytest.skip(f"no PDFs on this machine: {response.content.decode()[:200]}")
    return response


# --- PUT /invoices/<id>: payment_status ---------------------------------------------------------


def test_put_payment_status_succeeded_pays_what_is_left_with_a_marked_paid_payment(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september = invoices["acme-09"]
    post(
        api,
        "/api/v1/payments",
        {"payment": {"invoice_id": str(september.pk), "amount_cents": 10000, "reference": "wire-1"}},
    )

    body = put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": "succeeded"}})["invoice"]

    InvoiceResponse.parse_obj(body)
    assert (body["status"], body["payment_status"]) == ("finalized", "succeeded")
    assert (body["total_paid_amount_cents"], body["total_due_amount_cents"]) == (35500, 0)
    assert body["payment_overdue"] is False
    assert body["paid_at"] == "2026-11-01T12:00:00Z"
    payments = list(Payment.objects.filter(invoice=september).order_by("id"))
    assert [(p.amount, p.reference) for p in payments] == [
        (Decimal("100.00"), "wire-1"),
        (Decimal("255.00"), MARKED_PAID),
    ]
    assert payments[1].paid_at == NOW
    listed = get(api, "/api/v1/payments", invoice_id=str(september.pk))["payments"]
    assert {(p["amount_cents"], p["reference"]) for p in listed} == {(10000, "wire-1"), (25500, MARKED_PAID)}


def test_put_payment_status_succeeded_on_a_paid_invoice_changes_nothing(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september = invoices["acme-09"]
    put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": "succeeded"}})
    before = stored()
    body = put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": "succeeded"}})["invoice"]
    assert body["payment_status"] == "succeeded"
    assert stored() == before


@pytest.mark.parametrize("status", ["failed", "pending"])
def test_put_payment_status_failed_or_pending_records_no_payment(
    api: APIClient, invoices: dict[str, Invoice], status: str
) -> None:
    september = invoices["acme-09"]
    put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": "failed"}})
    body = put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": status}})["invoice"]
    InvoiceResponse.parse_obj(body)
    assert body["payment_status"] == status
    assert (body["total_paid_amount_cents"], body["total_due_amount_cents"]) == (0, 35500)
    assert body["payment_overdue"] is True
    assert not Payment.objects.exists()
    assert Invoice.objects.get(pk=september.pk).payment_status == status


def test_put_payment_status_failed_on_a_paid_invoice_is_refused(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": "succeeded"}})
    before = stored()
    response = api.put(f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": "failed"}}, format="json")
    assert errors(response) == {"payment_status": [NOTHING_DUE.format(invoice=september.number)]}
    assert stored() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"invoice": {"payment_status": "paid"}}, "payment_status"),
        ({"invoice": {"payment_status": 1}}, "payment_status"),
        ({"invoice": {"status": "voided"}}, "status"),
        ({"invoice": {"total_amount_cents": 1}}, "total_amount_cents"),
        ({"invoice": {"metadata": [{"key": "po"}]}}, "metadata"),
        ({"invoice": {"metadata": [{"key": "po", "value": "1", "display_in_invoice": True}]}}, "metadata"),
        ({"invoice": {"metadata": {"po": "1"}}}, "metadata"),
        ({"invoice": {"metadata": [None]}}, "metadata"),
        ({"invoice": {"payment_status": "succeeded"}, "extra": 1}, "extra"),
        ({"payment_status": "succeeded"}, "payment_status"),  # outside the "invoice" envelope
        ({"invoice": {"metadata": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}}, "metadata"),
    ],
)
def test_put_invoice_bad_input_is_422_naming_the_field_and_changes_nothing(
    api: APIClient, invoices: dict[str, Invoice], body: dict[str, Any], field: str
) -> None:
    before = stored()
    details = errors(api.put(f"/api/v1/invoices/{invoices['acme-09'].pk}", body, format="json"))
    assert field in details, details
    assert stored() == before


@pytest.mark.parametrize("key", ["acme-10", "voided"])
def test_put_payment_status_on_a_draft_or_voided_invoice_is_refused(
    api: APIClient, invoices: dict[str, Invoice], key: str
) -> None:
    if key == "voided":
        post(api, f"/api/v1/invoices/{invoices['acme-08'].pk}/void", {})
        invoice = invoices["acme-08"]
    else:
        invoice = invoices[key]
    before = stored()
    response = api.put(f"/api/v1/invoices/{invoice.pk}", {"invoice": {"payment_status": "succeeded"}}, format="json")
    assert list(errors(response)) == ["payment_status"]
    assert stored() == before


def test_put_metadata_replaces_it_and_is_returned(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    metadata = [{"key": "po_number", "value": "PO-42"}, {"key": "cost_center", "value": None}]
    body = put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"metadata": metadata}})["invoice"]
    InvoiceResponse.parse_obj(body)
    assert [(m["key"], m["value"]) for m in body["metadata"]] == [("po_number", "PO-42"), ("cost_center", None)]
    assert all(m["id"] for m in body["metadata"])
    assert body["payment_status"] == "pending"  # metadata alone does not touch the payment

    replaced = put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"metadata": [{"key": "a", "value": "b"}]}})
    assert [(m["key"], m["value"]) for m in replaced["invoice"]["metadata"]] == [("a", "b")]
    assert invoice_body(api, september)["metadata"] == replaced["invoice"]["metadata"]
    # A draft's metadata may change too (it is not part of its amounts).
    draft = put(api, f"/api/v1/invoices/{invoices['acme-10'].pk}", {"invoice": {"metadata": metadata[:1]}})
    assert draft["invoice"]["status"] == "draft"


def test_put_payment_status_and_metadata_at_once(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august = invoices["acme-08"]
    body = put(
        api,
        f"/api/v1/invoices/{august.pk}",
        {"invoice": {"payment_status": "succeeded", "metadata": [{"key": "k", "value": "v"}]}},
    )["invoice"]
    assert body["payment_status"] == "succeeded"
    assert [(m["key"], m["value"]) for m in body["metadata"]] == [("k", "v")]


# --- finalize and refresh -----------------------------------------------------------------------


def test_finalize_numbers_a_draft_and_sets_its_payment_terms(api: APIClient, invoices: dict[str, Invoice]) -> None:
    draft = invoices["globex-10"]
    body = put(api, f"/api/v1/invoices/{draft.pk}/finalize")["invoice"]
    InvoiceResponse.parse_obj(body)
    assert body["status"] == "finalized"
    assert body["number"].startswith("INV-2026-")
    assert body["issuing_date"] == "2026-11-01"  # 13:00 in Paris
    assert body["net_payment_term"] == 60
    assert body["payment_due_date"] == "2026-12-31"
    assert (body["payment_status"], body["payment_overdue"]) == ("pending", False)
    assert (body["total_amount_cents"], body["total_due_amount_cents"], body["total_paid_amount_cents"]) == (
        12000,
        12000,
        0,
    )
    assert body["file_url"]
    assert body["finalized_at"] == "2026-11-01T12:00:00Z"


def test_finalize_twice_is_refused_and_changes_nothing(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    before = stored()
    details = errors(api.put(f"/api/v1/invoices/{september.pk}/finalize"))
    assert details == {"status": [NOT_A_DRAFT.format(invoice=september.number, status="finalized")]}
    assert stored() == before


def test_refresh_recomputes_a_draft_from_the_events_stored_now(api: APIClient, invoices: dict[str, Invoice]) -> None:
    draft = invoices["acme-10"]
    assert invoice_body(api, draft)["total_amount_cents"] == 12000
    store_users(draft.customer, range(150), datetime(2026, 10, 20, tzinfo=UTC), "oct")  # 50 × $1.20

    body = put(api, f"/api/v1/invoices/{draft.pk}/refresh")["invoice"]

    InvoiceResponse.parse_obj(body)
    assert (body["status"], body["number"]) == ("draft", f"DRAFT-{draft.pk}")
    assert (body["fees_amount_cents"], body["total_amount_cents"]) == (18000, 18000)
    assert {fee["item"]["type"]: fee["amount_cents"] for fee in body["fees"]} == {"subscription": 12000, "charge": 6000}
    assert body["file_url"] is None  # a draft has no document
    assert Invoice.objects.get(pk=draft.pk).total == Decimal("180.00")


def test_refresh_of_a_finalized_invoice_is_refused(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    before = stored()
    details = errors(api.put(f"/api/v1/invoices/{september.pk}/refresh"))
    assert details == {"status": [NOT_A_DRAFT.format(invoice=september.number, status="finalized")]}
    assert stored() == before


# --- void ------------------------------------------------------------------------------------------


def test_void_an_invoice_with_nothing_paid(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august = invoices["acme-08"]
    body = post(api, f"/api/v1/invoices/{august.pk}/void", {})["invoice"]
    InvoiceResponse.parse_obj(body)
    assert body["status"] == "voided"
    assert body["voided_at"] == "2026-11-01T12:00:00Z"
    assert (body["total_amount_cents"], body["total_due_amount_cents"]) == (6581, 0)
    assert body["payment_overdue"] is False
    assert body["void_reason"] == "Voided through the API"
    assert not CreditNote.objects.exists()


def test_void_without_a_body_as_the_sdk_sends_it(api: APIClient, invoices: dict[str, Invoice]) -> None:
    response = api.post(f"/api/v1/invoices/{invoices['acme-08'].pk}/void")
    assert response.status_code == 200, response.content
    assert response.json()["invoice"]["status"] == "voided"


def test_void_twice_or_a_draft_is_refused(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august, draft = invoices["acme-08"], invoices["acme-10"]
    post(api, f"/api/v1/invoices/{august.pk}/void", {})
    before = stored()
    assert errors(api.post(f"/api/v1/invoices/{august.pk}/void", {}, format="json")) == {
        "status": [CANNOT_VOID.format(invoice=august.number, status="voided")]
    }
    assert errors(api.post(f"/api/v1/invoices/{draft.pk}/void", {}, format="json")) == {
        "status": [CANNOT_VOID.format(invoice=draft, status="draft")]
    }
    assert stored() == before


def test_void_with_a_payment_needs_a_credit_note(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    post(
        api, "/api/v1/payments", {"payment": {"invoice_id": str(september.pk), "amount_cents": 10000, "reference": "w"}}
    )
    before = stored()
    for body in ({}, {"generate_credit_note": False}, {"generate_credit_note": True}):
        details = errors(api.post(f"/api/v1/invoices/{september.pk}/void", body, format="json"))
        assert details == {"invoice": [VOID_PAID.format(invoice=september.number)]}
    assert stored() == before


def test_void_with_a_live_credit_note_needs_a_credit_note(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august = invoices["acme-08"]
    base = fee_ids(api, august)["subscription"]
    note = post(
        api,
        "/api/v1/credit_notes",
        {
            "credit_note": {
                "invoice_id": str(august.pk),
                "items": [{"fee_id": base, "amount_cents": 1000}],
                "credit_amount_cents": 548,
            }
        },
    )["credit_note"]
    before = stored()
    details = errors(api.post(f"/api/v1/invoices/{august.pk}/void", {}, format="json"))
    assert details == {"invoice": [VOID_PAID.format(invoice=august.number)]}
    assert stored() == before
    # Once the note is voided nothing stands in the way.
    put(api, f"/api/v1/credit_notes/{note['lago_id']}/void")
    assert post(api, f"/api/v1/invoices/{august.pk}/void", {})["invoice"]["status"] == "voided"


def test_void_with_generate_credit_note_issues_it_and_voids(api: APIClient, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    post(
        api, "/api/v1/payments", {"payment": {"invoice_id": str(september.pk), "amount_cents": 10000, "reference": "w"}}
    )

    body = post(
        api,
        f"/api/v1/invoices/{september.pk}/void",
        {"generate_credit_note": True, "credit_amount": 25500, "refund_amount": 10000},
    )["invoice"]

    InvoiceResponse.parse_obj(body)
    assert body["status"] == "voided"
    assert (body["total_paid_amount_cents"], body["total_due_amount_cents"]) == (10000, 0)
    note = CreditNote.objects.get()
    assert note.number == f"{september.number}-CN1"
    assert (note.total_amount, note.credit_amount, note.refund_amount, note.offset_amount) == (
        Decimal("355.00"),
        Decimal("255.00"),
        Decimal("100.00"),
        Decimal("0.00"),
    )
    assert (note.balance_amount, note.credit_status, note.refund_status) == (Decimal("255.00"), "available", "pending")
    assert sum(item.amount for item in note.items.all()) == Decimal("355.00")
    listed = get(api, "/api/v1/credit_notes", invoice_id=str(september.pk))["credit_notes"]
    assert [n["number"] for n in listed] == [note.number]


def test_void_with_a_credit_note_for_part_of_the_invoice(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august = invoices["acme-08"]  # $65.81 after the trial: the note's items carry their discount share
    body = post(api, f"/api/v1/invoices/{august.pk}/void", {"generate_credit_note": True, "credit_amount": 3000})
    assert body["invoice"]["status"] == "voided"
    note = CreditNote.objects.get()
    assert (note.total_amount, note.credit_amount, note.refund_amount) == (
        Decimal("30.00"),
        Decimal("30.00"),
        Decimal("0.00"),
    )
    assert note.items_amount - note.coupons_adjustment_amount == note.total_amount


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"generate_credit_note": True, "credit_amount": 35501}, "credit_amount"),
        ({"generate_credit_note": True, "credit_amount": 30000, "refund_amount": 10000}, "credit_amount"),
        ({"generate_credit_note": True, "refund_amount": 10001}, "refund_amount"),
        ({"generate_credit_note": True, "credit_amount": -1}, "credit_amount"),
        ({"generate_credit_note": True, "credit_amount": "100"}, "credit_amount"),
        ({"generate_credit_note": True, "credit_amount": 1.5}, "credit_amount"),
        ({"generate_credit_note": True, "refund_amount": "ten"}, "refund_amount"),
        ({"generate_credit_note": "maybe"}, "generate_credit_note"),
        ({"credit_amount": 1000}, "credit_amount"),
        ({"refund_amount": 1000}, "refund_amount"),
        ({"generate_credit_note": True, "offset_amount": 100}, "offset_amount"),
        ({"reason": 1}, "reason"),
    ],
)
def test_void_bad_input_is_422_naming_the_field_and_voids_nothing(
    api: APIClient, invoices: dict[str, Invoice], body: dict[str, Any], field: str
) -> None:
    september = invoices["acme-09"]
    post(
        api, "/api/v1/payments", {"payment": {"invoice_id": str(september.pk), "amount_cents": 10000, "reference": "w"}}
    )
    before = stored()
    details = errors(api.post(f"/api/v1/invoices/{september.pk}/void", body, format="json"))
    assert list(details) == [field], details
    assert stored() == before


def test_void_body_must_be_an_object(api: APIClient, invoices: dict[str, Invoice]) -> None:
    before = stored()
    response = api.post(f"/api/v1/invoices/{invoices['acme-08'].pk}/void", [1], format="json")
    assert response.status_code == 422, response.content
    assert stored() == before


# --- download ----------------------------------------------------------------------------------


def test_download_answers_a_file_url_that_serves_the_pdf_without_a_key(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september = invoices["acme-09"]
    body = post(api, f"/api/v1/invoices/{september.pk}/download", {})["invoice"]
    InvoiceResponse.parse_obj(body)
    assert body["file_url"].startswith("http://testserver/documents/")
    response = open_pdf_link(body["file_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert september.number in response["Content-Disposition"]


def test_download_of_a_draft_is_refused(api: APIClient, invoices: dict[str, Invoice]) -> None:
    details = errors(api.post(f"/api/v1/invoices/{invoices['acme-10'].pk}/download"))
    assert list(details) == ["status"]


# --- the list's filters ------------------------------------------------------------------------


def test_payment_status_filter(api: APIClient, invoices: dict[str, Invoice]) -> None:
    put(api, f"/api/v1/invoices/{invoices['acme-08'].pk}", {"invoice": {"payment_status": "succeeded"}})
    put(api, f"/api/v1/invoices/{invoices['globex-09'].pk}", {"invoice": {"payment_status": "failed"}})
    pk = {key: str(inv.pk) for key, inv in invoices.items()}
    assert ids(get(api, "/api/v1/invoices", payment_status="succeeded")) == {pk["acme-08"]}
    assert ids(get(api, "/api/v1/invoices", payment_status="failed")) == {pk["globex-09"]}
    assert ids(get(api, "/api/v1/invoices", payment_status="pending")) == {
        pk["acme-09"],
        pk["acme-10"],
        pk["globex-10"],
    }
    assert ids(get(api, "/api/v1/invoices", payment_status="pending", status="finalized")) == {pk["acme-09"]}
    assert ids(get(api, "/api/v1/invoices", payment_status="succeeded", external_customer_id="globex")) == set()


def test_invoice_type_filter_uses_lagos_values(api: APIClient, invoices: dict[str, Invoice]) -> None:
    everything = ids(get(api, "/api/v1/invoices"))
    assert ids(get(api, "/api/v1/invoices", invoice_type="subscription")) == everything
    assert ids(get(api, "/api/v1/invoices", invoice_type="one_off")) == set()
    assert ids(get(api, "/api/v1/invoices", invoice_type="credit")) == set()
    assert {inv["invoice_type"] for inv in get(api, "/api/v1/invoices")["invoices"]} == {"subscription"}
    assert list(get(api, "/api/v1/invoices", expect=422, invoice_type="period")["error_details"]) == ["invoice_type"]


def test_payment_overdue_filter_and_field_agree(api: APIClient, invoices: dict[str, Invoice]) -> None:
    pk = {key: str(inv.pk) for key, inv in invoices.items()}
    overdue = ids(get(api, "/api/v1/invoices", payment_overdue="true"))
    assert overdue == {pk["acme-08"], pk["acme-09"]}  # due 2026-09-02 and 2026-10-02, nothing paid
    assert ids(get(api, "/api/v1/invoices", payment_overdue="false")) == {
        pk["acme-10"],
        pk["globex-09"],
        pk["globex-10"],
    }
    for invoice in get(api, "/api/v1/invoices")["invoices"]:
        assert invoice["payment_overdue"] is (invoice["lago_id"] in overdue)

    # A partial payment leaves it overdue; paying the rest, or voiding, ends it.
    september = invoices["acme-09"]
    post(api, "/api/v1/payments", {"payment": {"invoice_id": pk["acme-09"], "amount_cents": 100, "reference": "w"}})
    assert ids(get(api, "/api/v1/invoices", payment_overdue="true")) == {pk["acme-08"], pk["acme-09"]}
    put(api, f"/api/v1/invoices/{september.pk}", {"invoice": {"payment_status": "succeeded"}})
    post(api, f"/api/v1/invoices/{invoices['acme-08'].pk}/void", {})
    assert ids(get(api, "/api/v1/invoices", payment_overdue="true")) == set()
    assert invoice_body(api, september)["payment_overdue"] is False


def test_payment_overdue_starts_the_customer_local_day_after_the_due_date(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    globex = invoices["globex-09"]  # due 2026-12-01, Paris (UTC+1 in December)
    assert Invoice.objects.get(pk=globex.pk).payment_due_date == date(2026, 12, 1)
    with time_machine.travel(datetime(2026, 12, 1, 22, 59, tzinfo=UTC), tick=False):  # 23:59 on Dec 1 in Paris
        assert invoice_body(api, globex)["payment_overdue"] is False
        assert str(globex.pk) not in ids(get(api, "/api/v1/invoices", payment_overdue="true"))
    with time_machine.travel(datetime(2026, 12, 1, 23, 0, tzinfo=UTC), tick=False):  # 00:00 on Dec 2 in Paris
        assert invoice_body(api, globex)["payment_overdue"] is True
        assert str(globex.pk) in ids(get(api, "/api/v1/invoices", payment_overdue="true"))


def test_totals_add_up_on_every_invoice(api: APIClient, invoices: dict[str, Invoice]) -> None:
    post(
        api,
        "/api/v1/payments",
        {"payment": {"invoice_id": str(invoices["acme-09"].pk), "amount_cents": 1234, "reference": "w"}},
    )
    for body in get(api, "/api/v1/invoices")["invoices"]:
        InvoiceResponse.parse_obj(body)
        assert body["total_amount_cents"] == (
            body["sub_total_including_taxes_amount_cents"]
            - body["credit_notes_amount_cents"]
            - body["prepaid_credit_amount_cents"]
        )
        assert body["sub_total_excluding_taxes_amount_cents"] == (
            body["fees_amount_cents"] - body["coupons_amount_cents"] - body["progressive_billing_credit_amount_cents"]
        )
        assert sum(fee["amount_cents"] for fee in body["fees"]) == body["fees_amount_cents"]
        if body["status"] == InvoiceStatus.FINALIZED:
            assert (
                body["total_paid_amount_cents"]
                + body["total_offsetted_credit_note_amount_cents"]
                + body["total_due_amount_cents"]
                == body["total_amount_cents"]
            )
    assert invoice_body(api, invoices["acme-09"])["total_paid_amount_cents"] == 1234
    assert invoice_body(api, invoices["acme-09"])["total_due_amount_cents"] == 35500 - 1234


# --- not found, unauthenticated ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("put", ""), ("put", "/finalize"), ("put", "/refresh"), ("post", "/void"), ("post", "/download")],
)
@pytest.mark.parametrize("ref", ["999999", "abc", "-1"])
def test_actions_on_an_unknown_invoice_are_lagos_404(
    api: APIClient, invoices: dict[str, Invoice], method: str, suffix: str, ref: str
) -> None:
    response = getattr(api, method)(f"/api/v1/invoices/{ref}{suffix}", {}, format="json")
    assert response.status_code == 404, response.content
    assert response.json() == {
        "status": 404,
        "error": "Not Found",
        "code": "invoice_not_found",
        "message": "invoice not found",
    }


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("put", ""), ("put", "/finalize"), ("put", "/refresh"), ("post", "/void"), ("post", "/download")],
)
def test_actions_need_an_api_key(invoices: dict[str, Invoice], method: str, suffix: str) -> None:
    before = stored()
    response = getattr(APIClient(), method)(f"/api/v1/invoices/{invoices['acme-09'].pk}{suffix}", {}, format="json")
    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert stored() == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing_here",
        "/api/v1/invoices/1/nothing",
        "/api/v1/invoices/1/void/again",
        "/api/v1/credit_notes/1/items",
        "/api/v1/payments/1/refund",
        "/api/v1/invoices/",
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_unknown_paths_answer_lagos_json_404(api: APIClient, path: str, method: str) -> None:
    response = getattr(api, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["status"], body["error"]) == (404, "Not Found")
    assert body["code"].endswith("_not_found")


def test_unknown_path_names_the_resource(api: APIClient) -> None:
    assert get(api, "/api/v1/credit_notes/1/items", expect=404)["code"] == "credit_note_not_found"
    assert get(api, "/api/v1/payments/1/refund", expect=404)["code"] == "payment_not_found"
    assert get(api, "/api/v1/invoices/1/nothing", expect=404)["code"] == "invoice_not_found"
