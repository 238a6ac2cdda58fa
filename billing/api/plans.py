"""/api/v1/plans (lago-python-client's PlanClient: create, find, find_all, update, destroy) and
/api/v1/plans/<code>/charges (PlanChargesClient), each plan named by its code as in Lago.

A plan in Lago's shape is read into the catalog's (DESIGN §4: billing.engine.catalog, whose
rules check it, and billing.engine.charge_properties for the charges' `properties`) and saved
through the service `manage.py load_catalog` uses (billing.services.catalog.plan_save), under
the same rules: a plan with subscriptions is never repriced in place, a change of price makes a
new version that new subscriptions get (the answer shows it: `version`), while its subscribers
keep the version they bought; the same plan sent again changes nothing. Errors name the field
sent (`charges.0.properties.graduated_ranges.1.to_value`).

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

`metadata` (Lago's: string keys to string or null values) is stored and shown; it is not
pricing, so changing it never makes a new version (a new version keeps it). On an update it
replaces the plan's (null empties it, as Lago; absent keeps it). Lago's metadata routes,
`POST`/`PATCH`/`DELETE /plans/<code>/metadata` and `DELETE …/metadata/<key>`, are
billing.api.metadata's, on the current version (as for credit notes and wallets, except that a
POST without `metadata` changes nothing, as Lago's plans).

Destroy (billing.services.catalog.plan_destroy): a plan with active or pending subscriptions is
refused (422; Lago terminates them); one whose subscriptions all ended is retired (no current
version: gone from the catalog, its versions kept); one never subscribed is deleted.
Lists: Lago's order (newest first, then id), paginated, no filters (any other parameter is 422).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoices import PageMeta
from billing.api.metadata import (
    MetadataEnvelope,
    MetadataField,
    MetadataOutputEnvelope,
    change_metadata,
    clear,
    delete_metadata_key,
    merge,
    replace_if_sent,
)
from billing.api.plan_json import plan_json
from billing.engine.catalog import CatalogError, ChargeDef
from billing.engine.charge_properties import PRICING_FIELDS, CatalogFields, catalog_fields, lago_properties
from billing.engine.money import from_cents, to_cents
from billing.engine.vocabulary import ChargeModel, Interval
from billing.models import Charge, Plan
from billing.selectors.catalog import charge_dict, plan_def, plan_dict
from billing.selectors.plans import plans_with_charges
from billing.services.catalog import parse_stored_catalog, plan_destroy, plan_save
from config.api import (
    ApiView,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UnsupportedField,
    currency_input,
    envelope_errors,
    flat_errors,
    not_found,
    object_id,
    page_numbers,
    paginated,
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
CHARGE_EXISTS = "plan {plan!r} already has a charge for metric {code!r}"
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


class ChargeOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    lago_billable_metric_id = serializers.CharField()
    billable_metric_code = serializers.CharField()
    code = serializers.CharField(help_text="The metric's code: a plan has one charge per metric.")
    created_at = serializers.DateTimeField()
    charge_model = serializers.CharField()
    pay_in_advance = serializers.BooleanField()
    prorated = serializers.BooleanField()
    invoiceable = serializers.BooleanField()
    regroup_paid_fees = serializers.CharField(allow_null=True)
    invoice_display_name = serializers.CharField(allow_null=True)
    min_amount_cents = serializers.IntegerField()
    properties = serializers.DictField()
    filters = serializers.ListField(child=serializers.DictField(), help_text="Always empty: no charge filters.")
    taxes = serializers.ListField(child=serializers.DictField(), help_text="Always empty: no per-charge taxes.")
    accepts_target_wallet = serializers.BooleanField()
    lago_parent_id = serializers.CharField(
        allow_null=True, help_text="On a subscription's own prices: the catalog charge it copies."
    )
    usage_limit = serializers.CharField(allow_null=True, help_text="Our own: usage above it is flagged, not billed.")


class PlanOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    name = serializers.CharField()
    invoice_display_name = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    code = serializers.CharField()
    version = serializers.IntegerField(help_text="Our own: the plan's current version.")
    interval = serializers.CharField()
    description = serializers.CharField()
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField()
    trial_period = serializers.FloatField(allow_null=True)
    promotion = serializers.DictField(allow_null=True, help_text="Our own: the plan's promotion, any kind.")
    pay_in_advance = serializers.BooleanField()
    bill_charges_monthly = serializers.BooleanField(allow_null=True)
    bill_fixed_charges_monthly = serializers.BooleanField(allow_null=True)
    charges = ChargeOutput(many=True)
    fixed_charges = serializers.ListField(child=serializers.DictField(), help_text="Always empty.")
    metadata = serializers.DictField(child=serializers.CharField(allow_null=True))
    minimum_commitment = serializers.DictField(allow_null=True, help_text="Always null.")
    usage_thresholds = serializers.ListField(child=serializers.DictField(), help_text="Always empty.")
    taxes = serializers.ListField(child=serializers.DictField(), help_text="Always empty: no per-plan taxes.")
    parent_id = serializers.CharField(
        allow_null=True, help_text="On a subscription's own prices: the catalog plan they copy."
    )


class PlanEnvelope(serializers.Serializer[Any]):
    plan = PlanOutput()


class PlanListEnvelope(serializers.Serializer[Any]):
    plans = PlanOutput(many=True)
    meta = PageMeta()


class ChargeEnvelope(serializers.Serializer[Any]):
    charge = ChargeOutput()


class ChargeListEnvelope(serializers.Serializer[Any]):
    charges = ChargeOutput(many=True)
    meta = PageMeta()


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


def save_plan(data: Mapping[str, Any], stored: Plan | None) -> Plan | Response:
    """Read, check (the catalog's rules) and save a plan; the current version, or a 422."""
    req = plan_request(data, stored)
    said = set(req.errors)  # a field named above is not named again by the catalog
    try:
        plan = parse_stored_catalog({"plans": [req.document]}).plans[0]
    except CatalogError as exc:
        for line in exc.errors:
            path, _, message = line.partition(": ")
            if (name := req.api_field(path)) not in said:
                req.error(name, message)
        return validation_error(req.errors)
    if req.errors:
        return validation_error(req.errors)
    try:
        saved = plan_save(
            plan=plan,
            trial_days=req.trial_days,
            invoice_display_name=req.invoice_display_name,
            charge_display_names=req.charge_names,
            new=stored is None,
        )
    except CatalogError as exc:
        for line in exc.errors:
            path, _, message = line.partition(": ")
            req.error(req.api_field(path), message)
        return validation_error(req.errors)
    return saved.plan


def _input(request: Request, envelope: type[StrictSerializer], key: str) -> dict[str, Any] | Response:
    parsed = envelope(data=request.data)
    if not parsed.is_valid():
        return validation_error(flat_errors(envelope_errors(parsed.errors, key)))
    data: dict[str, Any] = parsed.validated_data[key]
    return data


def _current(code: str) -> Plan | None:
    return plans_with_charges().filter(code=code, is_current=True).first()


def _answer(plan: Plan) -> Response:
    return Response({"plan": plan_json(plan)})


def _list_params(request: Request) -> tuple[int, int] | Response:
    refused = unknown_filters(request.query_params, [])
    paging = page_numbers(request.query_params)
    if refused or isinstance(paging, dict):
        return validation_error({**refused, **(paging if isinstance(paging, dict) else {})})
    return paging


# --- /plans ---------------------------------------------------------------------------------


class PlansView(ApiView):
    @extend_schema(
        operation_id="create_plan",
        summary="Create a plan: a base fee and usage charges",
        request=PlanInputEnvelope,
        responses={200: PlanEnvelope},
        examples=[
            OpenApiExample(
                "Team",
                value={
                    "plan": {
                        "name": "Team",
                        "code": "team",
                        "interval": "monthly",
                        "amount_cents": 12000,
                        "amount_currency": "USD",
                        "trial_period": 14,
                        "charges": [
                            {
                                "billable_metric_id": "1",
                                "charge_model": "graduated",
                                "properties": {
                                    "graduated_ranges": [
                                        {
                                            "from_value": 0,
                                            "to_value": 10000,
                                            "per_unit_amount": "0",
                                            "flat_amount": "0",
                                        },
                                        {
                                            "from_value": 10001,
                                            "to_value": None,
                                            "per_unit_amount": "0.012",
                                            "flat_amount": "0",
                                        },
                                    ]
                                },
                            }
                        ],
                    }
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = _input(request, PlanInputEnvelope, "plan")
        if isinstance(data, Response):
            return data
        saved = save_plan(data, None)
        return saved if isinstance(saved, Response) else _answer(saved)

    @extend_schema(
        operation_id="list_plans",
        summary="List the plans (their current versions), newest first, paginated",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: PlanListEnvelope},
    )
    def get(self, request: Request) -> Response:
        paging = _list_params(request)
        if isinstance(paging, Response):
            return paging
        rows = plans_with_charges().filter(is_current=True, parent__isnull=True).order_by("-created_at", "id")
        return Response(paginated("plans", rows, *paging, plan_json))


class PlanDetailView(ApiView):
    @extend_schema(
        operation_id="find_plan",
        summary="Fetch a plan (its current version) by its code",
        responses={200: PlanEnvelope},
    )
    def get(self, request: Request, code: str) -> Response:
        plan = _current(code)
        return not_found("plan") if plan is None else _answer(plan)

    @extend_schema(
        operation_id="update_plan",
        summary="Change a plan (what is sent); a plan with subscriptions gets a new version instead",
        request=PlanInputEnvelope,
        responses={200: PlanEnvelope},
    )
    def put(self, request: Request, code: str) -> Response:
        plan = _current(code)
        if plan is None:
            return not_found("plan")
        data = _input(request, PlanInputEnvelope, "plan")
        if isinstance(data, Response):
            return data
        saved = save_plan(data, plan)
        return saved if isinstance(saved, Response) else _answer(saved)

    @extend_schema(
        operation_id="destroy_plan",
        summary="Delete a plan never subscribed, or retire one whose subscriptions ended",
        responses={200: PlanEnvelope},
    )
    def delete(self, request: Request, code: str) -> Response:
        plan = _current(code)
        if plan is None:
            return not_found("plan")
        answer = plan_json(plan)
        try:
            plan_destroy(plan=plan)
        except CatalogError as exc:
            return validation_error({"code": [line.partition(": ")[2] for line in exc.errors]})
        return Response({"plan": answer})


# --- /plans/<code>/metadata: Lago's metadata routes (billing.api.metadata) ----------------------


def _current_row(code: str) -> Plan | None:
    """The current version, under its row lock (plan_save takes it too: no version made meanwhile)."""
    return Plan.objects.select_for_update().filter(code=code, is_current=True).first()


class PlanMetadataView(ApiView):
    """POST replaces (no metadata sent: no change, as Lago's plans), PATCH merges, DELETE
    removes all of it; on the current version, never a new one (metadata is not pricing)."""

    @extend_schema(
        operation_id="replace_plan_metadata", request=MetadataEnvelope, responses={200: MetadataOutputEnvelope}
    )
    def post(self, request: Request, code: str) -> Response:
        return change_metadata(request, _current_row(code), "plan", replace_if_sent)

    @extend_schema(
        operation_id="merge_plan_metadata", request=MetadataEnvelope, responses={200: MetadataOutputEnvelope}
    )
    def patch(self, request: Request, code: str) -> Response:
        return change_metadata(request, _current_row(code), "plan", merge)

    @extend_schema(operation_id="delete_plan_metadata", responses={200: MetadataOutputEnvelope})
    def delete(self, request: Request, code: str) -> Response:
        return change_metadata(request, _current_row(code), "plan", clear)


class PlanMetadataKeyView(ApiView):
    @extend_schema(operation_id="delete_plan_metadata_key", responses={200: MetadataOutputEnvelope})
    def delete(self, request: Request, code: str, key: str) -> Response:
        return delete_metadata_key(_current_row(code), "plan", key)


# --- /plans/<code>/charges: a change of the plan's charges list --------------------------------


def _charge_json(plan: Plan, metric_code: str) -> dict[str, Any] | None:
    for charge in plan_json(plan)["charges"]:
        if charge["billable_metric_code"] == metric_code:
            found: dict[str, Any] = charge
            return found
    return None


def _change_charges(
    plan: Plan, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], answer_metric: Callable[[], str]
) -> Response:
    """Save `plan` with its charges list changed by `change` (charges named by id keep what they
    have), through the plan's rules (a subscribed plan gets a new version); answer one charge."""
    kept = [{"id": str(c.pk)} for c in plan.charges.all()]
    saved = save_plan({"charges": change(kept)}, plan)
    if isinstance(saved, Response):
        return saved
    charge = _charge_json(saved, answer_metric())
    return not_found("charge") if charge is None else Response({"charge": charge})


def _charge_by_code(plan: Plan, code: str) -> Charge | None:
    """A plan's charge by its code (its metric's code) or its lago_id."""
    for charge in plan.charges.all():
        if code in (charge.metric.code, str(charge.pk)):
            return charge
    return None


class PlanChargesView(ApiView):
    @extend_schema(
        operation_id="list_plan_charges",
        summary="List a plan's charges (its current version), paginated",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: ChargeListEnvelope},
    )
    def get(self, request: Request, code: str) -> Response:
        paging = _list_params(request)
        if isinstance(paging, Response):
            return paging
        plan = _current(code)
        if plan is None:
            return not_found("plan")
        charges = plan_json(plan)["charges"]
        page, per_page = paging
        pages = max(1, -(-len(charges) // per_page))
        return Response(
            {
                "charges": charges[(page - 1) * per_page : page * per_page],
                "meta": {
                    "current_page": page,
                    "next_page": page + 1 if page < pages else None,
                    "prev_page": page - 1 if page > 1 else None,
                    "total_pages": pages,
                    "total_count": len(charges),
                },
            }
        )

    @extend_schema(
        operation_id="create_plan_charge",
        summary="Add a charge to a plan (a subscribed plan gets a new version)",
        request=ChargeInputEnvelope,
        responses={200: ChargeEnvelope},
    )
    def post(self, request: Request, code: str) -> Response:
        plan = _current(code)
        if plan is None:
            return not_found("plan")
        data = _input(request, ChargeInputEnvelope, "charge")
        if isinstance(data, Response):
            return data
        pk = object_id(data.get("billable_metric_id") or "")
        metric = None if pk is None else BillableMetric.objects.filter(pk=pk).first()
        if metric is not None and any(c.metric_id == metric.pk for c in plan.charges.all()):
            return validation_error({"billable_metric_id": [CHARGE_EXISTS.format(plan=plan.code, code=metric.code)]})
        response = _change_charges(plan, lambda kept: [*kept, data], lambda: metric.code if metric else "")
        return _renamed(response, f"charges.{len(plan.charges.all())}.")


class PlanChargeView(ApiView):
    @extend_schema(
        operation_id="find_plan_charge", summary="Fetch a plan's charge by its code", responses={200: ChargeEnvelope}
    )
    def get(self, request: Request, code: str, charge_code: str) -> Response:
        plan = _current(code)
        if plan is None:
            return not_found("plan")
        charge = _charge_by_code(plan, charge_code)
        found = None if charge is None else _charge_json(plan, charge.metric.code)
        return not_found("charge") if found is None else Response({"charge": found})

    @extend_schema(
        operation_id="update_plan_charge",
        summary="Change a plan's charge (a subscribed plan gets a new version)",
        request=ChargeInputEnvelope,
        responses={200: ChargeEnvelope},
    )
    def put(self, request: Request, code: str, charge_code: str) -> Response:
        plan = _current(code)
        charge = None if plan is None else _charge_by_code(plan, charge_code)
        if plan is None or charge is None:
            return not_found("plan" if plan is None else "charge")
        data = _input(request, ChargeInputEnvelope, "charge")
        if isinstance(data, Response):
            return data
        position = list(plan.charges.all()).index(charge)

        def change(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept[position] = {**data, "id": str(charge.pk)}
            return kept

        return _renamed(_change_charges(plan, change, lambda: charge.metric.code), f"charges.{position}.")

    @extend_schema(
        operation_id="destroy_plan_charge",
        summary="Remove a charge from a plan (a subscribed plan gets a new version)",
        responses={200: ChargeEnvelope},
    )
    def delete(self, request: Request, code: str, charge_code: str) -> Response:
        plan = _current(code)
        charge = None if plan is None else _charge_by_code(plan, charge_code)
        if plan is None or charge is None:
            return not_found("plan" if plan is None else "charge")
        answer = _charge_json(plan, charge.metric.code)
        kept = [{"id": str(c.pk)} for c in plan.charges.all() if c.pk != charge.pk]
        saved = save_plan({"charges": kept}, plan)
        return saved if isinstance(saved, Response) else Response({"charge": answer})


def _renamed(response: Response, prefix: str) -> Response:
    """A plan's 422 about one of its charges, named as the charge's own fields (`properties.amount`,
    not `charges.2.properties.amount`)."""
    if response.status_code != 422 or not isinstance(response.data, dict):
        return response
    details = response.data.get("error_details")
    if isinstance(details, dict):
        response.data["error_details"] = {key.removeprefix(prefix): value for key, value in details.items()}
    return response
