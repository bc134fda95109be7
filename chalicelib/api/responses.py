"""Response builders for the two envelope styles (tenant-facing and platform)."""

from __future__ import annotations

from typing import Any

from chalice import Response

from chalicelib.jsoncodec import dumps

JSON = "application/json"
__all__ = ["dumps", "error", "error_body", "json_response", "ok", "page_body", "platform_error", "platform_ok"]


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    merged = {"Content-Type": JSON, **(headers or {})}
    return Response(body=dumps(body), status_code=status, headers=merged)


def file_response(body: str | bytes, media: str, filename: str) -> Response:
    """A download with its media type and an attachment file name (text as text: Chalice sends bytes only
    for the app's binary types)."""
    if isinstance(body, bytes) and (media.startswith("text/") or media == JSON):
        body = body.decode("utf-8")
    return Response(body=body, status_code=200, headers={
        "Content-Type": media, "Content-Disposition": f'attachment; filename="{filename}"'})


def ok_body(data: Any, status: int = 200) -> dict[str, Any]:
    """Tenant-facing success's body: ``{statusCode, success: true, data}``."""
    return {"statusCode": status, "success": True, "data": data}


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Tenant-facing success: :func:`ok_body`."""
    return json_response(ok_body(data, status), status, headers)


def page_body(items: list, *, limit: int, page: int, next_cursor: str | None, total: int | None) -> dict:
    """List shape: seed 004's ``items/total/page/limit`` plus an opaque ``nextCursor``."""
    body: dict[str, Any] = {"items": items, "page": page, "limit": limit, "nextCursor": next_cursor}
    if total is not None:
        body["total"] = total
    return body


def error_body(status: int, code: str, message: str, **details: Any) -> dict:
    error = {"code": code, "message": message}
    error.update({k: v for k, v in details.items() if v is not None})
    return {"statusCode": status, "success": False, "error": error}


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any) -> Response:
    return json_response(error_body(status, code, message, **details), status, headers)


def platform_ok(data: Any, status: int = 200, **extra: Any) -> Response:
    """Platform success (seed 002): ``{"data": ...}`` plus ``links``/``meta`` on lists."""
    return json_response({"data": data, **extra}, status)


def platform_error(status: int, message: str, code: str | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"message": message}
    if code:
        body["code"] = code
    body.update(extra)
    return json_response(body, status)
