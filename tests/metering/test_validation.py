"""The payload hash tells a retry from a reused transaction id, so its text must never change:
the fast (orjson) path must hash exactly what the reference (json.dumps) text hashes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metering.validation import _hash, payload_hash


def reference(code: str, timestamp: datetime | None, properties: dict[str, Any]) -> str:
    stamp = None if timestamp is None else timestamp.isoformat()
    text = json.dumps([code, stamp, properties], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


flat_values = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F)),  # ASCII, control characters and DEL
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond 64 bits
    st.booleans(),
    st.none(),
)
any_values = st.recursive(
    st.one_of(flat_values, st.floats(allow_nan=False)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
moments = st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)))


@settings(max_examples=400)
@given(code=st.text(min_size=1, max_size=20), timestamp=moments, properties=st.dictionaries(st.text(), flat_values))
def test_flat_properties_hash_as_the_reference_text(code: str, timestamp: datetime | None, properties: Any) -> None:
    assert _hash(code, timestamp, properties) == reference(code, timestamp, properties)


@settings(max_examples=200)
@given(timestamp=moments, properties=st.dictionaries(st.text(max_size=8), any_values, max_size=4))
def test_any_properties_hash_as_the_reference_text(timestamp: datetime | None, properties: Any) -> None:
    assert _hash("mtu", timestamp, properties) == reference("mtu", timestamp, properties)


def test_a_known_hash_never_changes() -> None:
    # Stored keys carry this hash: a change would turn every retry of an older event into a 409.
    known = payload_hash("mtu", 1790812800, {"user_id": "user_42", "plan": "team", "seats": 3})
    assert known == "601d88f2bfb2681de52fe8f7cc8e53718a50cb1278f465974b24dbfb5fd5130e"
    assert known == reference(
        "mtu", datetime(2026, 10, 1, tzinfo=UTC), {"user_id": "user_42", "plan": "team", "seats": 3}
    )
