from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.db.models.functions import Lower

from customers.validators import validate_currency, validate_timezone


class LiveCustomerManager(models.Manager["Customer"]):
    """Customers that are not deleted: the default manager, so every lookup (the API, the admin,
    ingestion, subscriptions) treats a deleted customer as absent. A deleted customer is still
    reached through what points at it (`invoice.customer` reads through the base manager) and
    through `Customer.all_objects`."""

    def get_queryset(self) -> models.QuerySet[Customer]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Customer(models.Model):
    """A customer of the operator: the party that is billed.

    Deleting one is a soft delete, as Lago's (`deleted_at`, billing.services.customers.customer_destroy):
    its invoices, events and terminated subscriptions keep pointing at the row, and its
    external_id is free for a new customer (unique among the customers not deleted).
    """

    external_id = models.CharField(max_length=255, db_index=True, help_text="The operator's own id.")
    name = models.CharField(max_length=255, blank=True)
    email = models.EmailField(blank=True)
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA time zone; billing periods start at midnight here.",
    )
    # Billing details, snapshotted onto invoices when they are finalized.
    legal_name = models.CharField(max_length=255, blank=True)
    tax_identification_number = models.CharField(max_length=64, blank=True)
    address_line1 = models.CharField(max_length=255, blank=True)
    address_line2 = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=128, blank=True)
    zipcode = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=128, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2 code.")
    legal_number = models.CharField(max_length=255, blank=True, help_text="Company registration number.")
    firstname = models.CharField(max_length=255, blank=True)
    lastname = models.CharField(max_length=255, blank=True)
    customer_type = models.CharField(
        max_length=16, blank=True, choices=[("company", "Company"), ("individual", "Individual")]
    )
    phone = models.CharField(max_length=64, blank=True)
    url = models.URLField(max_length=255, blank=True)
    logo_url = models.URLField(max_length=255, blank=True)
    shipping_address = models.JSONField(default=dict, blank=True, help_text="Lago's address fields.")
    # Payment terms: days from the issuing date to the due date; empty means the default
    # (BILLING_NET_PAYMENT_TERM_DAYS). Copied onto each invoice when it is finalized.
    net_payment_term = models.PositiveIntegerField(null=True, blank=True)
    # Lago's billing_configuration: the grace period in days (empty: BILLING_GRACE_PERIOD_HOURS)
    # and the documents' language (only English is written).
    invoice_grace_period = models.PositiveIntegerField(null=True, blank=True, help_text="Days; empty: the default.")
    document_locale = models.CharField(max_length=8, blank=True, default="en")
    metadata = models.JSONField(default=list, blank=True, help_text="Lago's key/value pairs.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="When it was deleted.")

    objects = LiveCustomerManager()  # first: the default manager
    all_objects = models.Manager["Customer"]()

    class Meta:
        ordering = ["external_id"]
        indexes = [models.Index(Lower("name"), name="customer_name_lower")]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=models.Q(deleted_at__isnull=True),
                name="customer_external_id_live_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})" if self.name else self.external_id


API_KEY_PREFIX = "bk_"


def hash_api_key(raw_key: str) -> str:
    # API keys are 256-bit random tokens, so a fast hash is enough: there is nothing to
    # brute-force, and the lookup runs on every request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A key for /api/v1. Only its SHA-256 is stored; the key itself is shown once."""

    name = models.CharField(max_length=128)
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return API_KEY_PREFIX + secrets.token_urlsafe(32)
