"""Bearer API-key authentication for /api/v1.

Keys are never cached: each request reads its key, so a revoked key is refused from the next
request on. The read is one indexed lookup; a view on a hot path (POST /api/v1/events) may fold
it into the statement that reads what the request needs anyway (`find`), so that the key costs
no round trip of its own. Whoever reads it, the row must come from ACTIVE_KEY_COLUMNS of a key
with this hash that is not revoked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from customers.models import ApiKey, hash_api_key

MISSING_KEY = "Authorization: Bearer <api key> is required"
INVALID_KEY = "the API key is not valid or was revoked"
LAST_USED_RESOLUTION = timedelta(minutes=1)
ACTIVE_KEY_FIELDS = ("id", "name", "prefix", "last_used_at")
ACTIVE_KEY_TABLE = ApiKey._meta.db_table


def active_key_condition(alias: str = "") -> str:
    """What a key's row is read with, wherever it is read: by its hash (one parameter), never a
    revoked one. `alias`: the table's alias in the query, if it has one."""
    table = f"{alias}." if alias else ""
    return f"{table}key_hash = %s AND {table}revoked_at IS NULL"


ACTIVE_KEY_SQL = f"SELECT {', '.join(ACTIVE_KEY_FIELDS)} FROM {ACTIVE_KEY_TABLE} WHERE {active_key_condition()}"

# Given a key's hash, its active row (ACTIVE_KEY_FIELDS, in order), or None.
FindKey = Callable[[str], tuple[Any, ...] | None]


def find_active_key(key_hash: str) -> tuple[Any, ...] | None:
    # Raw SQL: this runs on every request, and compiling the ORM query cost more than running it.
    with connection.cursor() as cursor:
        cursor.execute(ACTIVE_KEY_SQL, [key_hash])
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands a raw query's datetimes back naive (stored in UTC)."""
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ApiClient:
    """The authenticated caller: an API key, standing in for request.user."""

    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True

    def __str__(self) -> str:
        return str(self.key)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def __init__(self, find: FindKey = find_active_key) -> None:
        self.find = find

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey]:
        # From META, as DRF's get_authorization_header reads it through request.headers, which
        # builds a dict of every header first (some 2 % of a single event's CPU). WSGI gives a
        # header as latin-1 text; a test client may give bytes.
        sent = request.META.get("HTTP_AUTHORIZATION", "")
        header = (sent.decode("latin-1") if isinstance(sent, bytes) else sent).strip()
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != "bearer" or not raw_key.strip():
            raise exceptions.NotAuthenticated(MISSING_KEY)
        row = self.find(hash_api_key(raw_key.strip()))
        if row is None:
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        pk, name, prefix, last_used_at = row
        # As a raw query would build it: the fields not read are deferred.
        key = ApiKey.from_db(connection.alias, list(ACTIVE_KEY_FIELDS), [pk, name, prefix, _aware(last_used_at)])
        frozen_now = timezone.now()
        # Record use at minute resolution: one write a minute per key, not one per request.
        if key.last_used_at is None or frozen_now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=frozen_now)
        return ApiClient(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
