"""GET /api/v1/subscriptions/<external_id>/charges, GET and PUT …/charges/<code>: the charges of a
subscription's plan, and a change of one charge's prices for that subscription alone
(lago-python-client's SubscriptionChargesClient).

A change is Lago's plan_overrides with that one charge (billing.services.plan_overrides): the
subscription moves to (or keeps) its own override plan; the catalog plan never changes. The
subscription is the active one with this external id unless `subscription_status` (or `status`)
names another, as Lago's.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.alerts import STATUS_PARAMETERS, find_subscription
from billing.api.plan_json import plan_json
from billing.api.subscription_inputs import NOT_YET, OUT_OF_SCOPE, TAXES_NOT_YET
from billing.models import Subscription
from billing.selectors.plans import plans_with_charges
from billing.services.plan_overrides import FIELD, PlanOverrideError
from billing.services.subscriptions import SubscriptionError, subscription_update
from config.api import (
    ApiView,
    StrictCharField,
    StrictSerializer,
    UnsupportedField,
    envelope_errors,
    flat_errors,
    not_found,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)


class ChargeUpdateInput(StrictSerializer):
    """What Lago's update of a subscription's charge takes."""

    invoice_display_name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    properties = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="Lago's properties of the charge's model, replacing its pricing for this subscription.",
    )
    min_amount_cents = UnsupportedField(NOT_YET)
    filters = UnsupportedField(OUT_OF_SCOPE)
    tax_codes = UnsupportedField(TAXES_NOT_YET)
    applied_pricing_unit = UnsupportedField(OUT_OF_SCOPE)


class ChargeUpdateEnvelope(serializers.Serializer[Any]):
    charge = ChargeUpdateInput()


def _charges(subscription: Subscription) -> list[dict[str, Any]]:
    charges: list[dict[str, Any]] = plan_json(plans_with_charges().get(pk=subscription.plan_id))["charges"]
    return charges


class SubscriptionChargesView(ApiView):
    @extend_schema(
        operation_id="list_subscription_charges",
        summary="The charges of the subscription's plan (its own prices, if it has them)",
        parameters=[*STATUS_PARAMETERS, OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str) -> Response:
        params = request.query_params
        paging = page_numbers(params)
        errors = unknown_filters(params, ("subscription_status", "status"))
        if isinstance(paging, dict) or errors:
            return validation_error(errors | (paging if isinstance(paging, dict) else {}))
        subscription = find_subscription(request, external_id)
        if isinstance(subscription, Response):
            return subscription
        page, per_page = paging
        return Response(paginated("charges", _charges(subscription), page, per_page, lambda charge: charge))


def _charge(request: Request, external_id: str, code: str) -> tuple[Subscription, dict[str, Any]] | Response:
    """The subscription and one charge of its plan, by the charge's code; or the error answer."""
    subscription = find_subscription(request, external_id)
    if isinstance(subscription, Response):
        return subscription
    charge = next((c for c in _charges(subscription) if c["code"] == code), None)
    if charge is None:
        return not_found("charge")
    return subscription, charge


class SubscriptionChargeView(ApiView):
    @extend_schema(
        operation_id="find_subscription_charge",
        summary="One charge of the subscription's plan, by its code (its metric's)",
        parameters=STATUS_PARAMETERS,
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str, code: str) -> Response:
        found = _charge(request, external_id, code)
        return found if isinstance(found, Response) else Response({"charge": found[1]})

    @extend_schema(
        operation_id="update_subscription_charge",
        summary="Change one charge's prices for this subscription alone (Lago's plan_overrides of that charge)",
        parameters=STATUS_PARAMETERS,
        request=ChargeUpdateEnvelope,
        responses={200: dict},
    )
    def put(self, request: Request, external_id: str, code: str) -> Response:
        found = _charge(request, external_id, code)
        if isinstance(found, Response):
            return found
        subscription, charge = found
        envelope = ChargeUpdateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(flat_errors(envelope_errors(envelope.errors, "charge")))
        data = {key: value for key, value in envelope.validated_data["charge"].items() if value is not None}
        try:
            subscription = subscription_update(
                subscription=subscription, plan_overrides={"charges": [{"id": charge["lago_id"], **data}]}
            )
        except SubscriptionError as exc:
            return validation_error({exc.field: [exc.message]})
        except PlanOverrideError as exc:
            prefix = f"{FIELD}.charges.0."
            return validation_error({key.removeprefix(prefix): value for key, value in exc.errors.items()})
        # The charge of the subscription's (maybe new) own plan on the same metric.
        updated = next(c for c in _charges(subscription) if c["code"] == code)
        return Response({"charge": updated})
