"""Service metadata: the OpenAPI document and a health probe."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.responses import json_response, ok
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.settings import get_settings

bp = Blueprint(__name__)
_document: dict | None = None


@route(bp, "/openapi.json", "GET", auth=Auth.NONE, summary="OpenAPI 3.1 document",
       tags=("Meta",), responses={200: {"raw": "OpenApiDocument"}})
def openapi_document(ctx: Ctx) -> Response:
    """This API's contract: every route, parameter, body and response."""
    global _document
    if _document is None:
        from chalicelib.api.openapi import build_document

        _document = build_document(get_settings().public_base_url)
    return json_response(_document, 200)


@route(bp, "/health", "GET", auth=Auth.NONE, summary="Health probe", tags=("Meta",),
       responses={200: "Health"})
def health(ctx: Ctx) -> Response:
    """Answers without touching storage (load balancers, `make run` readiness)."""
    return ok({"status": "ok", "stage": get_settings().stage})


@route(bp, "/api/v1/verification-keys", "GET", auth=Auth.NONE, summary="Public signing keys",
       tags=("Verification",), responses={200: "VerificationKeys"})
def verification_keys(ctx: Ctx) -> Response:
    """Every Ed25519 public key the platform has signed with, by key id: batch records, checkpoints and
    packages name the key that signed them, so anyone can verify offline. The key signing now is
    `active` (listed first); earlier keys stay listed as `retired`, so what they signed still verifies.
    A key id is the RFC 7638 JWK thumbprint of its key, so an id never names two keys. No authentication."""
    from chalicelib.adapters.signing import key_view
    from chalicelib.services import signing_keys

    signer = bootstrap.signer()  # loading it registers it: the active key is always listed
    listed = signing_keys.published(ctx.uow, active_key_id=signer.key_id)
    return ok({"keys": [key_view(key.key_id, key.public_key, status) for key, status in listed]})
