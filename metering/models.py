from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class Aggregation(models.TextChoices):
    COUNT = "count", "Count of events"
    SUM = "sum", "Sum of a property"
    MAX = "max", "Maximum of a property"
    LATEST = "latest", "Latest value of a property"
    UNIQUE_COUNT = "unique_count", "Count of distinct values of a property"


FIELD_REQUIRED = "This aggregation needs the property (field) it aggregates."
FIELD_FORBIDDEN = "A count aggregation does not read a property; leave field empty."


class BillableMetric(models.Model):
    """What is measured: the events with this code, aggregated over a time window."""

    code = models.SlugField(max_length=64, unique=True, help_text="The `code` events carry.")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices)
    field = models.CharField(
        max_length=128, blank=True,
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
