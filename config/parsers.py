"""Reading API request bodies with bounds: size, nesting depth and text (issue: hardening).

Every /api/v1 request body goes through `BoundedJSONParser`:
- at most BILLING_API_MAX_BODY_BYTES are read: a larger body is refused with 413 before it is
  parsed (by its Content-Length when it states one, else after reading one byte too many);
- JSON is parsed by orjson (a batch of 1,000 events is ~150 kB; the standard library's json
  cost more than storing it) and must nest at most BILLING_API_MAX_JSON_DEPTH levels: a deeper
  document is refused with 422 naming where, before anything reads it. The bound is far below
  the 255 levels the response renderer takes, so nothing accepted can fail to be echoed back;
- text containing NUL is refused with 422 naming the field: PostgreSQL stores no NUL in text
  or jsonb, so such a value could only fail later, deep inside a write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

TOO_DEEP = "is nested deeper than {depth} levels (BILLING_API_MAX_JSON_DEPTH)"
HAS_NUL = "must not contain NUL characters"
TOO_LARGE = "The request body is larger than {limit} bytes (BILLING_API_MAX_BODY_BYTES)."
PATH_SHOWN = 6  # segments of a path named in an error; deeper ones are elided


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _field(path: tuple[str | int, ...]) -> str:
    shown = ".".join(str(part) for part in path[:PATH_SHOWN])
    return shown + ".…" if len(path) > PATH_SHOWN else shown or "body"


def _within_depth(document: Any, max_depth: int) -> bool:
    """Whether no object or array lies `max_depth` levels deep (the document itself is level 0).

    Level by level over the containers only, with no path kept: a batch of 1,000 events costs
    well under a microsecond an event, where the walk below that names the path cost about 2 µs.
    orjson builds only dict and list containers, so exact type checks suffice.
    """
    level = [document] if type(document) is dict or type(document) is list else []
    depth = 0
    while level:
        if depth >= max_depth:
            return False
        level = [
            child
            for container in level
            for child in (container.values() if type(container) is dict else container)
            if type(child) is dict or type(child) is list
        ]
        depth += 1
    return True


def check_document(document: Any, *, max_depth: int, check_text: bool) -> None:
    """Refuse (ValidationError naming the path) a document nested deeper than `max_depth`, or,
    with `check_text`, holding a key or string with a NUL character.

    A document that is shallow enough and needs no text check passes the quick test alone; any
    other is walked with its paths, which finds and names the first offence."""
    if not check_text and _within_depth(document, max_depth):
        return
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, Mapping):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            if check_text and isinstance(value, str) and "\x00" in value:
                raise exceptions.ValidationError({_field(path): [HAS_NUL]})
            continue
        if len(path) >= max_depth:
            raise exceptions.ValidationError({_field(path): [TOO_DEEP.format(depth=max_depth)]})
        for key, child in items:
            if check_text and isinstance(key, str) and "\x00" in key:
                raise exceptions.ValidationError({_field((*path, key)): [HAS_NUL]})
            stack.append((child, (*path, key)))


class BoundedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit: int = settings.BILLING_API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and str(declared).isascii() and str(declared).isdigit() and int(declared) > limit:
            raise RequestTooLarge(TOO_LARGE.format(limit=limit))
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestTooLarge(TOO_LARGE.format(limit=limit))
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        # NUL can only appear escaped (\u0000) in valid JSON: look for the text only when the
        # escape is in the body (almost never), so the common case walks the document once.
        check_document(document, max_depth=settings.BILLING_API_MAX_JSON_DEPTH, check_text=b"\\u0000" in raw)
        return document
