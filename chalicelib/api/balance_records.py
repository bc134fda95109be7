"""Balance API (API key) over customer records: one customer's balance and activity, sequence gaps,
checkpoints, derive and compare (SDK `customer`, `gaps`, `checkpoint`, `list_checkpoints`, `derive`, `compare`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.balance import delta_view
from chalicelib.api.customers import checkpoint_view
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
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.deltas import DeltaStatus
from chalicelib.domain.scopes import TimeScope, parse_scope, single_month
from chalicelib.lazy import lazy
from chalicelib.services import customers as customer_service
from chalicelib.services.ports import Page, page_after_offset
from chalicelib.settings import get_settings

bp = Blueprint(__name__)
checkpoint_service = lazy("chalicelib.services.checkpoints")
derive_service = lazy("chalicelib.services.derive")
package_service = lazy("chalicelib.services.packages")
receipt_service = lazy("chalicelib.services.receipts")
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
    scope = checkpoint_service.scope_of(ctx.uow, principal.tenant_id, principal.environment, body["customerId"],
                                        period, now=ctx.now)
    checkpoint, created = checkpoint_service.create(ctx.uow, scope, now=ctx.now, signer=signer,
                                                    strict=body.get("mode") == "strict",
                                                    fingerprints=body.get("fingerprints"))
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
    principal = ctx.principal

    def page_at(size: int, at: str | None) -> Page:
        if customerId is not None:
            period = single_month(time_scope, now=ctx.now) if time_scope else None
            return checkpoint_service.list_checkpoints(ctx.uow, principal.tenant_id, principal.environment,
                                                       customerId, period=period, limit=size, cursor=at)
        return ctx.uow.checkpoints.list_period(principal.tenant_id, principal.environment,
                                               single_month(time_scope, now=ctx.now), size, at)

    page = page_after_offset(page_at, offset=offset, limit=limit, cursor=cursor)
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
    page, limit = deltaPage, deltaLimit
    customer = customer_service.get_customer(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                             customerId)
    activity = customer_service.recent_activity(ctx.uow, customer, page=page, limit=limit)
    total = customer.delta_count
    body = {
        "customerId": customer.customer_id,
        "displayName": customer.display_name,
        "source": str(customer.source),
        "computedBalance": customer.balance,
        "totalDeltas": total,
        "lastSequenceNumber": customer.last_seq,
        "lastDeltaAt": iso_ms(customer.last_delta_at),
        "createdAt": iso_ms(customer.created_at),
        "recentActivity": {"items": [delta_view(d) for d in activity], "page": page, "limit": limit,
                           "total": total, "hasMore": page * limit < total},
        "periodSummary": None,
    }
    if period is not None:
        deltas = ctx.uow.deltas.customer_period(customer.tenant_id, customer.environment, customer.customer_id,
                                                period)
        body["periodSummary"] = {
            "period": period,
            "netChange": sum((d.delta for d in deltas), Decimal(0)),
            "deltaCount": len(deltas),
            "verified": sum(1 for d in deltas if d.status == DeltaStatus.VERIFIED),
            "failed": sum(1 for d in deltas if d.status == DeltaStatus.FAILED),
            "awaitingVerification": sum(1 for d in deltas if d.awaiting_verification),
        }
    return ok(body)


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
    customer = customer_service.get_customer(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                             customerId)
    first, last, runs = customer_service.gaps(ctx.uow, customer, first=fromSequence, last=toSequence, limit=limit)
    return ok({
        "customerId": customer.customer_id,
        "fromSequence": first,
        "toSequence": last,
        "lastSequenceNumber": customer.last_seq,
        "hasGaps": bool(runs),
        "gaps": [{"fromSequence": g.first, "toSequence": g.last, "count": g.count, "reason": g.reason}
                 for g in runs],
    })


def _time_scope(ctx: Ctx, source: dict) -> TimeScope | None:
    """The scope a query's or a body's ``period``/``timePreset``/``startDate``/``endDate`` names, if any."""
    return parse_scope(period=source.get("period"), time_preset=source.get("timePreset"),
                       start_date=source.get("startDate"), end_date=source.get("endDate"), now=ctx.now)


def _derivation(ctx: Ctx, customer_id: str, source: dict) -> derive_service.Derivation:
    customer = customer_service.get_customer(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                             customer_id)
    scope = _time_scope(ctx, source)
    return derive_service.derive(ctx.uow, customer, scope=scope, starting_balance=source.get("startingBalance"),
                                 starting_checkpoint=source.get("startingCheckpoint"),
                                 checkpoint_type=source.get("startingCheckpointType"))


def _derivation_view(d: derive_service.Derivation) -> dict:
    counted = d.counted
    return {
        "customerId": d.customer.customer_id,
        "scope": {"period": d.scope.period if d.scope else None,
                  "startDate": iso_ms(d.scope.start) if d.scope else None,
                  "endDate": iso_ms(d.scope.end) if d.scope else None,
                  "startingCheckpoint": d.checkpoint.checkpoint_id if d.checkpoint else None},
        "startingBalance": d.starting_balance,
        "netChange": d.net_change,
        "derivedBalance": d.derived_balance,
        "deltaCount": len(counted),
        "failedExcluded": len(d.deltas) - len(counted),
        "awaitingVerification": sum(1 for x in d.deltas if x.awaiting_verification),
        "settled": d.settled,
        "firstSequence": d.deltas[0].sequence_number if d.deltas else None,
        "lastSequence": d.deltas[-1].sequence_number if d.deltas else None,
    }


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
    derivation = _derivation(ctx, customerId, {**scope, "startingBalance": startingBalance})
    return ok({**_derivation_view(derivation),
               "deltas": {"items": [delta_view(d) for d in derivation.deltas[offset : offset + limit]],
                          "limit": limit, "offset": offset, "total": len(derivation.deltas)}})


@route(bp, "/api/v1/balance/compare", "POST", auth=Auth.API_KEY, summary="Compare two parties' balances",
       tags=("Balance API",), responses={200: "BalanceComparison"}, errors=(400, 404),
       request_body="CompareRequest")
def compare_balances(ctx: Ctx, body: dict) -> Response:
    """SDK `compare`: derives the balance over the scope (as `derive`) and checks `yourBalance` and
    `theirBalance` against it, exactly (decimal arithmetic)."""
    yours = derive_service.amount(body["yourBalance"], "yourBalance")
    theirs = derive_service.amount(body["theirBalance"], "theirBalance")
    derivation = _derivation(ctx, body["customerId"], body)
    derived = derivation.derived_balance
    return ok({**_derivation_view(derivation), "yourBalance": yours, "theirBalance": theirs,
               "yoursMatches": yours == derived, "theirsMatches": theirs == derived,
               "partiesAgree": yours == theirs, "match": yours == derived == theirs,
               "yourDifference": yours - derived, "theirDifference": theirs - derived})


# --- receipts and invoice proofs ---------------------------------------------------------------------


def receipt_view(receipt: Any) -> dict[str, Any]:
    """The signed statement, with its amounts as JSON numbers too (the statement keeps exact strings)."""
    statement = receipt.statement
    return {
        **{k: statement[k] for k in ("receiptId", "customerId", "period", "startDate", "endDate", "deltaCount",
                                     "verifiedCount", "failedCount", "awaitingVerification", "firstSequence",
                                     "lastSequence", "generatedAt", "keyId")},
        "startingBalance": receipt.starting_balance,
        "finalBalance": receipt.final_balance,
        "netChange": receipt.net_change,
        "latestCheckpoint": statement["checkpoint"],
        "statement": statement,
        "signature": receipt.signature,
        "verificationKeysUrl": f"{get_settings().public_base_url}/api/v1/verification-keys",
    }


def build_receipt(ctx: Ctx, customer_id: str, scope: Any) -> Any:
    customer = customer_service.get_customer(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                             customer_id)
    return receipt_service.build(ctx.uow, customer, scope, now=ctx.now, signer=bootstrap.signer())


@route(bp, "/api/v1/balance/receipt/{customerId}", "GET", auth=Auth.API_KEY, summary="Customer receipt",
       tags=("Balance API",), responses={200: "Receipt"}, errors=(400, 404), params=(CUSTOMER,))
def get_receipt(ctx: Ctx, customerId: str) -> Response:
    """SDK `receipt` (no scope): this UTC month's signed summary — starting and final balance, counts, the
    latest checkpoint — signed with the platform key (check it against `verificationKeysUrl`)."""
    scope = parse_scope(time_preset="current_month", now=ctx.now)
    return ok(receipt_view(build_receipt(ctx, customerId, scope)))


@route(bp, "/api/v1/balance/invoice-proof/{customerId}", "GET", auth=Auth.API_KEY, summary="Invoice proof",
       tags=("Balance API",), responses={200: "InvoiceProof"}, errors=(400, 404, 409),
       params=(CUSTOMER, SCOPE))
def get_invoice_proof(ctx: Ctx, customerId: str, scope: dict) -> Response:
    """SDK `invoice_proof` (and `receipt` with a scope): the signed receipt of the scope (default: this UTC
    month) and, when the scope is one whole month, a link the customer opens without logging in — a
    verification package of 10 sampled deltas against the month's checkpoint, valid 30 days, that `tally
    verify` checks offline."""
    time_scope = _time_scope(ctx, scope) or parse_scope(time_preset="current_month", now=ctx.now)
    receipt = build_receipt(ctx, customerId, time_scope)
    settings = get_settings()
    link = host = None
    hint = "This scope spans more than one UTC month: the receipt's signature is the proof; no sample link."
    if time_scope.period is not None:
        scoped = checkpoint_service.Scope(ctx.principal.tenant_id, ctx.principal.environment, customerId,
                                          time_scope.period)
        shared = package_service.create(ctx.uow, scoped, sample_size=10, ttl=timedelta(days=30), now=ctx.now,
                                        signer=bootstrap.signer(), store=bootstrap.artifacts(),
                                        actor=ctx.principal.actor)
        link = f"{settings.public_base_url}/api/v1/verification-packages/{shared.token}"
        host = urlsplit(link).hostname
        hint = (f"No login needed until {iso_ms(shared.expires_at)}: open the link, save the JSON and run "
                "`tally verify` on it to check every hash, proof and signature offline.")
    return ok({**receipt_view(receipt), "verificationApiUrl": f"{settings.public_base_url}/api/v1/verification-keys",
               "customerLinkUrl": link, "customerLinkHost": host, "accessHint": hint})
