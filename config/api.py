"""API conventions shared by every /api/v1 endpoint: authentication and Lago's error envelope.

Errors look like Lago's: {"status": 422, "error": "Unprocessable Entity", "code":
"validation_errors", "error_details": {"field": ["message"]}}.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from customers.authentication import ApiKeyAuthentication


def error_response(status: int, code: str, details: Any = None, message: str | None = None) -> Response:
    body: dict[str, Any] = {"status": status, "error": HTTPStatus(status).phrase, "code": code}
    if details is not None:
        body["error_details"] = details
    if message:
        body["message"] = message
    return Response(body, status=status)


def validation_error(details: dict[str, Any]) -> Response:
    return error_response(422, "validation_errors", details)


def not_found(what: str) -> Response:
    return error_response(404, f"{what}_not_found", message=f"{what.replace('_', ' ')} not found")


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        return validation_error(exc.detail if isinstance(exc.detail, dict) else {"body": exc.detail})
    if isinstance(exc, exceptions.ParseError):
        return error_response(400, "invalid_json", message=str(exc.detail))
    detail = getattr(exc, "detail", None)
    code = getattr(detail, "code", None) or HTTPStatus(response.status_code).phrase.lower().replace(" ", "_")
    out = error_response(response.status_code, str(code), message=str(detail) if detail else None)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            out[header] = response[header]
    return out


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Describes the Bearer API key in the OpenAPI schema."""

    target_class = "customers.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key from create_api_key or the admin."}


class ApiView(APIView):
    """Base class for /api/v1 views: API-key authentication required."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [permissions.IsAuthenticated]
