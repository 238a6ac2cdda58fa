"""API conventions shared by every /api/v1 endpoint: authentication, Lago's error envelope,
pagination, and reading numbers from paths and query strings.

Every error under /api/ is Lago's JSON envelope, whatever raised it: {"status": 422, "error":
"Unprocessable Entity", "code": "validation_errors", "error_details": {"field": ["message"]}}.
DRF's exceptions go through `api_exception_handler`; a path that matches no route gets
`route_not_found`; anything else (an unhandled exception, a broken database connection, a
request Django itself refuses) is answered by config.middleware.ApiErrorsMiddleware and the
handlers at the end of this module, never by an HTML page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from http import HTTPStatus
from typing import Any, overload

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, permissions, serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView, exception_handler

from customers.authentication import ApiKeyAuthentication
from customers.validators import INVALID_CURRENCY, validate_currency
from metering.validation import parse_timestamp


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


# Lago answers carry the organization's id; this app is one organization.
ORGANIZATION_ID = "00000000-0000-4000-8000-000000000001"


# Lago's machine codes (lago-api config/locales/en.yml) for DRF's error codes.
_LAGO_CODE_OF_DRF = {
    "required": "value_is_mandatory",
    "null": "value_is_mandatory",
    "blank": "value_is_mandatory",
    "empty": "value_is_mandatory",
    "unique": "value_already_exist",
    "max_length": "value_is_too_long",
    "min_length": "value_is_too_short",
    "max_value": "value_is_out_of_range",
    "min_value": "value_is_out_of_range",
    "max_digits": "value_is_out_of_range",
    "max_decimal_places": "invalid_format",
    "max_whole_digits": "value_is_out_of_range",
    "not_a_list": "must_be_array",
    "not_a_dict": "invalid_format",
    "invalid_choice": "value_is_invalid",
    "date": "invalid_date",
    "datetime": "invalid_date",
    "make_aware": "invalid_date",
}
# For our readable messages that carry no code: the first pattern that matches names it.
_LAGO_CODE_OF_TEXT = tuple(
    (re.compile(pattern), code)
    for pattern, code in (
        (r"already (exists?|used|taken|applied|in use)|exists already|is taken|more than once", "value_already_exist"),
        (
            r"\bis required|required\b|must not be (empty|null|blank)|may not be (null|blank)|missing",
            "value_is_mandatory",
        ),
        (r"not supported", "unsupported_value"),
        (r"time ?zone", "invalid_timezone"),
        (r"\burl\b|https?://", "url_is_invalid"),
        (r"e-?mail", "invalid_email_format"),
        (r"\bdate\b|\bdatetime\b|iso 8601|yyyy-mm", "invalid_date"),
        (r"at most \d+ characters|too long", "value_is_too_long"),
        (
            r"out of range|at most|at least|greater than|less than|from -?\d|between|too (large|small|far|old)",
            "value_is_out_of_range",
        ),
        (r"must be (a|an) (whole )?(number|integer|decimal|json|string|object|list|array|boolean)", "invalid_format"),
    )
)
# Codes of Lago's own that a message may carry (ErrorDetail(message, code=...)) where no rule
# above would find them.
LAGO_SPECIFIC_CODES = ("does_not_match_an_instant_charge", "not_traceable", "not_deletable")
LAGO_ERROR_CODES = frozenset(
    {"value_is_invalid", *_LAGO_CODE_OF_DRF.values(), *(code for _, code in _LAGO_CODE_OF_TEXT), *LAGO_SPECIFIC_CODES}
)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def lago_code(message: Any) -> str:
    """Lago's machine code for one of our error messages: the DRF code it carries when Lago has
    an equivalent, else read from its words, else `value_is_invalid` (Lago's `invalid`)."""
    code = getattr(message, "code", None)
    if code in LAGO_ERROR_CODES:
        return str(code)
    if code in _LAGO_CODE_OF_DRF:
        return _LAGO_CODE_OF_DRF[code]
    # Quoted parts are the values sent (`unknown metric 'timezone_x'`): only our own words count.
    text = _QUOTED.sub("''", str(message)).lower()
    for pattern, lago in _LAGO_CODE_OF_TEXT:
        if pattern.search(text):
            return lago
    return "value_is_invalid"


def with_lago_codes(details: Any) -> Any:
    """Error details with Lago's machine codes beside our messages: each field's list holds our
    readable messages, then the codes Lago would send for them ({"external_id": ["already used by
    …", "value_already_exist"]}), so an integration testing `"value_already_exist" in
    error_details["external_id"]` works as against Lago while a person still reads why."""
    if isinstance(details, dict):
        return {key: with_lago_codes(value) for key, value in details.items()}
    if isinstance(details, list) and details and all(isinstance(item, str) for item in details):
        messages = [str(item) for item in details if str(item) not in LAGO_ERROR_CODES]
        codes: list[str] = []
        for item in details:
            code = str(item) if str(item) in LAGO_ERROR_CODES else lago_code(item)
            if code not in codes:
                codes.append(code)
        return [*messages, *codes]
    if isinstance(details, list):
        return [with_lago_codes(item) for item in details]
    if isinstance(details, str):
        return with_lago_codes([details])
    return details


def validation_error(details: dict[str, Any]) -> Response:
    return error_response(422, "validation_errors", with_lago_codes(details))


def envelope_errors(errors: Any, key: str) -> dict[str, Any]:
    """The errors of a request enveloped as Lago's ({"payment": {...}}), by field: those of the
    fields inside the envelope, and the envelope's own (missing, not an object) under its name,
    never a bare list that names no field."""
    inner = errors.get(key)
    if isinstance(inner, dict):
        own = {(key if name == api_settings.NON_FIELD_ERRORS_KEY else name): value for name, value in inner.items()}
        return {**{name: value for name, value in errors.items() if name != key}, **own}
    return dict(errors)


def flat_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors by dotted field: {"alerts": [{}, {"thresholds": [{"value": [...]}]}]}
    → {"alerts.1.thresholds.0.value": [...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = prefix if key == api_settings.NON_FIELD_ERRORS_KEY else (f"{prefix}.{key}" if prefix else str(key))
            out.update(flat_errors(value, name))
    elif isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        if errors:
            out[prefix or "body"] = [str(e) for e in errors]
    elif isinstance(errors, list):
        for i, value in enumerate(errors):
            out.update(flat_errors(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix or "body"] = [str(errors)]
    return out


def not_found(what: str) -> Response:
    return error_response(404, f"{what}_not_found", message=f"{what.replace('_', ' ')} not found")


def envelope(status: int, code: str, message: str | None = None, **extra: Any) -> JsonResponse:
    """Lago's error envelope outside DRF (middleware, Django's error handlers)."""
    body: dict[str, Any] = {"status": status, "error": HTTPStatus(status).phrase, "code": code}
    if message:
        body["message"] = message
    return JsonResponse({**body, **extra}, status=status)


def resource_of(path: str) -> str:
    """The resource a /api/v1 path names, singular: /api/v1/credit_notes/x → credit_note."""
    segments = [s for s in path.split("/") if s][2:3] or ["resource"]
    name = re.sub(r"[^a-z0-9_]", "", segments[0].lower()) or "resource"
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("xes"):
        return name[:-2]
    if name.endswith("s") and not name.endswith(("ss", "us")):
        return name[:-1]
    return name


@csrf_exempt  # an unknown path is 404 for every method, a POST without a CSRF token too
def route_not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any /api/v1 path no route matches: Lago's 404 envelope, named after the resource."""
    what = resource_of(request.path)
    return envelope(404, f"{what}_not_found", f"{what.replace('_', ' ')} not found")


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


BAD_PAGE = "must be a whole number from 1 to {maximum}"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000  # × MAX_PER_PAGE rows: far past any list, far below a bigint offset
ID_MAX = 2**63 - 1  # ids are bigints
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def ascii_int(text: str, *, minimum: int, maximum: int) -> int | None:
    """A whole number written in ASCII digits within [minimum, maximum], else None.

    Not str.isdigit(): it accepts "³" and other digits int() then refuses.
    """
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def object_id(text: str) -> int | None:
    """A primary key from a path (`lago_id`), or None when it cannot be one (then: not found)."""
    return ascii_int(text, minimum=1, maximum=ID_MAX)


def page_numbers(params: Any) -> tuple[int, int] | dict[str, list[str]]:
    """Lago's `page` and `per_page` query parameters (per_page at most MAX_PER_PAGE), or errors."""
    errors: dict[str, list[str]] = {}
    numbers = []
    for name, default, maximum in (("page", 1, MAX_PAGE), ("per_page", DEFAULT_PER_PAGE, MAX_PAGE)):
        raw = params.get(name) or str(default)
        number = ascii_int(raw, minimum=1, maximum=maximum)
        if number is None:
            errors[name] = [BAD_PAGE.format(maximum=maximum)]
            numbers.append(default)
        else:
            numbers.append(number)
    if errors:
        return errors
    return numbers[0], min(numbers[1], MAX_PER_PAGE)


def paginated(key: str, rows: Any, page: int, per_page: int, render: Any) -> dict[str, Any]:
    """One page of an ordered queryset (or list) in Lago's list envelope: {key: [...], "meta": {...}}."""
    count = len(rows) if isinstance(rows, list) else rows.count()
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


UNKNOWN_FILTER = "is not a filter of this list (its filters: {names})"


def unknown_filters(params: Any, filters: Iterable[str]) -> dict[str, list[str]]:
    """The query parameters a list does not support, each refused by name (422), never ignored:
    a reconciliation that filters on a name we do not know must not get every row back.
    `page` and `per_page` are every list's; `name[]` is the array form of `name`."""
    known = {*filters, "page", "per_page"}
    names = ", ".join(sorted(set(filters))) or "none"
    return {
        name: [UNKNOWN_FILTER.format(names=names)]
        for name in params
        if name not in known and name.removesuffix("[]") not in known
    }


NOT_SUPPORTED = "is not supported"


class StrictSerializer(serializers.Serializer[Any]):
    """An input that refuses the fields it does not declare (422 naming each), instead of
    accepting and dropping them: a client must know when what it sent was not taken."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise exceptions.ValidationError({name: [NOT_SUPPORTED] for name in unknown})
        return super().to_internal_value(data)


@extend_schema_field({"nullable": True, "description": "Not supported here: only absent or null is accepted."})
class UnsupportedField(serializers.Field[Any, Any, Any, Any]):
    """A field of Lago's input that this app does not support: absent or null is fine, anything
    else is refused (422) with the reason, never accepted and dropped."""

    def __init__(self, reason: str = "", **kwargs: Any) -> None:
        self.reason = reason
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if data in (None, [], {}, "", False):
            return None
        raise serializers.ValidationError(f"{NOT_SUPPORTED}{': ' + self.reason if self.reason else ''}")

    def to_representation(self, value: Any) -> Any:
        return value


class StrictCharField(serializers.CharField):
    """Text, and only text: a number sent for an id or a name is refused, not turned into "1"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


NOT_AN_INTEGER = "must be a whole number (a JSON integer, not a string or a decimal)"


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, and only that: DRF's IntegerField reads "100" and 100.0 as 100; an amount in
    cents sent as a string, a float or a boolean (a Python int too) is refused, 422 naming the field."""

    default_error_messages = {"invalid": NOT_AN_INTEGER}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


DUPLICATE_METADATA_KEY = "key {key!r} appears more than once"


def duplicate_keys(items: list[dict[str, Any]]) -> list[str]:
    """The keys that appear more than once in Lago's [{key, value}] metadata (Lago: unique)."""
    seen: set[str] = set()
    twice: list[str] = []
    for item in items:
        key = item["key"]
        if key in seen and key not in twice:
            twice.append(key)
        seen.add(key)
    return twice


def metadata_ids(items: list[dict[str, Any]]) -> list[str]:
    """An id for each of Lago's metadata items: the one sent, else the smallest whole number no
    other item of the list uses (positions alone would give a new item the id of one sent)."""
    taken = {str(item["id"]) for item in items if item.get("id")}
    ids: list[str] = []
    candidate = 0
    for item in items:
        if item.get("id"):
            ids.append(str(item["id"]))
            continue
        candidate += 1
        while str(candidate) in taken:
            candidate += 1
        taken.add(str(candidate))
        ids.append(str(candidate))
    return ids


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Describes the Bearer API key in the OpenAPI schema."""

    target_class = "customers.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key from create_api_key or the admin."}


class ApiView(APIView):
    """Base class for /api/v1 views: API-key authentication required.

    A request that writes runs in one transaction with the building of its answer: if anything
    fails before the answer is ready, nothing it wrote stays (no row stored behind a 500).
    Views that manage their own atomicity for speed (events: one statement) set
    `atomic_writes = False`.
    """

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    atomic_writes = True

    def perform_content_negotiation(self, request: Any, force: bool = False) -> tuple[Any, str]:
        # Nearly every client sends no Accept header, */* or application/json, and no ?format=:
        # then DRF's negotiation would pick the first renderer, with its own media type, after
        # parsing the header and the query string (some 5 % of a single event's CPU). Any
        # other request is negotiated by DRF (a 406 for a type no renderer gives).
        if not getattr(self, "format_kwarg", None) and not request.META.get("QUERY_STRING"):
            accept = request.META.get("HTTP_ACCEPT", "*/*")
            renderer = self.get_renderers()[0]
            if accept == "*/*" or accept == renderer.media_type == "application/json":
                return renderer, renderer.media_type
        negotiated: tuple[Any, str] = super().perform_content_negotiation(request, force)
        return negotiated

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self.atomic_writes and request.method not in permissions.SAFE_METHODS:
            with transaction.atomic():
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)


# --- Django's own error pages, as Lago's envelope under /api/ (config.urls names them) ---------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return envelope(400, "bad_request", "The request could not be read.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return envelope(403, "forbidden", str(exception) or None)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return route_not_found(request)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return envelope(500, "internal_error", "An unexpected error occurred.", request_id=request_id(request))
    return defaults.server_error(request)


def request_id(request: HttpRequest) -> str | None:
    """The id config.middleware gave the request (logged with its errors, sent back in X-Request-Id)."""
    value = getattr(request, "request_id", None)
    return value if isinstance(value, str) else None


def currency_input(value: str | None) -> str | None:
    """A serializer's currency field: empty, or an ISO 4217 code in use (else 422 naming it)."""
    if value:
        try:
            validate_currency(value)
        except Exception:
            raise serializers.ValidationError(INVALID_CURRENCY.format(value=value)) from None
    return value


def moment_input(value: str | None) -> Any:
    """A serializer's moment (ISO 8601 or Unix seconds, as events take them): None when empty,
    else parsed, or a 422 naming the field."""
    if not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from None
