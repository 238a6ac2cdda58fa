"""Lago's metadata routes, shared by credit notes, wallets and plans (`POST`/`PATCH`/`DELETE
…/metadata`, `DELETE …/metadata/<key>`); the rules are billing.services.metadata.

The order of checks is Lago's: the row (404 `<what>_not_found`), then the body (422), then the
change; the answer is `{"metadata": {...}}`, the row's metadata after it. Removing a key of a
row without metadata is 404 `metadata_not_found` (as Lago).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.services.metadata import (
    MetadataChange,
    Row,
    cleared,
    merged,
    metadata_change,
    replaced,
    unchanged,
    without,
)
from config.api import StrictCharField, StrictSerializer, not_found, validation_error

# What a route does with the validated body ({"metadata": …}, the key absent when not sent).
Sent = Mapping[str, Any]


def replace(sent: Sent) -> MetadataChange:
    return replaced(sent.get("metadata"))


def replace_if_sent(sent: Sent) -> MetadataChange:
    """Lago's plans: a POST without `metadata` changes nothing (credit notes, wallets: empties it)."""
    return replaced(sent["metadata"]) if "metadata" in sent else unchanged()


def merge(sent: Sent) -> MetadataChange:
    return merged(sent.get("metadata"))


def clear(_sent: Sent) -> MetadataChange:
    return cleared()


class MetadataField(serializers.DictField):
    """Lago's metadata: string keys to string (or null) values."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=StrictCharField(max_length=1000, allow_null=True, allow_blank=True), **kwargs)


class MetadataEnvelope(StrictSerializer):
    metadata = MetadataField(required=False, allow_null=True)


class MetadataOutputEnvelope(serializers.Serializer[Any]):
    metadata = serializers.DictField(
        child=serializers.CharField(allow_null=True), help_text="The metadata after the change."
    )


def change_metadata(request: Request, row: Row | None, what: str, change: Callable[[Sent], MetadataChange]) -> Response:
    """POST, PATCH or DELETE …/metadata on `row` (None: 404 `<what>_not_found`)."""
    if row is None:
        return not_found(what)
    sent: Sent = {}
    if request.method != "DELETE":
        envelope = MetadataEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope.errors)
        sent = envelope.validated_data
    return Response({"metadata": metadata_change(row=row, change=change(sent)).metadata})


def delete_metadata_key(row: Row | None, what: str, key: str) -> Response:
    """DELETE …/metadata/<key>: a key the row does not have is no change; no metadata is 404."""
    if row is None:
        return not_found(what)
    if not row.metadata:
        return not_found("metadata")
    return Response({"metadata": metadata_change(row=row, change=without(key)).metadata})
