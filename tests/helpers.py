"""Plain helpers shared by the test modules; the pytest fixtures are in tests/conftest.py.

- `at(...)` builds a UTC moment; `travel(moment)` stops the clock there for a block.
- `api_client()` is a DRF test client authenticated by a new API key (the `api` fixture is one);
  `post`, `get` and `delete` call the API, assert the status and return the JSON body;
  `errors(response)` asserts Lago's 422 validation envelope and returns its error details.
- `load_catalog(tmp_path, data)` loads a catalog dict with `manage.py load_catalog`.
- `run_concurrently(tasks)` runs callables at once, each in its own thread and connection.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import time_machine
from django.core.management import call_command
from django.db import connections
from rest_framework.test import APIClient

from config.api import LAGO_ERROR_CODES
from customers.services import api_key_create

# --- time ----------------------------------------------------------------------------------------


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A moment in UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@contextmanager
def travel(moment: datetime) -> Iterator[None]:
    """The clock stands still at `moment` inside the block."""
    with time_machine.travel(moment, tick=False):
        yield


# --- the API -------------------------------------------------------------------------------------


def api_client() -> APIClient:
    """A DRF test client that sends a new API key as its bearer token."""
    _, raw = api_key_create(name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def post(api: APIClient, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    response = api.post(path, body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def get(api: APIClient, path: str, expect: int = 200, **params: Any) -> dict[str, Any]:
    response = api.get(path, params)
    assert response.status_code == expect, response.content
    return response.json()


def delete(api: APIClient, path: str, expect: int = 200) -> dict[str, Any]:
    response = api.delete(path, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def messages(details: Any) -> Any:
    """Error details without Lago's machine codes (config.api.with_lago_codes adds them after our
    messages): what a person reads, which is what most tests check. Every field keeps a code."""
    if isinstance(details, dict):
        return {key: messages(value) for key, value in details.items()}
    if isinstance(details, list) and details and all(isinstance(item, str) for item in details):
        assert details[-1] in LAGO_ERROR_CODES, f"no Lago machine code in {details}"
        return [item for item in details if item not in LAGO_ERROR_CODES]
    if isinstance(details, list):
        return [messages(item) for item in details]
    return details


def errors(response: Any) -> Any:
    """The error details of a 422 in Lago's validation envelope, without Lago's machine codes."""
    assert response.status_code == 422, response.content
    body = response.json()
    assert (body["status"], body["error"], body["code"]) == (422, "Unprocessable Entity", "validation_errors")
    return messages(body["error_details"])


def post_customer(api: APIClient, **fields: Any) -> Any:
    """POST /api/v1/customers; the response, whatever its status."""
    return api.post("/api/v1/customers", {"customer": fields}, format="json")


def post_subscription(api: APIClient, **fields: Any) -> Any:
    """POST /api/v1/subscriptions; the response, whatever its status."""
    return api.post("/api/v1/subscriptions", {"subscription": fields}, format="json")


# --- the catalog ---------------------------------------------------------------------------------


def load_catalog(tmp_path: Path, data: dict[str, Any]) -> str:
    """Write `data` to a catalog file under tmp_path and load it; returns the command's output."""
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    out = StringIO()
    call_command("load_catalog", str(path), stdout=out, stderr=StringIO())
    return out.getvalue()


# --- concurrency ---------------------------------------------------------------------------------


def run_concurrently(tasks: list[Callable[[], Any]], timeout: float = 600) -> list[Any]:
    """Run each task in its own thread (and database connection), all released at once; return
    their results in order, or re-raise the first failure in the test's thread."""
    barrier = threading.Barrier(len(tasks))
    results: list[Any] = [None] * len(tasks)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = tasks[i]()
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()  # this thread's connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), f"a task did not finish in {timeout:.0f} s"
    if failures:
        raise failures[0]
    return results
