"""Billing's back office: one module per screen, registered with the admin site on import.

| module | screen |
|---|---|
| plans, calculator | plans with their charges and tiers (nested), the price calculator |
| promotions, metrics | promotions; billable metrics (metering's admin, told when a metric bills) |
| customers, subscriptions | customers with their current usage; subscriptions |
| invoices, invoice_lines, invoice_filters | invoices, their lines, the list's filters, the actions |
| commitments, ledger | commitments and their append-only ledger |
| audit | the values a usage line counted (the MTU audit), the customer page's charts |
| dashboard | the billing dashboard |
| tasks | django-q2's admins, guarded |

Each admin calls services (billing.services) for every change and selectors (billing.selectors)
for every figure; nothing is priced or written here.
"""

from billing.admin import (
    commitments,
    customers,
    dashboard,
    invoices,
    ledger,
    metrics,
    plans,
    promotions,
    subscriptions,
    tasks,
)

__all__ = [
    "commitments",
    "customers",
    "dashboard",
    "invoices",
    "ledger",
    "metrics",
    "plans",
    "promotions",
    "subscriptions",
    "tasks",
]
