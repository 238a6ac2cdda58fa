"""Metering's vocabulary (pure): how a billable metric aggregates its events."""

from __future__ import annotations

from config.choices import Choices


class Aggregation(Choices):
    COUNT = "count", "Count of events"
    SUM = "sum", "Sum of a property"
    MAX = "max", "Maximum of a property"
    LATEST = "latest", "Latest value of a property"
    UNIQUE_COUNT = "unique_count", "Count of distinct values of a property"
