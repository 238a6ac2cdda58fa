"""The OpenAPI schema and the browsable docs, served without any network access; and the answers
of payments, credit notes and the customer-scoped lists checked against the schema field for
field (tests/test_schemathesis.py checks only that no answer is a server error)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from billing.services.alerts import check_alerts
from billing.services.period_close import close_periods
from tests.billing.api.test_invoice_actions import NOW, make_invoices
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at, post, travel


@pytest.mark.django_db
def test_schema_lists_the_api_with_event_examples(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    for path in (
        "/api/v1/events",
        "/api/v1/events/batch",
        "/api/v1/customers",
        "/api/v1/subscriptions",
        "/api/v1/customers/{external_id}/current_usage",
        "/api/v1/customers/{external_id}/invoices",
        "/api/v1/customers/{external_id}/credit_notes",
        "/api/v1/customers/{external_id}/payments",
        "/api/v1/subscriptions/{external_id}/alerts",
        "/api/v1/subscriptions/{external_id}/alerts/{code}",
    ):
        assert path in schema["paths"], path
    examples = schema["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert any(e["value"]["event"]["code"] == "mtu" for e in examples.values())
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


@pytest.mark.django_db
def test_docs_page_uses_bundled_assets_not_a_cdn(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


def test_schema_generates_without_warnings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


# --- the answers are what the schema says ---------------------------------------------------

# Output components that describe a part of their answer only: they may hold more fields.
PARTIAL_COMPONENTS = {"InvoiceOutput", "InvoiceLineOutput", "TierOutput"}


def _json_schema(node: Any, closed: bool) -> Any:
    """OpenAPI 3.0 to JSON Schema: `nullable: true` becomes a null alternative, and an object
    with properties, when `closed`, refuses any other field (so an answer's field the schema does
    not name fails, as does a named one it lacks, a wrong type or an unexpected null)."""
    if isinstance(node, list):
        return [_json_schema(item, closed) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: value if key == "enum" else _json_schema(value, closed) for key, value in node.items()}
    nullable = out.pop("nullable", False)
    if closed and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return {"anyOf": [out, {"type": "null"}]} if nullable else out


class Answers:
    """Calls the API and checks each 200 against the operation's response schema."""

    def __init__(self, api: APIClient, schema: dict[str, Any]) -> None:
        self.api = api
        self.paths = schema["paths"]
        self.components = {
            name: _json_schema(component, closed=name not in PARTIAL_COMPONENTS)
            for name, component in schema["components"]["schemas"].items()
        }
        self.checked: set[str] = set()

    def __call__(
        self, method: str, template: str, body: Any = None, query: dict[str, str] | None = None, **values: Any
    ) -> Any:
        path = template.format(**values)
        call = getattr(self.api, method)
        if query is not None:
            response = call(path, query)
        else:
            response = call(path) if body is None else call(path, body, format="json")
        assert response.status_code == 200, (method, path, response.content)
        operation = self.paths[template][method]
        declared = operation["responses"]["200"]["content"]["application/json"]["schema"]
        document = {**_json_schema(declared, closed=True), "components": {"schemas": self.components}}
        problems = [
            f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(document).iter_errors(response.json())
        ]
        assert not problems, (operation["operationId"], problems)
        self.checked.add(operation["operationId"])
        return response.json()


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
def test_answers_match_the_schema_field_for_field(api: APIClient, settings: Any) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    answer = Answers(api, schema)
    invoices = make_invoices(settings)
    september = invoices["acme-09"]
    # acme with every optional part set, so the nullable fields are seen set as well as null.
    post(
        api,
        "/api/v1/customers",
        {
            "customer": {
                "external_id": "acme",
                "customer_type": "company",
                "legal_number": "RCS 1",
                "phone": "+33 1 00 00 00 00",
                "url": "https://acme.example",
                "net_payment_term": 30,
                "metadata": [{"key": "crm", "value": None}],
                "shipping_address": {"city": "Paris", "country": "fr"},
                "billing_configuration": {"invoice_grace_period": 2},
            }
        },
    )

    payment = answer(
        "post",
        "/api/v1/payments",
        {"payment": {"invoice_id": str(september.pk), "amount_cents": 10000, "reference": "wire"}},
    )
    answer("get", "/api/v1/payments/{lago_id}", lago_id=payment["payment"]["lago_id"])
    answer("get", "/api/v1/payments")

    fees = {
        fee["item"]["type"]: fee["lago_id"]
        for fee in answer("get", "/api/v1/invoices/{lago_id}", lago_id=september.pk)["invoice"]["fees"]
    }
    answer("get", "/api/v1/invoices")
    items = [{"fee_id": fees["charge"], "amount_cents": 5000}]
    answer("post", "/api/v1/credit_notes/estimate", {"credit_note": {"invoice_id": str(september.pk), "items": items}})
    refund = answer(
        "post",
        "/api/v1/credit_notes",
        {
            "credit_note": {
                "invoice_id": str(september.pk),
                "reason": "duplicated_charge",
                "description": "Counted twice",
                "credit_amount_cents": 3000,
                "refund_amount_cents": 2000,
                "items": items,
                "metadata": {"ticket": "T-1", "note": None},
            }
        },
    )["credit_note"]
    plain = answer(
        "post",
        "/api/v1/credit_notes",
        {
            "credit_note": {
                "invoice_id": str(september.pk),
                "credit_amount_cents": 100,
                "items": [{"fee_id": fees["subscription"], "amount_cents": 100}],
            }
        },
    )["credit_note"]
    assert (refund["refund_status"], plain["refund_status"], plain["description"]) == ("pending", None, None)
    answer(
        "put",
        "/api/v1/credit_notes/{lago_id}",
        {"credit_note": {"refund_status": "succeeded"}},
        lago_id=refund["lago_id"],
    )
    answer("put", "/api/v1/credit_notes/{lago_id}/void", lago_id=plain["lago_id"])
    answer("post", "/api/v1/credit_notes/{lago_id}/download", {}, lago_id=plain["lago_id"])
    answer("get", "/api/v1/credit_notes/{lago_id}", lago_id=refund["lago_id"])
    answer("get", "/api/v1/credit_notes")
    metadata = "/api/v1/credit_notes/{lago_id}/metadata"
    answer("post", metadata, {"metadata": {"a": "1", "b": None}}, lago_id=refund["lago_id"])
    answer("patch", metadata, {"metadata": {"c": "2"}}, lago_id=refund["lago_id"])
    answer("delete", metadata + "/{key}", lago_id=refund["lago_id"], key="a")
    answer("delete", metadata, lago_id=refund["lago_id"])

    for kind in ("invoices", "credit_notes", "payments", "subscriptions"):
        answer("get", f"/api/v1/customers/{{external_id}}/{kind}", external_id="acme")
    subscription = {"external_subscription_id": "acme-team"}
    for usage in ("past_usage", "projected_usage"):
        answer("get", f"/api/v1/customers/{{external_id}}/{usage}", query=subscription, external_id="acme")

    documented = {
        operation["operationId"]
        for path, operations in schema["paths"].items()
        if path.startswith(("/api/v1/payments", "/api/v1/credit_notes", "/api/v1/customers/{external_id}/"))
        and not path.endswith("/current_usage")
        and "/applied_coupons" not in path  # test_coupon_answers_match_the_schema_field_for_field
        and "/wallets" not in path  # test_wallet_answers_match_the_schema_field_for_field
        for operation in operations.values()
    }
    assert documented - answer.checked == set()


@pytest.mark.django_db
def test_alert_answers_match_the_schema_field_for_field(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    answer = Answers(api, schema)
    customer = CustomerFactory(external_id="acme")
    SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )
    base = "/api/v1/subscriptions/{external_id}/alerts"
    one = base + "/{code}"
    units = {
        "alert_type": "billable_metric_current_usage_units",
        "code": "mtu",
        "name": "MTUs",
        "billable_metric_code": "mtu",
        "thresholds": [{"code": "warn", "value": "100"}, {"value": "50", "recurring": True}],
    }
    amount = {"alert_type": "current_usage_amount", "code": "spend", "thresholds": [{"value": "1000"}]}
    answer("post", base, {"alerts": [units, amount]}, external_id="acme-team")
    answer("post", base, {"alert": {**amount, "code": "spend-2"}}, external_id="acme-team")
    store_users(customer, range(150), at(2026, 9, 10), "sep")
    check_alerts(now=at(2026, 9, 20))  # last_processed_at and previous_value set on all three
    answer("post", base, {"alert": {**amount, "code": "later"}}, external_id="acme-team")  # …and unset
    answer("get", base, external_id="acme-team")
    answer("get", one, external_id="acme-team", code="mtu")
    answer("put", one, {"alert": {"name": None, "thresholds": [{"value": "10"}]}}, external_id="acme-team", code="mtu")
    answer("delete", one, external_id="acme-team", code="spend-2")
    answer("delete", base, external_id="acme-team")

    documented = {
        operation["operationId"]
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/subscriptions/{external_id}/alerts")
        for operation in operations.values()
    }
    assert documented - answer.checked == set()


@pytest.mark.django_db
@pytest.mark.frozen_clock(at(2026, 8, 20, 12))
def test_coupon_answers_match_the_schema_field_for_field(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    answer = Answers(api, schema)
    customer = CustomerFactory(external_id="acme")
    SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )
    fixed = {
        "name": "Welcome",
        "code": "welcome",
        "description": "Fifty off",
        "coupon_type": "fixed_amount",
        "amount_cents": 5000,
        "amount_currency": "USD",
        "expiration": "time_limit",
        "expiration_at": "2026-12-31T00:00:00Z",
        "applies_to": {"plan_codes": ["team"]},
    }
    percent = {"name": "Launch", "code": "launch", "coupon_type": "percentage", "percentage_rate": 10.5}
    answer("post", "/api/v1/coupons", {"coupon": fixed})
    answer("post", "/api/v1/coupons", {"coupon": percent})
    answer(
        "put", "/api/v1/coupons/{code}", {"coupon": {"frequency": "recurring", "frequency_duration": 2}}, code="launch"
    )
    answer("get", "/api/v1/coupons/{code}", code="welcome")
    answer("get", "/api/v1/coupons")
    for code in ("welcome", "launch"):
        answer(
            "post", "/api/v1/applied_coupons", {"applied_coupon": {"external_customer_id": "acme", "coupon_code": code}}
        )
    store_users(customer, range(300), at(2026, 9, 20), "sep")
    with travel(at(2026, 10, 2, 9)):
        close_periods(now=at(2026, 10, 2, 9))  # August and September use the coupons: credits[] is filled
    listed = answer("get", "/api/v1/applied_coupons")["applied_coupons"]
    assert all(applied["credits"] for applied in listed)
    answer("get", "/api/v1/customers/{external_id}/applied_coupons", external_id="acme")
    answer(
        "delete",
        "/api/v1/customers/{external_id}/applied_coupons/{lago_id}",
        external_id="acme",
        lago_id=listed[0]["lago_id"],
    )
    answer("post", "/api/v1/coupons", {"coupon": {**percent, "code": "unused"}})
    answer("delete", "/api/v1/coupons/{code}", code="unused")

    documented = {
        operation["operationId"]
        for path, operations in schema["paths"].items()
        if path.startswith(("/api/v1/coupons", "/api/v1/applied_coupons")) or "/applied_coupons" in path
        for operation in operations.values()
    }
    assert documented - answer.checked == set()


@pytest.mark.django_db
@pytest.mark.frozen_clock(at(2026, 9, 15, 12))
def test_wallet_answers_match_the_schema_field_for_field(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    answer = Answers(api, schema)
    customer = CustomerFactory(external_id="acme")
    SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )
    store_users(customer, range(300), at(2026, 9, 10), "sep")  # usage so far: the ongoing balance
    full = {
        "external_customer_id": "acme",
        "rate_amount": "1.5",
        "name": "Prepaid",
        "code": "prepaid",
        "granted_credits": "100",
        "paid_credits": "10",
        "expiration_at": "2027-01-01T00:00:00Z",
        "metadata": {"crm": "A-1", "note": None},
        "transaction_name": "Opening",
        "transaction_metadata": [{"key": "po", "value": "42"}],
    }
    wallet = answer("post", "/api/v1/wallets", {"wallet": full})["wallet"]
    one = "/api/v1/wallets/{lago_id}"
    answer("get", one, lago_id=wallet["lago_id"])
    answer("get", "/api/v1/wallets")
    answer("put", one, {"wallet": {"name": None, "expiration_at": None}}, lago_id=wallet["lago_id"])
    made = answer(
        "post",
        "/api/v1/wallet_transactions",
        {"wallet_transaction": {"wallet_id": wallet["lago_id"], "granted_credits": "5", "voided_credits": "1"}},
    )
    assert len(made["wallet_transactions"]) == 2
    answer("get", one + "/wallet_transactions", lago_id=wallet["lago_id"])
    metadata = one + "/metadata"
    answer("post", metadata, {"metadata": {"a": "1", "b": None}}, lago_id=wallet["lago_id"])
    answer("patch", metadata, {"metadata": {"c": "2"}}, lago_id=wallet["lago_id"])
    answer("delete", metadata + "/{key}", lago_id=wallet["lago_id"], key="a")
    answer("delete", metadata, lago_id=wallet["lago_id"])
    answer("delete", one, lago_id=wallet["lago_id"])

    scoped = "/api/v1/customers/{external_id}/wallets"
    answer("post", scoped, {"wallet": {"rate_amount": "1", "code": "main"}}, external_id="acme")
    answer("get", scoped, external_id="acme")
    by_code = scoped + "/{code}"
    answer("get", by_code, external_id="acme", code="main")
    answer("put", by_code, {"wallet": {"name": "Main"}}, external_id="acme", code="main")
    answer("post", by_code + "/metadata", {"metadata": {"a": "1"}}, external_id="acme", code="main")
    answer("patch", by_code + "/metadata", {"metadata": {"b": "2"}}, external_id="acme", code="main")
    answer("delete", by_code + "/metadata/{key}", external_id="acme", code="main", key="a")
    answer("delete", by_code + "/metadata", external_id="acme", code="main")
    answer("delete", by_code, external_id="acme", code="main")

    documented = {
        operation["operationId"]
        for path, operations in schema["paths"].items()
        if path.startswith(("/api/v1/wallet", "/api/v1/customers/{external_id}/wallets"))
        and not path.endswith(("/consumptions", "/fundings"))  # 422 only: wallets here are not traceable
        for operation in operations.values()
    }
    assert documented - answer.checked == set()
