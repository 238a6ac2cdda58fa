"""PostgreSQL's storing statement reads what events of one metric and moment share once per
group (metering.ingest_postgresql, GROUPED_MIN_EVENTS) or in every row: both forms store the
same rows, sets and counts. Runs on both databases (SQLite's portable path, the same promises)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from metering import ingest_postgresql
from metering.ingest import store_events
from metering.models import DistinctValue, Event, EventCount
from metering.validation import Owner, ValidEvent
from tests.factories import BillableMetricFactory, CustomerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 9, 20, 12, tzinfo=UTC)
LATE_EVENING = datetime(2026, 9, 20, 23, 30, tzinfo=UTC)  # the 21st in Tokyo


def a_batch() -> list[ValidEvent]:
    """40 events of two metrics at two moments (four groups), with values, a subscription, late
    flags and a property only the standard library's json writes (beyond 64 bits)."""
    customer = CustomerFactory(external_id="acme", timezone="Asia/Tokyo")
    owner = Owner(customer.pk, customer.timezone, customer.external_id, "acme-sub")
    mtu = BillableMetricFactory(code="mtu")
    gb = BillableMetricFactory(code="gb", aggregation="sum", field="gb")
    events = []
    for i in range(40):
        when = NOW if i % 2 else LATE_EVENING
        if i % 4 < 2:
            user = f"u{i % 6}"
            events.append(
                ValidEvent(owner, mtu, f"t-{i:02d}", when, {"user_id": user}, None, user, f"h{i}", is_late=i == 0)
            )
        else:
            events.append(
                ValidEvent(owner, gb, f"t-{i:02d}", when, {"gb": str(i), "huge": 2**70}, Decimal(i), None, f"h{i}")
            )
    return events


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "each-row"])
def test_both_forms_store_the_same(grouped: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not grouped:
        monkeypatch.setattr(ingest_postgresql, "GROUPED_MIN_EVENTS", 10**6)
    batch = a_batch()

    stored = store_events(batch, received_at=NOW)

    assert [s.transaction_id for s in stored] == [ev.transaction_id for ev in batch]
    rows = {e.transaction_id: e for e in Event.objects.select_related("metric")}
    for ev in batch:
        row = rows[ev.transaction_id]
        assert (row.metric.code, row.timestamp, row.value, row.properties) == (
            ev.metric.code,
            ev.timestamp,
            ev.value,
            ev.properties,
        )
        assert (row.external_subscription_id, row.is_late, row.payload_hash) == (
            "acme-sub",
            ev.is_late,
            ev.payload_hash,
        )
    # Tokyo's days: noon UTC is the 20th (bit 19), 23:30 UTC the 21st (bit 20).
    days = dict(DistinctValue.objects.values_list("value", "days"))
    expected: dict[str, int] = {}
    for ev in batch:
        if ev.distinct is not None:
            bit = 1 << (19 if ev.timestamp == NOW else 20)
            expected[ev.distinct] = expected.get(ev.distinct, 0) | bit
    assert days == expected
    counts = {(code, day): n for code, day, n in EventCount.objects.values_list("metric__code", "day", "count")}
    assert counts == {
        ("mtu", date(2026, 9, 20)): 10,
        ("mtu", date(2026, 9, 21)): 10,
        ("gb", date(2026, 9, 20)): 10,
        ("gb", date(2026, 9, 21)): 10,
    }


def test_a_batch_sharing_few_moments_is_grouped_and_a_single_event_is_not() -> None:
    batch = a_batch()
    assert len(batch) >= ingest_postgresql.GROUPED_MIN_EVENTS
    captured: list[dict[str, object]] = []

    class Cursor:
        def __enter__(self) -> Cursor:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def execute(self, sql: str, params: dict[str, object]) -> None:
            captured.append(params)

        def fetchall(self) -> list[tuple[int, str]]:
            return []

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_postgresql, "prepared_cursor", Cursor)
        ingest_postgresql.insert_customer_events(1, "Asia/Tokyo", batch, NOW)
        ingest_postgresql.insert_customer_events(1, "Asia/Tokyo", batch[:1], NOW)
    assert "groups" in captured[0] and "groups" not in captured[1]
