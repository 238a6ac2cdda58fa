"""Lago's customer fields on POST /api/v1/customers (DESIGN §6): every field of lago-python-client
1.55's Customer input is stored and returned, or refused with 422 naming it, never accepted and
dropped; `net_payment_term` sets the due date of the invoices finalized afterwards.

Responses are parsed with the SDK's CustomerResponse; refused requests are checked to store nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.customer import CustomerResponse
from rest_framework.test import APIClient

from config.api import NOT_AN_INTEGER, NOT_SUPPORTED
from customers.models import Customer
from tests.billing.api.test_invoice_actions import NOW, invoice_body, make_invoices, put
from tests.helpers import errors, get, post_customer

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


def every_field() -> LagoCustomer:
    """A customer with every field of the SDK's input that this app supports."""
    return LagoCustomer.parse_obj(
        {
            "external_id": "acme",
            "name": "Acme",
            "firstname": "Ada",
            "lastname": "Lovelace",
            "customer_type": "company",
            "email": "billing@acme.example",
            "phone": "+33 1 23 45 67 89",
            "url": "https://acme.example",
            "logo_url": "https://acme.example/logo.png",
            "currency": "EUR",
            "timezone": "Europe/Paris",
            "legal_name": "Acme SAS",
            "legal_number": "RCS 123 456 789",
            "tax_identification_number": "FR40303265045",
            "address_line1": "12 Rue de la Paix",
            "address_line2": "Bâtiment B",
            "city": "Paris",
            "zipcode": "75002",
            "state": "Île-de-France",
            "country": "FR",
            "net_payment_term": 30,
            "metadata": [
                {"key": "segment", "value": "enterprise", "display_in_invoice": True},
                {"key": "crm_id", "value": "0012"},
            ],
            "finalize_zero_amount_invoice": "finalize",
            "billing_configuration": {"invoice_grace_period": 3, "document_locale": "en"},
            "shipping_address": {"address_line1": "1 Quai", "city": "Lyon", "zipcode": "69001", "country": "fr"},
        }
    )


def stored_customers() -> list[Any]:
    return list(Customer.objects.order_by("id").values())


def test_every_supported_field_is_stored_and_returned(api: APIClient) -> None:
    response = api.post("/api/v1/customers", {"customer": every_field().dict(exclude_none=True)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()["customer"]
    CustomerResponse.parse_obj(body)

    expected = {
        "external_id": "acme",
        "name": "Acme",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "customer_type": "company",
        "email": "billing@acme.example",
        "phone": "+33 1 23 45 67 89",
        "url": "https://acme.example",
        "logo_url": "https://acme.example/logo.png",
        "currency": "EUR",
        "timezone": "Europe/Paris",
        "applicable_timezone": "Europe/Paris",
        "legal_name": "Acme SAS",
        "legal_number": "RCS 123 456 789",
        "tax_identification_number": "FR40303265045",
        "address_line1": "12 Rue de la Paix",
        "address_line2": "Bâtiment B",
        "city": "Paris",
        "zipcode": "75002",
        "state": "Île-de-France",
        "country": "FR",
        "net_payment_term": 30,
        "finalize_zero_amount_invoice": "finalize",
    }
    assert {key: body[key] for key in expected} == expected
    assert [(m["key"], m["value"], m["display_in_invoice"]) for m in body["metadata"]] == [
        ("segment", "enterprise", True),
        ("crm_id", "0012", False),
    ]
    assert len({m["lago_id"] for m in body["metadata"]}) == 2
    assert body["billing_configuration"]["invoice_grace_period"] == 3
    assert body["billing_configuration"]["document_locale"] == "en"
    assert body["shipping_address"] == {"address_line1": "1 Quai", "city": "Lyon", "zipcode": "69001", "country": "FR"}

    # Stored, not only echoed: a GET answers the same.
    assert get(api, "/api/v1/customers/acme")["customer"] == body
    customer = Customer.objects.get()
    assert (customer.net_payment_term, customer.invoice_grace_period, customer.phone) == (30, 3, "+33 1 23 45 67 89")


def test_the_sdks_input_with_every_field_null_is_accepted(api: APIClient) -> None:
    # The SDK's create() leaves the nulls out; a client built on its dict() may send them all.
    sent = LagoCustomer.parse_obj({"external_id": "acme"}).dict()
    assert sent["tax_codes"] is None and sent["billing_configuration"] is None
    response = api.post("/api/v1/customers", {"customer": sent}, format="json")
    assert response.status_code == 200, response.content
    CustomerResponse.parse_obj(response.json()["customer"])


def test_an_update_changes_only_what_is_sent(api: APIClient) -> None:
    post_customer(api, **every_field().dict(exclude_none=True))
    response = post_customer(
        api, external_id="acme", lastname="Byron", net_payment_term=0, shipping_address={"city": "Nice", "state": None}
    )
    assert response.status_code == 200, response.content
    body = response.json()["customer"]
    assert (body["firstname"], body["lastname"], body["net_payment_term"]) == ("Ada", "Byron", 0)
    assert body["phone"] == "+33 1 23 45 67 89"
    # The address is updated key by key, as Lago's: the street stays, the city changes.
    assert body["shipping_address"] == {"address_line1": "1 Quai", "city": "Nice", "zipcode": "69001", "country": "FR"}
    assert body["metadata"][0]["key"] == "segment"  # metadata not sent: kept
    cleared = post_customer(api, external_id="acme", metadata=[], shipping_address={"address_line1": ""})
    assert cleared.json()["customer"]["metadata"] == []
    assert cleared.json()["customer"]["shipping_address"] == {"city": "Nice", "zipcode": "69001", "country": "FR"}


def test_metadata_is_replaced_and_ids_stay_unique(api: APIClient) -> None:
    first = post_customer(api, external_id="acme", metadata=[{"key": "a", "value": "1"}]).json()["customer"]
    [a] = first["metadata"]
    second = post_customer(
        api,
        external_id="acme",
        metadata=[{"key": "b", "value": "2"}, {"id": a["lago_id"], "key": "a", "value": "one"}],
    ).json()["customer"]
    assert [(m["key"], m["value"]) for m in second["metadata"]] == [("b", "2"), ("a", "one")]
    assert second["metadata"][1]["lago_id"] == a["lago_id"]
    assert len({m["lago_id"] for m in second["metadata"]}) == 2


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"tax_codes": ["vat_fr"]}, "tax_codes", None),
        ({"integration_customers": [{"integration_type": "netsuite"}]}, "integration_customers", None),
        ({"skip_invoice_custom_sections": True}, "skip_invoice_custom_sections", None),
        ({"invoice_custom_section_codes": ["footer"]}, "invoice_custom_section_codes", None),
        ({"billing_entity_code": "eu"}, "billing_entity_code", None),
        ({"finalize_zero_amount_invoice": "skip"}, "finalize_zero_amount_invoice", None),
        ({"billing_configuration": {"payment_provider": "stripe"}}, "billing_configuration", None),
        ({"billing_configuration": {"provider_customer_id": "cus_1"}}, "billing_configuration", None),
        (
            {"billing_configuration": {"subscription_invoice_issuing_date_anchor": "current_period_end"}},
            "billing_configuration",
            None,
        ),
        ({"billing_configuration": {"document_locale": "fr"}}, "billing_configuration", None),
        ({"billing_configuration": {"invoice_grace_period": -1}}, "billing_configuration", None),
        ({"billing_configuration": {"colour": "red"}}, "billing_configuration", None),
        ({"shipping_address": {"planet": "Earth"}}, "shipping_address", None),
        ({"shipping_address": {"country": "FRA"}}, "shipping_address", None),
        ({"metadata": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}, "metadata", None),
        ({"metadata": [{"key": "a", "value": "1", "colour": "red"}]}, "metadata", None),
        ({"metadata": [{"value": "1"}]}, "metadata", None),
        ({"metadata": {"a": "1"}}, "metadata", None),
        ({"metadata": [None]}, "metadata", None),
        ({"net_payment_term": -1}, "net_payment_term", None),
        ({"net_payment_term": 366}, "net_payment_term", None),
        ({"net_payment_term": "30"}, "net_payment_term", NOT_AN_INTEGER),
        ({"net_payment_term": 30.5}, "net_payment_term", NOT_AN_INTEGER),
        ({"customer_type": "robot"}, "customer_type", None),
        ({"url": "not a url"}, "url", None),
        ({"phone": 123}, "phone", None),
        ({"firstname": ["Ada"]}, "firstname", None),
        ({"country": "France"}, "country", None),
        ({"colour": "red"}, "colour", NOT_SUPPORTED),
    ],
)
def test_unsupported_or_bad_field_is_422_naming_it_and_stores_nothing(
    api: APIClient, fields: dict[str, Any], field: str, message: str | None
) -> None:
    post_customer(api, external_id="acme", name="Acme")
    before = stored_customers()
    details = errors(post_customer(api, external_id="acme", **fields))
    assert list(details) == [field], details
    if message is not None:
        assert details[field] == [message]
    if isinstance(fields[field], dict) and field != "metadata":
        assert list(details[field]) == list(fields[field])  # the nested field is named too
    assert stored_customers() == before


def test_unsupported_fields_say_why(api: APIClient) -> None:
    details = errors(post_customer(api, external_id="acme", integration_customers=[{"integration_type": "netsuite"}]))
    assert details["integration_customers"][0].startswith(NOT_SUPPORTED)
    nested = errors(post_customer(api, external_id="acme", billing_configuration={"payment_provider": "stripe"}))
    assert nested["billing_configuration"]["payment_provider"][0].startswith(f"{NOT_SUPPORTED}: no payment providers")
    assert not Customer.objects.exists()


def test_empty_unsupported_fields_are_accepted_as_absent(api: APIClient) -> None:
    response = post_customer(
        api,
        external_id="acme",
        tax_codes=[],
        integration_customers=[],
        skip_invoice_custom_sections=False,
        billing_configuration={"sync": False, "payment_provider": None},
    )
    assert response.status_code == 200, response.content


def test_a_customer_outside_the_envelope_is_named(api: APIClient) -> None:
    assert list(errors(api.post("/api/v1/customers", {}, format="json"))) == ["customer"]
    assert list(errors(api.post("/api/v1/customers", {"customer": "acme"}, format="json"))) == ["customer"]
    assert not Customer.objects.exists()


def test_net_payment_term_sets_the_due_date_of_invoices_finalized_afterwards(api: APIClient, settings: Any) -> None:
    invoices = make_invoices(settings)
    assert post_customer(api, external_id="acme", net_payment_term=45).status_code == 200
    # Already finalized: its term stays the one it was issued with.
    september = invoice_body(api, invoices["acme-09"])
    assert (september["net_payment_term"], september["payment_due_date"]) == (0, "2026-10-02")

    october = put(api, f"/api/v1/invoices/{invoices['acme-10'].pk}/finalize")["invoice"]
    assert (october["issuing_date"], october["net_payment_term"], october["payment_due_date"]) == (
        "2026-11-01",
        45,
        "2026-12-16",
    )
    assert october["payment_overdue"] is False


def test_without_a_term_the_default_applies(api: APIClient, settings: Any) -> None:
    invoices = make_invoices(settings)
    settings.BILLING_NET_PAYMENT_TERM_DAYS = 10
    assert get(api, "/api/v1/customers/acme")["customer"]["net_payment_term"] is None
    october = put(api, f"/api/v1/invoices/{invoices['acme-10'].pk}/finalize")["invoice"]
    assert (october["net_payment_term"], october["payment_due_date"]) == (10, "2026-11-11")
