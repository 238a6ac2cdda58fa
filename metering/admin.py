"""Admin for billable metrics: what is measured, never what it costs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from metering.models import BillableMetric

METRIC_IN_USE_NOTE = (
    "This metric is billed on plans that have subscriptions, so how it aggregates is read-only: "
    "changing it would change what those customers pay. Create a metric with a new code instead."
)
BILLING_FIELDS = ("aggregation", "field")


@admin.register(BillableMetric)
class BillableMetricAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "aggregation", "field_display", "updated_at")
    list_filter = ("aggregation",)
    search_fields = ("code", "name", "field")
    ordering = ("code",)
    readonly_fields = ("created_at", "updated_at")

    def is_in_use(self, obj: BillableMetric) -> bool:
        """Whether a change to the aggregation would change bills.

        Metering knows nothing of prices, so it cannot tell; billing's admin registers a subclass
        that can (billing.admin.BilledMetricAdmin).
        """
        return False

    def get_fieldsets(self, request: HttpRequest, obj: BillableMetric | None = None) -> Any:
        in_use = obj is not None and self.is_in_use(obj)
        description = (
            METRIC_IN_USE_NOTE
            if in_use
            else "Events with this code are aggregated over each billing period. Every aggregation "
            "except count reads one event property (e.g. user_id)."
        )
        return (
            (None, {"fields": ("code", "name", "description")}),
            ("Aggregation", {"fields": BILLING_FIELDS, "description": description}),
            ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: BillableMetric | None = None) -> Sequence[str]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields + BILLING_FIELDS if obj is not None and self.is_in_use(obj) else fields

    @admin.display(description="field", ordering="field")
    def field_display(self, obj: BillableMetric) -> str:
        # A count reads no property; say so instead of showing an empty cell.
        return obj.field or "—"
