"""Admin for billable metrics (what is measured, never what it costs) and usage events.

Events are append-only and read-only here: no one adds, changes or deletes one from the admin.
Their table holds tens of millions of rows, so the event list only asks questions an index can
answer quickly: newest first by id, counts capped, no facet counts, exact-match search.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal

from customers.models import Customer
from metering.models import BillableMetric, Event, EventKey

METRIC_IN_USE_NOTE = (
    "This metric is billed on plans that have subscriptions, so how it aggregates is read-only: "
    "changing it would change what those customers pay. Create a metric with a new code instead."
)
BILLING_FIELDS = ("aggregation", "field")


@admin.register(BillableMetric)
class BillableMetricAdmin(admin.ModelAdmin[BillableMetric]):
    list_display = ("code", "name", "aggregation", "field_display", "updated_at")
    list_filter = ("aggregation",)
    search_fields = ("code", "name", "field")
    ordering = ("code",)
    readonly_fields = ("created_at", "updated_at")

    def is_in_use(self, obj: BillableMetric) -> bool:
        """Whether a change to the aggregation would change bills.

        Metering knows nothing of prices, so it cannot tell; billing's admin registers a subclass
        that can (billing.admin.metrics.BilledMetricAdmin).
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

    def get_readonly_fields(self, request: HttpRequest, obj: BillableMetric | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields + BILLING_FIELDS if obj is not None and self.is_in_use(obj) else fields

    @admin.display(description="field", ordering="field")
    def field_display(self, obj: BillableMetric) -> str:
        # A count reads no property; say so instead of showing an empty cell.
        return obj.field or "—"


# --- Events -------------------------------------------------------------------------------------


class CappedCountPaginator(Paginator[Event]):
    """Counts at most `cap` rows.

    The change list counts its rows for the pagination; on the events table an exact COUNT(*)
    reads every matching row (tens of millions unfiltered). Counting a LIMITed subquery stops
    after `cap` + 1 rows. The templates say "more than 10,000" when the cap is reached.
    """

    cap = 10_000

    @cached_property
    def _raw_count(self) -> int:
        object_list = self.object_list
        if isinstance(object_list, QuerySet):
            return object_list[: self.cap + 1].count()
        return len(object_list)

    @cached_property
    def count(self) -> int:
        return min(self._raw_count, self.cap)

    @property
    def is_capped(self) -> bool:
        return self._raw_count > self.cap


class MetricCodeFilter(admin.SimpleListFilter):
    title = "metric"
    parameter_name = "code"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        # From the (small) metrics table, never from a DISTINCT over the events.
        return [(code, code) for code in BillableMetric.objects.order_by("code").values_list("code", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value():
            return queryset.filter(metric__code=self.value())
        return queryset


EVENT_SEARCH_HELP = (
    "Exact match, case-sensitive: a customer's external id shows that customer's events; any other word "
    "must equal the transaction id. Several words must all match (e.g. acme evt_123)."
)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    """Usage events, read-only for everyone.

    - Newest first by id (the primary key index): the model's order, by timestamp, has no index
      of its own, and sorting tens of millions of rows for one page is not an option; for the
      same reason columns are not sortable.
    - No date_hierarchy: it runs a DISTINCT over the dates of every matching row. The timestamp
      filter's choices (today, past 7 days, this month, this year) cost no query.
    - Counts are capped (CappedCountPaginator), the unfiltered total is never counted, and facet
      counts are off.
    """

    list_display = ("transaction_id", "customer_link", "metric_code", "timestamp", "late_display", "received_at")
    list_filter = (MetricCodeFilter, ("timestamp", admin.DateFieldListFilter))
    list_select_related = ("customer", "metric")
    search_fields = ("transaction_id", "customer__external_id")  # see get_search_results
    search_help_text = EVENT_SEARCH_HELP
    ordering = ("-id",)
    sortable_by = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    fields = (
        "transaction_id",
        "customer",
        "metric",
        "timestamp",
        "received_at",
        "is_late",
        "external_subscription_id",
        "properties_display",
        "value",
        "payload_hash",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).select_related("customer", "metric")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Event], search_term: str
    ) -> tuple[QuerySet[Event], bool]:
        # The default search (icontains, or iexact with "=") compares UPPER()s or substrings and
        # reads every row. Exact values use the indexes: a customer's events through the
        # (customer, metric, timestamp) index; a transaction id through EventKey's index, whose
        # (customer, metric, timestamp) then finds the event in its partition.
        terms = []
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1] and len(bit) > 1:
                bit = unescape_string_literal(bit)
            if bit:
                terms.append(bit)
        if not terms:
            return queryset, False
        customers: dict[str, int] = dict(
            Customer.objects.filter(external_id__in=terms).values_list("external_id", "pk")
        )
        condition = Q()
        for term in terms:
            if term in customers:
                condition &= Q(customer_id=customers[term])
                continue
            keys = Q(pk__in=[])
            for key in EventKey.objects.filter(transaction_id=term)[:100]:
                keys |= Q(customer_id=key.customer_id, metric_id=key.metric_id, timestamp=key.timestamp)
            condition &= keys & Q(transaction_id=term)
        return queryset.filter(condition), False

    @admin.display(description="late")
    def late_display(self, obj: Event) -> str:
        """Late for an event that arrived after its period was invoiced; nothing otherwise (a red
        cross on every punctual event would read as an error)."""
        return "Late" if obj.is_late else ""

    @admin.display(description="customer")
    def customer_link(self, obj: Event) -> str:
        try:
            url = reverse("admin:customers_customer_change", args=[obj.customer_id])
        except NoReverseMatch:  # customers not in this admin site
            return obj.customer.external_id
        return format_html('<a href="{}">{}</a>', url, obj.customer.external_id)

    @admin.display(description="code")
    def metric_code(self, obj: Event) -> str:
        return obj.metric.code

    @admin.display(description="properties")
    def properties_display(self, obj: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.properties, indent=2, sort_keys=True, ensure_ascii=False))
