"""After the database drops a worker's connection (a restart, pg_terminate_backend), POST
/api/v1/events recovers by itself (config/settings.py, DATABASE_CONN_HEALTH_CHECKS).

Requests go through Django's WSGI handler itself, not the test client, which keeps its
connection across requests: what closes a broken connection is the end of a real request.
- health checks off (the default): the one request that finds the connection broken fails
  cleanly, 503 with Retry-After and nothing stored; the next request reconnects and succeeds;
- health checks on: that request checks the connection first, reconnects and succeeds.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from customers.services import api_key_create
from metering.models import Event
from tests.conftest import using_postgres
from tests.factories import BillableMetricFactory, CustomerFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not using_postgres(), reason="terminating a server connection is PostgreSQL's"),
]


@pytest.fixture
def raw_key() -> str:
    BillableMetricFactory()  # mtu: unique_count of user_id
    CustomerFactory(external_id="acme")
    return api_key_create(name="tests")[1]


@pytest.fixture
def health_checks(request: pytest.FixtureRequest) -> Iterator[bool]:
    """The setting as a new connection reads it: the connection is reopened with it."""
    saved = connection.settings_dict["CONN_HEALTH_CHECKS"]
    connection.settings_dict["CONN_HEALTH_CHECKS"] = request.param
    connection.close()
    yield request.param
    connection.settings_dict["CONN_HEALTH_CHECKS"] = saved
    connection.close()


def send(raw_key: str, tx: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST one event through the WSGI handler; status, headers, JSON body."""
    event = {"transaction_id": tx, "external_customer_id": "acme", "code": "mtu", "properties": {"user_id": "u1"}}
    body = orjson.dumps({"event": event})
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/events",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {raw_key}",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    response = WSGIHandler()(environ, start_response)
    try:
        content = b"".join(response)
    finally:
        response.close()  # sends request_finished, as a WSGI server does
    return answer["status"], answer["headers"], orjson.loads(content)


def terminate_the_connection() -> None:
    """What a database restart does to an idle connection, from another session."""
    assert connection.connection is not None
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(
        **{k: params[k] for k in ("dbname", "user", "host", "port", "password") if k in params}, autocommit=True
    ) as other:
        row = other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()  # waits until it is gone
    assert row is not None and row[0] is True


@pytest.mark.parametrize("health_checks", [False], indirect=True)
def test_without_health_checks_one_request_fails_cleanly_and_the_next_succeeds(
    raw_key: str, health_checks: bool
) -> None:
    assert send(raw_key, "tx-1")[0] == 200
    terminate_the_connection()
    status, headers, body = send(raw_key, "tx-2")
    assert (status, body["code"], headers["Retry-After"]) == (503, "database_unavailable", "1")
    assert send(raw_key, "tx-3")[0] == 200
    assert sorted(Event.objects.values_list("transaction_id", flat=True)) == ["tx-1", "tx-3"]


@pytest.mark.parametrize("health_checks", [True], indirect=True)
def test_with_health_checks_the_request_reconnects_and_succeeds(raw_key: str, health_checks: bool) -> None:
    assert send(raw_key, "tx-1")[0] == 200
    terminate_the_connection()
    assert send(raw_key, "tx-2")[0] == 200
    assert sorted(Event.objects.values_list("transaction_id", flat=True)) == ["tx-1", "tx-2"]
