"""/api/v1 routes (Lago-compatible paths, no trailing slashes)."""

from django.urls import path, re_path

from billing.api import (
    add_ons,
    alerts,
    coupons,
    credit_notes,
    customer_children,
    customers,
    events,
    invoices,
    payments,
    plan_charges,
    subscription_charges,
    subscriptions,
    taxes,
    usage,
    wallets,
    webhook_endpoints,
)
from billing.api import billable_metrics as billable_metric_views
from billing.api import fees as fee_views
from billing.api import invoice_preview as invoice_preview_views
from billing.api import plans as plan_views
from config.api import route_not_found

urlpatterns = [
    path("events", events.EventCreateView.as_view(), name="events"),
    path("events/batch", events.EventBatchView.as_view(), name="events-batch"),
    path("events/estimate_fees", events.EventEstimateFeesView.as_view(), name="events-estimate-fees"),
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
    # Above invoices/<lago_id>: "preview" is not an invoice id.
    path("invoices/preview", invoice_preview_views.InvoicePreviewView.as_view(), name="invoice-preview"),
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
    path("taxes", taxes.TaxesView.as_view(), name="taxes"),
    path("taxes/<str:code>", taxes.TaxDetailView.as_view(), name="tax-detail"),
    path("add_ons", add_ons.AddOnsView.as_view(), name="add-ons"),
    path("add_ons/<str:code>", add_ons.AddOnDetailView.as_view(), name="add-on-detail"),
    path("wallets", wallets.WalletsView.as_view(), name="wallets"),
    path("wallets/<str:lago_id>", wallets.WalletDetailView.as_view(), name="wallet-detail"),
    path("wallets/<str:lago_id>/metadata", wallets.WalletMetadataView.as_view(), name="wallet-metadata"),
    path(
        "wallets/<str:lago_id>/metadata/<str:key>",
        wallets.WalletMetadataKeyView.as_view(),
        name="wallet-metadata-key",
    ),
    path(
        "wallets/<str:lago_id>/wallet_transactions",
        wallets.WalletTransactionListView.as_view(),
        name="wallet-transactions",
    ),
    path("wallet_transactions", wallets.WalletTransactionsView.as_view(), name="wallet-transactions-create"),
    path("customers/<str:external_id>/wallets", wallets.CustomerWalletsView.as_view(), name="customer-wallets"),
    path(
        "customers/<str:external_id>/wallets/<str:code>",
        wallets.CustomerWalletView.as_view(),
        name="customer-wallet",
    ),
    path(
        "customers/<str:external_id>/wallets/<str:code>/metadata",
        wallets.CustomerWalletMetadataView.as_view(),
        name="customer-wallet-metadata",
    ),
    path(
        "customers/<str:external_id>/wallets/<str:code>/metadata/<str:key>",
        wallets.CustomerWalletMetadataKeyView.as_view(),
        name="customer-wallet-metadata-key",
    ),
    path("coupons", coupons.CouponsView.as_view(), name="coupons"),
    path("coupons/<str:code>", coupons.CouponDetailView.as_view(), name="coupon-detail"),
    path("applied_coupons", coupons.AppliedCouponsView.as_view(), name="applied-coupons"),
    path(
        "customers/<str:external_id>/applied_coupons",
        coupons.CustomerAppliedCouponsView.as_view(),
        name="customer-applied-coupons",
    ),
    path(
        "customers/<str:external_id>/applied_coupons/<str:lago_id>",
        coupons.CustomerAppliedCouponView.as_view(),
        name="customer-applied-coupon",
    ),
    path("customers/<str:external_id>/past_usage", usage.PastUsageView.as_view(), name="customer-past-usage"),
    path(
        "customers/<str:external_id>/projected_usage",
        usage.ProjectedUsageView.as_view(),
        name="customer-projected-usage",
    ),
    path("fees", fee_views.FeesView.as_view(), name="fees"),
    path("fees/<str:lago_id>", fee_views.FeeDetailView.as_view(), name="fee-detail"),
    path(
        "wallet_transactions/<str:lago_id>/consumptions",
        wallets.WalletTransactionConsumptionsView.as_view(),
        name="wallet-transaction-consumptions",
    ),
    path(
        "wallet_transactions/<str:lago_id>/fundings",
        wallets.WalletTransactionFundingsView.as_view(),
        name="wallet-transaction-fundings",
    ),
    path(
        "customers/<str:external_id>/subscriptions",
        subscriptions.CustomerSubscriptionsView.as_view(),
        name="customer-subscriptions",
    ),
    path(
        "subscriptions/<str:external_id>/lifetime_usage",
        subscriptions.LifetimeUsageView.as_view(),
        name="subscription-lifetime-usage",
    ),
    path(
        "subscriptions/<str:external_id>/charges",
        subscription_charges.SubscriptionChargesView.as_view(),
        name="subscription-charges",
    ),
    path(
        "subscriptions/<str:external_id>/charges/<str:code>",
        subscription_charges.SubscriptionChargeView.as_view(),
        name="subscription-charge",
    ),
    path("billable_metrics", billable_metric_views.BillableMetricsView.as_view(), name="billable-metrics"),
    path(
        "billable_metrics/<str:code>",
        billable_metric_views.BillableMetricDetailView.as_view(),
        name="billable-metric-detail",
    ),
    path("plans", plan_views.PlansView.as_view(), name="plans"),
    path("plans/<str:code>", plan_views.PlanDetailView.as_view(), name="plan-detail"),
    path("plans/<str:code>/charges", plan_charges.PlanChargesView.as_view(), name="plan-charges"),
    path("plans/<str:code>/charges/<str:charge_code>", plan_charges.PlanChargeView.as_view(), name="plan-charge"),
    path("plans/<str:code>/metadata", plan_views.PlanMetadataView.as_view(), name="plan-metadata"),
    path("plans/<str:code>/metadata/<str:key>", plan_views.PlanMetadataKeyView.as_view(), name="plan-metadata-key"),
    # Last: any other path under /api/v1/ is Lago's JSON 404, never an HTML page.
    re_path(r"^(?P<path>.*)$", route_not_found, name="not-found"),
]
