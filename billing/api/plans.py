"""/api/v1/plans (lago-python-client's PlanClient: create, find, find_all, update, destroy), each
plan named by its code as in Lago; its charges (PlanChargesClient) are billing.api.plan_charges'.

A plan in Lago's shape is read into the catalog's (billing.api.plan_inputs, which says how each
of Lago's fields is read) and saved through the service `manage.py load_catalog` uses
(billing.services.catalog.plan_save), under the same rules: a plan with subscriptions is never
repriced in place, a change of price makes a new version that new subscriptions get (the answer
shows it: `version`), while its subscribers keep the version they bought; the same plan sent
again changes nothing. Errors name the field sent (`charges.0.properties.graduated_ranges.1.to_value`).

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

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoices import PageMeta
from billing.api.metadata import (
    MetadataEnvelope,
    MetadataOutputEnvelope,
    change_metadata,
    clear,
    delete_metadata_key,
    merge,
    replace_if_sent,
)
from billing.api.plan_inputs import PlanInputEnvelope, list_params, plan_request, read_input
from billing.api.plan_json import plan_json
from billing.engine.catalog import CatalogError
from billing.models import Plan
from billing.selectors.plans import plans_with_charges
from billing.services.catalog import parse_stored_catalog, plan_destroy, plan_save
from config.api import ApiView, not_found, paginated, validation_error


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


# --- Lago's plan → the catalog's ------------------------------------------------------------


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


def current_plan(code: str) -> Plan | None:
    return plans_with_charges().filter(code=code, is_current=True).first()


def _answer(plan: Plan) -> Response:
    return Response({"plan": plan_json(plan)})


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
        data = read_input(request, PlanInputEnvelope, "plan")
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
        paging = list_params(request)
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
        plan = current_plan(code)
        return not_found("plan") if plan is None else _answer(plan)

    @extend_schema(
        operation_id="update_plan",
        summary="Change a plan (what is sent); a plan with subscriptions gets a new version instead",
        request=PlanInputEnvelope,
        responses={200: PlanEnvelope},
    )
    def put(self, request: Request, code: str) -> Response:
        plan = current_plan(code)
        if plan is None:
            return not_found("plan")
        data = read_input(request, PlanInputEnvelope, "plan")
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
        plan = current_plan(code)
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
