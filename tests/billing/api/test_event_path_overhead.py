"""What POST /api/v1/events and /api/v1/events/batch skip, and what they keep.

They skip the page middleware (static files, sessions, the admin's user and messages, the
history's request: config.middleware.NotOnEventPaths; CSRF's runs, their views being exempt),
DRF's parsing of the Accept header when it asks for JSON or anything
(config.api.ApiView.perform_content_negotiation) and DRF's rendering of their 200 answer
(billing.api.events). What a client sees stays the same: the security headers, the request id,
Lago's envelope for every error, 406 for a type no renderer gives, and every other path, the
rest of /api/ included, runs the whole middleware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from customers.models import Customer
from tests.factories import BillableMetricFactory, CustomerFactory, SubscriptionFactory

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy")

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def customer() -> Customer:
    BillableMetricFactory()  # mtu: unique_count of user_id
    customer = CustomerFactory(external_id="acme")
    SubscriptionFactory(customer=customer, external_id="sub-acme")
    return customer


def event(tx: str, **overrides: Any) -> dict[str, Any]:
    return {
        "transaction_id": tx,
        "external_customer_id": "acme",
        "code": "mtu",
        "timestamp": NOW_TS - 60,
        "properties": {"user_id": "u1"},
        **overrides,
    }


def test_event_endpoints_skip_the_page_middleware(api: APIClient, customer: Customer) -> None:
    single = api.post("/api/v1/events", {"event": event("t1")}, format="json")
    batch = api.post("/api/v1/events/batch", {"events": [event("t2")]}, format="json")

    for response in (single, batch):
        assert response.status_code == 200, response.content
        assert not hasattr(response.wsgi_request, "session")
        assert not hasattr(response.wsgi_request, "_messages")
        assert "Set-Cookie" not in response


def test_other_api_paths_and_pages_keep_the_page_middleware(api: APIClient, customer: Customer) -> None:
    listed = api.get("/api/v1/customers")
    one = api.get("/api/v1/events/t1")
    page = Client().get("/admin/login/")

    for response in (listed, one, page):
        assert hasattr(response.wsgi_request, "session")
        assert hasattr(response.wsgi_request, "_messages")
    assert "csrftoken" in page.cookies
    assert "Content-Security-Policy" in page


def test_event_answers_keep_the_security_headers_and_request_id(api: APIClient, customer: Customer) -> None:
    stored = api.post("/api/v1/events", {"event": event("t1")}, format="json", HTTP_X_REQUEST_ID="req-1")
    refused = api.post("/api/v1/events", {"event": event("t2", code="nope")}, format="json")
    unauthenticated = APIClient().post("/api/v1/events", {"event": event("t3")}, format="json")

    assert [stored.status_code, refused.status_code, unauthenticated.status_code] == [200, 422, 401]
    for response in (stored, refused, unauthenticated):
        assert response["Content-Type"] == "application/json"
        assert all(header in response for header in SECURITY_HEADERS)
        assert "X-Request-Id" in response
        assert "Content-Security-Policy" not in response
    assert stored["X-Request-Id"] == "req-1"
    assert stored.json()["event"]["transaction_id"] == "t1"
    assert stored.json()["event"]["external_subscription_id"] == "sub-acme"


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("application/*", "application/json"),
        ("application/json; indent=2", "application/json; indent=2"),  # DRF's answer: the type asked
    ],
)
def test_a_json_answer_is_given_to_whoever_accepts_it(
    api: APIClient, customer: Customer, accept: str | None, media_type: str
) -> None:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}

    response = api.post("/api/v1/events", {"event": event("t1")}, format="json", **headers)

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == media_type
    assert response.json()["event"]["code"] == "mtu"


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/customers"])
def test_an_accept_header_no_renderer_satisfies_is_refused_with_406(
    api: APIClient, customer: Customer, path: str
) -> None:
    response = api.post(path, {"event": event("t1")}, format="json", HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    assert response.json()["code"] == "not_acceptable"


def test_a_format_in_the_query_string_is_negotiated_by_drf(api: APIClient, customer: Customer) -> None:
    as_json = api.post("/api/v1/events?format=json", {"event": event("t1")}, format="json")
    as_html = api.post("/api/v1/events?format=html", {"event": event("t2")}, format="json")

    assert as_json.status_code == 200, as_json.content
    assert as_html.status_code == 404  # DRF's answer for a format no renderer has
