"""Balance API (API key) over customer records: checkpoints so far (SDK `checkpoint`, `list_checkpoints`)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.customers import checkpoint_view
from chalicelib.api.request import int_param, query_param
from chalicelib.api.responses import ok, page_body
from chalicelib.api.routing import Auth, Ctx, query, route
from chalicelib.domain.customers import check_customer_id
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.scopes import parse_scope, single_month
from chalicelib.services import checkpoints as checkpoint_service
from chalicelib.services.ports import Page

bp = Blueprint(__name__)
MODES = ("settled", "strict")
SCOPE_PARAMS = (
    query("period", "UTC month `YYYY-MM`.", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
    query("timePreset", "`current_month`, `previous_month` or `custom` (with startDate and endDate).",
          {"type": "string", "enum": ["current_month", "previous_month", "custom"]}),
    query("startDate", "ISO 8601, inclusive (with endDate)."),
    query("endDate", "ISO 8601, exclusive (with startDate)."),
)


@route(bp, "/api/v1/balance/checkpoint", "POST", auth=Auth.API_KEY, summary="Create checkpoints",
       tags=("Balance API",), responses={201: "CustomerCheckpoint", 200: "CheckpointOrRun"},
       errors=(400, 404, 409), request_body="BalanceCheckpointRequest")
def create_balance_checkpoint(ctx: Ctx) -> Response:
    """SDK `checkpoint`. With `customerId`: that customer's checkpoint of one UTC month (201, or 200 with
    `created: false` when nothing is new). Without: every customer with deltas in the month, 25 customers
    a call — pass the answer's `nextCursor` back as `cursor` to continue. `mode: strict` refuses (409
    `CHECKPOINT_NOT_READY`) while deltas of the month await verification; `fingerprints` lists content
    hashes that must be under the checkpoint (409 `FINGERPRINTS_NOT_COVERED`)."""
    body = ctx.body(required=False)
    mode = body.get("mode", "settled")
    if mode not in MODES:
        raise ValidationError(f"mode must be one of {', '.join(MODES)}", field="mode")
    period = single_month(parse_scope(period=body.get("period"), time_preset=body.get("timePreset"),
                                      start_date=body.get("startDate"), end_date=body.get("endDate"), now=ctx.now),
                          now=ctx.now)
    principal, signer = ctx.principal, bootstrap.signer()
    if body.get("customerId") is None:
        cursor = body.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationError("cursor must be the nextCursor of the previous answer", field="cursor")
        run = checkpoint_service.create_for_active(ctx.uow, principal.tenant_id, principal.environment, period,
                                                   now=ctx.now, signer=signer, cursor=cursor)
        return ok({"period": period, "created": [checkpoint_view(c) for c in run.created],
                   "unchanged": [checkpoint_view(c) for c in run.unchanged], "createdCount": len(run.created),
                   "unchangedCount": len(run.unchanged), "nextCursor": run.next_cursor})
    scope = checkpoint_service.scope_of(ctx.uow, principal.tenant_id, principal.environment,
                                        check_customer_id(body.get("customerId")), period, now=ctx.now)
    checkpoint, created = checkpoint_service.create(ctx.uow, scope, now=ctx.now, signer=signer,
                                                    strict=mode == "strict", fingerprints=body.get("fingerprints"))
    return ok({**checkpoint_view(checkpoint), "created": created}, 201 if created else 200)


@route(bp, "/api/v1/balance/checkpoints", "GET", auth=Auth.API_KEY, summary="List checkpoints",
       tags=("Balance API",), responses={200: "CustomerCheckpointPage"}, errors=(400, 404),
       params=(query("customerId", "One customer's checkpoints (all its months unless a scope is given)."),
               *SCOPE_PARAMS,
               query("limit", "Page size, 1-100 (default 50).", {"type": "integer", "minimum": 1, "maximum": 100}),
               query("offset", "Skip this many (0-1000); `cursor` is cheaper.",
                     {"type": "integer", "minimum": 0, "maximum": 1000}),
               query("cursor", "The nextCursor of the previous page.")))
def list_balance_checkpoints(ctx: Ctx) -> Response:
    """SDK `list_checkpoints`. With `customerId`: newest first. Without: every customer's checkpoints of one
    UTC month (default: the current month), by customer id."""
    limit = int_param(ctx.request, "limit", default=50, minimum=1, maximum=100)
    offset = int_param(ctx.request, "offset", default=0, minimum=0, maximum=1000)
    cursor = query_param(ctx.request, "cursor")
    scope = parse_scope(period=query_param(ctx.request, "period"), time_preset=query_param(ctx.request, "timePreset"),
                        start_date=query_param(ctx.request, "startDate"),
                        end_date=query_param(ctx.request, "endDate"), now=ctx.now)
    customer_id = query_param(ctx.request, "customerId")
    principal = ctx.principal

    def page_at(size: int, at: str | None) -> Page:
        if customer_id is not None:
            period = single_month(scope, now=ctx.now) if scope else None
            return checkpoint_service.list_checkpoints(ctx.uow, principal.tenant_id, principal.environment,
                                                       check_customer_id(customer_id), period=period, limit=size,
                                                       cursor=at)
        return ctx.uow.checkpoints.list_period(principal.tenant_id, principal.environment,
                                               single_month(scope, now=ctx.now), size, at)

    if offset and cursor is None:
        skipped = page_at(offset, None)
        if skipped.next_cursor is None:
            return ok(page_body([], limit=limit, page=1, next_cursor=None, total=None))
        cursor = skipped.next_cursor
    page = page_at(limit, cursor)
    return ok(page_body([checkpoint_view(c) for c in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))
