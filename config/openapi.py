"""The OpenAPI schema documents the errors every operation may answer, in Lago's envelope.

A drf-spectacular post-processing hook (SPECTACULAR_SETTINGS) adds, to every /api/v1 operation,
the error responses it can give, each with the `Error` schema: 401 (no or a revoked key) always;
404 when its path names an object; 413 and 422 when it takes a body; 422 when it reads query
parameters; 409 where a transaction id may clash (events); 503 when the database is away.
Clients (and schemathesis, tests/test_schemathesis.py) can then check every answer against it.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Lago's error envelope.",
    "properties": {
        "status": {"type": "integer", "example": 422},
        "error": {"type": "string", "example": "Unprocessable Entity"},
        "code": {"type": "string", "example": "validation_errors"},
        "message": {"type": "string"},
        "error_details": {
            "type": "object",
            "description": "Messages by field (for a batch of events: by index, then by field).",
            "additionalProperties": True,
        },
        "request_id": {"type": "string", "description": "Quote it when reporting a 500."},
    },
    "required": ["status", "error", "code"],
}

DESCRIPTIONS = {
    "401": "No API key, or a revoked one.",
    "404": "No such object.",
    "409": "The transaction_id was already used for a different event.",
    "413": "The body is larger than BILLING_API_MAX_BODY_BYTES.",
    "422": "Invalid input: error_details names each field and the problem.",
    "503": "The database is not reachable right now; retry (Retry-After).",
}
CONFLICTING = {"create_event", "create_batch_events"}


def _error(status: str) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            statuses = ["401", "503"]
            if "{" in path:
                statuses.append("404")
            if "requestBody" in operation:
                statuses += ["413", "422"]
            if any(p.get("in") == "query" for p in operation.get("parameters", [])):
                statuses.append("422")
            if operation.get("operationId") in CONFLICTING:
                statuses.append("409")
            for status in statuses:
                operation["responses"].setdefault(status, _error(status))
    return result
