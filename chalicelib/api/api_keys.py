"""Dashboard API key management: the full key is shown once, only hashes are stored."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.inputs import CURSOR, ENVIRONMENT_HEADER, page_size, path_param
from chalicelib.api.responses import ok, page_body
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import key_view, key_with_secret_view
from chalicelib.domain.identity import Environment
from chalicelib.services import api_keys as key_service

bp = Blueprint(__name__)
KEY_ID = path_param("keyId", "The key's public id (the part between the prefix and the dot).")


@route(bp, "/dashboard/api-keys", "POST", auth=Auth.DASHBOARD, summary="Create an API key",
       tags=("API keys",), responses={201: "ApiKeyWithSecret"}, errors=(400, 403),
       request_body="CreateApiKeyRequest", params=(ENVIRONMENT_HEADER,))
def create_api_key(ctx: Ctx, body: dict) -> Response:
    """Owner/admin. `environment` in the body, else `X-Environment`, else production."""
    environment = Environment.parse(body.get("environment"), default=ctx.principal.environment)  # X-Environment
    key, full_key = key_service.create_api_key(
        ctx.uow, ctx.principal, name=body["name"], environment=environment, now=ctx.now
    )
    return ok(key_with_secret_view(key, full_key), 201)


@route(bp, "/dashboard/api-keys", "GET", auth=Auth.DASHBOARD, summary="List API keys",
       tags=("API keys",), responses={200: "ApiKeyPage"}, errors=(400,),
       params=(ENVIRONMENT_HEADER,
               page_size(25),
               CURSOR))
def list_api_keys(ctx: Ctx, limit: int, cursor: str | None) -> Response:
    """Keys of the `X-Environment` scope, newest first; never the secret."""
    page = key_service.list_api_keys(ctx.uow, ctx.principal, limit=limit, cursor=cursor)
    return ok(page_body([key_view(k) for k in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=page.total))


@route(bp, "/dashboard/api-keys/{keyId}", "GET", auth=Auth.DASHBOARD, summary="Get an API key",
       tags=("API keys",), responses={200: "ApiKey"}, errors=(404,), params=(KEY_ID, ENVIRONMENT_HEADER))
def get_api_key(ctx: Ctx, keyId: str) -> Response:
    return ok(key_view(key_service.get_api_key(ctx.uow, ctx.principal, keyId)))


@route(bp, "/dashboard/api-keys/{keyId}/rotate", "POST", auth=Auth.DASHBOARD, summary="Rotate an API key",
       tags=("API keys",), responses={200: "ApiKeyWithSecret"}, errors=(403, 404, 409),
       params=(KEY_ID, ENVIRONMENT_HEADER))
def rotate_api_key(ctx: Ctx, keyId: str) -> Response:
    """Owner/admin. Same id, new secret; the old secret stops working immediately."""
    key, full_key = key_service.rotate_api_key(ctx.uow, ctx.principal, keyId, now=ctx.now)
    return ok(key_with_secret_view(key, full_key))


@route(bp, "/dashboard/api-keys/{keyId}/revoke", "POST", auth=Auth.DASHBOARD, summary="Revoke an API key",
       tags=("API keys",), responses={200: "ApiKey"}, errors=(403, 404), params=(KEY_ID, ENVIRONMENT_HEADER))
def revoke_api_key(ctx: Ctx, keyId: str) -> Response:
    """Owner/admin. A revoked key answers 401 from then on. Idempotent."""
    return ok(key_view(key_service.revoke_api_key(ctx.uow, ctx.principal, keyId, now=ctx.now)))


@route(bp, "/dashboard/api-keys/{keyId}", "DELETE", auth=Auth.DASHBOARD, summary="Revoke an API key",
       tags=("API keys",), responses={200: "ApiKey"}, errors=(403, 404), params=(KEY_ID, ENVIRONMENT_HEADER))
def delete_api_key(ctx: Ctx, keyId: str) -> Response:
    """Same as `POST .../revoke`: keys are never erased, so their use stays auditable."""
    return ok(key_view(key_service.revoke_api_key(ctx.uow, ctx.principal, keyId, now=ctx.now)))
