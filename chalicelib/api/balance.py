"""Balance API (``X-Api-Key``): wire-compatible with the official ``pacspace-sdk``."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.inputs import CURSOR, IDEMPOTENCY_HEADER, PAGE_NUMBER, page_size, path_param, query
from chalicelib.api.responses import json_response, ok, page_body
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import (
    accepted_delta_answer,
    batch_answer,
    compact_customer_view,
    delta_proof_view,
    delta_view,
    usage_view,
)
from chalicelib.domain.deltas import parse_delta
from chalicelib.domain.errors import ValidationError
from chalicelib.jsoncodec import fingerprint
from chalicelib.lazy import lazy
from chalicelib.services import customers as customer_service
from chalicelib.services import ingest
from chalicelib.services import usage as usage_service
from chalicelib.services.idempotency import Answer

bp = Blueprint(__name__)
delta_service = lazy("chalicelib.services.deltas")


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
    return ok(page_body([compact_customer_view(c) for c in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))


# --- the write path -------------------------------------------------------------------------------

DELTA_SCOPE = "POST /api/v1/balance/delta"
BATCH_SCOPE = "POST /api/v1/balance/delta/batch"


def _respond(answer: Answer) -> Response:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return json_response(answer.body, answer.status, headers)


@route(bp, "/api/v1/balance/delta", "POST", auth=Auth.API_KEY, summary="Submit a balance delta",
       tags=("Balance API",), responses={202: "AcceptedDelta"}, errors=(400, 402, 409),
       request_body="DeltaRequest", params=(IDEMPOTENCY_HEADER,))
def submit_delta(ctx: Ctx, body: dict, idempotency_key: str | None) -> Response:
    """Accepts one delta (SDK `balance.emit`): stored, sequenced, counted and — under credits billing —
    reserved, atomically. A repeated `referenceId` for the customer replays the first answer
    (`idempotent: true`). Free plan past 100 deltas this UTC month, or too few credits: 402."""
    item = parse_delta(body)
    return _respond(ingest.submit_delta_request(
        ctx.uow, ctx.principal, item, now=ctx.now, idempotency_key=idempotency_key, scope=DELTA_SCOPE,
        request_hash=fingerprint(body), queue=bootstrap.verification_queue(), answer=accepted_delta_answer))


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

    return _respond(ingest.submit_batch_request(
        ctx.uow, ctx.principal, inputs, now=ctx.now, idempotency_key=idempotency_key, scope=BATCH_SCOPE,
        request_hash=fingerprint(body), queue=bootstrap.verification_queue(), answer=batch_answer))


@route(bp, "/api/v1/balance/delta/{recordId}", "GET", auth=Auth.API_KEY, summary="Delta status",
       tags=("Balance API",), responses={200: "DeltaStatus"}, errors=(404,),
       params=(path_param("recordId", "The recordId returned on submit."),))
def get_delta(ctx: Ctx, recordId: str) -> Response:
    """`QUEUED → PROCESSING → VERIFIED | FAILED` (SDK `delta_status`); one consistent read."""
    return ok(delta_view(delta_service.get_delta(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                                 recordId)))


@route(bp, "/api/v1/balance/delta/{recordId}/proof", "GET", auth=Auth.API_KEY, summary="Delta proof bundle",
       tags=("Balance API",), responses={200: "DeltaProof"}, errors=(404, 409),
       params=(path_param("recordId", "The recordId returned on submit."),))
def get_delta_proof(ctx: Ctx, recordId: str) -> Response:
    """Everything needed to check one verified delta offline (`tally verify FILE`): the exact content its
    hash commits to, the leaf hash, the inclusion proof, the signed batch statement and the public key.
    The public key is the one the batch names, current or retired. A delta not yet `VERIFIED` answers 409
    `DELTA_NOT_VERIFIED`; a batch whose key id is not a registered signing key, 409 `SIGNING_KEY_UNKNOWN`."""
    return ok(delta_proof_view(delta_service.delta_proof(ctx.uow, ctx.principal.tenant_id,
                                                         ctx.principal.environment, recordId)))


@route(bp, "/api/v1/balance/usage", "GET", auth=Auth.API_KEY, summary="Plan usage",
       tags=("Balance API",), responses={200: "ApiUsage"})
def get_usage(ctx: Ctx) -> Response:
    """SDK `balance.usage()`: `allowed`/`remaining` now, and this UTC month's figures (both environments)."""
    return ok(usage_view(*usage_service.current(ctx.uow, ctx.principal.tenant_id, now=ctx.now)))
