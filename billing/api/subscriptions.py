"""POST, GET /api/v1/subscriptions; GET, PUT, DELETE /api/v1/subscriptions/<external_id>;
GET /api/v1/customers/<external_id>/subscriptions; GET, PUT
/api/v1/subscriptions/<external_id>/lifetime_usage.

The list is Lago's: active subscriptions unless `status[]` says otherwise, filtered by customer,
plan code, external id, currency or whether they have their own prices; any other query
parameter is refused (422). A downgrade is staged to the end of the current period: the answer
shows `next_plan_code` and `downgrade_plan_date` (billing.services.subscriptions).

A subscription may have its own prices: Lago's `plan_overrides`, on create and on update
(billing.services.plan_overrides). Its answer then shows the catalog plan's `plan_code` (as
Lago), `plan_amount_cents` of its own base fee, and `plan` (as Lago includes it in the answer of
one subscription) with its own prices. What the requests may send (bodies and query parameters)
is billing.api.subscription_inputs'.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Case, When
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.plan_json import plan_json
from billing.api.subscription_inputs import (
    BAD_STATUS,
    DELETE_PARAMETERS,
    LIST_FILTERS,
    LIST_PARAMETERS,
    NOT_BOOLEAN,
    LifetimeUsageEnvelope,
    SubscriptionEnvelope,
    SubscriptionUpdateEnvelope,
    status_param,
)
from billing.engine.money import to_cents
from billing.engine.vocabulary import OnTerminationInvoice
from billing.models import BillingTime, Plan, Subscription, SubscriptionStatus
from billing.selectors.lifetime_usage import lifetime_usage
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import period_of, trial_end
from billing.services.plan_overrides import PlanOverrideError
from billing.services.subscriptions import (
    LIVE,
    SubscriptionError,
    check_on_termination,
    lifetime_usage_update,
    subscription_create,
    subscription_terminate,
    subscription_update,
)
from config.api import (
    ApiView,
    envelope_errors,
    flat_errors,
    iso_datetime,
    not_found,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)
from customers.models import Customer
from metering.days import local_date

NOT_STARTED = (SubscriptionStatus.PENDING, SubscriptionStatus.CANCELED)
UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
UNKNOWN_PLAN = "unknown plan {ref!r}"
CANNOT_CHANGE = (
    "cannot change here; a plan change is POST /api/v1/subscriptions with the same external_id and another plan_code"
)


def subscription_json(sub: Subscription, *, plan: Plan | None = None) -> dict[str, Any]:
    """Lago's subscription; with `plan` (the subscription's, charges prefetched) it includes it."""
    frozen_now = timezone.now()
    period = None
    if sub.status == SubscriptionStatus.ACTIVE:
        period = period_of(sub, at=frozen_now)
    trial_ended_at = trial_end(sub)
    canceled = sub.status == SubscriptionStatus.CANCELED
    downgrade_day = local_date(sub.downgrade_at, sub.customer.timezone) if sub.downgrade_at else None
    return {
        "lago_id": str(sub.pk),
        "external_id": sub.external_id,
        "lago_customer_id": str(sub.customer_id),
        "external_customer_id": sub.customer.external_id,
        "name": sub.name or sub.plan.name,
        # An override plan has the code (and version) of the catalog plan it copies.
        "plan_code": sub.plan.code,
        "plan_version": sub.plan.version,
        "plan_amount_cents": to_cents(sub.plan.base_fee, sub.plan.currency),
        "plan_amount_currency": sub.plan.currency,
        "status": sub.status,
        "billing_time": sub.billing_time,
        "subscription_at": iso_datetime(sub.subscription_at),
        "started_at": iso_datetime(sub.subscription_at) if sub.status not in NOT_STARTED else None,
        "ending_at": iso_datetime(sub.ending_at),
        # A canceled subscription never ran: it was not terminated (its stored end is its start).
        "terminated_at": None if canceled else iso_datetime(sub.terminated_at),
        "canceled_at": iso_datetime(sub.canceled_at),
        "created_at": iso_datetime(sub.created_at),
        "previous_plan_code": sub.previous.plan.code if sub.previous else None,
        "next_plan_code": sub.next_plan.code if sub.next_plan else None,
        "downgrade_plan_date": downgrade_day.isoformat() if downgrade_day else None,
        "on_termination_invoice": sub.on_termination_invoice,
        # No credit note is issued on termination (an advance fee is not refunded): Lago's `skip`.
        "on_termination_credit_note": sub.on_termination_credit_note or ("skip" if sub.plan.pay_in_advance else None),
        "promotion": sub.promotion.code if sub.promotion else None,
        "trial_ended_at": iso_datetime(trial_ended_at),
        "current_billing_period_started_at": iso_datetime(period.start) if period else None,
        "current_billing_period_ending_at": iso_datetime(period.end) if period else None,
    } | ({"plan": plan_json(plan)} if plan is not None else {})


def subscription_answer(sub: Subscription) -> Response:
    """The answer about one subscription: read again with all its JSON needs, its plan included."""
    subscription = subscriptions_for_json().get(pk=sub.pk)
    plan = plans_with_charges().get(pk=subscription.plan_id)
    return Response({"subscription": subscription_json(subscription, plan=plan)})


def _identity_changes(subscription: Subscription, data: dict[str, Any]) -> dict[str, list[str]]:
    # (the SDK sends back what it read: the same values are accepted)
    """The update's identity fields (external id, customer, plan code, billing time) that differ."""
    current = {
        "external_id": subscription.external_id,
        "external_customer_id": subscription.customer.external_id,
        "plan_code": subscription.plan.code,
        "billing_time": subscription.billing_time,
    }
    return {
        name: [CANNOT_CHANGE] for name, value in current.items() if data.get(name) is not None and data[name] != value
    }


def subscriptions_for_json() -> Any:
    return Subscription.objects.select_related("customer", "plan", "promotion", "previous__plan", "next_plan")


def _one(external_id: str, status: str | None) -> Subscription | None:
    """The subscription with this external id: of `status` if given (Lago's `status` query
    parameter), else the live one (active, or pending), else the one that ended last."""
    rows = subscriptions_for_json().filter(external_id=external_id)
    if status:
        rows = rows.filter(status=status)
    ended_last = Case(When(status__in=LIVE, then=0), default=1)
    found: Subscription | None = rows.order_by(ended_last, "-subscription_at", "-id").first()
    return found


def subscription_list(params: Any) -> Response:
    """Lago's list of subscriptions (its filters; active only by default), by id: a stable order."""
    paging = page_numbers(params)
    errors = unknown_filters(params, LIST_FILTERS) | (dict(paging) if isinstance(paging, dict) else {})
    statuses = [value for name in ("status", "status[]") for value in params.getlist(name) if value]
    bad = [value for value in statuses if value not in SubscriptionStatus.values]
    if bad:
        errors["status"] = [BAD_STATUS.format(choices=", ".join(SubscriptionStatus.values))]
    qs = subscriptions_for_json().filter(status__in=statuses or [SubscriptionStatus.ACTIVE]).order_by("id")
    if params.get("external_customer_id"):
        qs = qs.filter(customer__external_id=params["external_customer_id"])
    if params.get("plan_code"):
        qs = qs.filter(plan__code=params["plan_code"])
    if params.get("external_id"):
        qs = qs.filter(external_id=params["external_id"])
    if params.get("currency"):
        qs = qs.filter(plan__currency=params["currency"].upper())
    overridden = params.get("overridden", params.get("overriden"))
    if overridden:
        if overridden.lower() not in ("true", "false"):
            errors["overridden" if "overridden" in params else "overriden"] = [NOT_BOOLEAN]
        qs = qs.filter(plan__parent__isnull=overridden.lower() != "true")
    if errors or isinstance(paging, dict):
        return validation_error(errors)
    page, per_page = paging
    return Response(paginated("subscriptions", qs, page, per_page, subscription_json))


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
            return validation_error(flat_errors(envelope_errors(envelope.errors, "subscription")))
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
                name=data.get("name"),
                overrides=data.get("plan_overrides"),
                ending_at=data.get("ending_at"),
            )
        except SubscriptionError as exc:
            return validation_error({exc.field: [exc.message]})
        except PlanOverrideError as exc:
            return validation_error(exc.errors)
        return subscription_answer(subscription)

    @extend_schema(
        operation_id="list_subscriptions",
        summary="List subscriptions (active ones unless status[] says otherwise), paginated as Lago",
        parameters=LIST_PARAMETERS,
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        return subscription_list(request.query_params)


class CustomerSubscriptionsView(ApiView):
    @extend_schema(
        operation_id="list_customer_subscriptions",
        summary="List a customer's subscriptions, as list_subscriptions with external_customer_id",
        parameters=[parameter for parameter in LIST_PARAMETERS if parameter.name != "external_customer_id"],
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str) -> Response:
        if not Customer.objects.filter(external_id=external_id).exists():
            return not_found("customer")
        params = request.query_params.copy()  # a request's QueryDict is immutable
        params["external_customer_id"] = external_id  # the path's customer wins
        return subscription_list(params)


class SubscriptionDetailView(ApiView):
    @extend_schema(
        operation_id="find_subscription",
        summary="Fetch a subscription: of `status` if given, else the live one, else the one that ended last",
        parameters=[OpenApiParameter("status", str, enum=SubscriptionStatus.values)],
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str) -> Response:
        status, errors = status_param(request.query_params)
        if errors:
            return validation_error(errors)
        subscription = _one(external_id, status)
        if subscription is None:
            return not_found("subscription")
        return subscription_answer(subscription)

    @extend_schema(
        operation_id="update_subscription",
        summary="Rename a subscription, or give it its own prices (Lago's plan_overrides)",
        description="The live subscription with this external id (else its latest one). `plan_overrides` "
        "apply on top of its current prices; the catalog plan is never changed.",
        request=SubscriptionUpdateEnvelope,
        responses={200: dict},
        examples=[
            OpenApiExample(
                "A $100 base fee and a 30-day trial",
                value={"subscription": {"plan_overrides": {"amount_cents": 10000, "trial_period": 30}}},
                request_only=True,
            )
        ],
    )
    def put(self, request: Request, external_id: str) -> Response:
        status, errors = status_param(request.query_params)
        if errors:
            return validation_error(errors)
        subscription = _one(external_id, status)
        if subscription is None:
            return not_found("subscription")
        envelope = SubscriptionUpdateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(flat_errors(envelope_errors(envelope.errors, "subscription")))
        data = envelope.validated_data["subscription"]
        changed = _identity_changes(subscription, data)
        if changed:
            return validation_error(changed)
        try:
            subscription_update(
                subscription=subscription,
                name=data.get("name"),
                plan_overrides=data.get("plan_overrides"),
                ending_at=data.get("ending_at"),
                subscription_at=data.get("subscription_at"),
                on_termination_invoice=data.get("on_termination_invoice"),
                on_termination_credit_note=data.get("on_termination_credit_note"),
            )
        except SubscriptionError as exc:
            return validation_error({exc.field: [exc.message]})
        except PlanOverrideError as exc:
            return validation_error(exc.errors)
        return subscription_answer(subscription)

    @extend_schema(
        operation_id="destroy_subscription",
        summary="Terminate a subscription now (a pending one is canceled)",
        parameters=[
            OpenApiParameter("status", str, enum=SubscriptionStatus.values, description="Which one (Lago's)."),
            OpenApiParameter(
                "on_termination_invoice",
                str,
                enum=OnTerminationInvoice.values,
                description="skip: no closing invoice for the final part of the period.",
            ),
            OpenApiParameter("on_termination_credit_note", str, enum=["skip"], description="Only skip."),
        ],
        responses={200: dict},
    )
    def delete(self, request: Request, external_id: str) -> Response:
        params = request.query_params
        errors = unknown_filters(params, DELETE_PARAMETERS) | {
            name: errors for name, errors in status_param(params)[1].items()
        }
        invoice = params.get("on_termination_invoice") or None
        credit_note = params.get("on_termination_credit_note") or None
        for check in ({"invoice": invoice, "credit_note": None}, {"invoice": None, "credit_note": credit_note}):
            try:
                check_on_termination(**check)
            except SubscriptionError as exc:
                errors[exc.field] = [exc.message]
        if errors:
            return validation_error(errors)
        subscription = _one(external_id, params.get("status") or None)
        if subscription is None:
            return not_found("subscription")
        subscription_terminate(
            subscription=subscription,
            at=timezone.now(),
            on_termination_invoice=invoice,
            on_termination_credit_note=credit_note,
        )
        return subscription_answer(subscription)


def lifetime_usage_answer(subscription: Subscription) -> Response:
    usage = lifetime_usage(subscription=subscription, now=timezone.now())
    return Response(
        {
            "lifetime_usage": {
                "lago_id": str(subscription.pk),
                "lago_subscription_id": str(subscription.pk),
                "external_subscription_id": subscription.external_id,
                "external_historical_usage_amount_cents": usage.historical_amount_cents,
                "invoiced_usage_amount_cents": usage.invoiced_amount_cents,
                "current_usage_amount_cents": usage.current_amount_cents,
                "from_datetime": iso_datetime(usage.from_datetime),
                "to_datetime": iso_datetime(timezone.now()),
            }
        }
    )


class LifetimeUsageView(ApiView):
    @extend_schema(
        operation_id="find_subscription_lifetime_usage",
        summary="A subscription's usage since it started (across plan changes): invoiced, current, historical",
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str) -> Response:
        subscription = _one(external_id, None)
        if subscription is None:
            return not_found("subscription")
        return lifetime_usage_answer(subscription)

    @extend_schema(
        operation_id="update_subscription_lifetime_usage",
        summary="Set the usage billed elsewhere before (external_historical_usage_amount_cents)",
        request=LifetimeUsageEnvelope,
        responses={200: dict},
    )
    def put(self, request: Request, external_id: str) -> Response:
        subscription = _one(external_id, None)
        if subscription is None:
            return not_found("subscription")
        envelope = LifetimeUsageEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(flat_errors(envelope_errors(envelope.errors, "lifetime_usage")))
        amount = envelope.validated_data["lifetime_usage"]["external_historical_usage_amount_cents"]
        subscription = lifetime_usage_update(subscription=subscription, historical_amount_cents=amount)
        return lifetime_usage_answer(subscription)
