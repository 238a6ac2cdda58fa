"""Lago's metadata routes, one set of rules for credit notes, wallets and plans: a row's
`metadata` (string keys to string or null values) changed under its row lock.

The changes: `replaced` (the object sent; none: empty), `merged` (the keys sent over the row's),
`cleared`, `without(key)` (a key the row does not have: no change). Plan metadata is not
pricing: changing it never makes a plan version (billing.services.catalog).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from django.db import transaction

from billing.models import CreditNote, Plan, Wallet

Metadata = dict[str, str | None]
MetadataChange = Callable[[Metadata], Metadata]
Row = TypeVar("Row", CreditNote, Wallet, Plan)


def replaced(given: Mapping[str, str | None] | None) -> MetadataChange:
    return lambda _current: dict(given or {})


def merged(given: Mapping[str, str | None] | None) -> MetadataChange:
    return lambda current: current | dict(given or {})


def cleared() -> MetadataChange:
    return lambda _current: {}


def unchanged() -> MetadataChange:
    return lambda current: current


def without(key: str) -> MetadataChange:
    return lambda current: {k: v for k, v in current.items() if k != key}


@transaction.atomic
def metadata_change(*, row: Row, change: MetadataChange) -> Row:
    """The row's metadata replaced by `change(current)`, read and written under its row lock."""
    locked = type(row)._default_manager.select_for_update().get(pk=row.pk)
    new = change(dict(locked.metadata or {}))
    if new != locked.metadata:
        locked.metadata = new
        locked.save(update_fields=["metadata", "updated_at"])
    return locked
