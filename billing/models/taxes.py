"""Taxes (DESIGN §6 "Taxes"; Lago's taxes): organization-wide ones apply to every customer
without tax codes of its own; a customer's codes replace them for that customer."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from customers.models import Customer


class Tax(models.Model):
    code = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    rate = models.DecimalField(max_digits=7, decimal_places=4, help_text="Percent, e.g. 20 for 20 %.")
    description = models.TextField(blank=True)
    applied_to_organization = models.BooleanField(default=False, help_text="Applies to every customer by default.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "taxes"
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0, rate__lte=100), name="tax_rate_a_percentage"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.rate.normalize():f} %)"


class CustomerTax(models.Model):
    """A customer's own tax code (Lago's customer `tax_codes`)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="customer_taxes")
    tax = models.ForeignKey(Tax, on_delete=models.PROTECT, related_name="customer_taxes")

    class Meta:
        ordering = ["customer", "tax"]
        constraints = [models.UniqueConstraint(fields=["customer", "tax"], name="customer_tax_once")]

    def __str__(self) -> str:
        return f"{self.tax.code} for {self.customer}"
