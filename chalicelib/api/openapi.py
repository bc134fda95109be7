"""Builds the OpenAPI 3.1 document from the recorded operations and schemas."""

from __future__ import annotations

from typing import Any

from chalicelib.api.routing import OPERATIONS, Auth, Operation
from chalicelib.api.schemas import SCHEMAS

SECURITY = {
    Auth.NONE: [],
    Auth.DASHBOARD: [{"bearerJwt": []}, {"sessionCookie": []}],
    Auth.DASHBOARD_JWT: [{"bearerJwt": []}],
    Auth.API_KEY: [{"apiKey": []}],
    Auth.PLATFORM: [{"platformToken": []}],
}
AUTO_ERRORS = {
    Auth.NONE: (),
    Auth.DASHBOARD: (401, 402, 403),
    Auth.DASHBOARD_JWT: (401,),
    Auth.API_KEY: (401, 429),
    Auth.PLATFORM: (401, 403, 429),
}
#: Platform answers report the token's per-minute limit (absent only when no token was recognised: 401).
PLATFORM_RATE_HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests this token may make per UTC minute.",
                          "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests this token has left in the current minute.",
                              "schema": {"type": "integer", "minimum": 0}},
}
PLATFORM_RETRY_HEADERS = {
    "Retry-After": {"description": "Seconds until the next minute opens.", "required": True,
                    "schema": {"type": "integer", "minimum": 1}},
    "X-RateLimit-Reset": {"description": "Unix time at which the next minute opens.",
                          "schema": {"type": "integer"}},
}
#: Every operation may answer 503 when storage stays throttled, unreachable or contended through the retries.
UNAVAILABLE_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before sending the request again (with the same "
                                   "Idempotency-Key, where it takes one).", "required": True,
                    "schema": {"type": "integer", "minimum": 1}},
}
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 303: "See other (presigned)", 400: "Bad request",
           401: "Unauthenticated", 402: "Payment required", 403: "Forbidden", 404: "Not found", 409: "Conflict",
           415: "Unsupported media type", 422: "Unprocessable", 429: "Too many requests", 500: "Internal error",
           502: "Billing provider error", 503: "Unavailable, retry"}


def _ref(name: str | dict) -> dict:
    """A component reference; an inline schema (e.g. an ``anyOf`` of references) is used as it is."""
    return name if isinstance(name, dict) else {"$ref": f"#/components/schemas/{name}"}


def _success_schema(op: Operation, status: int, schema: Any) -> dict:
    if isinstance(schema, dict) and "raw" in schema:
        return _ref(schema["raw"])
    if op.platform_style:
        return _ref(schema)
    return {
        "type": "object",
        "required": ["statusCode", "success", "data"],
        "properties": {"statusCode": {"const": status}, "success": {"const": True}, "data": _ref(schema)},
    }


def _operation(op: Operation) -> dict:
    responses: dict[str, Any] = {}
    idempotent = any(p.name == "Idempotency-Key" for p in op.params)
    for status, schema in op.responses.items():
        if isinstance(schema, dict) and "media" in schema:  # a file: {"media": {type: schema}}
            responses[str(status)] = {"description": REASONS.get(status, "Response"),
                                      "content": {media: {"schema": body} for media, body in schema["media"].items()}}
            continue
        success = _success_schema(op, status, schema)
        if idempotent and status == 202:
            # A repeated key still in flight answers 202 with the IDEMPOTENCY_PENDING error envelope.
            success = {"anyOf": [success, _ref("Error")]}
        responses[str(status)] = {
            "description": REASONS.get(status, "Response"),
            "content": {"application/json": {"schema": success}},
        }
    error_schema = _ref("PlatformError" if op.platform_style else "Error")
    statuses = set(op.errors) | set(AUTO_ERRORS[op.auth]) | {500, 503}
    if op.request_body or op.params:
        statuses.add(422 if op.platform_style else 400)
    if op.request_body or op.method in ("POST", "PUT", "PATCH"):
        statuses.add(415)  # a body that is not application/json
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": error_schema}},
        }
    responses["503"]["headers"] = dict(UNAVAILABLE_HEADERS)
    if op.platform_style:
        for status, response in responses.items():
            if status != "401":
                response["headers"] = {**response.get("headers", {}), **PLATFORM_RATE_HEADERS,
                                       **(PLATFORM_RETRY_HEADERS if status == "429" else {})}
    document: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": op.description,
        "tags": list(op.tags),
        "security": SECURITY[op.auth],
        "parameters": [p.openapi() for p in op.params],
        "responses": responses,
    }
    if op.request_body:
        document["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _ref(op.request_body)}},
        }
    return document


def build_document(server_url: str) -> dict:
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tally API",
            "version": "1.0.0",
            "description": "Verified-usage billing: Balance API (X-Api-Key), dashboard API "
            "(JWT or session cookie) and platform API (platform tokens).",
        },
        "servers": [{"url": server_url}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "tally_session"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "platformToken": {"type": "http", "scheme": "bearer", "bearerFormat": "id|secret"},
            },
        },
    }
