"""What the plans API reads (lago-python-client 1.55's Plan and Charge input models, and the
query parameters of its lists) and how a plan in Lago's shape is read into the catalog's
(DESIGN §4: billing.engine.catalog, whose rules check it, and billing.engine.charge_properties
for the charges' `properties`), with where each part came from, so that an error names the
field sent.

Lago → ours:
- `interval` monthly / yearly (month, year); weekly, quarterly and semiannual are refused;
- `amount_cents` + `amount_currency`: the base fee; `pay_in_advance`: the base fee is billed at
  the start of its period; `bill_charges_monthly`: usage is always billed monthly (DESIGN §3),
  so false on a yearly plan is refused;
- `trial_period` (days): the plan's promotion is N days 100 % off the base fee (an existing
  promotion with those terms, else a new `trial-<N>d-base`); 0 removes it. A plan-level
  promotion (base fee and usage), which Lago has no field for, is our own `promotion` (a
  promotion's code, as in the catalog file; "" removes it): sent with a null `trial_period`;
- `charges[]`: `billable_metric_id` (the metric's lago_id), `charge_model` standard, graduated,
  volume or package (Lago's percentage, graduated_percentage, dynamic and custom are refused),
  `properties` (billing.engine.charge_properties), `invoice_display_name`, and our own
  `usage_limit` (usage above it is flagged, not billed). A plan has one charge per metric, so a
  charge's `code` is its metric's code (one sent must be that). On an update `charges` replaces
  the list, as in Lago; a charge named by `id` (of any version of the plan) or by its metric
  keeps what is not sent (its model, properties, usage limit, display name).
- not supported, accepted only absent, null, false, 0 or empty, otherwise 422 naming them:
  `tax_codes` (invoices are taxed with the customer's taxes), `minimum_commitment`,
  `usage_thresholds`, `fixed_charges`, `bill_fixed_charges_monthly`, `cascade_updates` (the
  subscriptions' own prices are copies that a catalog change never reprices), and on charges
  `pay_in_advance`, `prorated`, `invoiceable` false, `regroup_paid_fees`, `min_amount_cents`,
  `filters`, `tax_codes`, `applied_pricing_unit`, `accepts_target_wallet`, `cascade_updates`.
On an update, absent (or null) fields keep their values; `code` cannot change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.metadata import MetadataField
from billing.engine.catalog import ChargeDef
from billing.engine.charge_properties import PRICING_FIELDS, CatalogFields, catalog_fields, lago_properties
from billing.engine.money import from_cents, to_cents
from billing.engine.vocabulary import ChargeModel, Interval
from billing.models import Charge, Plan
from billing.selectors.catalog import charge_dict, plan_def, plan_dict
from config.api import (
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UnsupportedField,
    currency_input,
    envelope_errors,
    flat_errors,
    object_id,
    page_numbers,
    unknown_filters,
    validation_error,
)
from metering.models import BillableMetric

REQUIRED = "is required"
INTERVALS = {"monthly": Interval.MONTH, "yearly": Interval.YEAR}
UNSUPPORTED_INTERVAL = "{value!r} is not supported: plans bill monthly or yearly"
UNKNOWN_INTERVAL = "must be monthly or yearly (got {value!r})"
CHARGE_MODELS = tuple(ChargeModel.values)
UNSUPPORTED_CHARGE_MODEL = "{value!r} is not supported: charges are " + ", ".join(CHARGE_MODELS)
UNKNOWN_CHARGE_MODEL = "must be one of " + ", ".join(CHARGE_MODELS) + " (got {value!r})"
LAGO_ONLY_CHARGE_MODELS = ("percentage", "graduated_percentage", "dynamic", "custom")
CODE_FIXED = "a plan's code cannot change (create a plan with the new code)"
CHARGES_MONTHLY = "usage charges are always billed monthly: a yearly plan bills its usage every month"
TRIAL_AND_PROMOTION = "send either trial_period (a base-fee trial) or promotion, not both"
TRIAL_NOT_WHOLE = "must be a whole number of days (0: no trial)"
UNKNOWN_METRIC = "no billable metric with lago_id {id!r}"
UNKNOWN_CHARGE = "no charge with id {id!r} on plan {plan!r}"
CHARGE_ID_ON_CREATE = "names a charge of an existing plan: leave it out when creating one"
CHARGE_ID_METRIC = "charge {id!r} bills metric {code!r}, not the billable_metric_id sent"
CHARGE_CODE = "a charge's code is its metric's code here (one charge per metric): {code!r}"
NOT_A_NUMBER = 'must be a decimal number (a JSON string such as "1000" or a number)'
NOT_TAXED = "per-plan and per-charge taxes are not part of this version: invoices are taxed with the customer's taxes"
MAX_CENTS = 10**15

# The catalog's plan fields, as the API names them.
PLAN_FIELDS = {
    "code": "code",
    "name": "name",
    "description": "description",
    "interval": "interval",
    "currency": "amount_currency",
    "base_fee": "amount_cents",
    "pay_in_advance": "pay_in_advance",
    "promotion": "promotion",
    "charges": "charges",
}
CHARGE_FIELDS = {"metric": "billable_metric_id", "model": "charge_model", "usage_limit": "usage_limit"}
_CHARGE_PATH = re.compile(r"^charges\[(\d+)\](?:\.(.+))?$")


@extend_schema_field({"type": "boolean", "nullable": True, "description": "Only absent, null or true."})
class OnlyTrueField(serializers.Field[Any, Any, Any, Any]):
    """A flag of Lago's that this app only has one way: absent, null or true; false is refused."""

    def __init__(self, reason: str, **kwargs: Any) -> None:
        self.reason = reason
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if data is True:
            return True
        raise serializers.ValidationError(f"is not supported: {self.reason}")

    def to_representation(self, value: Any) -> Any:
        return value


class ChargeInput(StrictSerializer):
    """Lago's Charge input (see the module), with our own `usage_limit`."""

    id = StrictCharField(required=False, allow_null=True)
    billable_metric_id = StrictCharField(required=False, allow_null=True)
    code = StrictCharField(required=False, allow_null=True, allow_blank=True)
    charge_model = StrictCharField(required=False, allow_null=True)
    invoice_display_name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    properties = serializers.JSONField(required=False, allow_null=True)
    usage_limit = serializers.JSONField(
        required=False, allow_null=True, help_text="Our own: usage above it is flagged, not billed."
    )
    pay_in_advance = UnsupportedField("charges are billed at the end of their period")
    prorated = UnsupportedField("charges are not prorated")
    invoiceable = OnlyTrueField("every charge is invoiced")
    regroup_paid_fees = UnsupportedField("charges are not paid in advance")
    min_amount_cents = UnsupportedField("charges have no minimum amount")
    filters = UnsupportedField("charge filters are not supported")
    tax_codes = UnsupportedField(NOT_TAXED)
    applied_pricing_unit = UnsupportedField("prices are in the plan's currency")
    accepts_target_wallet = UnsupportedField("wallets are not targeted by charges")
    cascade_updates = UnsupportedField("the subscriptions' own prices are copies a catalog change never reprices")

    def validate_charge_model(self, value: str | None) -> str | None:
        if value is None:
            return None
        if value in LAGO_ONLY_CHARGE_MODELS:
            raise serializers.ValidationError(UNSUPPORTED_CHARGE_MODEL.format(value=value))
        if value not in CHARGE_MODELS:
            raise serializers.ValidationError(UNKNOWN_CHARGE_MODEL.format(value=value))
        return value


class PlanInput(StrictSerializer):
    """Lago's Plan input (see the module), with our own `promotion`; on an update every field
    is optional (absent or null: unchanged)."""

    name = StrictCharField(required=False, allow_null=True, allow_blank=True)
    invoice_display_name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    code = StrictCharField(required=False, allow_null=True, allow_blank=True)
    interval = StrictCharField(required=False, allow_null=True)
    description = StrictCharField(required=False, allow_null=True, allow_blank=True)
    amount_cents = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_CENTS)
    amount_currency = StrictCharField(max_length=3, required=False, allow_null=True)
    trial_period = serializers.JSONField(required=False, allow_null=True, help_text="Days of a base-fee trial.")
    pay_in_advance = serializers.BooleanField(required=False, allow_null=True)
    bill_charges_monthly = serializers.BooleanField(required=False, allow_null=True)
    charges = serializers.ListField(child=ChargeInput(), required=False, allow_null=True)
    promotion = StrictCharField(
        required=False, allow_null=True, allow_blank=True, help_text="Our own: a promotion's code (plan-level)."
    )
    bill_fixed_charges_monthly = UnsupportedField("fixed charges are not supported")
    fixed_charges = UnsupportedField("fixed charges are not supported")
    minimum_commitment = UnsupportedField("minimum commitments are not supported (commitments are prepaid here)")
    usage_thresholds = UnsupportedField("progressive billing is not supported")
    tax_codes = UnsupportedField(NOT_TAXED)
    cascade_updates = UnsupportedField("the subscriptions' own prices are copies a catalog change never reprices")
    metadata = MetadataField(required=False, allow_null=True, help_text="Replaces the plan's; null empties it.")

    def validate_interval(self, value: str | None) -> str | None:
        if value is None:
            return None
        if value in ("weekly", "quarterly", "semiannual"):
            raise serializers.ValidationError(UNSUPPORTED_INTERVAL.format(value=value))
        if value not in INTERVALS:
            raise serializers.ValidationError(UNKNOWN_INTERVAL.format(value=value))
        return INTERVALS[value]

    def validate_amount_currency(self, value: str | None) -> str | None:
        return currency_input(value)

    def validate_trial_period(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
            raise serializers.ValidationError(TRIAL_NOT_WHOLE)
        return int(value)


class PlanInputEnvelope(StrictSerializer):
    plan = PlanInput()


class ChargeInputEnvelope(StrictSerializer):
    charge = ChargeInput()


# --- Lago's plan → the catalog's ------------------------------------------------------------


@dataclass
class PlanRequest:
    """A plan request read into the catalog's shape, with where each part came from."""

    document: dict[str, Any]  # a catalog plan
    trial_days: int | None = None
    invoice_display_name: str | None = None
    charge_names: dict[str, str] = field(default_factory=dict)
    charge_sources: dict[int, tuple[str, CatalogFields]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def api_field(self, path: str) -> str:
        """The request field a catalog error path came from (plans[0].charges[0].tiers[1].up_to
        → charges.0.properties.graduated_ranges.1.to_value)."""
        inner = path.removeprefix("plans[0]").removeprefix(".")
        if inner in PLAN_FIELDS:
            return PLAN_FIELDS[inner]
        match = _CHARGE_PATH.match(inner)
        if match is None:
            return inner or "plan"
        j, rest = int(match.group(1)), match.group(2)
        if j not in self.charge_sources:
            return "charges"
        prefix, fields = self.charge_sources[j]
        if rest is None:
            return prefix
        if rest in CHARGE_FIELDS:
            return f"{prefix}.{CHARGE_FIELDS[rest]}"
        lago = fields.lago_path(rest)
        return f"{prefix}.properties" + (f".{lago}" if lago else "")


def _decimals(value: Any) -> Any:
    """JSON numbers with a fraction as Decimal, as written (orjson reads them as floats; the
    catalog takes no float). repr() is the shortest text that reads back as the same float."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {key: _decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decimals(item) for item in value]
    return value


def plan_request(data: Mapping[str, Any], stored: Plan | None) -> PlanRequest:
    """Lago's validated plan input as a catalog plan: new (`stored` None) or `stored`'s current
    version with what is sent changed."""
    if stored is None:
        req = PlanRequest(document={"code": data.get("code"), "name": data.get("name"), "charges": []})
        for key in ("interval", "amount_cents", "amount_currency"):
            if data.get(key) is None:
                req.error(key, REQUIRED)
        current: dict[str, ChargeDef] = {}
        currency = data.get("amount_currency") or "USD"
    else:
        base = plan_def(stored)
        req = PlanRequest(document=plan_dict(base))
        if data.get("code") not in (None, stored.code):
            req.error("code", CODE_FIXED)
        current = {c.metric: c for c in base.charges}
        currency = data.get("amount_currency") or stored.currency
    doc = req.document
    for key in ("name", "description", "pay_in_advance", "interval"):
        if data.get(key) is not None:
            doc[key] = data[key]
    doc["currency"] = currency
    cents = data.get("amount_cents")
    if cents is None and stored is not None and currency != stored.currency:
        cents = to_cents(stored.base_fee, stored.currency)  # Lago keeps amount_cents
    if cents is not None:
        doc["base_fee"] = from_cents(cents, currency)
    if data.get("bill_charges_monthly") is False and doc.get("interval") == Interval.YEAR:
        req.error("bill_charges_monthly", CHARGES_MONTHLY)
    req.invoice_display_name = data.get("invoice_display_name")
    if "metadata" in data:
        doc["metadata"] = dict(data["metadata"] or {})

    trial, promotion = data.get("trial_period"), data.get("promotion")
    if trial is not None and promotion is not None:
        req.error("promotion", TRIAL_AND_PROMOTION)
    elif trial is not None:
        req.trial_days = trial
        doc.pop("promotion", None)  # plan_save sets the trial's
    elif promotion is not None:
        doc["promotion"] = promotion or None

    if data.get("charges") is not None:
        doc["charges"] = [
            _charge(req, item, f"charges.{i}", i, stored, current) for i, item in enumerate(data["charges"])
        ]
    return req


def _charge(
    req: PlanRequest, item: Mapping[str, Any], path: str, j: int, stored: Plan | None, current: dict[str, ChargeDef]
) -> dict[str, Any]:
    metric_code = ""
    if item.get("id") is not None:
        if stored is None:
            req.error(f"{path}.id", CHARGE_ID_ON_CREATE)
        else:
            metric_code = _charge_metric(stored.code, item["id"]) or ""
            if not metric_code:
                req.error(f"{path}.id", UNKNOWN_CHARGE.format(id=item["id"], plan=stored.code))
    if item.get("billable_metric_id") is not None:
        pk = object_id(item["billable_metric_id"])
        metric = None if pk is None else BillableMetric.objects.filter(pk=pk).first()
        if metric is None:
            req.error(f"{path}.billable_metric_id", UNKNOWN_METRIC.format(id=item["billable_metric_id"]))
        elif metric_code and metric.code != metric_code:
            req.error(f"{path}.billable_metric_id", CHARGE_ID_METRIC.format(id=item["id"], code=metric_code))
        else:
            metric_code = metric.code
    elif item.get("id") is None:
        req.error(f"{path}.billable_metric_id", REQUIRED)
    if item.get("code") and metric_code and item["code"] != metric_code:
        req.error(f"{path}.code", CHARGE_CODE.format(code=metric_code))
    before = current.get(metric_code)
    model = item.get("charge_model") or (before.model if before is not None else None)
    if model is None:
        req.error(f"{path}.charge_model", REQUIRED)
    charge: dict[str, Any] = {"metric": metric_code, "model": model or ChargeModel.STANDARD}
    properties = item.get("properties")
    if properties is None and before is not None and before.model == model:
        charge.update({key: value for key, value in charge_dict(before).items() if key in PRICING_FIELDS})
        properties = lago_properties(before)  # only to name the fields of an error
    fields = catalog_fields(charge["model"], _decimals(properties if properties is not None else {}))
    if item.get("properties") is not None:
        charge.update(fields.fields)
        for sub, message in fields.errors:
            req.error(f"{path}.properties" + (f".{sub}" if sub else ""), message)
    req.charge_sources[j] = (path, fields)
    if item.get("usage_limit") is not None:
        charge["usage_limit"] = _decimals(item["usage_limit"])
    elif before is not None and before.usage_limit is not None:
        charge["usage_limit"] = charge_dict(before)["usage_limit"]
    if item.get("invoice_display_name") is not None and metric_code:
        req.charge_names[metric_code] = item["invoice_display_name"]
    return charge


def _charge_metric(code: str, charge_id: str) -> str | None:
    """The metric code of charge `charge_id` of any catalog version of plan `code` (ids change
    with versions; a client may hold one of an earlier version)."""
    pk = object_id(charge_id)
    if pk is None:
        return None
    found = (
        Charge.objects.filter(pk=pk, plan__code=code, plan__parent__isnull=True)
        .values_list("metric__code", flat=True)
        .first()
    )
    return found


# --- reading a request ----------------------------------------------------------------------


def read_input(request: Request, envelope: type[StrictSerializer], key: str) -> dict[str, Any] | Response:
    parsed = envelope(data=request.data)
    if not parsed.is_valid():
        return validation_error(flat_errors(envelope_errors(parsed.errors, key)))
    data: dict[str, Any] = parsed.validated_data[key]
    return data


def list_params(request: Request) -> tuple[int, int] | Response:
    refused = unknown_filters(request.query_params, [])
    paging = page_numbers(request.query_params)
    if refused or isinstance(paging, dict):
        return validation_error({**refused, **(paging if isinstance(paging, dict) else {})})
    return paging
