"""POST /api/v1/subscriptions, DELETE /api/v1/subscriptions/<external_id>, GET …/subscriptions."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.models import BillingTime, Plan, Subscription, SubscriptionStatus
from billing.selectors.usage import period_of, trial_end
from billing.services.subscriptions import SubscriptionError, subscription_create, subscription_terminate
from config.api import (
    DEFAULT_PER_PAGE,
    ApiView,
    StrictCharField,
    envelope_errors,
    iso_datetime,
    not_found,
    page_numbers,
    paginated,
    validation_error,
)
from customers.models import Customer
from metering.validation import parse_timestamp

UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
UNKNOWN_PLAN = "unknown plan {ref!r}"
BAD_STATUS = "must be one of: {choices}"


def subscription_json(sub: Subscription) -> dict[str, Any]:
    frozen_now = timezone.now()
    period = None
    if sub.status == SubscriptionStatus.ACTIVE:
        period = period_of(sub, at=frozen_now)
    trial_ended_at = trial_end(sub)
    return {
        "lago_id": str(sub.pk),
        "external_id": sub.external_id,
        "lago_customer_id": str(sub.customer_id),
        "external_customer_id": sub.customer.external_id,
        "name": sub.plan.name,
        "plan_code": sub.plan.code,
        "plan_version": sub.plan.version,
        "plan_amount_cents": None,
        "plan_amount_currency": sub.plan.currency,
        "status": sub.status,
        "billing_time": sub.billing_time,
        "subscription_at": iso_datetime(sub.subscription_at),
        "started_at": iso_datetime(sub.subscription_at) if sub.status != SubscriptionStatus.PENDING else None,
        "terminated_at": iso_datetime(sub.terminated_at),
        "canceled_at": None,
        "created_at": iso_datetime(sub.created_at),
        "promotion": sub.promotion.code if sub.promotion else None,
        "trial_ended_at": iso_datetime(trial_ended_at),
        "current_billing_period_started_at": iso_datetime(period.start) if period else None,
        "current_billing_period_ending_at": iso_datetime(period.end) if period else None,
    }


class SubscriptionInput(serializers.Serializer[Any]):
    external_customer_id = StrictCharField(max_length=255)
    plan_code = StrictCharField(max_length=64)
    external_id = StrictCharField(max_length=255)
    subscription_at = StrictCharField(required=False, allow_null=True, help_text="ISO 8601; default now.")
    billing_time = serializers.ChoiceField(choices=BillingTime.values, required=False, allow_null=True)

    def validate_subscription_at(self, value: str | None) -> Any:
        if not value:
            return None
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class SubscriptionEnvelope(serializers.Serializer[Any]):
    subscription = SubscriptionInput()


def subscriptions_for_json() -> Any:
    return Subscription.objects.select_related("customer", "plan", "promotion")


class SubscriptionsView(ApiView):
    @extend_schema(
        operation_id="create_subscription",
        summary="Subscribe a customer to a plan (its current version; the plan's promotion attaches)",
        request=SubscriptionEnvelope,
        responses={200: dict},
        examples=[
            OpenApiExample(
                "Team plan",
                value={
                    "subscription": {
                        "external_customer_id": "acme",
                        "plan_code": "team",
                        "external_id": "acme-team",
                        "subscription_at": "2026-09-01T00:00:00Z",
                        "billing_time": "calendar",
                    }
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        envelope = SubscriptionEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "subscription"))
        data = envelope.validated_data["subscription"]
        customer = Customer.objects.filter(external_id=data["external_customer_id"]).first()
        if customer is None:
            return validation_error(
                {"external_customer_id": [UNKNOWN_CUSTOMER.format(ref=data["external_customer_id"])]}
            )
        plan = Plan.objects.current().filter(code=data["plan_code"]).select_related("promotion").first()
        if plan is None:
            return validation_error({"plan_code": [UNKNOWN_PLAN.format(ref=data["plan_code"])]})
        frozen_now = timezone.now()
        try:
            subscription, _ = subscription_create(
                customer=customer,
                plan=plan,
                external_id=data["external_id"],
                subscription_at=data.get("subscription_at") or frozen_now,
                billing_time=data.get("billing_time") or BillingTime.CALENDAR,
                now=frozen_now,
            )
        except SubscriptionError as exc:
            return validation_error({exc.field: [exc.message]})
        return Response({"subscription": subscription_json(subscriptions_for_json().get(pk=subscription.pk))})

    @extend_schema(
        operation_id="list_subscriptions",
        summary="List subscriptions, paginated as Lago (`page`, `per_page`, `meta`)",
        parameters=[
            OpenApiParameter("external_customer_id", str, description="Only this customer's subscriptions."),
            OpenApiParameter("status", str, enum=SubscriptionStatus.values),
            OpenApiParameter("page", int, description="1-based page number (default 1)."),
            OpenApiParameter("per_page", int, description=f"Per page (default {DEFAULT_PER_PAGE}, at most 100)."),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        paging = page_numbers(request.query_params)
        errors = dict(paging) if isinstance(paging, dict) else {}
        qs = subscriptions_for_json().order_by("id")
        if request.query_params.get("external_customer_id"):
            qs = qs.filter(customer__external_id=request.query_params["external_customer_id"])
        status = request.query_params.get("status")
        if status:
            if status not in SubscriptionStatus.values:
                errors["status"] = [BAD_STATUS.format(choices=", ".join(SubscriptionStatus.values))]
            qs = qs.filter(status=status)
        if errors or isinstance(paging, dict):
            return validation_error(errors)
        page, per_page = paging
        return Response(paginated("subscriptions", qs, page, per_page, subscription_json))


class SubscriptionDetailView(ApiView):
    @extend_schema(operation_id="find_subscription", summary="Fetch a subscription", responses={200: dict})
    def get(self, request: Request, external_id: str) -> Response:
        subscription = subscriptions_for_json().filter(external_id=external_id).first()
        if subscription is None:
            return not_found("subscription")
        return Response({"subscription": subscription_json(subscription)})

    @extend_schema(operation_id="destroy_subscription", summary="Terminate a subscription now", responses={200: dict})
    def delete(self, request: Request, external_id: str) -> Response:
        subscription = subscriptions_for_json().filter(external_id=external_id).first()
        if subscription is None:
            return not_found("subscription")
        subscription_terminate(subscription=subscription, at=timezone.now())
        return Response({"subscription": subscription_json(subscriptions_for_json().get(pk=subscription.pk))})
