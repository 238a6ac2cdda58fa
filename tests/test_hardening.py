"""The edges hold (issue "Hardening"): one test per defect found against a production-like server.

| defect | test |
|---|---|
| "1e1000000" as an event timestamp or subscription_at stalls a worker |
|   test_an_exponent_timestamp_is_refused_at_once |
| subscription_at in year 9999 answers 500 yet is stored, and poisons the close |
|   test_a_subscription_in_year_9999_is_refused_and_nothing_is_stored |
| subscription_at 1 (1970) is accepted | test_a_subscription_starting_long_ago_is_refused |
| events nested ~300 levels deep are stored but answered 500 |
|   test_deeply_nested_properties_are_refused_before_anything_is_stored |
| NUL in a text field or property gives 500 | test_nul_in_an_event_is_refused_naming_the_field |
| %00 in a URL path or query gives 500 | test_nul_in_a_path_or_query_is_refused_in_the_envelope |
| no request-size limit; a 100,000-event batch is parsed in full |
|   test_a_body_over_the_limit_is_refused_before_it_is_parsed |
| paging and date filters overflow into 500; superscript digits |
|   test_numbers_in_queries_and_paths_are_ascii_and_bounded |
| 5xx and unknown /api/v1 paths answer HTML | test_unknown_paths_and_server_errors_answer_the_envelope |
| GET /api/v1/subscriptions stops at 1,000 rows, no pagination | test_subscriptions_are_paginated_with_meta |
| close_period reports invoices of rolled-back transactions | test_a_close_reports_only_what_committed |
| process_commitments reports rolled-back work | test_commitment_processing_reports_only_what_committed |
| `check --deploy` warns | test_check_deploy_is_clean_with_the_production_variables |
| numbers accepted for string ids | test_ids_must_be_strings |
| currency XXX accepted | test_a_currency_must_be_one_in_use |
| CSV exports write formulas verbatim | test_csv_exports_neutralise_formulas |
| the schema documents only 200 responses | test_the_schema_documents_the_error_responses |
| a 4xx or 5xx leaves rows behind | test_a_refused_or_failed_request_leaves_every_table_unchanged |
| a lost database connection answers an HTML 500 | test_a_lost_database_connection_is_a_retryable_503 |

Guards of what already held: test_the_api_answers_after_the_database_restarts (the first request
after every session of the database ended is answered).

schemathesis over every operation: tests/test_schemathesis.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from billing.models import Commitment, Invoice, Subscription
from billing.services import invoice_finalization
from billing.services import invoices as invoice_services
from billing.services.commitments import CommitmentReport, commitment_create, process_commitments
from billing.services.period_close import close_periods
from billing.services.subscriptions import STARTS_TOO_EARLY, STARTS_TOO_LATE
from config.parsers import HAS_NUL, TOO_DEEP
from customers.models import Customer
from customers.validators import INVALID_CURRENCY
from metering.models import Event
from metering.validation import OUT_OF_RANGE
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, PlanFactory, SubscriptionFactory, team_plan
from tests.helpers import errors, messages

NOW = datetime(2026, 10, 15, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def acme() -> Customer:
    customer = CustomerFactory(external_id="acme")
    SubscriptionFactory(
        customer=customer, plan=team_plan(), external_id="acme-team", subscription_at=NOW - timedelta(days=40)
    )
    return customer


def event(**fields: Any) -> dict[str, Any]:
    return {
        "transaction_id": "tx-1",
        "external_customer_id": "acme",
        "code": "mtu",
        "timestamp": int(NOW.timestamp()),
        "properties": {"user_id": "u1"},
        **fields,
    }


def post_json(api: APIClient, path: str, body: bytes | Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()  # json: deeper than orjson writes
    return api.generic("POST", path, data, content_type="application/json")


def assert_envelope(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = orjson.loads(response.content)
    assert body["status"] == status and body["error"] and body["code"]
    if code is not None:
        assert body["code"] == code
    return body


# --- bounded parsing -----------------------------------------------------------------------------


def test_an_exponent_timestamp_is_refused_at_once(api: APIClient, acme: Customer) -> None:
    details = errors(post_json(api, "/api/v1/events", {"event": event(timestamp="1e1000000")}))
    assert details == {"timestamp": [OUT_OF_RANGE.format(value="1e1000000")]}
    response = post_json(
        api,
        "/api/v1/subscriptions",
        {
            "subscription": {
                "external_customer_id": "acme",
                "plan_code": "team",
                "external_id": "s2",
                "subscription_at": "1e1000000",
            }
        },
    )
    assert errors(response) == {"subscription_at": [OUT_OF_RANGE.format(value="1e1000000")]}
    assert not Event.objects.exists()


def test_a_subscription_in_year_9999_is_refused_and_nothing_is_stored(api: APIClient, acme: Customer) -> None:
    before = Subscription.objects.count()
    for moment in ("9999-12-31T23:59:59Z", "2099-12-31T00:00:00Z"):
        body = {"external_customer_id": "acme", "plan_code": "team", "external_id": "far", "subscription_at": moment}
        details = errors(post_json(api, "/api/v1/subscriptions", {"subscription": body}))
        assert list(details) == ["subscription_at"]
    assert details["subscription_at"] == [STARTS_TOO_LATE.format(days=366)]
    assert Subscription.objects.count() == before
    report = close_periods(now=NOW)
    assert not report.errors
    assert api.get("/api/v1/subscriptions").status_code == 200


def test_a_subscription_starting_long_ago_is_refused(api: APIClient, acme: Customer) -> None:
    base = {"external_customer_id": "acme", "plan_code": "team", "external_id": "old"}
    assert "subscription_at" in errors(
        post_json(api, "/api/v1/subscriptions", {"subscription": {**base, "subscription_at": 1}})
    )
    assert errors(post_json(api, "/api/v1/subscriptions", {"subscription": {**base, "subscription_at": "1"}})) == {
        "subscription_at": [OUT_OF_RANGE.format(value="1")]
    }
    long_ago = (NOW - timedelta(days=400)).isoformat()
    assert errors(post_json(api, "/api/v1/subscriptions", {"subscription": {**base, "subscription_at": long_ago}})) == {
        "subscription_at": [STARTS_TOO_EARLY.format(days=366)]
    }
    assert not Subscription.objects.filter(external_id="old").exists()


def test_deeply_nested_properties_are_refused_before_anything_is_stored(api: APIClient, acme: Customer) -> None:
    nested: Any = "deep"
    for _ in range(300):
        nested = {"a": nested}
    details = errors(post_json(api, "/api/v1/events", {"event": event(properties={"user_id": "u1", "x": nested})}))
    assert details == {"event.properties.x.a.a.a.…": [TOO_DEEP.format(depth=32)]}
    batch = errors(
        post_json(api, "/api/v1/events/batch", {"events": [event(properties={"user_id": "u1", "x": nested})]})
    )
    assert list(batch) == ["events.0.properties.x.a.a.…"]
    assert not Event.objects.exists()
    # Nesting the renderer can echo is accepted, and echoed.
    shallow: Any = "ok"
    for _ in range(20):
        shallow = {"a": shallow}
    response = post_json(api, "/api/v1/events", {"event": event(properties={"user_id": "u1", "x": shallow})})
    assert response.status_code == 200, response.content
    assert orjson.loads(response.content)["event"]["properties"]["x"]["a"]["a"]


def test_nul_in_an_event_is_refused_naming_the_field(api: APIClient, acme: Customer) -> None:
    assert errors(post_json(api, "/api/v1/events", {"event": event(transaction_id="a\x00b")})) == {
        "event.transaction_id": [HAS_NUL]
    }
    assert errors(post_json(api, "/api/v1/events", {"event": event(properties={"user_id": "u\x00"})})) == {
        "event.properties.user_id": [HAS_NUL]
    }
    assert errors(post_json(api, "/api/v1/events", {"event": event(properties={"user_id": "u1", "k\x00": 1})})) == {
        "event.properties.k\x00": [HAS_NUL]
    }
    assert errors(post_json(api, "/api/v1/customers", {"customer": {"external_id": "x\x00y"}}))
    assert not Event.objects.exists() and not Customer.objects.filter(external_id__startswith="x").exists()


def test_nul_in_a_path_or_query_is_refused_in_the_envelope(api: APIClient, acme: Customer) -> None:
    assert_envelope(api.get("/api/v1/customers/%00"), 404, "customer_not_found")
    assert_envelope(api.get("/api/v1/events/a%00b"), 404, "event_not_found")
    body = assert_envelope(api.get("/api/v1/invoices?external_customer_id=%00"), 422, "validation_errors")
    assert messages(body["error_details"]) == {"external_customer_id": ["must not contain NUL characters"]}
    assert Client().get("/admin/login/?next=%00").status_code == 400


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(api: APIClient, acme: Customer, settings: Any) -> None:
    settings.BILLING_API_MAX_BODY_BYTES = 64 * 1024
    big = {"events": [event(transaction_id=f"tx-{i}") for i in range(100_000)]}
    assert_envelope(post_json(api, "/api/v1/events/batch", big), 413, "request_too_large")
    one = {"event": event(properties={"user_id": "u1", "blob": "x" * 70_000})}
    assert_envelope(post_json(api, "/api/v1/events", one), 413, "request_too_large")
    assert not Event.objects.exists()


def test_numbers_in_queries_and_paths_are_ascii_and_bounded(api: APIClient, acme: Customer) -> None:
    for query in ("page=99999999999999999999", "page=¹", "per_page=0", "page=-1", "page=1.5"):
        field = query.split("=")[0]
        for path in ("/api/v1/invoices", "/api/v1/customers", "/api/v1/subscriptions"):
            body = assert_envelope(api.get(f"{path}?{query}"), 422, "validation_errors")
            assert list(body["error_details"]) == [field], (path, query)
    for query in ("period=9999-12", "period=0000-01", "issuing_date_to=9999-12-31", "period_from=0001-01-01"):
        body = assert_envelope(api.get(f"/api/v1/invoices?{query}"), 422, "validation_errors")
        assert list(body["error_details"]) == [query.split("=")[0]]
    for lago_id in ("³", "99999999999999999999", "0", "-1", "1e3"):
        assert_envelope(api.get(f"/api/v1/invoices/{lago_id}"), 404, "invoice_not_found")


# --- one envelope --------------------------------------------------------------------------------


def test_unknown_paths_and_server_errors_answer_the_envelope(
    api: APIClient, acme: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_envelope(api.get("/api/v1/gift_cards"), 404, "gift_card_not_found")
    assert_envelope(api.post("/api/v1/quotes", {}, format="json"), 404, "quote_not_found")
    assert_envelope(Client().post("/api/v1/billing_entities"), 404, "billing_entity_not_found")  # no key: still JSON
    assert_envelope(Client().post("/api/v1/taxes"), 401)  # a real route without a key: JSON, not a CSRF page
    assert_envelope(api.get("/api/nothing"), 404)
    assert_envelope(api.put("/api/v1/customers", {}, format="json"), 405)

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("billing.api.customers.customer_upsert", broken)
    response = api.post(
        "/api/v1/customers", {"customer": {"external_id": "x"}}, format="json", HTTP_X_REQUEST_ID="req-42"
    )
    body = assert_envelope(response, 500, "internal_error")
    assert body["request_id"] == "req-42" == response["X-Request-Id"]
    assert "boom" not in response.content.decode()  # the log has it, not the client
    assert len(api.get("/api/v1/customers")["X-Request-Id"]) == 32


def test_a_lost_database_connection_is_a_retryable_503(
    api: APIClient, acme: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(**kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("billing.api.customers.customer_upsert", lost)
    response = api.post("/api/v1/customers", {"customer": {"external_id": "x"}}, format="json")
    assert assert_envelope(response, 503, "database_unavailable")["request_id"]
    assert response["Retry-After"] == "1"


def test_subscriptions_are_paginated_with_meta(api: APIClient, acme: Customer) -> None:
    plan = acme.subscriptions.get().plan
    for i in range(4):
        SubscriptionFactory(plan=plan, external_id=f"s-{i}", subscription_at=NOW - timedelta(days=1))
    first = api.get("/api/v1/subscriptions?per_page=2").json()
    assert len(first["subscriptions"]) == 2
    assert first["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 3, "total_count": 5}
    last = api.get("/api/v1/subscriptions?per_page=2&page=3").json()
    assert [s["external_id"] for s in last["subscriptions"]] == ["s-3"]
    assert_envelope(api.get("/api/v1/subscriptions?status=gone"), 422, "validation_errors")


# --- reports that tell the truth -----------------------------------------------------------------


def test_a_close_reports_only_what_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = PlanFactory(base_fee="10")
    for i in range(2):
        SubscriptionFactory(plan=plan, external_id=f"c-{i}", subscription_at=datetime(2026, 9, 1, tzinfo=UTC))
    real = invoice_services.assign_number
    calls: list[int] = []

    def fails_the_second(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the second invoice is made and counted, then its transaction fails
            raise RuntimeError("connection lost")
        return real(**kwargs)

    def group_fails(invoices: Any) -> None:
        raise RuntimeError("connection lost")

    monkeypatch.setattr(invoice_services, "assign_number", fails_the_second)
    # On PostgreSQL the two are first closed as one group (one transaction): it fails as a whole,
    # is rolled back, and the two are closed one by one, the second failing.
    monkeypatch.setattr(invoice_finalization, "number_all", group_fails)
    report = close_periods(now=datetime(2026, 10, 1, 0, 5, tzinfo=UTC))
    assert len(report.errors) == 1
    assert report.created == list(Invoice.objects.values_list("pk", flat=True))
    assert len(report.created) == len(report.finalized) == 1


def test_commitment_processing_reports_only_what_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    subscription = SubscriptionFactory(
        plan=PlanFactory(base_fee="10"), subscription_at=datetime(2025, 6, 1, tzinfo=UTC)
    )
    commitment_create(
        subscription=subscription,
        amount=Decimal(100),
        start_day=date(2025, 6, 1),
        months=12,
        covers="base_fee",
        auto_renew=False,
    )

    def fails(commitment: Commitment) -> bool:
        raise RuntimeError("connection lost")

    # The term is prepaid (its invoice made), then, in the same transaction, its end fails.
    monkeypatch.setattr("billing.services.commitments._last_period_invoiced", fails)
    report = process_commitments(today=NOW.date())
    assert len(report.errors) == 1
    assert report.prepaid == [] and not Invoice.objects.exists()
    assert isinstance(report, CommitmentReport)


# --- production settings -------------------------------------------------------------------------

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "production-only-secret-value-with-enough-entropy-1234567890",
    "ALLOWED_HOSTS": "billing.example.com",
    "SECURE_PROXY_SSL_HEADER": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
}


def test_check_deploy_is_clean_with_the_production_variables() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SESSION_", "CSRF_"))} | PRODUCTION
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_pages_carry_a_content_security_policy(client: Client) -> None:
    policy = client.get("/admin/login/")["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_the_api_json_goes_without_a_policy_and_its_html_docs_keep_it(client: Client) -> None:
    """A JSON answer is never rendered as a document (nosniff), so the policy is left off it; the
    API's HTML (its docs) is a page like any other."""
    answer = client.get("/api/v1/plans", HTTP_AUTHORIZATION="Bearer nobody")
    assert answer["Content-Type"].startswith("application/json")
    assert "Content-Security-Policy" not in answer
    assert answer["X-Content-Type-Options"] == "nosniff"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and docs["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in docs["Content-Security-Policy"]


# --- strict types at the edge --------------------------------------------------------------------


def test_ids_must_be_strings(api: APIClient, acme: Customer) -> None:
    assert list(errors(post_json(api, "/api/v1/customers", {"customer": {"external_id": 1}}))) == ["external_id"]
    body = {"external_customer_id": 1, "plan_code": "team", "external_id": "s-int"}
    assert list(errors(post_json(api, "/api/v1/subscriptions", {"subscription": body}))) == ["external_customer_id"]
    assert list(errors(post_json(api, "/api/v1/events", {"event": event(external_customer_id=1)}))) == [
        "external_customer_id"
    ]
    assert not Customer.objects.filter(external_id="1").exists()


def test_a_currency_must_be_one_in_use(api: APIClient) -> None:
    for code in ("XXX", "XTS", "DEM", "XAU"):
        assert errors(post_json(api, "/api/v1/customers", {"customer": {"external_id": "c", "currency": code}})) == {
            "currency": [INVALID_CURRENCY.format(value=code)]
        }
    for code in ("EUR", "JPY", "XOF", "KWD"):
        assert (
            post_json(
                api, "/api/v1/customers", {"customer": {"external_id": f"c-{code}", "currency": code}}
            ).status_code
            == 200
        )


def test_csv_exports_neutralise_formulas(api: APIClient, acme: Customer, admin_client: Client) -> None:
    values = ['=HYPERLINK("http://x")', "+1+1", "@SUM(A1)", "-2+3", "plain", "-12"]
    for i, value in enumerate(values):
        assert (
            post_json(
                api, "/api/v1/events", {"event": event(transaction_id=f"f-{i}", properties={"user_id": value})}
            ).status_code
            == 200
        )
    subscription = acme.subscriptions.get()
    url = reverse("admin:billing_subscription_audit_csv", args=[subscription.pk]) + "?metric=mtu"
    rows = b"".join(admin_client.get(url).streaming_content).decode().splitlines()[1:]
    assert sorted(rows) == sorted(['"\'=HYPERLINK(""http://x"")"', "'+1+1", "'@SUM(A1)", "'-2+3", "plain", "-12"])


def test_the_schema_documents_the_error_responses(client: Client) -> None:
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert {"401", "409", "413", "422", "503"} <= set(paths["/api/v1/events"]["post"]["responses"])
    assert {"401", "404"} <= set(paths["/api/v1/invoices/{lago_id}"]["get"]["responses"])
    assert {"401", "422"} <= set(paths["/api/v1/invoices"]["get"]["responses"])


# --- nothing is stored by a request that is refused or fails ------------------------------------

TABLES = ("customers", "metering", "billing")


def row_counts() -> dict[str, int]:
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.app_label in TABLES and not model._meta.proxy
    }


def _breaks(target: str) -> Any:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{target} failed")

    return broken


REFUSED: list[tuple[str, str, Any, str | None]] = [
    ("POST", "/api/v1/events", {"event": event(code="nope")}, None),
    ("POST", "/api/v1/events", {"event": event(timestamp="9999-01-01")}, None),
    ("POST", "/api/v1/events/batch", {"events": [event(), event(transaction_id="tx-2", code="nope")]}, None),
    ("POST", "/api/v1/events/batch", {"events": [event()]}, "billing.services.events.store_events"),
    ("POST", "/api/v1/customers", {"customer": {"external_id": "new", "currency": "XXX"}}, None),
    ("POST", "/api/v1/customers", {"customer": {"external_id": "acme", "timezone": "Asia/Tokyo"}}, None),
    ("POST", "/api/v1/customers", {"customer": {"external_id": "new"}}, "billing.api.customers.customer_json"),
    (
        "POST",
        "/api/v1/subscriptions",
        {"subscription": {"external_customer_id": "acme", "plan_code": "nope", "external_id": "n"}},
        None,
    ),
    (
        "POST",
        "/api/v1/subscriptions",
        {"subscription": {"external_customer_id": "acme", "plan_code": "team", "external_id": "n"}},
        "billing.services.subscriptions.commitment_from_plan",
    ),
    ("DELETE", "/api/v1/subscriptions/nobody", None, None),
]


@pytest.mark.parametrize(("method", "path", "body", "broken"), REFUSED)
def test_a_refused_or_failed_request_leaves_every_table_unchanged(
    api: APIClient,
    acme: Customer,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    body: Any,
    broken: str | None,
) -> None:
    if broken is not None:
        monkeypatch.setattr(broken, _breaks(broken))
    before = row_counts()
    response = api.generic(
        method, path, orjson.dumps(body) if body is not None else b"", content_type="application/json"
    )
    assert response.status_code >= 400, response.content
    assert response["Content-Type"].startswith("application/json")
    assert row_counts() == before


# --- resilience ----------------------------------------------------------------------------------


@pytest.fixture
def live_key(transactional_db: None) -> Iterator[str]:
    from customers.services import api_key_create

    _, raw = api_key_create(name="live")
    yield raw


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not using_postgres(), reason="a database restart is simulated by ending PostgreSQL sessions")
def test_the_api_answers_after_the_database_restarts(live_server: Any, live_key: str) -> None:
    import http.client
    from urllib.parse import urlsplit

    CustomerFactory(external_id="acme")
    call_command("load_catalog", stdout=StringIO())
    host = urlsplit(live_server.url)

    def send(n: int) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        body = orjson.dumps(
            {
                "event": {
                    "transaction_id": f"r-{n}",
                    "external_customer_id": "acme",
                    "code": "mtu",
                    "properties": {"user_id": "u"},
                }
            }
        )
        conn.request(
            "POST", "/api/v1/events", body, {"Authorization": f"Bearer {live_key}", "Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, orjson.loads(response.read())

    assert send(0)[0] == 200
    with connection.cursor() as cursor:  # every other session of this database ends, as in a restart
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    status, body = send(1)
    assert status in (200, 503), body
    if status == 503:
        assert body["code"] == "database_unavailable"
        status, body = send(1)
    assert status == 200, body
