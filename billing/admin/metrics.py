"""The billable metric admin, told by billing when a metric is billed on a sold plan."""

from __future__ import annotations

from django.contrib import admin

from billing.models import Subscription
from metering.admin import BillableMetricAdmin
from metering.models import BillableMetric


class BilledMetricAdmin(BillableMetricAdmin):
    """The metric admin, told by billing when a metric is billed on a sold plan.

    Metering cannot know (it knows nothing of plans), so billing replaces its registration with
    this subclass; like load_catalog, it then keeps the aggregation and field from changing.
    """

    def is_in_use(self, obj: BillableMetric) -> bool:
        return Subscription.objects.filter(plan__charges__metric=obj).exists()


admin.site.unregister(BillableMetric)
admin.site.register(BillableMetric, BilledMetricAdmin)
