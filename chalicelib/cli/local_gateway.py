"""Local HTTP serving for the Chalice app, behaving like the deployed API Gateway.

API Gateway answers unknown routes itself; the deployed stack maps that answer
(MISSING_AUTHENTICATION_TOKEN) to a 404 envelope in ``infra/resources.json``.
``TallyLocalGateway`` does the same locally so both stacks agree.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any

from chalice.local import ChaliceRequestHandler, ForbiddenError, LocalGateway

from chalicelib.api.middleware import resolve_request_id
from chalicelib.api.responses import dumps, error_body

NO_ROUTE_BODY = error_body(404, "NOT_FOUND", "No such route.")


class TallyLocalGateway(LocalGateway):
    def handle_request(self, method: str, path: str, headers: dict, body: bytes | None) -> Any:
        try:
            return super().handle_request(method=method, path=path, headers=headers, body=body)
        except ForbiddenError:
            # Raised by LocalGateway only when no route matches (we use no authorizers).
            supplied = next((v for k, v in headers.items() if k.lower() == "x-request-id"), None)
            return {
                "statusCode": 404,
                "headers": {"Content-Type": "application/json", "X-Request-Id": resolve_request_id(supplied)},
                "multiValueHeaders": {},
                "body": dumps(NO_ROUTE_BODY),
            }


class TallyRequestHandler(ChaliceRequestHandler):
    """Keep-alive friendly (no Nagle stall) and quiet (the app logs each request as JSON)."""

    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any) -> None:
        self.local_gateway = TallyLocalGateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def log_message(self, format: str, *args: Any) -> None:
        return
