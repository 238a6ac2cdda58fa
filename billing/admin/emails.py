"""Admin for invoice emails: the read-only log, and "Resend invoice email" on the invoice list.

- The log (Billing → Invoice emails) lists every email written for a finalized invoice
  (billing.services.invoice_emails): to whom, its status, attempts, the last error (on a sent
  email, a note such as "sent without the PDF attached"), when it was sent, and for a resend who
  asked. Nothing here is edited or deleted: the rows are written by the services only.
- "Resend invoice email" (an action of the invoice list, billing.admin.invoices) writes a new
  email marked `resend` for each selected finalized invoice, to the customer's current address,
  and it is sent within the minute (at once when the task cluster runs). Drafts, voided
  invoices and customers without an email are refused, one warning each. It needs the change
  permission on invoices, so read-only staff see the log but are not offered the action.
"""

from __future__ import annotations

from typing import cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import ngettext

from billing.admin.shared import admin_link, report_refusals
from billing.models import Invoice, InvoiceEmail
from billing.services.invoice_emails import InvoiceEmailError, invoice_email_resend

# Messages are constants so tests can match them.
EMAILS_QUEUED = (
    "%(count)d invoice email was queued; it is sent within a minute.",
    "%(count)d invoice emails were queued; they are sent within a minute.",
)


@admin.action(description="Resend invoice email", permissions=["change"])
def resend_invoice_email(
    model_admin: admin.ModelAdmin[Invoice], request: HttpRequest, queryset: QuerySet[Invoice]
) -> None:
    """Email each selected finalized invoice again (an action of the invoice admin)."""
    frozen_now = timezone.now()
    done, refusals = 0, []
    for invoice in queryset.order_by("period_start", "id"):
        try:
            invoice_email_resend(invoice=invoice, user=cast("User", request.user), now=frozen_now)
        except InvoiceEmailError as exc:
            refusals.append(str(exc))
        else:
            done += 1
    model_admin.message_user(
        request, ngettext(*EMAILS_QUEUED, done) % {"count": done}, messages.SUCCESS if done else messages.WARNING
    )
    report_refusals(model_admin, request, refusals)


@admin.register(InvoiceEmail)
class InvoiceEmailAdmin(admin.ModelAdmin[InvoiceEmail]):
    """Every invoice email, newest first; read-only (written by the services)."""

    list_display = (
        "created_at",
        "invoice_display",
        "to",
        "status",
        "attempts",
        "last_error",
        "sent_at",
        "resend",
        "requested_by_display",
    )
    list_filter = ("status", "resend")
    list_select_related = ("invoice", "requested_by")
    search_fields = ("invoice__number", "to", "invoice__customer__external_id")
    search_help_text = "Invoice number, address, or the customer's external id."
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "invoice_display",
        "to",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "sent_at",
        "resend",
        "requested_by_display",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[InvoiceEmail]:
        return super().get_queryset(request).select_related("invoice", "requested_by")

    @admin.display(description="invoice", ordering="invoice__number")
    def invoice_display(self, obj: InvoiceEmail) -> str:
        return admin_link("billing_invoice_change", obj.invoice_id, str(obj.invoice))

    @admin.display(description="requested by", ordering="requested_by__username")
    def requested_by_display(self, obj: InvoiceEmail) -> str:
        # The name only: staff users' pages are not the finance roles' to open.
        return obj.requested_by.get_username() if obj.requested_by is not None else ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # written when an invoice is finalized, or by "Resend invoice email"

    def has_change_permission(self, request: HttpRequest, obj: InvoiceEmail | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: InvoiceEmail | None = None) -> bool:
        return False
