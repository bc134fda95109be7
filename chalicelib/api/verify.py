"""Public verification (no authentication): anyone holding a proof root can check it."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.inputs import path_param
from chalicelib.api.responses import ok
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import root_check_view
from chalicelib.lazy import lazy

bp = Blueprint(__name__)
delta_service = lazy("chalicelib.services.deltas")


@route(bp, "/api/v1/verify/{proofRoot}", "GET", auth=Auth.NONE, summary="Verify a proof root",
       tags=("Verification",), responses={200: "VerifyResult"},
       params=(path_param("proofRoot", "Hex SHA-256 Merkle root of a sealed batch."),))
def verify_root(ctx: Ctx, proofRoot: str) -> Response:
    """SDK `verify`: the sealed batch behind a root, its signature and root re-checked.

    Shows only what the signed batch commits to (record ids and leaf hashes, no
    amounts or customers); an unknown root answers `verified: false`."""
    from chalicelib.adapters.signing import verify_signature

    # The key the batch names, current or retired; an id no registered key has cannot be checked.
    check = delta_service.check_root(ctx.uow, proofRoot.lower(), verify_signature=verify_signature)
    return ok(root_check_view(proofRoot, check))
