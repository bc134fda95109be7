"""Public verification (no authentication): anyone holding a proof root can check it."""

from __future__ import annotations

import base64
import re

from chalice import Blueprint, Response

from chalicelib.api.inputs import path_param
from chalicelib.api.responses import ok
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.fingerprints import canonical
from chalicelib.domain.merkle import root_of

bp = Blueprint(__name__)
ROOT_RE = re.compile(r"^[0-9a-f]{64}$")


@route(bp, "/api/v1/verify/{proofRoot}", "GET", auth=Auth.NONE, summary="Verify a proof root",
       tags=("Verification",), responses={200: "VerifyResult"},
       params=(path_param("proofRoot", "Hex SHA-256 Merkle root of a sealed batch."),))
def verify_root(ctx: Ctx, proofRoot: str) -> Response:
    """SDK `verify`: the sealed batch behind a root, its signature and root re-checked.

    Shows only what the signed batch commits to (record ids and leaf hashes, no
    amounts or customers); an unknown root answers `verified: false`."""
    root = proofRoot.lower()
    batch = ctx.uow.batches.by_root(root) if ROOT_RE.match(root) else None
    if batch is None:
        return ok({"verified": False, "proofRoot": proofRoot, "recordedAt": None, "summary": None,
                   "records": [], "verification": {"reason": "No sealed batch has this root."}})
    from chalicelib.adapters.signing import verify_signature
    from chalicelib.services import signing_keys

    # The key the batch names, current or retired; an id no registered key has cannot be checked.
    raw_key = signing_keys.public_key(ctx.uow, batch.key_id)
    public_key = base64.b64encode(raw_key).decode() if raw_key is not None else None
    signature_ok = raw_key is not None and verify_signature(raw_key, canonical(batch.statement()), batch.signature)
    root_ok = root_of([bytes.fromhex(h) for h in batch.leaf_hashes]).hex() == batch.root
    return ok({
        "verified": bool(signature_ok and root_ok),
        "proofRoot": batch.root,
        "recordedAt": iso_ms(batch.sealed_at),
        "summary": {"batchId": batch.batch_id, "treeSize": batch.tree_size, "sequence": batch.sequence,
                    "environment": batch.environment, "previousRoot": batch.previous_root},
        "records": [{"recordId": r, "leafIndex": i, "leafHash": h}
                    for i, (r, h) in enumerate(zip(batch.record_ids, batch.leaf_hashes, strict=True))],
        # The public key travels with the statement, so the saved answer checks offline (`tally verify`).
        "verification": {"algorithm": "Ed25519", "keyId": batch.key_id, "publicKey": public_key,
                         "signature": batch.signature,
                         "statement": batch.statement(), "signatureValid": signature_ok, "rootValid": root_ok},
    })
