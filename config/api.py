"""API conventions shared by every /api/v1 endpoint: authentication and Lago's error envelope.

Errors look like Lago's: {"status": 422, "error": "Unprocessable Entity", "code":
"validation_errors", "error_details": {"field": ["message"]}}.
"""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Any, overload

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from customers.authentication import ApiKeyAuthentication


@overload
def iso_datetime(value: datetime) -> str: ...
@overload
def iso_datetime(value: None) -> None: ...
def iso_datetime(value: datetime | None) -> str | None:
    """A moment as the API writes it: ISO 8601 in UTC with a Z, as Lago does; None stays None."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


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


BAD_PAGE = "must be a whole number of at least 1"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


def page_numbers(params: Any) -> tuple[int, int] | dict[str, list[str]]:
    """Lago's `page` and `per_page` query parameters (per_page at most MAX_PER_PAGE), or errors."""
    errors: dict[str, list[str]] = {}
    numbers = []
    for name, default in (("page", 1), ("per_page", DEFAULT_PER_PAGE)):
        raw = params.get(name) or str(default)
        if not raw.isdigit() or int(raw) < 1:
            errors[name] = [BAD_PAGE]
            numbers.append(default)
        else:
            numbers.append(int(raw))
    if errors:
        return errors
    return numbers[0], min(numbers[1], MAX_PER_PAGE)


def paginated(key: str, rows: Any, page: int, per_page: int, render: Any) -> dict[str, Any]:
    """One page of an ordered queryset in Lago's list envelope: {key: [...], "meta": {...}}."""
    count = rows.count()
    pages = max(1, -(-count // per_page))
    return {
        key: [render(row) for row in rows[(page - 1) * per_page : page * per_page]],
        "meta": {
            "current_page": page,
            "next_page": page + 1 if page < pages else None,
            "prev_page": page - 1 if page > 1 else None,
            "total_pages": pages,
            "total_count": count,
        },
    }


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
