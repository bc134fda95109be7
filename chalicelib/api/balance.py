"""Balance API (``X-Api-Key``): wire-compatible with the official ``pacspace-sdk``."""

from __future__ import annotations

import base64

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.inputs import CURSOR, IDEMPOTENCY_HEADER, PAGE_NUMBER, page_size, path_param, query
from chalicelib.api.responses import json_response, ok, page_body
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.customers import Customer
from chalicelib.domain.deltas import Delta, DeltaStatus, parse_delta
from chalicelib.domain.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.domain.fingerprints import delta_content
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import leaf_hash
from chalicelib.jsoncodec import fingerprint
from chalicelib.log import get_logger
from chalicelib.services import customers as customer_service
from chalicelib.services import ingest
from chalicelib.services import usage as usage_service
from chalicelib.services.idempotency import Answer, run_idempotent

bp = Blueprint(__name__)
log = get_logger("tally.balance")


def customer_summary(customer: Customer) -> dict:
    return {
        "customerId": customer.customer_id,
        "displayName": customer.display_name,
        "source": str(customer.source),
        "createdAt": iso_ms(customer.created_at),
    }


@route(bp, "/api/v1/balance/customers", "GET", auth=Auth.API_KEY, summary="List customers",
       tags=("Balance API",), responses={200: "BalanceCustomerPage"}, errors=(400,),
       params=(query("search", "Customer id prefix.", {"type": "string", "maxLength": 128}),
               page_size(25),
               PAGE_NUMBER,
               CURSOR))
def list_customers(ctx: Ctx, search: str | None, limit: int, page: int, cursor: str | None) -> Response:
    """Compact customer list of the key's environment (SDK `balance.customers`)."""
    page = customer_service.list_customers(ctx.uow, ctx.principal, limit=limit, cursor=cursor, search=search,
                                           page=page)
    return ok(page_body([customer_summary(c) for c in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))


# --- the write path -------------------------------------------------------------------------------

DELTA_SCOPE = "POST /api/v1/balance/delta"
BATCH_SCOPE = "POST /api/v1/balance/delta/batch"


def _respond(answer: Answer) -> Response:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return json_response(answer.body, answer.status, headers)


def _enqueue(refs: list[tuple]) -> None:
    """Hand accepted deltas to the verifier; if SQS is unreachable the sweep finds them (never lost)."""
    if not refs:
        return
    try:
        bootstrap.verification_queue().enqueue(refs)
    except Exception:
        log.warning("verification enqueue failed; the sweep will pick these up", exc_info=True,
                    extra={"records": len(refs)})


@route(bp, "/api/v1/balance/delta", "POST", auth=Auth.API_KEY, summary="Submit a balance delta",
       tags=("Balance API",), responses={202: "AcceptedDelta"}, errors=(400, 402, 409),
       request_body="DeltaRequest", params=(IDEMPOTENCY_HEADER,))
def submit_delta(ctx: Ctx, body: dict, idempotency_key: str | None) -> Response:
    """Accepts one delta (SDK `balance.emit`): stored, sequenced, counted and — under credits billing —
    reserved, atomically. A repeated `referenceId` for the customer replays the first answer
    (`idempotent: true`). Free plan past 100 deltas this UTC month, or too few credits: 402."""
    item = parse_delta(body)

    def run() -> Answer:
        outcome = ingest.submit_deltas(ctx.uow, ctx.principal, [item], now=ctx.now)[0]
        if outcome.error is not None:
            raise outcome.error
        _enqueue(ingest.accepted_refs(ctx.principal, [outcome]))
        data = dict(outcome.data or {})
        if outcome.idempotent:
            data["idempotent"] = True
        return Answer(202, {"statusCode": 202, "success": True, "data": data})

    return _respond(run_idempotent(ctx.uow, ctx.principal, key=idempotency_key, scope=DELTA_SCOPE,
                                   request_hash=fingerprint(body), now=ctx.now, run=run))


@route(bp, "/api/v1/balance/delta/batch", "POST", auth=Auth.API_KEY, summary="Submit up to 100 deltas",
       tags=("Balance API",), responses={202: "BatchResult"}, errors=(400, 402, 409),
       request_body="BatchRequest", params=(IDEMPOTENCY_HEADER,))
def submit_batch(ctx: Ctx, body: dict, idempotency_key: str | None) -> Response:
    """Answers per item (`results[{index, status, error?, idempotent?}]`); invalid items fail in place
    while the others are accepted. When nothing is accepted and the free cap or the credits refused
    items: 402, nothing stored, the key released (see `ingest.batch_refusal`). A few transactions, not
    one per delta. Each item is checked against `DeltaRequest` on its own, so one bad item fails alone."""
    from chalicelib.api.validator import check, component

    inputs: list = []
    for index, raw in enumerate(body["deltas"]):
        where = f"deltas[{index}]"
        try:
            inputs.append(parse_delta(check(component("DeltaRequest"), raw, where), prefix=f"{where}."))
        except ValidationError as exc:
            inputs.append(exc)

    def run() -> Answer:
        outcomes = ingest.submit_batch(ctx.uow, ctx.principal, inputs, now=ctx.now)
        _enqueue(ingest.accepted_refs(ctx.principal, outcomes))
        results = [ingest.result_view(o) for o in outcomes]
        queued = sum(1 for o in outcomes if o.status == "QUEUED")
        data = {"totalQueued": queued, "totalFailed": len(outcomes) - queued, "results": results}
        return Answer(202, {"statusCode": 202, "success": True, "data": data})

    return _respond(run_idempotent(ctx.uow, ctx.principal, key=idempotency_key, scope=BATCH_SCOPE,
                                   request_hash=fingerprint(body), now=ctx.now, run=run))


def delta_view(delta: Delta) -> dict:
    return {
        "recordId": delta.record_id,
        "receiptId": delta.receipt_id,
        "status": str(delta.status),
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "sequenceNumber": delta.sequence_number,
        "reason": delta.reason,
        "referenceId": delta.reference_id,
        "metadata": delta.metadata,
        "adjusts": delta.adjusts,
        "period": delta.period,
        "environment": str(delta.environment),
        "creditsReserved": delta.credits_reserved,
        "error": delta.error,
        "createdAt": iso_ms(delta.created_at),
        "updatedAt": iso_ms(delta.updated_at or delta.created_at),
        "contentHash": delta.content_hash,
        "proofHash": leaf_hash(bytes.fromhex(delta.content_hash)).hex() if delta.content_hash else None,
        "batchId": delta.batch_id,
        "leafIndex": delta.leaf_index,
        "inclusionProof": delta.proof,
        "proofRoot": delta.proof_root,
        "verifiedAt": iso_ms(delta.verified_at),
    }


@route(bp, "/api/v1/balance/delta/{recordId}", "GET", auth=Auth.API_KEY, summary="Delta status",
       tags=("Balance API",), responses={200: "DeltaStatus"}, errors=(404,),
       params=(path_param("recordId", "The recordId returned on submit."),))
def get_delta(ctx: Ctx, recordId: str) -> Response:
    """`QUEUED → PROCESSING → VERIFIED | FAILED` (SDK `delta_status`); one consistent read."""
    delta = ctx.uow.deltas.get(ctx.principal.tenant_id, ctx.principal.environment, recordId)
    if delta is None:
        raise NotFoundError("Delta not found.")
    return ok(delta_view(delta))


PROOF_TYPE = "tally.delta-proof/v1"


@route(bp, "/api/v1/balance/delta/{recordId}/proof", "GET", auth=Auth.API_KEY, summary="Delta proof bundle",
       tags=("Balance API",), responses={200: "DeltaProof"}, errors=(404, 409),
       params=(path_param("recordId", "The recordId returned on submit."),))
def get_delta_proof(ctx: Ctx, recordId: str) -> Response:
    """Everything needed to check one verified delta offline (`tally verify FILE`): the exact content its
    hash commits to, the leaf hash, the inclusion proof, the signed batch statement and the public key.
    The public key is the one the batch names, current or retired. A delta not yet `VERIFIED` answers 409
    `DELTA_NOT_VERIFIED`; a batch whose key id is not a registered signing key, 409 `SIGNING_KEY_UNKNOWN`."""
    delta = ctx.uow.deltas.get(ctx.principal.tenant_id, ctx.principal.environment, recordId)
    if delta is None:
        raise NotFoundError("Delta not found.")
    if delta.status != DeltaStatus.VERIFIED or not (delta.content_hash and delta.batch_id):
        raise ConflictError(f"Delta {recordId} is {delta.status}; its proof exists once it is VERIFIED.",
                            code="DELTA_NOT_VERIFIED")
    # By id, not by root: a consistent read of this tenant environment's batch (the root index lags).
    batch = ctx.uow.batches.get(delta.tenant_id, delta.environment, delta.batch_id)
    if batch is None or batch.root != delta.proof_root:
        raise RuntimeError(f"sealed batch {delta.batch_id} of verified delta {recordId} is missing")
    from chalicelib.services import signing_keys

    raw_key = signing_keys.public_key(ctx.uow, batch.key_id)  # current or retired: any registered key
    if raw_key is None:
        raise ConflictError(f"The key {batch.key_id!r} that signed this batch is not a registered signing key; "
                            "the proof cannot be verified.", code="SIGNING_KEY_UNKNOWN")
    return ok({
        "type": PROOF_TYPE,
        "recordId": delta.record_id,
        "content": delta_content(delta),
        "contentHash": delta.content_hash,
        "leafHash": leaf_hash(bytes.fromhex(delta.content_hash)).hex(),
        "leafIndex": delta.leaf_index,
        "treeSize": batch.tree_size,
        "inclusionProof": list(delta.proof or []),
        "proofRoot": batch.root,
        "batch": {"statement": batch.statement(), "signature": batch.signature},
        "publicKey": {"keyId": batch.key_id, "algorithm": "Ed25519",
                      "publicKey": base64.b64encode(raw_key).decode()},
    })


@route(bp, "/api/v1/balance/usage", "GET", auth=Auth.API_KEY, summary="Plan usage",
       tags=("Balance API",), responses={200: "ApiUsage"})
def get_usage(ctx: Ctx) -> Response:
    """SDK `balance.usage()`: `allowed`/`remaining` now, and this UTC month's figures (both environments)."""
    figures = usage_service.usage_figures(ctx.uow, ctx.principal.tenant_id, period=None, now=ctx.now)
    capacity, account = usage_service.current_capacity(ctx.uow, figures)
    plan, counter = figures.plan, figures.counter
    return ok({
        "allowed": capacity.limit is None or capacity.limit > 0,
        "remaining": capacity.limit,
        "period": counter.period,
        "plan": plan.tier,
        "billingMode": str(figures.tenant.billing_mode),
        "consumed": counter.consumed,
        "allotment": plan.monthly_allotment,
        "remainingDeltas": figures.remaining,
        "overage": figures.overage_count,
        "overageChargesUsd": figures.overage_charges_usd,
        "byEnvironment": {str(env): counter.by_environment.get(str(env), 0) for env in Environment},
        "credits": {"creditBalance": account.credit_balance, "availableBalance": account.available,
                    "reserved": account.reserved},
    })
