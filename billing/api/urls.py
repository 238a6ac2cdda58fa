"""/api/v1 routes (Lago-compatible paths, no trailing slashes)."""

from django.urls import path, re_path

from billing.api import customers, events, invoices, subscriptions, usage
from config.api import route_not_found

urlpatterns = [
    path("events", events.EventCreateView.as_view(), name="events"),
    path("events/batch", events.EventBatchView.as_view(), name="events-batch"),
    path("events/<str:transaction_id>", events.EventDetailView.as_view(), name="event-detail"),
    path("customers", customers.CustomersView.as_view(), name="customers"),
    path("customers/<str:external_id>", customers.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<str:external_id>/current_usage", usage.CurrentUsageView.as_view(), name="current-usage"),
    path("subscriptions", subscriptions.SubscriptionsView.as_view(), name="subscriptions"),
    path("subscriptions/<str:external_id>", subscriptions.SubscriptionDetailView.as_view(), name="subscription-detail"),
    path("invoices", invoices.InvoicesView.as_view(), name="invoices"),
    path("invoices/<str:lago_id>", invoices.InvoiceDetailView.as_view(), name="invoice-detail"),
    # Last: any other path under /api/v1/ is Lago's JSON 404, never an HTML page.
    re_path(r"^(?P<path>.*)$", route_not_found, name="not-found"),
]
