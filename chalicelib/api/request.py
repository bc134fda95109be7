"""Reading requests: JSON bodies, query parameters and headers, with clear 400s."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from chalice.app import Request

from chalicelib.domain.errors import ValidationError

MAX_BODY_BYTES = 256 * 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; floats stay exact (Decimal), NaN/Infinity are rejected."""
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationError("request body is too large", code="PAYLOAD_TOO_LARGE")
    if not raw.strip():
        if required:
            raise ValidationError("a JSON object body is required", field="body")
        return {}
    try:
        body = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        raise ValidationError("malformed JSON body: nested too deeply", code="INVALID_JSON", field="body") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"malformed JSON body: {exc}", code="INVALID_JSON", field="body") from None
    if not isinstance(body, dict):
        raise ValidationError("the JSON body must be an object", field="body")
    return body


def query_param(request: Request, name: str) -> str | None:
    params = request.query_params or {}
    value = params.get(name)
    return value if value not in (None, "") else None


def int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = query_param(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer", field=name) from None
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}", field=name)
    return value


def header(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def cookie(request: Request, name: str) -> str | None:
    raw = request.headers.get("cookie")
    if not raw:
        return None
    from http.cookies import CookieError, SimpleCookie

    jar = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def is_https(request: Request) -> bool:
    return (header(request, "x-forwarded-proto") or "").lower() == "https"
