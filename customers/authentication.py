"""Bearer API-key authentication for /api/v1."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from customers.models import ApiKey, hash_api_key

MISSING_KEY = "Authorization: Bearer <api key> is required"
INVALID_KEY = "the API key is not valid or was revoked"
LAST_USED_RESOLUTION = timedelta(minutes=1)
ACTIVE_KEY_SQL = (
    f"SELECT id, name, prefix, last_used_at FROM {ApiKey._meta.db_table} WHERE key_hash = %s AND revoked_at IS NULL"
)


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

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey]:
        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != "bearer" or not raw_key.strip():
            raise exceptions.NotAuthenticated(MISSING_KEY)
        # Raw SQL: this runs on every request, and compiling the ORM query cost more than running it.
        found = list(ApiKey.objects.raw(ACTIVE_KEY_SQL, [hash_api_key(raw_key.strip())]))
        if not found:
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        key = found[0]
        frozen_now = timezone.now()
        # Record use at minute resolution: one write a minute per key, not one per request.
        if key.last_used_at is None or frozen_now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=frozen_now)
        return ApiClient(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
