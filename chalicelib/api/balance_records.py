"""Balance API (API key) over customer records: one customer's balance and activity, sequence gaps,
checkpoints, derive and compare (SDK `customer`, `gaps`, `checkpoint`, `list_checkpoints`, `derive`, `compare`)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.inputs import (
    CHECKPOINT_ID,
    CHECKPOINT_START_RULES,
    CURSOR,
    CUSTOMER_ID,
    DECIMAL_TEXT,
    PERIOD,
    customer_path,
    page_size,
    query,
    scope_group,
)
from chalicelib.api.responses import ok, page_body
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import (
    balance_customer_view,
    checkpoint_view,
    comparison_view,
    delta_view,
    derivation_view,
    gaps_view,
    invoice_proof_view,
    receipt_view,
)
from chalicelib.domain.scopes import TimeScope, parse_scope, single_month
from chalicelib.lazy import lazy

bp = Blueprint(__name__)
checkpoint_service = lazy("chalicelib.services.checkpoints")
derive_service = lazy("chalicelib.services.derive")
package_service = lazy("chalicelib.services.packages")
receipt_service = lazy("chalicelib.services.receipts")
records_service = lazy("chalicelib.services.records")
SCOPE = scope_group()
CUSTOMER = customer_path()
OFFSET = query("offset", "Skip this many (0-1000); `cursor` is cheaper.", {"type": "integer", "minimum": 0,
                                                                           "maximum": 1000}, default=0)
SEQUENCE = {"type": "integer", "minimum": 1, "maximum": 10**12}


@route(bp, "/api/v1/balance/checkpoint", "POST", auth=Auth.API_KEY, summary="Create checkpoints",
       tags=("Balance API",), responses={201: "CustomerCheckpoint", 200: "CheckpointOrRun"},
       errors=(400, 404, 409), request_body="BalanceCheckpointRequest", body_required=False)
def create_balance_checkpoint(ctx: Ctx, body: dict) -> Response:
    """SDK `checkpoint`. With `customerId`: that customer's checkpoint of one UTC month (201, or 200 with
    `created: false` when nothing is new). Without: every customer with deltas in the month, 25 customers
    a call — pass the answer's `nextCursor` back as `cursor` to continue. `mode: strict` refuses (409
    `CHECKPOINT_NOT_READY`) while deltas of the month await verification; `fingerprints` lists content
    hashes that must be under the checkpoint (409 `FINGERPRINTS_NOT_COVERED`). No body: every customer's
    checkpoint of the current month."""
    period = single_month(_time_scope(ctx, body), now=ctx.now)
    principal, signer = ctx.principal, bootstrap.signer()
    if body.get("customerId") is None:
        run = checkpoint_service.create_for_active(ctx.uow, principal.tenant_id, principal.environment, period,
                                                   now=ctx.now, signer=signer, cursor=body.get("cursor"))
        return ok({"period": period, "created": [checkpoint_view(c) for c in run.created],
                   "unchanged": [checkpoint_view(c) for c in run.unchanged], "createdCount": len(run.created),
                   "unchangedCount": len(run.unchanged), "nextCursor": run.next_cursor})
    checkpoint, created = checkpoint_service.create_for_customer(
        ctx.uow, principal.tenant_id, principal.environment, body["customerId"], period, now=ctx.now, signer=signer,
        strict=body.get("mode") == "strict", fingerprints=body.get("fingerprints"))
    return ok({**checkpoint_view(checkpoint), "created": created}, 201 if created else 200)


@route(bp, "/api/v1/balance/checkpoints", "GET", auth=Auth.API_KEY, summary="List checkpoints",
       tags=("Balance API",), responses={200: "CustomerCheckpointPage"}, errors=(400, 404),
       params=(query("customerId", "One customer's checkpoints (all its months unless a scope is given).",
                     CUSTOMER_ID),
               SCOPE,
               page_size(50),
               OFFSET,
               CURSOR))
def list_balance_checkpoints(ctx: Ctx, customerId: str | None, scope: dict, limit: int, offset: int,
                             cursor: str | None) -> Response:
    """SDK `list_checkpoints`. With `customerId`: newest first. Without: every customer's checkpoints of one
    UTC month (default: the current month), by customer id."""
    time_scope = _time_scope(ctx, scope)
    period = single_month(time_scope, now=ctx.now) if time_scope or customerId is None else None
    page = checkpoint_service.list_page(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                        customer_id=customerId, period=period, limit=limit, offset=offset,
                                        cursor=cursor)
    return ok(page_body([checkpoint_view(c) for c in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))


@route(bp, "/api/v1/balance/customers/{customerId}", "GET", auth=Auth.API_KEY, summary="Customer balance detail",
       tags=("Balance API",), responses={200: "BalanceCustomerDetail"}, errors=(400, 404),
       params=(CUSTOMER,
               query("deltaPage", "Page of recent activity, newest first (1-1000, default 1).",
                     {"type": "integer", "minimum": 1, "maximum": 1000}, default=1),
               page_size(20, what="Deltas per page", name="deltaLimit"),
               query("period", "Also summarise one UTC month `YYYY-MM`.", PERIOD)))
def get_balance_customer(ctx: Ctx, customerId: str, deltaPage: int, deltaLimit: int, period: str | None) -> Response:
    """SDK `customer`: `computedBalance` and `totalDeltas` come from counters kept by every accepted delta
    (one read); `recentActivity` is one key-range query whatever the page. With `period`, `periodSummary`
    adds that month's net change and counts (a read of the customer's deltas of the month)."""
    detail = records_service.balance_detail(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                            customerId, page=deltaPage, limit=deltaLimit, period=period)
    return ok(balance_customer_view(detail, page=deltaPage, limit=deltaLimit))


@route(bp, "/api/v1/balance/gaps/{customerId}", "GET", auth=Auth.API_KEY, summary="Sequence gaps",
       tags=("Balance API",), responses={200: "BalanceGaps"}, errors=(400, 404),
       params=(CUSTOMER,
               query("fromSequence", "First sequence number checked (default: 10,000 below toSequence).",
                     SEQUENCE),
               query("toSequence", "Last sequence number checked (default: the latest).", SEQUENCE),
               page_size(100, 1000, what="Gap runs returned")))
def get_gaps(ctx: Ctx, customerId: str, fromSequence: int | None, toSequence: int | None, limit: int) -> Response:
    """SDK `gaps`: runs of sequence numbers in the window with no verified delta — `awaiting_verification`,
    `failed` (terminal), or `missing` (never received). At most 10,000 numbers per request."""
    report = records_service.customer_gaps(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, customerId,
                                           first=fromSequence, last=toSequence, limit=limit)
    return ok(gaps_view(report))


def _time_scope(ctx: Ctx, source: dict) -> TimeScope | None:
    """The scope a query's or a body's ``period``/``timePreset``/``startDate``/``endDate`` names, if any."""
    return parse_scope(**_scope_fields(source), now=ctx.now)


def _scope_fields(source: dict) -> dict[str, Any]:
    """A query's or a body's scope fields as :func:`parse_scope` takes them (services parse them in turn)."""
    return {"period": source.get("period"), "time_preset": source.get("timePreset"),
            "start_date": source.get("startDate"), "end_date": source.get("endDate")}


#: ``derive``: the time scope, or a starting checkpoint instead of it.
DERIVE_SCOPE = scope_group(
    query("startingCheckpoint", "Start after this checkpoint (`chk_…`); not with a time scope.", CHECKPOINT_ID,
          arg=None),
    query("startingCheckpointType", "`checkpoint` (needs startingCheckpoint).",
          {"type": "string", "enum": ["checkpoint"]}, arg=None),
    rules=CHECKPOINT_START_RULES)


@route(bp, "/api/v1/balance/derive/{customerId}", "GET", auth=Auth.API_KEY, summary="Derive a balance",
       tags=("Balance API",), responses={200: "BalanceDerivation"}, errors=(400, 404),
       params=(CUSTOMER,
               query("startingBalance", "Balance before the scope, an exact decimal (default 0).", DECIMAL_TEXT),
               DERIVE_SCOPE,
               page_size(100, 1000, minimum=0, what="Deltas listed"),
               query("offset", "Skip this many listed deltas (0-1,000,000,000).",
                     {"type": "integer", "minimum": 0, "maximum": 10**9}, default=0)))
def derive_balance(ctx: Ctx, customerId: str, startingBalance: str | None, scope: dict, limit: int,
                   offset: int) -> Response:
    """SDK `derive`: `startingBalance` + every delta of the scope that did not fail terminally. A time scope
    selects deltas by acceptance time (at most 366 days); `startingCheckpoint` takes the deltas after that
    checkpoint (not with a time scope: 400 `INVALID_SCOPE_COMBINATION`); neither takes the whole history
    (at most 50,000 deltas, else 400 `SCOPE_TOO_WIDE`). `settled` is false while any awaits verification."""
    derivation = derive_service.derive_for(
        ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, customerId, scope=_scope_fields(scope),
        now=ctx.now, starting_balance=startingBalance, starting_checkpoint=scope.get("startingCheckpoint"),
        checkpoint_type=scope.get("startingCheckpointType"))
    return ok({**derivation_view(derivation),
               "deltas": {"items": [delta_view(d) for d in derivation.deltas[offset : offset + limit]],
                          "limit": limit, "offset": offset, "total": len(derivation.deltas)}})


@route(bp, "/api/v1/balance/compare", "POST", auth=Auth.API_KEY, summary="Compare two parties' balances",
       tags=("Balance API",), responses={200: "BalanceComparison"}, errors=(400, 404),
       request_body="CompareRequest")
def compare_balances(ctx: Ctx, body: dict) -> Response:
    """SDK `compare`: derives the balance over the scope (as `derive`) and checks `yourBalance` and
    `theirBalance` against it, exactly (decimal arithmetic)."""
    comparison = derive_service.compare(
        ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, body["customerId"],
        your_balance=body["yourBalance"], their_balance=body["theirBalance"], scope=_scope_fields(body),
        now=ctx.now, starting_balance=body.get("startingBalance"), starting_checkpoint=body.get("startingCheckpoint"),
        checkpoint_type=body.get("startingCheckpointType"))
    return ok(comparison_view(comparison))


# --- receipts and invoice proofs ---------------------------------------------------------------------


@route(bp, "/api/v1/balance/receipt/{customerId}", "GET", auth=Auth.API_KEY, summary="Customer receipt",
       tags=("Balance API",), responses={200: "Receipt"}, errors=(400, 404), params=(CUSTOMER,))
def get_receipt(ctx: Ctx, customerId: str) -> Response:
    """SDK `receipt` (no scope): this UTC month's signed summary — starting and final balance, counts, the
    latest checkpoint — signed with the platform key (check it against `verificationKeysUrl`)."""
    scope = parse_scope(time_preset="current_month", now=ctx.now)
    return ok(receipt_view(receipt_service.issue(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                                 customerId, scope, now=ctx.now, signer=bootstrap.signer())))


@route(bp, "/api/v1/balance/invoice-proof/{customerId}", "GET", auth=Auth.API_KEY, summary="Invoice proof",
       tags=("Balance API",), responses={200: "InvoiceProof"}, errors=(400, 404, 409),
       params=(CUSTOMER, SCOPE))
def get_invoice_proof(ctx: Ctx, customerId: str, scope: dict) -> Response:
    """SDK `invoice_proof` (and `receipt` with a scope): the signed receipt of the scope (default: this UTC
    month) and, when the scope is one whole month, a link the customer opens without logging in — a
    verification package of 10 sampled deltas against the month's checkpoint, valid 30 days, that `tally
    verify` checks offline."""
    time_scope = _time_scope(ctx, scope) or parse_scope(time_preset="current_month", now=ctx.now)
    proof = package_service.invoice_proof(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, customerId,
                                          time_scope, now=ctx.now, signer=bootstrap.signer(),
                                          store=bootstrap.artifacts(), actor=ctx.principal.actor)
    return ok(invoice_proof_view(proof))
