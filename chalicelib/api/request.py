"""Reading requests: the JSON body (415, size, malformed and hostile JSON), headers and cookies, with clear 4xx.
Query, path and header parameters are read and checked from their declarations (inputs.py, validator.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from chalice.app import Request

from chalicelib.domain.errors import UnsupportedMediaTypeError, ValidationError

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32  # objects and arrays inside each other; every field the API takes needs far fewer


def _check_parsed(body: Any) -> None:
    """Refuse what JSON allows but nothing downstream can store or walk: strings with a lone UTF-16 surrogate
    (``"\\ud800"``: not Unicode text, so not UTF-8) and nesting deeper than ``MAX_JSON_DEPTH``. Iterative,
    so a hostile document cannot exhaust the stack here either."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValidationError(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep",
                                      code="INVALID_JSON", field="body")
            if isinstance(value, dict):
                for key in value:
                    _check_text(key)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("strings must be valid Unicode text (a lone UTF-16 surrogate such as \\ud800 is "
                              "not)", code="INVALID_JSON", field="body") from None


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
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaTypeError(f"The request body must be application/json, not {media or 'untyped'}.")
    try:
        body = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        raise ValidationError("malformed JSON body: nested too deeply", code="INVALID_JSON", field="body") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"malformed JSON body: {exc}", code="INVALID_JSON", field="body") from None
    if not isinstance(body, dict):
        raise ValidationError("the JSON body must be an object", field="body")
    _check_parsed(body)
    return body


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
