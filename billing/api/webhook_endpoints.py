"""/api/v1/webhook_endpoints (lago-python-client's WebhookEndpointClient): create, find,
find_all, update, destroy. Only `signature_algo` hmac is supported (omitted means hmac; jwt is
422). The rules are billing.services.webhooks."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoices import PageMeta
from billing.api.list_params import pages_only
from billing.engine.vocabulary import WebhookType
from billing.models import WebhookEndpoint
from billing.services.webhooks import (
    WebhookEndpointError,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
)
from config.api import (
    ORGANIZATION_ID,
    ApiView,
    StrictCharField,
    StrictSerializer,
    envelope_errors,
    iso_datetime,
    not_found,
    object_id,
    paginated,
    validation_error,
)


def webhook_endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "lago_id": str(endpoint.pk),
        "lago_organization_id": ORGANIZATION_ID,
        "webhook_url": endpoint.webhook_url,
        "signature_algo": endpoint.signature_algo,
        "name": endpoint.name or None,
        "event_types": endpoint.event_types,
        "created_at": iso_datetime(endpoint.created_at),
    }


class WebhookEndpointOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    lago_organization_id = serializers.CharField()
    webhook_url = serializers.CharField()
    signature_algo = serializers.ChoiceField(choices=["hmac"])
    name = serializers.CharField(allow_null=True)
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=WebhookType.choices), allow_null=True)
    created_at = serializers.DateTimeField()


class WebhookEndpointEnvelope(serializers.Serializer[Any]):
    webhook_endpoint = WebhookEndpointOutput()


class WebhookEndpointListEnvelope(serializers.Serializer[Any]):
    webhook_endpoints = WebhookEndpointOutput(many=True)
    meta = PageMeta()


class WebhookEndpointInput(StrictSerializer):
    webhook_url = StrictCharField(max_length=1000)
    signature_algo = StrictCharField(max_length=8, required=False, allow_null=True, allow_blank=True)
    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    event_types = serializers.ListField(child=StrictCharField(max_length=64), required=False, allow_null=True)


class WebhookEndpointUpdate(WebhookEndpointInput):
    webhook_url = StrictCharField(max_length=1000, required=False)


class WebhookEndpointInputEnvelope(StrictSerializer):
    webhook_endpoint = WebhookEndpointInput()


class WebhookEndpointUpdateEnvelope(StrictSerializer):
    webhook_endpoint = WebhookEndpointUpdate()


def _answer(endpoint: WebhookEndpoint) -> Response:
    return Response({"webhook_endpoint": webhook_endpoint_json(endpoint)})


def _endpoint(lago_id: str) -> WebhookEndpoint | None:
    pk = object_id(lago_id)
    return WebhookEndpoint.objects.filter(pk=pk).first() if pk is not None else None


class WebhookEndpointsView(ApiView):
    @extend_schema(
        operation_id="create_webhook_endpoint",
        summary="Add an endpoint that receives signed webhooks",
        request=WebhookEndpointInputEnvelope,
        responses={200: WebhookEndpointEnvelope},
    )
    def post(self, request: Request) -> Response:
        envelope = WebhookEndpointInputEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "webhook_endpoint"))
        data = envelope.validated_data["webhook_endpoint"]
        try:
            endpoint = webhook_endpoint_create(
                webhook_url=data["webhook_url"],
                name=data.get("name") or "",
                signature_algo=data.get("signature_algo"),
                event_types=data.get("event_types"),
            )
        except WebhookEndpointError as exc:
            return validation_error(exc.errors)
        return _answer(endpoint)

    @extend_schema(
        operation_id="list_webhook_endpoints",
        summary="List the webhook endpoints, oldest first, paginated",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: WebhookEndpointListEnvelope},
    )
    def get(self, request: Request) -> Response:
        paging = pages_only(request.query_params)
        if isinstance(paging, dict):
            return validation_error(paging)
        page, per_page = paging
        rows = WebhookEndpoint.objects.order_by("created_at", "id")
        return Response(paginated("webhook_endpoints", rows, page, per_page, webhook_endpoint_json))


class WebhookEndpointDetailView(ApiView):
    @extend_schema(
        operation_id="find_webhook_endpoint",
        summary="Fetch one webhook endpoint",
        responses={200: WebhookEndpointEnvelope},
    )
    def get(self, request: Request, lago_id: str) -> Response:
        endpoint = _endpoint(lago_id)
        return not_found("webhook_endpoint") if endpoint is None else _answer(endpoint)

    @extend_schema(
        operation_id="update_webhook_endpoint",
        summary="Change an endpoint's URL, name or event types",
        request=WebhookEndpointUpdateEnvelope,
        responses={200: WebhookEndpointEnvelope},
    )
    def put(self, request: Request, lago_id: str) -> Response:
        endpoint = _endpoint(lago_id)
        if endpoint is None:
            return not_found("webhook_endpoint")
        envelope = WebhookEndpointUpdateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "webhook_endpoint"))
        data = envelope.validated_data["webhook_endpoint"]
        try:
            endpoint = webhook_endpoint_update(
                endpoint=endpoint,
                webhook_url=data.get("webhook_url"),
                name=data.get("name"),
                signature_algo=data.get("signature_algo"),
                event_types=data.get("event_types"),
                event_types_sent="event_types" in data,
            )
        except WebhookEndpointError as exc:
            return validation_error(exc.errors)
        return _answer(endpoint)

    @extend_schema(
        operation_id="destroy_webhook_endpoint",
        summary="Delete an endpoint (its deliveries stay in the log; pending ones are not sent)",
        responses={200: WebhookEndpointEnvelope},
    )
    def delete(self, request: Request, lago_id: str) -> Response:
        endpoint = _endpoint(lago_id)
        if endpoint is None:
            return not_found("webhook_endpoint")
        answer = webhook_endpoint_json(endpoint)
        webhook_endpoint_delete(endpoint=endpoint)
        return Response({"webhook_endpoint": answer})
