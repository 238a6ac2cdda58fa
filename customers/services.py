"""Customer-side services: API keys."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from customers.models import ApiKey, hash_api_key


@transaction.atomic
def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which is never stored and shown only now."""
    raw = ApiKey.generate()
    key = ApiKey.objects.create(name=name, prefix=raw[:10], key_hash=hash_api_key(raw))
    return key, raw


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
