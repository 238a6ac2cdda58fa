"""Every list of invoices, credit notes, payments, coupons, applied coupons, wallets, wallet
transactions, taxes, add-ons, webhook endpoints and alerts: Lago's filters, a 422 naming any
other query parameter (never ignored), and pages that return each row exactly once.

The invoices are tests/billing/api/test_invoice_actions.py's, read on 2026-11-01 at noon UTC:
acme's August ($65.81) and September ($355.00) finalized, its October a draft ($120.00);
globex's September ($64.00, finalized) and October (a draft).
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.api.list_params import NO_BILLING_ENTITIES
from billing.models import Invoice, Payment
from config.api import UNKNOWN_FILTER
from tests.billing.api.test_invoice_actions import NOW, make_invoices
from tests.helpers import errors, get, post

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def invoices(settings: Any) -> dict[str, Invoice]:
    return make_invoices(settings)


def ids(api: APIClient, path: str, **params: Any) -> list[str]:
    return [row["lago_id"] for row in get(api, path, **params)["invoices"]]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/invoices",
        "/api/v1/customers/acme/invoices",
        "/api/v1/credit_notes",
        "/api/v1/customers/acme/credit_notes",
        "/api/v1/payments",
        "/api/v1/customers/acme/payments",
        "/api/v1/coupons",
        "/api/v1/applied_coupons",
        "/api/v1/customers/acme/applied_coupons",
        "/api/v1/wallets",
        "/api/v1/customers/acme/wallets",
        "/api/v1/taxes",
        "/api/v1/add_ons",
        "/api/v1/webhook_endpoints",
        "/api/v1/subscriptions/acme-team/alerts",
    ],
)
def test_a_filter_the_list_does_not_have_is_refused_by_name(
    api: APIClient, invoices: dict[str, Invoice], path: str
) -> None:
    found = errors(api.get(path, {"external_customr_id": "acme", "page": "1"}))
    assert list(found) == ["external_customr_id"]
    assert found["external_customr_id"][0].startswith(UNKNOWN_FILTER.split("{")[0])


def test_a_wallet_transaction_list_refuses_an_unknown_filter(api: APIClient, invoices: dict[str, Invoice]) -> None:
    wallet = post(
        api,
        "/api/v1/wallets",
        {"wallet": {"external_customer_id": "acme", "rate_amount": "1", "currency": "USD", "granted_credits": "5"}},
    )["wallet"]
    path = f"/api/v1/wallets/{wallet['lago_id']}/wallet_transactions"
    assert list(errors(api.get(path, {"kind": "inbound"}))) == ["kind"]
    assert len(get(api, path, **{"metadata[none]": "x"})["wallet_transactions"]) == 0


def test_lago_invoice_filters(api: APIClient, invoices: dict[str, Invoice]) -> None:
    august, september, october = (str(invoices[k].pk) for k in ("acme-08", "acme-09", "acme-10"))
    globex_sep, globex_oct = str(invoices["globex-09"].pk), str(invoices["globex-10"].pk)
    assert ids(api, "/api/v1/invoices", customer_external_id="globex") == [globex_oct, globex_sep]
    assert ids(api, "/api/v1/invoices", currency="usd", external_customer_id="acme") == [october, september, august]
    assert ids(api, "/api/v1/invoices", currency="EUR") == []
    assert ids(api, "/api/v1/invoices", **{"statuses[]": ["draft"], "external_customer_id": "acme"}) == [october]
    assert ids(api, "/api/v1/invoices", amount_from="6400", amount_to="6581") == [globex_sep, august]
    assert ids(api, "/api/v1/invoices", search_term="GLOBEX@example") == [globex_oct, globex_sep]
    assert ids(api, "/api/v1/invoices", search_term=invoices["acme-09"].number) == [september]
    for flag in ("self_billed", "payment_dispute_lost"):
        assert ids(api, "/api/v1/invoices", **{flag: "true"}) == []
        assert len(ids(api, "/api/v1/invoices", **{flag: "false"})) == 5
    assert ids(api, "/api/v1/invoices", purchase_order_number="PO-1") == []
    Payment.objects.create(invoice=invoices["acme-09"], amount="100.00", currency="USD", reference="wire", paid_at=NOW)
    assert ids(api, "/api/v1/invoices", partially_paid="true") == [september]
    assert september not in ids(api, "/api/v1/invoices", partially_paid="false")
    Invoice.objects.filter(pk=august).update(metadata=[{"id": "1", "key": "po", "value": "42"}])
    assert ids(api, "/api/v1/invoices", **{"metadata[po]": "42"}) == [august]
    assert august not in ids(api, "/api/v1/invoices", **{"metadata[po]": ""})
    assert errors(api.get("/api/v1/invoices", {"billing_entity_codes[]": "main"})) == {
        "billing_entity_codes": [NO_BILLING_ENTITIES]
    }
    bad = errors(api.get("/api/v1/invoices", {"partially_paid": "yes", "amount_from": "-1"}))
    assert set(bad) == {"partially_paid", "amount_from"}


def test_the_customer_scoped_list_keeps_its_customer_whatever_the_alias_says(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    assert ids(api, "/api/v1/customers/acme/invoices", customer_external_id="globex") == [
        str(invoices[k].pk) for k in ("acme-10", "acme-09", "acme-08")
    ]


def test_credit_note_filters_lago_has_and_we_cannot_match(api: APIClient, invoices: dict[str, Invoice]) -> None:
    assert get(api, "/api/v1/credit_notes", purchase_order_number="PO-1")["credit_notes"] == []
    assert list(errors(api.get("/api/v1/credit_notes", {"billing_entity_codes[]": "main"}))) == ["billing_entity_codes"]


def test_paging_through_a_list_returns_every_row_once(api: APIClient, invoices: dict[str, Invoice]) -> None:
    seen: list[str] = []
    page: int | None = 1
    while page is not None:
        body = get(api, "/api/v1/invoices", page=page, per_page=2)
        seen += [row["lago_id"] for row in body["invoices"]]
        page = body["meta"]["next_page"]
    assert sorted(seen) == sorted(str(invoice.pk) for invoice in invoices.values())
