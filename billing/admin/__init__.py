"""Billing's back office: one module per screen, registered with the admin site on import.

| module | screen |
|---|---|
| plans, calculator | plans with their charges and tiers (nested), the price calculator |
| promotions, metrics | promotions; billable metrics (metering's admin, told when a metric bills) |
| customers, subscriptions | customers with their current usage and account; subscriptions |
| invoices, invoice_lines, invoice_filters | invoices, their lines, the list's filters, the actions |
| invoice_money, invoice_corrections | the invoice page's payments and money buttons; void and regenerate |
| emails | the read-only log of invoice emails, the invoice list's "Resend invoice email" |
| payments | "Record payment" on an invoice, the append-only payment list |
| credit_note_issue, credit_notes | "Issue credit note" (enter, preview, confirm); the credit note list and page |
| receivables | the receivables aging report and its CSV |
| money_input | amounts typed in a currency, services' errors shown by field |
| commitments, ledger | commitments and their append-only ledger |
| audit | the values a usage line counted (the MTU audit), the customer page's charts |
| alerts | usage alerts per subscription with their thresholds; the triggered alerts |
| coupons | coupons (terminate); applied coupons per customer ("Apply coupon", terminate) |
| dashboard | the billing dashboard (also the admin's home page: config.admin) |
| numbering | the invoice-number counters, read-only for everyone |
| tasks | django-q2's admins, guarded |
| taxes | taxes (a customer's tax codes are set on its page, customers) |
| addons, one_off_invoices | add-ons; "New one-off invoice" (add-ons billed to a customer now) |
| webhook_endpoints, webhook_deliveries | webhook endpoints and the signing key; the deliveries log and "Resend" |
| wallets | wallets (prepaid credits) with their transactions; "Top up", "Void credits", terminate |

Each admin calls services (billing.services) for every change and selectors (billing.selectors)
for every figure; nothing is priced or written here.
"""

from billing.admin import (
    addons,
    alerts,
    commitments,
    coupons,
    credit_notes,
    customers,
    dashboard,
    emails,
    invoices,
    ledger,
    metrics,
    numbering,
    payments,
    plans,
    promotions,
    receivables,
    subscriptions,
    tasks,
    taxes,
    wallets,
    webhook_deliveries,
    webhook_endpoints,
)

__all__ = [
    "addons",
    "alerts",
    "commitments",
    "coupons",
    "credit_notes",
    "customers",
    "dashboard",
    "emails",
    "invoices",
    "ledger",
    "metrics",
    "numbering",
    "payments",
    "plans",
    "promotions",
    "receivables",
    "subscriptions",
    "tasks",
    "taxes",
    "wallets",
    "webhook_deliveries",
    "webhook_endpoints",
]
