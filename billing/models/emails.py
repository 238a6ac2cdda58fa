"""Invoice emails (DESIGN §6 "Invoice emails"): an outbox of messages to customers.

Finalizing an invoice whose customer has an email writes its InvoiceEmail in the same
transaction; it is sent after the commit (django-q2, or `send_invoice_emails`) and retried on
failure. One automatic email per invoice (a database constraint); finance may resend, which
writes another row marked `resend`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.engine.vocabulary import EmailStatus
from billing.models.invoices import Invoice


class InvoiceEmail(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="emails")
    to = models.EmailField(max_length=254)
    resend = models.BooleanField(default=False, help_text="Asked for again by finance.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=EmailStatus.choices, default=EmailStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="invoice_email_due")]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice"], condition=Q(resend=False), name="invoice_email_once_per_invoice"
            ),
            models.CheckConstraint(
                condition=Q(status=EmailStatus.PENDING, next_attempt_at__isnull=False)
                | (~Q(status=EmailStatus.PENDING) & Q(next_attempt_at__isnull=True)),
                name="invoice_email_pending_is_scheduled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice} → {self.to}"
