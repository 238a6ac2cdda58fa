"""A fuzzing gate: schemathesis generates requests for every operation of the OpenAPI schema
(valid and invalid bodies, paths and query strings) and calls the app through WSGI, with a
valid API key and a customer, a plan and a subscription to find. No answer may be a server
error (the `not_a_server_error` check), and every answer must be JSON.

Bounded for CI: MAX_EXAMPLES cases per operation; raise it locally with
SCHEMATHESIS_MAX_EXAMPLES=500 for a longer hunt. It runs once, on PostgreSQL, the production
database, where types and ranges are strictest (an overflow is a server error there, not on
SQLite): CI runs the suite on both, and this fuzz takes minutes with ~120 operations.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from config.wsgi import application
from customers.services import api_key_create
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, SubscriptionFactory, team_plan

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "100"))

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def wsgi_in_test_transaction() -> Iterator[None]:
    """Requests go through the WSGI app itself; like Django's test client, keep it from closing
    the test's database connection (and its transaction) at the end of each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_key(db: None, wsgi_in_test_transaction: None) -> str:
    customer = CustomerFactory(external_id="acme")
    SubscriptionFactory(
        customer=customer,
        plan=team_plan(),
        external_id="acme-team",
        subscription_at=datetime.now(UTC) - timedelta(days=40),
    )
    _, raw = api_key_create(name="schemathesis")
    return raw


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)
@pytest.mark.django_db
@pytest.mark.skipif(not using_postgres(), reason="fuzzed once, on PostgreSQL (the production database)")
def test_no_operation_answers_a_server_error(case: Any, api_key: str) -> None:
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {api_key}"},
        checks=[not_a_server_error],
    )
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (case.method, case.formatted_path, response.status_code)
