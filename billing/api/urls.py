"""/api/v1 routes (Lago-compatible paths, no trailing slashes)."""

from django.urls import path, re_path

from billing.api import (
    alerts,
    credit_notes,
    customer_children,
    customers,
    events,
    invoices,
    payments,
    subscriptions,
    usage,
    webhook_endpoints,
)
from config.api import route_not_found

urlpatterns = [
    path("events", events.EventCreateView.as_view(), name="events"),
    path("events/batch", events.EventBatchView.as_view(), name="events-batch"),
    path("events/<str:transaction_id>", events.EventDetailView.as_view(), name="event-detail"),
    path("customers", customers.CustomersView.as_view(), name="customers"),
    path("customers/<str:external_id>", customers.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<str:external_id>/current_usage", usage.CurrentUsageView.as_view(), name="current-usage"),
    path(
        "customers/<str:external_id>/invoices",
        customer_children.CustomerInvoicesView.as_view(),
        name="customer-invoices",
    ),
    path(
        "customers/<str:external_id>/credit_notes",
        customer_children.CustomerCreditNotesView.as_view(),
        name="customer-credit-notes",
    ),
    path(
        "customers/<str:external_id>/payments",
        customer_children.CustomerPaymentsView.as_view(),
        name="customer-payments",
    ),
    path("subscriptions", subscriptions.SubscriptionsView.as_view(), name="subscriptions"),
    path("subscriptions/<str:external_id>", subscriptions.SubscriptionDetailView.as_view(), name="subscription-detail"),
    path("subscriptions/<str:external_id>/alerts", alerts.SubscriptionAlertsView.as_view(), name="subscription-alerts"),
    path(
        "subscriptions/<str:external_id>/alerts/<str:code>",
        alerts.SubscriptionAlertView.as_view(),
        name="subscription-alert",
    ),
    path("invoices", invoices.InvoicesView.as_view(), name="invoices"),
    path("invoices/<str:lago_id>", invoices.InvoiceDetailView.as_view(), name="invoice-detail"),
    path("invoices/<str:lago_id>/finalize", invoices.InvoiceFinalizeView.as_view(), name="invoice-finalize"),
    path("invoices/<str:lago_id>/refresh", invoices.InvoiceRefreshView.as_view(), name="invoice-refresh"),
    path("invoices/<str:lago_id>/void", invoices.InvoiceVoidView.as_view(), name="invoice-void"),
    path("invoices/<str:lago_id>/download", invoices.InvoiceDownloadView.as_view(), name="invoice-download"),
    path("payments", payments.PaymentsView.as_view(), name="payments"),
    path("payments/<str:lago_id>", payments.PaymentDetailView.as_view(), name="payment-detail"),
    path("credit_notes", credit_notes.CreditNotesView.as_view(), name="credit-notes"),
    path("credit_notes/estimate", credit_notes.CreditNoteEstimateView.as_view(), name="credit-note-estimate"),
    path("credit_notes/<str:lago_id>", credit_notes.CreditNoteDetailView.as_view(), name="credit-note-detail"),
    path("credit_notes/<str:lago_id>/void", credit_notes.CreditNoteVoidView.as_view(), name="credit-note-void"),
    path(
        "credit_notes/<str:lago_id>/download",
        credit_notes.CreditNoteDownloadView.as_view(),
        name="credit-note-download",
    ),
    path(
        "credit_notes/<str:lago_id>/metadata",
        credit_notes.CreditNoteMetadataView.as_view(),
        name="credit-note-metadata",
    ),
    path(
        "credit_notes/<str:lago_id>/metadata/<str:key>",
        credit_notes.CreditNoteMetadataKeyView.as_view(),
        name="credit-note-metadata-key",
    ),
    path("webhook_endpoints", webhook_endpoints.WebhookEndpointsView.as_view(), name="webhook-endpoints"),
    path(
        "webhook_endpoints/<str:lago_id>",
        webhook_endpoints.WebhookEndpointDetailView.as_view(),
        name="webhook-endpoint-detail",
    ),
    # Last: any other path under /api/v1/ is Lago's JSON 404, never an HTML page.
    re_path(r"^(?P<path>.*)$", route_not_found, name="not-found"),
]
