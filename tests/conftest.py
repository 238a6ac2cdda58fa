"""Fixtures shared by the whole suite (plain helpers are in tests/helpers.py).

- `api`: a DRF test client authenticated by a new API key.
- `frozen_clock`: with `pytest.mark.frozen_clock(moment)` on a module (its `pytestmark`) or a
  test, the clock stands still at `moment` for the whole test, fixtures included.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine
from django.conf import settings
from rest_framework.test import APIClient

from tests.helpers import api_client


def using_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "frozen_clock(moment): the clock stands still at `moment` for the whole test")


@pytest.fixture(autouse=True)
def frozen_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("frozen_clock")
    if marker is None:
        yield
        return
    with time_machine.travel(marker.args[0], tick=False):
        yield


@pytest.fixture
def api() -> APIClient:
    return api_client()
