"""The coupons API (lago-python-client's CouponClient, AppliedCouponClient and
CustomerAppliedCouponsClient), Lago's routes:

- `POST /coupons`, `GET /coupons` (paginated: active before terminated, no expiration before a
  time limit, then the nearest expiration, newest first, as Lago's CouponsQuery),
  `GET`/`PUT`/`DELETE /coupons/<code>`;
- `POST /applied_coupons` (give a coupon to a customer), `GET /applied_coupons` (filters
  `external_customer_id`, `status`, `coupon_code[]`, as Lago's AppliedCouponsQuery; newest first),
  `GET /customers/<external_id>/applied_coupons` (the same list for that customer),
  `DELETE /customers/<external_id>/applied_coupons/<lago_id>` (terminate it).

Amounts are Lago's integer cents of `amount_currency`; rates are percent. Every field of Lago's
input models is taken; any other is refused (422 naming it). A filter value that is not one of
Lago's is 422 naming the parameter (Lago ignores it). The rules are billing.services.coupons and
billing.services.applied_coupons; the answers billing.api.coupon_json.
"""

from __future__ import annotations

from typing import Any, cast

from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.alerts import flat_errors
from billing.api.coupon_json import (
    AppliedCouponEnvelope,
    AppliedCouponListEnvelope,
    CouponEnvelope,
    CouponListEnvelope,
    applied_coupon_json,
    applied_coupons_for_json,
    coupon_json,
)
from billing.api.list_params import BAD_CHOICE, pages_only
from billing.engine.vocabulary import CouponExpiration, CouponFrequency, CouponStatus, CouponType
from billing.models import AppliedCoupon, Coupon
from billing.services.applied_coupons import CouponOverrides, applied_coupon_create, applied_coupon_terminate
from billing.services.coupons import CouponError, CouponFields, coupon_create, coupon_destroy, coupon_update
from config.api import (
    ApiView,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    envelope_errors,
    not_found,
    object_id,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)
from customers.models import Customer
from metering.validation import parse_timestamp

MAX_CODES = 1000  # plan or metric codes in one applies_to list
APPLIED_COUPON_FILTERS = ("external_customer_id", "status", "coupon_code")  # Lago's AppliedCouponIndex

LIST_PARAMETERS = [
    OpenApiParameter("external_customer_id", str, description="Only this customer's applied coupons."),
    OpenApiParameter("status", str, enum=CouponStatus.values),
    OpenApiParameter(
        "coupon_code", str, many=True, description="Only these coupons' (`coupon_code[]=a&coupon_code[]=b`)."
    ),
    OpenApiParameter("page", int),
    OpenApiParameter("per_page", int),
]


# --- input -----------------------------------------------------------------------------------------


def _rate_field() -> serializers.DecimalField:
    """A percentage, as a JSON number (Lago's float) or a decimal string; checked by the service."""
    return serializers.DecimalField(
        max_digits=None, decimal_places=None, coerce_to_string=False, required=False, allow_null=True
    )


class AppliesToInput(StrictSerializer):
    plan_codes = serializers.ListField(
        child=StrictCharField(max_length=64), required=False, allow_null=True, max_length=MAX_CODES
    )
    billable_metric_codes = serializers.ListField(
        child=StrictCharField(max_length=64), required=False, allow_null=True, max_length=MAX_CODES
    )


class CouponUpdateInput(StrictSerializer):
    """Lago's Coupon: every field optional; only those sent change."""

    name = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=1000)
    code = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=1000)
    description = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=10_000)
    coupon_type = serializers.ChoiceField(choices=CouponType.values, required=False, allow_null=True)
    amount_cents = StrictIntegerField(required=False, allow_null=True, help_text="Fixed amount coupons, cents.")
    amount_currency = StrictCharField(required=False, allow_null=True, max_length=16)
    percentage_rate = _rate_field()
    frequency = serializers.ChoiceField(choices=CouponFrequency.values, required=False, allow_null=True)
    frequency_duration = StrictIntegerField(required=False, allow_null=True, help_text="Recurring coupons.")
    expiration = serializers.ChoiceField(choices=CouponExpiration.values, required=False, allow_null=True)
    expiration_at = StrictCharField(required=False, allow_null=True, help_text="ISO 8601; time_limit coupons.")
    reusable = serializers.BooleanField(required=False)
    applies_to = AppliesToInput(required=False, allow_null=True)

    def validate_expiration_at(self, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class CouponCreateInput(CouponUpdateInput):
    name = StrictCharField(max_length=1000)
    code = StrictCharField(max_length=1000)
    coupon_type = serializers.ChoiceField(choices=CouponType.values)


class CouponCreateEnvelope(StrictSerializer):
    coupon = CouponCreateInput()


class CouponUpdateEnvelope(StrictSerializer):
    coupon = CouponUpdateInput()


class AppliedCouponInput(StrictSerializer):
    """Lago's AppliedCoupon: the customer and coupon, and what overrides the coupon's terms."""

    external_customer_id = StrictCharField(max_length=1000)
    coupon_code = StrictCharField(max_length=1000)
    amount_cents = StrictIntegerField(required=False, allow_null=True)
    amount_currency = StrictCharField(required=False, allow_null=True, max_length=16)
    percentage_rate = _rate_field()
    frequency = serializers.ChoiceField(choices=CouponFrequency.values, required=False, allow_null=True)
    frequency_duration = StrictIntegerField(required=False, allow_null=True)


class AppliedCouponInputEnvelope(StrictSerializer):
    applied_coupon = AppliedCouponInput()


def _fields(data: dict[str, Any]) -> CouponFields:
    """The service's fields from the validated input: those sent, `applies_to` flattened (a
    null applies_to, or a null list in it, changes nothing: as Lago)."""
    fields: dict[str, Any] = {name: value for name, value in data.items() if name != "applies_to"}
    for name, codes in (data.get("applies_to") or {}).items():
        if codes is not None:
            fields[name] = codes
    return cast(CouponFields, fields)


def _errors(errors: Any, key: str) -> dict[str, list[str]]:
    return flat_errors(envelope_errors(errors, key))


# --- coupons ---------------------------------------------------------------------------------------


def _coupon(code: str) -> Coupon | None:
    return Coupon.objects.filter(code=code).first()


def _answer(coupon: Coupon) -> Response:
    return Response({"coupon": coupon_json(coupon)})


class CouponsView(ApiView):
    @extend_schema(
        operation_id="create_coupon",
        summary="Create a coupon: a fixed amount or a percentage, once, recurring or forever",
        request=CouponCreateEnvelope,
        responses={200: CouponEnvelope},
        examples=[
            OpenApiExample(
                "10 % off, forever",
                value={
                    "coupon": {
                        "name": "Launch",
                        "code": "launch-10",
                        "coupon_type": "percentage",
                        "percentage_rate": 10,
                        "frequency": "forever",
                        "expiration": "no_expiration",
                    }
                },
                request_only=True,
            ),
            OpenApiExample(
                "$50.00 off once, on the team plan",
                value={
                    "coupon": {
                        "name": "Welcome",
                        "code": "welcome-50",
                        "coupon_type": "fixed_amount",
                        "amount_cents": 5000,
                        "amount_currency": "USD",
                        "frequency": "once",
                        "reusable": False,
                        "applies_to": {"plan_codes": ["team"]},
                    }
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        envelope = CouponCreateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(_errors(envelope.errors, "coupon"))
        try:
            coupon = coupon_create(fields=_fields(envelope.validated_data["coupon"]))
        except CouponError as exc:
            return validation_error(exc.errors)
        return _answer(coupon)

    @extend_schema(
        operation_id="list_coupons",
        summary="List the coupons, paginated: active first, then by expiration, newest first",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: CouponListEnvelope},
    )
    def get(self, request: Request) -> Response:
        paging = pages_only(request.query_params)
        if isinstance(paging, dict):
            return validation_error(paging)
        page, per_page = paging
        rows = Coupon.objects.order_by("status", "expiration", "expiration_at", "-created_at", "id")
        return Response(paginated("coupons", rows, page, per_page, coupon_json))


class CouponDetailView(ApiView):
    @extend_schema(operation_id="find_coupon", summary="Fetch one coupon by code", responses={200: CouponEnvelope})
    def get(self, request: Request, code: str) -> Response:
        coupon = _coupon(code)
        return not_found("coupon") if coupon is None else _answer(coupon)

    @extend_schema(
        operation_id="update_coupon",
        summary="Change a coupon (once applied: only its name, description and expiration)",
        request=CouponUpdateEnvelope,
        responses={200: CouponEnvelope},
    )
    def put(self, request: Request, code: str) -> Response:
        coupon = _coupon(code)
        if coupon is None:
            return not_found("coupon")
        envelope = CouponUpdateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(_errors(envelope.errors, "coupon"))
        try:
            coupon = coupon_update(coupon=coupon, fields=_fields(envelope.validated_data["coupon"]))
        except CouponError as exc:
            return validation_error(exc.errors)
        return _answer(coupon)

    @extend_schema(
        operation_id="destroy_coupon",
        summary="Delete a coupon never applied (one that was applied is refused: it can only be terminated)",
        responses={200: CouponEnvelope},
    )
    def delete(self, request: Request, code: str) -> Response:
        coupon = _coupon(code)
        if coupon is None:
            return not_found("coupon")
        answer = coupon_json(coupon)
        try:
            coupon_destroy(coupon=coupon)
        except CouponError as exc:
            return validation_error(exc.errors)
        return Response({"coupon": answer})


# --- applied coupons -------------------------------------------------------------------------------


def _values(params: Any, name: str) -> list[str]:
    """Every value of a list parameter, sent as `name[]` (Lago's clients) or `name`, repeated or not."""
    return [value for key in (name, f"{name}[]") for value in params.getlist(key) if value]


def applied_coupon_list(params: QueryDict) -> Response:
    """The applied coupons, newest first, filtered and paginated: GET /api/v1/applied_coupons, and
    a customer's."""
    paging = page_numbers(params)
    errors: dict[str, list[str]] = dict(paging) if isinstance(paging, dict) else {}
    errors |= unknown_filters(params, APPLIED_COUPON_FILTERS)
    rows = applied_coupons_for_json()
    if params.get("external_customer_id"):
        rows = rows.filter(customer__external_id=params["external_customer_id"], customer__deleted_at__isnull=True)
    status = params.get("status")
    if status and status not in CouponStatus.values:
        errors["status"] = [BAD_CHOICE.format(choices=", ".join(CouponStatus.values))]
    elif status:
        rows = rows.filter(status=status)
    codes = _values(params, "coupon_code")
    if codes:
        rows = rows.filter(coupon__code__in=codes)
    if isinstance(paging, dict) or errors:
        return validation_error(errors)
    page, per_page = paging
    rows = rows.order_by("-created_at", "id")
    return Response(paginated("applied_coupons", rows, page, per_page, applied_coupon_json))


def _applied_answer(applied: AppliedCoupon) -> Response:
    return Response({"applied_coupon": applied_coupon_json(applied_coupons_for_json().get(pk=applied.pk))})


class AppliedCouponsView(ApiView):
    @extend_schema(
        operation_id="create_applied_coupon",
        summary="Give a coupon to a customer; amount, rate, frequency and duration may override the coupon's",
        request=AppliedCouponInputEnvelope,
        responses={200: AppliedCouponEnvelope},
        examples=[
            OpenApiExample(
                "The welcome coupon for acme",
                value={"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome-50"}},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        envelope = AppliedCouponInputEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(_errors(envelope.errors, "applied_coupon"))
        data = envelope.validated_data["applied_coupon"]
        overrides = CouponOverrides(
            amount_cents=data.get("amount_cents"),
            amount_currency=data.get("amount_currency"),
            percentage_rate=data.get("percentage_rate"),
            frequency=data.get("frequency"),
            frequency_duration=data.get("frequency_duration"),
        )
        try:
            applied = applied_coupon_create(
                external_customer_id=data["external_customer_id"],
                coupon_code=data["coupon_code"],
                overrides=overrides,
                now=timezone.now(),
            )
        except CouponError as exc:
            return validation_error(exc.errors)
        return _applied_answer(applied)

    @extend_schema(
        operation_id="list_applied_coupons",
        summary="List the applied coupons, newest first, paginated",
        parameters=LIST_PARAMETERS,
        responses={200: AppliedCouponListEnvelope},
    )
    def get(self, request: Request) -> Response:
        return applied_coupon_list(request.query_params)


class CustomerAppliedCouponsView(ApiView):
    @extend_schema(
        operation_id="list_customer_applied_coupons",
        summary="List a customer's applied coupons, as list_applied_coupons with external_customer_id",
        parameters=[parameter for parameter in LIST_PARAMETERS if parameter.name != "external_customer_id"],
        responses={200: AppliedCouponListEnvelope},
    )
    def get(self, request: Request, external_id: str) -> Response:
        if not Customer.objects.filter(external_id=external_id).exists():
            return not_found("customer")
        params = request.query_params.copy()  # a request's QueryDict is immutable
        params["external_customer_id"] = external_id  # the path's customer wins, as Lago's
        return applied_coupon_list(params)


class CustomerAppliedCouponView(ApiView):
    @extend_schema(
        operation_id="destroy_applied_coupon",
        summary="Terminate a customer's applied coupon: no invoice finalized afterwards uses it",
        responses={200: AppliedCouponEnvelope},
    )
    def delete(self, request: Request, external_id: str, lago_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer")
        pk = object_id(lago_id)
        applied = AppliedCoupon.objects.filter(customer=customer, pk=pk).first() if pk is not None else None
        if applied is None:
            return not_found("applied_coupon")
        return _applied_answer(applied_coupon_terminate(applied_coupon=applied, now=timezone.now()))
