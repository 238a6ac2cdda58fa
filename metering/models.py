from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from metering.vocabulary import Aggregation

__all__ = ["Aggregation", "BillableMetric", "DistinctCount", "DistinctValue", "Event", "EventCount", "EventKey"]


FIELD_REQUIRED = "This aggregation needs the property (field) it aggregates."
FIELD_FORBIDDEN = "A count aggregation does not read a property; leave field empty."


class BillableMetric(models.Model):
    """What is measured: the events with this code, aggregated over a time window."""

    code = models.SlugField(max_length=64, unique=True, help_text="The `code` events carry.")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices)
    field = models.CharField(
        max_length=128,
        blank=True,
        help_text="Event property aggregated (e.g. user_id); empty for count.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(aggregation="count", field="")
                | (~models.Q(aggregation="count") & ~models.Q(field="")),
                name="metric_field_matches_aggregation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def clean(self) -> None:
        if self.aggregation == Aggregation.COUNT and self.field:
            raise ValidationError({"field": FIELD_FORBIDDEN})
        if self.aggregation and self.aggregation != Aggregation.COUNT and not self.field:
            raise ValidationError({"field": FIELD_REQUIRED})

    @property
    def needs_numeric_field(self) -> bool:
        return self.aggregation in {Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST}


class Event(models.Model):
    """A usage event, append-only. Once per (customer, transaction_id) (see EventKey): resending is a no-op.

    Its customer and metric are checked by the storing statement, once for all its rows, and
    locked against deletion until the commit (metering.ingest_postgresql); no table of metering
    carries foreign-key constraints, which the database checked once for each row (a 1,000-event
    commit went from 8 to 20 ms with them). Deleting a referenced customer or metric through the
    ORM is still refused (PROTECT).

    `value` is the metric's numeric property, extracted at ingestion for sum/max/latest so the
    aggregation reads a column instead of JSON. `payload_hash` identifies what the client sent,
    to tell a retry (same hash: 200) from a reused transaction id (different hash: 409).
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    metric = models.ForeignKey(
        BillableMetric, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    transaction_id = models.CharField(max_length=255)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    value = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    external_subscription_id = models.CharField(max_length=255, blank=True)
    payload_hash = models.CharField(max_length=64)
    received_at = models.DateTimeField()
    is_late = models.BooleanField(
        default=False, help_text="Arrived after its period's invoice was finalized; billed on the next one."
    )

    class Meta:
        ordering = ["-timestamp", "-id"]
        # No unique constraint here: on PostgreSQL this table is partitioned by month (see
        # migration 0004), where a unique index must include the timestamp. Idempotency by
        # (customer, transaction_id) is the primary key of EventKey instead.
        indexes = [
            # Serves every window aggregation: customer + metric + [start, end).
            models.Index(fields=["customer", "metric", "timestamp"], name="event_window"),
        ]

    def __str__(self) -> str:
        return self.transaction_id

    @property
    def code(self) -> str:
        return self.metric.code


class EventKey(models.Model):
    """The idempotency key of an event: one row per (customer, transaction_id), never partitioned.

    Ingestion inserts the key first (ON CONFLICT DO NOTHING); only events whose key was new are
    stored, so an event is stored once however many times, and by however many clients, it is
    sent. `payload_hash` tells a retry from a reused id; `metric` and `timestamp` find the
    stored event through the events' window index (and its partition).
    """

    pk = models.CompositePrimaryKey("customer_id", "transaction_id")
    # No foreign-key constraints: the storing statement checks the customer and the metrics,
    # and locks them against deletion, once for all its rows (metering.ingest_postgresql), where
    # the constraints checked each row. Deleting them through the ORM is still refused (PROTECT).
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    transaction_id = models.CharField(max_length=255)
    payload_hash = models.CharField(max_length=64)
    metric = models.ForeignKey(
        BillableMetric, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    timestamp = models.DateTimeField()

    class Meta:
        verbose_name = "event key"
        # GET /api/v1/events/<transaction_id> without a customer (as Lago's SDK asks it).
        indexes = [models.Index(fields=["transaction_id"], name="eventkey_transaction")]

    def __str__(self) -> str:
        return self.transaction_id


class DistinctValue(models.Model):
    """The maintained set behind unique_count: one row per customer, metric, month and value.

    `month` is yyyymm in the customer's time zone and bit d-1 of `days` is set when the value was
    seen on day d of that month. Ingestion ORs bits in (idempotent, so retries and concurrent
    writers are harmless). Any window made of whole local days is answered from here:
    COUNT(*) of rows whose `days` meet the window's day mask, without rescanning events.
    """

    pk = models.CompositePrimaryKey("customer_id", "metric_id", "month", "value")
    # The primary key's index leads with customer and metric; no separate indexes needed.
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    metric = models.ForeignKey(
        BillableMetric, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    month = models.PositiveIntegerField()
    value = models.CharField(max_length=255)
    days = models.IntegerField()

    class Meta:
        verbose_name = "distinct value"

    def __str__(self) -> str:
        return f"{self.value} ({self.month})"


class DistinctCount(models.Model):
    """How many values a (customer, metric, local month) set holds: COUNT(*) of its DistinctValue rows.

    Current usage asks for the open month's unique_count on every request, and counting a set of
    200,000 values cost about 10 ms of database CPU each time. Ingestion adds the rows it newly
    inserted to the set, in the same statement (PostgreSQL) or transaction (SQLite), so it always
    equals the count; a window of exactly one whole local month reads it instead of counting.
    Set rows are never deleted (only bits are ever set), so nothing ever takes from it.
    """

    pk = models.CompositePrimaryKey("customer_id", "metric_id", "month")
    # The primary key's index leads with customer and metric; no separate indexes needed.
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    metric = models.ForeignKey(
        BillableMetric, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    month = models.PositiveIntegerField(help_text="yyyymm in the customer's time zone.")
    count = models.BigIntegerField()

    class Meta:
        verbose_name = "distinct value count"

    def __str__(self) -> str:
        return f"{self.month}: {self.count}"


class EventCount(models.Model):
    """How many events a customer sent for a metric on one local day: Lago's `events_count`.

    Maintained at ingestion from the events that were really stored (the new idempotency keys),
    in the same transaction, so it always equals COUNT(*) of those events. Any window of whole
    local days is then counted from at most a few dozen rows instead of a scan of millions of
    events; `count` metrics read their quantity from here too.
    """

    pk = models.CompositePrimaryKey("customer_id", "metric_id", "day")
    # The primary key's index leads with customer and metric; no separate indexes needed.
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    metric = models.ForeignKey(
        BillableMetric, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    day = models.DateField(help_text="The day in the customer's time zone.")
    count = models.BigIntegerField()

    class Meta:
        verbose_name = "daily event count"

    def __str__(self) -> str:
        return f"{self.day}: {self.count}"
