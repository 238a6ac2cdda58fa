"""/api/v1/plans/<code>/charges (lago-python-client's PlanChargesClient: create, find, find_all,
update, destroy), each charge named by its code (its metric's code: a plan has one charge per
metric) or its lago_id. A change of a charge is a change of the plan's charges list, saved as a
plan update (billing.api.plans.save_plan) under the plan's rules (a subscribed plan gets a new
version); a 422 names the charge's own fields (`properties.amount`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoices import PageMeta
from billing.api.plan_inputs import ChargeInputEnvelope, list_params, read_input
from billing.api.plan_json import plan_json
from billing.api.plans import ChargeOutput, current_plan, save_plan
from billing.models import Charge, Plan
from config.api import ApiView, not_found, object_id, paginated, validation_error
from metering.models import BillableMetric

CHARGE_EXISTS = "plan {plan!r} already has a charge for metric {code!r}"


class ChargeEnvelope(serializers.Serializer[Any]):
    charge = ChargeOutput()


class ChargeListEnvelope(serializers.Serializer[Any]):
    charges = ChargeOutput(many=True)
    meta = PageMeta()


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
        paging = list_params(request)
        if isinstance(paging, Response):
            return paging
        plan = current_plan(code)
        if plan is None:
            return not_found("plan")
        page, per_page = paging
        return Response(paginated("charges", plan_json(plan)["charges"], page, per_page, lambda charge: charge))

    @extend_schema(
        operation_id="create_plan_charge",
        summary="Add a charge to a plan (a subscribed plan gets a new version)",
        request=ChargeInputEnvelope,
        responses={200: ChargeEnvelope},
    )
    def post(self, request: Request, code: str) -> Response:
        plan = current_plan(code)
        if plan is None:
            return not_found("plan")
        data = read_input(request, ChargeInputEnvelope, "charge")
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
        plan = current_plan(code)
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
        plan = current_plan(code)
        charge = None if plan is None else _charge_by_code(plan, charge_code)
        if plan is None or charge is None:
            return not_found("plan" if plan is None else "charge")
        data = read_input(request, ChargeInputEnvelope, "charge")
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
        plan = current_plan(code)
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
