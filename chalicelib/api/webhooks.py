"""Outgoing webhooks: endpoint management (dashboard) and delivery history and retry (Balance API)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.inputs import CURSOR, ENVIRONMENT_HEADER, page_size, path_param, query
from chalicelib.api.responses import ok, page_body
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import delivery_view, endpoint_view
from chalicelib.lazy import lazy
from chalicelib.settings import get_settings

webhook_service = lazy("chalicelib.services.webhooks")
webhook_domain = lazy("chalicelib.domain.webhooks")
DELIVERY_STATUSES = ["PENDING", "DELIVERED", "FAILED"]  # domain.webhooks.DeliveryStatus (a test keeps them equal)

bp = Blueprint(__name__)
WEBHOOK_ID = path_param("webhookId", "The endpoint id (`we_…`).")
ONCE = "Store this signing secret now: it is shown only once."


# --- dashboard: endpoints -------------------------------------------------------------------------


@route(bp, "/dashboard/webhooks", "POST", auth=Auth.DASHBOARD, summary="Register a webhook endpoint",
       tags=("Webhooks",), responses={201: "WebhookEndpointWithSecret"}, errors=(400, 403),
       request_body="CreateWebhookRequest", params=(ENVIRONMENT_HEADER,))
def create_webhook(ctx: Ctx, body: dict) -> Response:
    """Owner/admin. HTTPS URLs only (plain-http loopback on the local stack). `events` defaults to all of
    `delta.verified`, `delta.failed`, `verification.completed`, `customer.created`,
    `tenant.dashboard_blocked`, `tenant.dashboard_unblocked` (account events: production endpoints only).
    The `whsec_` secret that signs deliveries (`X-PacSpace-Signature`) is in this response only."""
    endpoint = webhook_service.create_endpoint(
        ctx.uow, ctx.principal, url=body["url"], events=body.get("events"),
        description=body.get("description"), now=ctx.now, allow_loopback=get_settings().webhooks_allow_loopback,
    )
    return ok({**endpoint_view(endpoint), "secret": endpoint.secret, "warning": ONCE}, 201)


@route(bp, "/dashboard/webhooks", "GET", auth=Auth.DASHBOARD, summary="List webhook endpoints",
       tags=("Webhooks",), responses={200: "WebhookEndpointList"}, params=(ENVIRONMENT_HEADER,))
def list_webhooks(ctx: Ctx) -> Response:
    """Active endpoints of the `X-Environment` scope (at most 20), never their secrets."""
    endpoints = webhook_service.list_endpoints(ctx.uow, ctx.principal)
    return ok({"items": [endpoint_view(e) for e in endpoints], "events": list(webhook_domain.SUBSCRIBABLE)})


@route(bp, "/dashboard/webhooks/{webhookId}", "GET", auth=Auth.DASHBOARD, summary="Get a webhook endpoint",
       tags=("Webhooks",), responses={200: "WebhookEndpoint"}, errors=(404,), params=(WEBHOOK_ID, ENVIRONMENT_HEADER))
def get_webhook(ctx: Ctx, webhookId: str) -> Response:
    return ok(endpoint_view(webhook_service.get_endpoint(ctx.uow, ctx.principal, webhookId)))


@route(bp, "/dashboard/webhooks/{webhookId}", "DELETE", auth=Auth.DASHBOARD, summary="Delete a webhook endpoint",
       tags=("Webhooks",), responses={200: "WebhookEndpoint"}, errors=(403, 404),
       params=(WEBHOOK_ID, ENVIRONMENT_HEADER))
def delete_webhook(ctx: Ctx, webhookId: str) -> Response:
    """Owner/admin. Nothing more is sent to it; its delivery history stays readable."""
    return ok(endpoint_view(webhook_service.delete_endpoint(ctx.uow, ctx.principal, webhookId, now=ctx.now)))


@route(bp, "/dashboard/webhooks/{webhookId}/test", "POST", auth=Auth.DASHBOARD, summary="Send a test event",
       tags=("Webhooks",), responses={202: "WebhookDelivery"}, errors=(403, 404),
       params=(WEBHOOK_ID, ENVIRONMENT_HEADER))
def send_test_webhook(ctx: Ctx, webhookId: str) -> Response:
    """Owner/admin. Queues a signed `webhook.test` event for this endpoint; the delivery history shows
    the outcome (the request never waits for the receiver)."""
    delivery = webhook_service.send_test(ctx.uow, ctx.principal, webhookId, now=ctx.now,
                                         queue=bootstrap.webhook_queue())
    return ok(delivery_view(delivery), 202)


@route(bp, "/dashboard/webhooks/{webhookId}/deliveries", "GET", auth=Auth.DASHBOARD,
       summary="Delivery history of an endpoint", tags=("Webhooks",), responses={200: "WebhookDeliveryPage"},
       errors=(400, 404), params=(WEBHOOK_ID, ENVIRONMENT_HEADER, page_size(25), CURSOR))
def webhook_deliveries(ctx: Ctx, webhookId: str, limit: int, cursor: str | None) -> Response:
    """Newest event first, each with every attempt (time, status code, duration, error)."""
    page = webhook_service.endpoint_history(ctx.uow, ctx.principal, webhookId, limit=limit, cursor=cursor)
    return ok(page_body([delivery_view(d) for d in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))


# --- Balance API: deliveries of the key's environment ---------------------------------------------


@route(bp, "/api/v1/balance/webhooks", "GET", auth=Auth.API_KEY, summary="List webhook deliveries",
       tags=("Balance API",), responses={200: "WebhookDeliveryPage"}, errors=(400,),
       params=(query("status", "PENDING, DELIVERED or FAILED.", {"type": "string", "enum": DELIVERY_STATUSES}),
               page_size(25),
               query("offset", "Skip this many deliveries (0-1000); `cursor` is cheaper.",
                     {"type": "integer", "minimum": 0, "maximum": 1000}, default=0),
               CURSOR))
def list_webhook_deliveries(ctx: Ctx, status: str | None, limit: int, offset: int, cursor: str | None) -> Response:
    """SDK `list_webhook_deliveries`: newest first, with each attempt."""
    page = webhook_service.list_deliveries(ctx.uow, ctx.principal, limit=limit, offset=offset, cursor=cursor,
                                           status=status)
    return ok(page_body([delivery_view(d) for d in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))


@route(bp, "/api/v1/balance/webhooks/{eventId}/retry", "POST", auth=Auth.API_KEY, summary="Retry a webhook event",
       tags=("Balance API",), responses={202: "WebhookRetry"}, errors=(404, 409),
       params=(path_param("eventId", "The event id (`evt_…`, the `X-Event-ID` header)."),))
def retry_webhook(ctx: Ctx, eventId: str) -> Response:
    """SDK `retry_webhook`: every delivery of the event is attempted again now, with a fresh set of retries."""
    deliveries = webhook_service.retry_event(ctx.uow, ctx.principal, eventId, now=ctx.now,
                                             queue=bootstrap.webhook_queue())
    return ok({"eventId": eventId, "status": "PENDING",
               "deliveries": [delivery_view(d) for d in deliveries]}, 202)
