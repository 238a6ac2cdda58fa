"""Request ids and the last word on errors under /api/ (config.api has the envelope).

`ApiErrorsMiddleware`:
- gives every request an id (the client's `X-Request-Id` when it sends a sane one, else a new
  one), sends it back in `X-Request-Id` on every /api/ response and logs it with any error;
- refuses a NUL character in the path (404) or the query string (422, naming the parameter)
  before any view reads it: PostgreSQL cannot compare text with a NUL, so such a value could
  only fail deep inside a query;
- answers an exception no view handled with Lago's envelope: 503 with Retry-After when the
  database connection is down (a restart: the next request reconnects), else 500 with the
  request id; the exception is logged with the id. Pages outside /api/ keep Django's behaviour.

`PageCSPMiddleware`: django-csp's Content-Security-Policy on every page, not on the API's JSON.

`NotOnEventPaths` and its subclasses: the middleware that serves pages (static files, sessions,
the admin's user and messages, the history's request) on every path but the two event
endpoints, which a client calls thousands of times a second and which use none of it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from csp.middleware import CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.urls import reverse
from simple_history.middleware import HistoryRequestMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

from config.api import envelope, route_not_found, with_lago_codes

logger = logging.getLogger("billing.api")

NUL_IN_PARAMETER = "must not contain NUL characters"
DATABASE_UNAVAILABLE = "The database is not reachable right now; retry shortly."
SERVER_ERROR = "An unexpected error occurred; quote the request id when you report it."
RETRY_AFTER_SECONDS = 1
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class ApiErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        api = request.path.startswith("/api/")
        if api:
            sent = request.META.get("HTTP_X_REQUEST_ID", "")
            request.request_id = sent if _SANE_ID.fullmatch(sent) else uuid.uuid4().hex  # type: ignore[attr-defined]
        refused = self._refuse_nul(request, api)
        response = refused if refused is not None else self.get_response(request)
        if api:
            response["X-Request-Id"] = request.request_id  # type: ignore[attr-defined]
        return response

    @staticmethod
    def _refuse_nul(request: HttpRequest, api: bool) -> HttpResponse | None:
        if "\x00" in request.path:
            return route_not_found(request) if api else HttpResponseBadRequest("NUL in the path")
        query = request.META.get("QUERY_STRING", "")
        if "%00" not in query and "\x00" not in query:
            return None
        for name, value in parse_qsl(query, keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                field = name.replace("\x00", "") or "query"
                if not api:
                    return HttpResponseBadRequest("NUL in the query string")
                return envelope(422, "validation_errors", error_details=with_lago_codes({field: [NUL_IN_PARAMETER]}))
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        request_id = getattr(request, "request_id", None)
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.warning("request %s: database unavailable: %s", request_id, exception)
            response = envelope(503, "database_unavailable", DATABASE_UNAVAILABLE, request_id=request_id)
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        logger.exception("request %s: unhandled error on %s %s", request_id, request.method, request.path)
        return envelope(500, "internal_error", SERVER_ERROR, request_id=request_id)


class PageCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, minus the header on the API's JSON answers.

    A Content-Security-Policy tells a browser what a document it renders may load; a JSON answer
    is never rendered as a document (SecurityMiddleware sends `X-Content-Type-Options: nosniff`,
    so a browser will not sniff it into HTML), so there the header protects nothing, yet building
    it (policy and report-only) cost about 40 µs, some 4 % of a single event's application CPU.
    Every other answer keeps it: pages, the admin, and the HTML under /api/ (the API docs).
    """

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if request.path.startswith("/api/") and response.get("Content-Type", "").startswith("application/json"):
            return response
        return super().process_response(request, response)


_event_paths: frozenset[str] | None = None


def on_event_path(request: HttpRequest) -> bool:
    """Whether the request is for POST /api/v1/events or /api/v1/events/batch (any method)."""
    global _event_paths
    if _event_paths is None:
        # Resolved on the first request, with the script prefix as request.path has it: the
        # URLconf may not be importable yet while the handler loads its middleware.
        _event_paths = frozenset({reverse("events"), reverse("events-batch")})
    return request.path in _event_paths


class NotOnEventPaths:
    """Mixed into a page middleware: the event endpoints skip it.

    POST /api/v1/events and /api/v1/events/batch authenticate with an API key and answer JSON:
    they read no session, user or message, serve no static file and write no history. Running
    that middleware anyway cost about a sixth of a single event's application CPU. Every other
    path, the rest of /api/ included, runs it as before; the security headers
    (SecurityMiddleware, XFrameOptionsMiddleware), the Host check (CommonMiddleware), CSRF
    (their views are exempt; Django's deploy check wants its middleware by name) and the API's
    errors run everywhere. The classes below subclass Django's, so the admin's checks
    (admin.E408–E410) still find them.
    """

    get_response: Any  # the middleware's own (sync or async, in Django's stubs)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if on_event_path(request):
            skipped: HttpResponseBase = self.get_response(request)
            return skipped
        response: HttpResponseBase = super().__call__(request)  # type: ignore[misc]
        return response


class PageWhiteNoiseMiddleware(NotOnEventPaths, WhiteNoiseMiddleware):  # type: ignore[misc]
    """whitenoise is untyped (hence the ignore): its files are served on every other path."""


class PageSessionMiddleware(NotOnEventPaths, SessionMiddleware):
    pass


class PageAuthenticationMiddleware(NotOnEventPaths, AuthenticationMiddleware):
    pass


class PageMessageMiddleware(NotOnEventPaths, MessageMiddleware):
    pass


class PageHistoryRequestMiddleware:
    """simple_history's middleware (a function, so not a subclass), skipped on the event paths."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.history = HistoryRequestMiddleware(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if on_event_path(request):
            return self.get_response(request)
        response: HttpResponseBase = self.history(request)
        return response
