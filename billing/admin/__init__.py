"""Billing's back office: one module per screen, registered with the admin site on import.

| module | screen |
|---|---|
| plans, calculator | plans with their charges and tiers (nested), the price calculator |
| promotions, metrics | promotions; billable metrics (metering's admin, told when a metric bills) |
| customers, subscriptions | customers with their current usage and account; subscriptions |
| invoices, invoice_lines, invoice_filters | invoices, their lines, the list's filters, the actions |
| invoice_money, invoice_corrections | the invoice page's payments and money buttons; void and regenerate |
| payments | "Record payment" on an invoice, the append-only payment list |
| credit_note_issue, credit_notes | "Issue credit note" (enter, preview, confirm); the credit note list and page |
| receivables | the receivables aging report and its CSV |
| money_input | amounts typed in a currency, services' errors shown by field |
| commitments, ledger | commitments and their append-only ledger |
| audit | the values a usage line counted (the MTU audit), the customer page's charts |
| dashboard | the billing dashboard |
| tasks | django-q2's admins, guarded |

Each admin calls services (billing.services) for every change and selectors (billing.selectors)
for every figure; nothing is priced or written here.
"""

from billing.admin import (
    commitments,
    credit_notes,
    customers,
    dashboard,
    invoices,
    ledger,
    metrics,
    payments,
    plans,
    promotions,
    receivables,
    subscriptions,
    tasks,
)

__all__ = [
    "commitments",
    "credit_notes",
    "customers",
    "dashboard",
    "invoices",
    "ledger",
    "metrics",
    "payments",
    "plans",
    "promotions",
    "receivables",
    "subscriptions",
    "tasks",
]
