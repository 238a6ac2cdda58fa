"""Admin for the commitments' ledger: append-only, so read-only everywhere.

The ledger shows on each commitment's page (LedgerEntryInline) and in its own searchable list;
nothing in the admin adds, edits or deletes an entry. Balances change only through the services
(billing.services.commitments): prepayment, drawdown, expiry, and the action "Adjust balance…".
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.admin.shared import admin_link
from billing.documents.formats import commitment_label, format_money
from billing.models import Commitment, LedgerEntry


class LedgerEntryInline(admin.TabularInline[LedgerEntry, Commitment]):
    """The commitment's ledger, oldest first, read-only always: it is append-only."""

    model = LedgerEntry
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("created_at", "kind", "amount_display", "invoice_display", "reason", "created_by")
    readonly_fields = fields
    ordering = ("created_at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        return super().get_queryset(request).select_related("invoice", "created_by", "commitment")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The ledger is part of the commitment: whoever may see the commitment sees its ledger.
        user = request.user
        return user.has_perm("billing.view_commitment") or user.has_perm("billing.change_commitment")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="amount")
    def amount_display(self, obj: LedgerEntry) -> str:
        return format_money(obj.amount, obj.commitment.currency)

    @admin.display(description="invoice")
    def invoice_display(self, obj: LedgerEntry) -> str:
        if obj.invoice is None:
            return "—"
        return admin_link("billing_invoice_change", obj.invoice.pk, str(obj.invoice))


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin[LedgerEntry]):
    """Every ledger entry, searchable; read-only (the ledger is append-only)."""

    list_display = (
        "created_at",
        "commitment_display",
        "customer_display",
        "kind",
        "amount_display",
        "invoice_link",
        "reason",
        "created_by",
    )
    list_filter = ("kind",)
    list_select_related = ("commitment__subscription__customer", "invoice", "created_by")
    search_fields = (
        "commitment__subscription__customer__external_id",
        "commitment__subscription__external_id",
        "invoice__number",
    )
    search_help_text = "Customer or subscription external id, or invoice number."
    ordering = ("-created_at", "-id")
    fields = ("commitment", "kind", "amount", "invoice", "reason", "created_by", "created_at")
    readonly_fields = fields

    @admin.display(description="commitment", ordering="commitment__term_start")
    def commitment_display(self, obj: LedgerEntry) -> str:
        return admin_link("billing_commitment_change", obj.commitment_id, commitment_label(obj.commitment))

    @admin.display(description="customer", ordering="commitment__subscription__customer__external_id")
    def customer_display(self, obj: LedgerEntry) -> str:
        return obj.commitment.subscription.customer.external_id

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: LedgerEntry) -> str:
        return format_money(obj.amount, obj.commitment.currency)

    @admin.display(description="invoice", ordering="invoice__number")
    def invoice_link(self, obj: LedgerEntry) -> str:
        if obj.invoice is None:
            return "—"
        return admin_link("billing_invoice_change", obj.invoice.pk, str(obj.invoice))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False
