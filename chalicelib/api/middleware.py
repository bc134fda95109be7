"""HTTP middleware: request ids, access logs, and envelopes for Chalice's own errors."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib.api import responses
from chalicelib.log import get_logger, request_id_var

log = get_logger("tally.http")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_CHALICE_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
}


def resolve_request_id(supplied: str | None, context_id: str | None = None) -> str:
    """A client's safe ``X-Request-Id`` is kept (for correlation); else the gateway's, else a new one."""
    if supplied and _SAFE_REQUEST_ID.match(supplied):
        return supplied
    return context_id or str(uuid.uuid4())


def _request_id(request: Request) -> str:
    if request is None:
        return resolve_request_id(None)
    return resolve_request_id(request.headers.get("x-request-id"), (request.context or {}).get("requestId"))


def _envelope_chalice_error(response: Response) -> Response:
    """Chalice answers some errors itself (``{"Code", "Message"}``): give them our envelope."""
    body = response.body
    if isinstance(body, str) and body.startswith("{"):
        try:
            body = json.loads(body)
        except ValueError:
            return response
    if response.status_code < 400 or not isinstance(body, dict) or set(body) != {"Code", "Message"}:
        return response
    status = response.status_code
    code = _CHALICE_CODES.get(status, "ERROR")
    message = "An internal error occurred." if status >= 500 else str(body["Message"])
    wrapped = responses.error(status, code, message)
    wrapped.headers.update({k: v for k, v in response.headers.items() if k.lower() != "content-type"})
    return wrapped


def install(app: Chalice) -> None:
    @app.middleware("http")
    def request_context(request: Request, get_response: Callable[[Request], Response]) -> Response:
        request_id = _request_id(request)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = _envelope_chalice_error(get_response(request))
            response.headers["X-Request-Id"] = request_id
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            return response
        finally:
            request_id_var.reset(token)


def install_method_not_allowed(app: Chalice) -> None:
    """Answer unregistered methods on known paths with a 405 envelope (locally and on AWS)."""
    for path, methods in list(app.routes.items()):
        allowed = ", ".join(sorted(methods))
        missing = [m for m in METHODS if m not in methods]
        if not missing:
            continue

        platform = path == "/tenants" or path.startswith("/tenants/")

        def not_allowed(_allowed: str = allowed, _platform: bool = platform, **_params: str) -> Response:
            message = f"Allowed methods: {_allowed}"
            if _platform:
                reply = responses.platform_error(405, message, "method_not_allowed")
                reply.headers["Allow"] = _allowed
                return reply
            return responses.error(405, "METHOD_NOT_ALLOWED", message, headers={"Allow": _allowed})

        not_allowed.__name__ = "method_not_allowed_" + re.sub(r"\W+", "_", path).strip("_")
        app.route(path, methods=missing, content_types=["*/*"])(not_allowed)
