"""Add-ons (DESIGN §6 "Add-ons and one-off invoices"): catalog items billed once, on one-off invoices."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from billing.engine.money import price_field_kwargs
from customers.validators import validate_currency


class AddOn(models.Model):
    code = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    invoice_display_name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    amount = models.DecimalField(**price_field_kwargs(), help_text="The default price of one unit.")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="add_on_amount_not_negative")]

    def __str__(self) -> str:
        return self.name
