"""What every benchmark section shares: sizes, the bench database, the clock, progress output."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.benchmarks.database import BenchDatabase


@dataclass(frozen=True)
class Sizes:
    unique_events: int
    unique_distinct: int
    usage_events: int
    usage_distinct: int
    close_customers: tuple[int, ...]  # each run closes this many customers; the last is the figure
    ingest_seconds: float  # measuring window of each ingestion run
    probe_seconds: float  # measuring window of each server-setting probe
    usage_requests: int  # current_usage GETs for the latency percentiles
    repeats: int  # runs of each unique_count query (the median is reported)


QUICK = Sizes(
    unique_events=500_000,
    unique_distinct=100_000,
    usage_events=1_000_000,
    usage_distinct=200_000,
    close_customers=(1_000,),
    ingest_seconds=8,
    probe_seconds=4,
    usage_requests=200,
    repeats=5,
)
FULL = Sizes(
    unique_events=5_000_000,
    unique_distinct=1_000_000,
    usage_events=1_000_000,
    usage_distinct=200_000,
    close_customers=(2_000, 10_000),
    ingest_seconds=20,
    probe_seconds=6,
    usage_requests=1_000,
    repeats=3,
)

INGEST_CUSTOMER = "bench-ingest-000001"
USAGE_CUSTOMER = "bench-usage-000001"
UNIQUE_CUSTOMER = "bench-unique-000001"
CLOSE_PREFIX = "bench-close-"


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Bench:
    db: BenchDatabase
    sizes: Sizes
    quick: bool
    write: Callable[[str], None]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    api_key: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def this_month(self) -> datetime:
        return month_start(self.now)

    @property
    def next_month(self) -> datetime:
        return month_start(self.this_month + timedelta(days=32))

    @property
    def last_month(self) -> datetime:
        return month_start(self.this_month - timedelta(days=1))

    @property
    def events_end(self) -> datetime:
        """Seeded events of the open period stop a little before now (and after its start)."""
        return max(self.this_month + timedelta(seconds=1), self.now - timedelta(minutes=10))

    def log(self, message: str) -> None:
        self.write(f"[{time.monotonic() - self.started:7.1f}s] {message}")

    def note_load(self, moment: str) -> float:
        """Record the 1-minute load average: other processes on this machine take CPU from the
        server under test, so a busy machine understates every figure."""
        one, _, _ = os.getloadavg()
        self.results.setdefault("load_average", {})[moment] = round(one, 2)
        if one > 0.5 * (os.cpu_count() or 1):
            self.log(
                f"WARNING: load average {one:.1f} on {os.cpu_count()} CPUs at {moment}: other processes "
                "compete for CPU; figures are understated"
            )
        return one
