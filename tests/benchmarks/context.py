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
    unique_events: int  # the unique_count figure's customer (the largest of unique_growth)
    unique_distinct: int  # distinct users of every unique_growth customer
    unique_growth: tuple[int, ...]  # events of each growth customer: unique_count and current_usage curves
    usage_events: int
    usage_distinct: int
    close_customers: tuple[int, ...]  # growth curve: each run closes this many customers (all of them)
    close_figure: int  # the run whose time, CPU and RSS are the period-close figures
    close_workers: int  # close_period --workers (when the command has the flag)
    ingest_seconds: float  # measuring window of each ingestion run
    probe_seconds: float  # measuring window of each server-setting probe
    usage_requests: int  # current_usage GETs for the latency percentiles
    growth_usage_requests: int  # current_usage GETs at each size of the growth curve
    repeats: int  # runs of each unique_count query (the median is reported)

    def __post_init__(self) -> None:
        if self.unique_growth[-1] != self.unique_events or self.close_figure not in self.close_customers:
            raise ValueError("the figure's size must be a size of its growth curve")
        if list(self.close_customers) != sorted(self.close_customers):
            raise ValueError("close_customers must grow: each run adds subscribers to the previous ones")


QUICK = Sizes(
    unique_events=1_000_000,
    unique_distinct=100_000,
    unique_growth=(250_000, 500_000, 1_000_000),
    usage_events=1_000_000,
    usage_distinct=200_000,
    close_customers=(500, 1_000, 2_000),
    close_figure=1_000,
    close_workers=2,
    ingest_seconds=8,
    probe_seconds=4,
    usage_requests=200,
    growth_usage_requests=100,
    repeats=5,
)
FULL = Sizes(
    unique_events=20_000_000,
    unique_distinct=1_000_000,
    unique_growth=(1_000_000, 5_000_000, 20_000_000),
    usage_events=1_000_000,
    usage_distinct=200_000,
    close_customers=(1_000, 10_000, 50_000),
    close_figure=10_000,
    close_workers=2,
    ingest_seconds=20,
    probe_seconds=6,
    usage_requests=1_000,
    growth_usage_requests=300,
    repeats=3,
)

INGEST_CUSTOMER = "bench-ingest-000001"
USAGE_CUSTOMER = "bench-usage-000001"
UNIQUE_PREFIX = "bench-unique-"  # bench-unique-000001 … one customer per size of unique_growth
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
    def unique_customers(self) -> list[tuple[str, int]]:
        """(external id, events) of the growth customers, smallest first; the last one is the
        unique_count figure's."""
        return [(f"{UNIQUE_PREFIX}{k:06d}", events) for k, events in enumerate(self.sizes.unique_growth, 1)]

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
