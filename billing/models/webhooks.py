"""Webhooks (DESIGN §6 "Webhooks"): endpoints, the signing key, and the outbox of deliveries.

A change that must be announced writes one WebhookDelivery per endpoint that listens to its
type in the same database transaction as the change (the outbox): a rolled-back change
announces nothing, and a crash after the commit loses nothing, since the rows wait to be sent.
Each delivery keeps the exact body it sends, its `unique_key` (Lago's `X-Lago-Unique-Key`, the
same on every attempt) and one WebhookAttempt row per attempt, numbered: the database refuses a
second row with the same number, so no attempt is ever sent twice.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from billing.engine.vocabulary import DeliveryStatus, WebhookType

SIGNATURE_ALGORITHMS = [("hmac", "HMAC-SHA256")]


class WebhookEndpoint(models.Model):
    webhook_url = models.URLField(max_length=1000, unique=True, help_text="Where the webhooks are POSTed.")
    name = models.CharField(max_length=255, blank=True)
    signature_algo = models.CharField(max_length=8, choices=SIGNATURE_ALGORITHMS, default="hmac")
    event_types = models.JSONField(null=True, blank=True, help_text="The webhook types it receives; empty: every type.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name or self.webhook_url

    def listens_to(self, webhook_type: str) -> bool:
        return not self.event_types or webhook_type in self.event_types


class WebhookSigningKey(models.Model):
    """The HMAC key, generated once when WEBHOOK_HMAC_KEY is not set (Lago's organization
    `hmac_key`), so that every web, task and command process signs with the same key."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    key = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="webhook_signing_key_single_row")]

    def __str__(self) -> str:
        return "Webhook signing key"


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    webhook_url = models.URLField(max_length=1000, help_text="The endpoint's URL when it was written.")
    webhook_type = models.CharField(max_length=64, choices=WebhookType.choices)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, help_text="The announced object's lago_id.")
    body = models.TextField(help_text="Exactly the bytes sent (UTF-8), the same on every attempt.")
    unique_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(
        help_text="WEBHOOK_MAX_ATTEMPTS when written; a resend allows one more."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Empty once it succeeded or failed.")
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is sending it; if it dies, another takes it after this."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, help_text="The start of the last response's body.")
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status=DeliveryStatus.PENDING, next_attempt_at__isnull=False)
                | (~Q(status=DeliveryStatus.PENDING) & Q(next_attempt_at__isnull=True)),
                name="webhook_delivery_pending_is_scheduled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_type} → {self.webhook_url}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: written (numbered) before it is sent, completed after."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_once"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
