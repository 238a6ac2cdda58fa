"""A tax as the API shows it: Lago's TaxResponse, alone (/api/v1/taxes) and inside a customer's
and an add-on's `taxes`.

`rate` is a JSON number, as Lago's (a percentage: 20.0 for 20 %). This app is one organization
with one billing entity, which Lago's answer names in `applied_to_billing_entities_codes`: that
list stays empty, `applied_to_organization` says it all.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from billing.models import Tax
from config.api import iso_datetime


def tax_json(tax: Tax) -> dict[str, Any]:
    return {
        "lago_id": str(tax.pk),
        "name": tax.name,
        "code": tax.code,
        "rate": float(tax.rate),
        "description": tax.description or None,
        "applied_to_organization": tax.applied_to_organization,
        "applied_to_billing_entities_codes": [],
        "created_at": iso_datetime(tax.created_at),
    }


class TaxOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    name = serializers.CharField()
    code = serializers.CharField()
    rate = serializers.FloatField(help_text="Percent: 20.0 is 20 %.")
    description = serializers.CharField(allow_null=True)
    applied_to_organization = serializers.BooleanField(
        help_text="Applies to every customer that has no tax codes of its own."
    )
    applied_to_billing_entities_codes = serializers.ListField(
        child=serializers.CharField(), help_text="Always empty: one organization, one billing entity."
    )
    created_at = serializers.DateTimeField()
