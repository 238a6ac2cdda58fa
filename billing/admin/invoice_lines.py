"""An invoice's lines on its admin page: read-only, with their tiers and a link to the values a
usage line counted (billing.admin.audit)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from billing.admin.audit import audit_link
from billing.documents.formats import format_line_quantity, format_money, format_price
from billing.documents.invoice import tier_rows
from billing.models import Invoice, InvoiceLine


class InvoiceLineInline(admin.TabularInline[InvoiceLine, Invoice]):
    """The invoice's lines, read-only always: they are computed from usage, never typed."""

    model = InvoiceLine
    extra = 0
    max_num = 0
    can_delete = False
    fields = (
        "kind",
        "description",
        "quantity_display",
        "unit_price_display",
        "amount_display",
        "tiers_display",
        "audit_display",
    )
    readonly_fields = fields
    ordering = ("position", "id")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The lines are part of the invoice: whoever may see the invoice sees them.
        return request.user.has_perm("billing.view_invoice") or request.user.has_perm("billing.change_invoice")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="quantity")
    def quantity_display(self, obj: InvoiceLine) -> str:
        return format_line_quantity(obj.kind, obj.quantity, obj.details)

    @admin.display(description="unit price")
    def unit_price_display(self, obj: InvoiceLine) -> str:
        return format_price(obj.unit_amount, obj.currency) if obj.unit_amount is not None else "—"

    @admin.display(description="amount")
    def amount_display(self, obj: InvoiceLine) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="tiers")
    def tiers_display(self, obj: InvoiceLine) -> str:
        rows = tier_rows(obj)
        if not rows:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "{}: {} × {} = {}",
            ((row["label"], row["units"], row["unit_price"], row["amount"]) for row in rows),
        )

    @admin.display(description="audit")
    def audit_display(self, obj: InvoiceLine) -> str:
        return audit_link(obj)  # the distinct values a usage line counted (billing.admin.audit)
