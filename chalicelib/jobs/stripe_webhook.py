"""The Stripe webhook Lambda (thin): an API Gateway REST proxy event in, a proxy response out.

Its own function (not a route of the API handler) so it runs under its own least-privilege role
(infra/build_template.py, ``StripeWebhookRole``); API Gateway sends ``POST /stripe/webhook`` to it
with an ``aws_proxy`` integration, and the local gateway does the same (cli/local_gateway.py).
The raw body is what Stripe signed: it is passed on byte for byte (decoded from base64 when
API Gateway encoded it).
"""

from __future__ import annotations

import base64
from typing import Any

from chalicelib import bootstrap
from chalicelib.api.middleware import resolve_request_id
from chalicelib.api.responses import dumps, error_body
from chalicelib.domain.errors import BillingProviderUnavailableError, ServiceUnavailableError
from chalicelib.log import get_logger, request_id_var

log = get_logger("tally.jobs.stripe_webhook")


def _header(event: dict[str, Any], name: str) -> str | None:
    """Header names are case-insensitive; API Gateway keeps the client's spelling."""
    for source in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for key, value in source.items():
            if key.lower() == name:
                return value[-1] if isinstance(value, list) and value else value
    return None


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def proxy_response(status: int, body: dict[str, Any], request_id: str) -> dict[str, Any]:
    """Every 503 says when to retry (Stripe retries on its own schedule; other callers read the header)."""
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    if status == 503:
        headers["Retry-After"] = str(ServiceUnavailableError.retry_after_seconds)
    return {
        "statusCode": status,
        "headers": headers,
        "multiValueHeaders": {},
        "isBase64Encoded": False,
        "body": dumps(body),
    }


class _Provider:
    """The billing provider, built on first use: a refused signature never loads the Stripe client."""

    def __getattr__(self, name: str) -> Any:
        return getattr(bootstrap.billing_provider(), name)


def handle(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    from chalicelib.services import stripe_webhooks

    gateway_id = (event.get("requestContext") or {}).get("requestId")
    request_id = resolve_request_id(_header(event, "x-request-id"), gateway_id)
    token = request_id_var.set(request_id)
    try:
        result = stripe_webhooks.handle(bootstrap.unit_of_work(), payload=raw_body(event),
                                        signature_header=_header(event, "stripe-signature"), now=bootstrap.now(),
                                        provider=_Provider())
    except BillingProviderUnavailableError as exc:  # Stripe unreachable, or billing not configured: retried
        log.warning("Stripe webhook: billing provider unavailable", extra={"code": exc.code})
        return proxy_response(503, error_body(503, exc.code, exc.message), request_id)
    except Exception as exc:  # never a stack trace in a body; Stripe retries any 5xx
        from chalicelib.adapters.faults import unavailable

        busy = unavailable(exc)  # storage throttled, unreachable or contended through every retry
        if busy is not None:
            log.warning("Stripe webhook: storage unavailable; Stripe retries", exc_info=True, extra={"code": busy.code})
            return proxy_response(503, error_body(503, busy.code, busy.message, **busy.details), request_id)
        log.exception("Stripe webhook failed")
        return proxy_response(500, error_body(500, "INTERNAL_ERROR", "An internal error occurred. Quote the "
                                              "X-Request-Id header."), request_id)
    finally:
        request_id_var.reset(token)
    if result.ok:
        log.info("Stripe event", extra={k: result.body.get(k) for k in ("eventId", "type", "outcome", "duplicate")})
        return proxy_response(result.status, {"statusCode": result.status, "success": True, "data": result.body},
                              request_id)
    return proxy_response(result.status, error_body(result.status, result.body["code"], result.body["message"]),
                          request_id)
