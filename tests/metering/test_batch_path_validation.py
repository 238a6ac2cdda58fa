"""The batch path's shortcuts answer exactly what the plain checks answer: metering.validation's
validate_events (one window for the batch, inline checks of the common text values, cached
moments) against validate_event on each payload, and config.parsers' quick depth test against
the walk that names the path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from config.parsers import _within_depth, check_document
from metering.models import BillableMetric
from metering.validation import Owner, _hash, validate_event, validate_events

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
OWNER = Owner(1, "UTC", "acme")
METRICS = {
    "mtu": BillableMetric(id=1, code="mtu", name="MTU", aggregation="unique_count", field="user_id"),
    "storage": BillableMetric(id=2, code="storage", name="Storage", aggregation="sum", field="gb"),
    "calls": BillableMetric(id=3, code="calls", name="Calls", aggregation="count", field=""),
}

# Two test workers share two cores with the database: generation may be slow, not wrong.
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def resolve(customer_ref: str | None, subscription_ref: str | None) -> tuple[Owner | None, dict[str, str]]:
    if subscription_ref is not None:
        return None, {"external_subscription_id": f"unknown subscription {subscription_ref!r}"}
    if customer_ref == "acme":
        return OWNER, {}
    return None, {"external_customer_id": f"unknown customer {customer_ref!r}"}


texts = st.one_of(
    st.none(),
    st.just(""),
    st.just("acme"),
    st.text(max_size=5),
    st.text(min_size=254, max_size=257, alphabet="ab"),
    st.integers(),
    st.booleans(),
)
payloads = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "transaction_id": texts,
            "code": st.one_of(st.sampled_from(["mtu", "storage", "calls", "nope"]), texts),
            "external_customer_id": texts,
            "external_subscription_id": st.one_of(st.none(), st.just(""), st.just("sub"), st.integers()),
            "timestamp": st.one_of(
                st.none(),
                st.just(""),
                st.just(True),
                st.integers(NOW_TS - 400 * 86400, NOW_TS + 600),
                st.sampled_from([NOW_TS, 1, "2026-10-20T11:00:00Z", "2026-10-20T13:00:00+01:00", 1.5]),
            ),
            "properties": st.one_of(
                st.none(),
                st.just([]),
                st.dictionaries(st.sampled_from(["user_id", "gb"]), st.one_of(texts, st.floats(allow_nan=False))),
            ),
            "precise_total_amount_cents": st.one_of(st.none(), st.just(""), st.just("12")),
        },
    ),
    st.just("not an event"),
)


@SETTINGS
@given(batch=st.lists(payloads, max_size=6))
def test_a_batch_is_checked_as_each_of_its_events(batch: list[Any]) -> None:
    valid, errors = validate_events(batch, resolve_owner=resolve, metrics=METRICS, now=NOW, max_age_days=35)
    expected_valid = []
    expected_errors = {}
    for i, payload in enumerate(batch):
        event, event_errors = validate_event(payload, resolve_owner=resolve, metrics=METRICS, now=NOW, max_age_days=35)
        if event is None:
            expected_errors[str(i)] = event_errors
        else:
            expected_valid.append(event)
    assert valid == expected_valid
    assert errors == expected_errors
    # Field order too: the response lists the errors in the order they were found.
    assert [list(e) for e in errors.values()] == [list(e) for e in expected_errors.values()]


def test_the_hash_of_equal_moments_in_other_zones_is_their_own() -> None:
    """The cached text is for UTC moments only: the same instant in another zone writes its own
    offset into the hashed text, as the reference does."""
    paris = NOW.astimezone(timezone(timedelta(hours=2)))
    assert _hash("mtu", NOW, {}) != _hash("mtu", paris, {})
    assert _hash("mtu", NOW, {}) == _hash("mtu", NOW.replace(), {})


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


NO_NUL = st.characters(blacklist_characters="\x00")
json_documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(NO_NUL, max_size=3)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(NO_NUL, max_size=3), inner, max_size=3),
    max_leaves=20,
)


@SETTINGS
@given(document=json_documents, max_depth=st.integers(1, 6))
def test_the_quick_depth_test_agrees_with_the_walk(document: Any, max_depth: int) -> None:
    try:
        check_document(document, max_depth=max_depth, check_text=True)  # the walk, whatever the text
        walked = True
    except ValidationError:
        walked = False
    assert _within_depth(document, max_depth) is walked


@pytest.mark.parametrize("depth", [31, 32, 33, 300])
def test_a_deep_document_is_refused_naming_where(depth: int) -> None:
    document = nested(depth)
    if depth <= 32:
        check_document(document, max_depth=32, check_text=False)
        return
    with pytest.raises(ValidationError) as refused:
        check_document(document, max_depth=32, check_text=False)
    with pytest.raises(ValidationError) as walked:
        check_document(document, max_depth=32, check_text=True)
    assert refused.value.detail == walked.value.detail
