"""Coupons and applied coupons as Lago's API writes them (lago-python-client's CouponResponse and
AppliedCouponResponse; Lago's V1::CouponSerializer and V1::AppliedCouponSerializer), with the
output serializers that document them in the OpenAPI schema.

- Amounts are integer cents in their currency (`amount_cents`), rates percent as numbers.
- `amount_cents_remaining` is what is left of a `once` fixed coupon, null for the others (as
  Lago); `frequency_duration_remaining` the invoices a recurring coupon still reduces.
- An applied coupon's `credits[]` are what invoices took of it (its CouponApplications, those of
  voided invoices included, as Lago), each with the invoice's lago_id and payment status. Lago
  lists them in its index only; they are in every answer here.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from rest_framework import serializers

from billing.api.invoices import PageMeta
from billing.engine.money import to_cents
from billing.engine.vocabulary import CouponExpiration, CouponFrequency, CouponStatus, CouponType, PaymentStatus
from billing.models import AppliedCoupon, Coupon, CouponApplication
from config.api import iso_datetime


def coupon_json(coupon: Coupon) -> dict[str, Any]:
    return {
        "lago_id": str(coupon.pk),
        "name": coupon.name,
        "code": coupon.code,
        "description": coupon.description or None,
        "coupon_type": coupon.coupon_type,
        "amount_cents": to_cents(coupon.amount, coupon.currency) if coupon.amount is not None else None,
        "amount_currency": coupon.currency or None,
        "percentage_rate": float(coupon.percentage_rate) if coupon.percentage_rate is not None else None,
        "frequency": coupon.frequency,
        "frequency_duration": coupon.frequency_duration,
        "reusable": coupon.reusable,
        "limited_plans": bool(coupon.plan_codes),
        "limited_billable_metrics": bool(coupon.billable_metric_codes),
        "plan_codes": list(coupon.plan_codes or []),
        "billable_metric_codes": list(coupon.billable_metric_codes or []),
        "created_at": iso_datetime(coupon.created_at),
        "expiration": coupon.expiration,
        "expiration_at": iso_datetime(coupon.expiration_at),
        "terminated_at": iso_datetime(coupon.terminated_at),
    }


def applied_coupons_for_json() -> QuerySet[AppliedCoupon]:
    """Applied coupons with what applied_coupon_json reads, in a fixed number of queries."""
    applications = CouponApplication.objects.select_related("invoice").order_by("created_at", "id")
    return AppliedCoupon.objects.select_related("coupon", "customer").prefetch_related(
        Prefetch("applications", queryset=applications)
    )


def _credit_json(application: CouponApplication, applied: AppliedCoupon) -> dict[str, Any]:
    invoice = application.invoice
    coupon = applied.coupon
    return {
        "lago_id": str(application.pk),
        "amount_cents": to_cents(application.amount, invoice.currency),
        "amount_currency": invoice.currency,
        "before_taxes": True,  # a coupon reduces the fees before tax (DESIGN §6, step 4)
        "item": {
            "lago_item_id": str(coupon.pk),
            "type": "coupon",
            "code": coupon.code,
            "name": coupon.name,
            "description": coupon.description or None,
        },
        "invoice": {"lago_id": str(invoice.pk), "payment_status": invoice.payment_status},
    }


def applied_coupon_json(applied: AppliedCoupon) -> dict[str, Any]:
    coupon, customer = applied.coupon, applied.customer
    once_fixed = applied.frequency == CouponFrequency.ONCE and applied.coupon_type == CouponType.FIXED_AMOUNT
    currency = applied.currency
    return {
        "lago_id": str(applied.pk),
        "lago_coupon_id": str(coupon.pk),
        "coupon_code": coupon.code,
        "coupon_name": coupon.name,
        "coupon_description": coupon.description or None,
        "coupon_status": coupon.status,
        "coupon_deleted_at": None,  # a coupon that was applied is never deleted here
        "lago_customer_id": str(customer.pk),
        "external_customer_id": customer.external_id,
        "status": applied.status,
        "amount_cents": to_cents(applied.amount, currency) if applied.amount is not None else None,
        "amount_cents_remaining": (
            to_cents(applied.amount_remaining, currency)
            if once_fixed and applied.amount_remaining is not None
            else None
        ),
        "amount_currency": currency or None,
        "percentage_rate": float(applied.percentage_rate) if applied.percentage_rate is not None else None,
        "frequency": applied.frequency,
        "frequency_duration": applied.frequency_duration,
        "frequency_duration_remaining": applied.frequency_duration_remaining,
        "expiration_at": iso_datetime(coupon.expiration_at),
        "created_at": iso_datetime(applied.created_at),
        "terminated_at": iso_datetime(applied.terminated_at),
        "credits": [_credit_json(application, applied) for application in applied.applications.all()],
    }


# --- the OpenAPI schema's view of them -----------------------------------------------------------

# A coupon's status and an applied coupon's share their values (and a wallet's): labels of their
# own keep each one enum of the schema.
COUPON_STATUSES = [
    (CouponStatus.ACTIVE.value, "Active: may be applied"),
    (CouponStatus.TERMINATED.value, "Terminated: applied no more"),
]
APPLIED_COUPON_STATUSES = [
    (CouponStatus.ACTIVE.value, "Active: reduces the customer's invoices"),
    (CouponStatus.TERMINATED.value, "Terminated: reduces no more invoices"),
]


class CouponOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    name = serializers.CharField()
    code = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    coupon_type = serializers.ChoiceField(choices=CouponType.values)
    amount_cents = serializers.IntegerField(allow_null=True, help_text="Fixed amount coupons, in cents.")
    amount_currency = serializers.CharField(allow_null=True)
    percentage_rate = serializers.FloatField(allow_null=True, help_text="Percentage coupons, in percent.")
    frequency = serializers.ChoiceField(choices=CouponFrequency.values)
    frequency_duration = serializers.IntegerField(allow_null=True, help_text="Recurring coupons: invoices reduced.")
    reusable = serializers.BooleanField()
    limited_plans = serializers.BooleanField()
    limited_billable_metrics = serializers.BooleanField()
    plan_codes = serializers.ListField(child=serializers.CharField())
    billable_metric_codes = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    expiration = serializers.ChoiceField(choices=CouponExpiration.values)
    expiration_at = serializers.DateTimeField(allow_null=True)
    terminated_at = serializers.DateTimeField(allow_null=True)


class CouponEnvelope(serializers.Serializer[Any]):
    coupon = CouponOutput()


class CouponListEnvelope(serializers.Serializer[Any]):
    coupons = CouponOutput(many=True)
    meta = PageMeta()


class CreditItemOutput(serializers.Serializer[Any]):
    lago_item_id = serializers.CharField()
    type = serializers.ChoiceField(choices=["coupon"])
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_null=True)


class CreditInvoiceOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    payment_status = serializers.ChoiceField(choices=PaymentStatus.choices)


class CreditOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField()
    before_taxes = serializers.BooleanField()
    item = CreditItemOutput()
    invoice = CreditInvoiceOutput()


class AppliedCouponOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    lago_coupon_id = serializers.CharField()
    coupon_code = serializers.CharField()
    coupon_name = serializers.CharField()
    coupon_description = serializers.CharField(allow_null=True)
    coupon_status = serializers.ChoiceField(choices=COUPON_STATUSES, help_text="The coupon's.")
    coupon_deleted_at = serializers.DateTimeField(allow_null=True)
    lago_customer_id = serializers.CharField()
    external_customer_id = serializers.CharField()
    status = serializers.ChoiceField(choices=APPLIED_COUPON_STATUSES)
    amount_cents = serializers.IntegerField(allow_null=True)
    amount_cents_remaining = serializers.IntegerField(allow_null=True, help_text="A once fixed coupon: what is left.")
    amount_currency = serializers.CharField(allow_null=True)
    percentage_rate = serializers.FloatField(allow_null=True)
    frequency = serializers.ChoiceField(choices=CouponFrequency.values)
    frequency_duration = serializers.IntegerField(allow_null=True)
    frequency_duration_remaining = serializers.IntegerField(
        allow_null=True, help_text="A recurring coupon: the invoices it still reduces."
    )
    expiration_at = serializers.DateTimeField(allow_null=True, help_text="The coupon's.")
    created_at = serializers.DateTimeField()
    terminated_at = serializers.DateTimeField(allow_null=True)
    credits = CreditOutput(many=True, help_text="What invoices took of it.")


class AppliedCouponEnvelope(serializers.Serializer[Any]):
    applied_coupon = AppliedCouponOutput()


class AppliedCouponListEnvelope(serializers.Serializer[Any]):
    applied_coupons = AppliedCouponOutput(many=True)
    meta = PageMeta()
