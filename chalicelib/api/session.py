"""Dashboard sessions: exchange a JWT for an HttpOnly cookie, inspect it, log out."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.auth import SESSION_COOKIE, session_cookie_header
from chalicelib.api.request import cookie, is_https
from chalicelib.api.responses import ok
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.domain.clock import iso_ms
from chalicelib.services import auth as auth_service
from chalicelib.settings import get_settings

bp = Blueprint(__name__)


@route(bp, "/dashboard/session", "POST", auth=Auth.DASHBOARD_JWT, summary="Open a session",
       tags=("Session",), responses={201: "Session"}, billing=True)
def create_session(ctx: Ctx) -> Response:
    """Exchange a valid bearer JWT for the HttpOnly, SameSite session cookie (Secure over HTTPS)."""
    ttl = get_settings().session_ttl_seconds
    session, cookie_value = auth_service.open_session(ctx.uow, ctx.principal, now=ctx.now, ttl_seconds=ttl)
    cookie = session_cookie_header(cookie_value, max_age=ttl, secure=is_https(ctx.request))
    data = {
        "tenantId": session.tenant_id,
        "userId": session.user_id,
        "role": session.role,
        "via": "session",
        "expiresAt": iso_ms(session.expires_at),
    }
    return ok(data, 201, headers={"Set-Cookie": cookie})


@route(bp, "/dashboard/session", "GET", auth=Auth.DASHBOARD, summary="Who am I",
       tags=("Session",), responses={200: "Session"}, billing=True)
def get_session(ctx: Ctx) -> Response:
    """The identity behind this request's JWT or cookie."""
    principal = ctx.principal
    return ok({
        "tenantId": principal.tenant_id,
        "userId": principal.user_id,
        "role": str(principal.role),
        "via": principal.via,
        "environment": str(principal.environment),
    })


@route(bp, "/dashboard/session", "DELETE", auth=Auth.DASHBOARD, summary="Log out",
       tags=("Session",), responses={200: "Message"}, billing=True)
def delete_session(ctx: Ctx) -> Response:
    """Ends the cookie session server-side and clears the cookie."""
    auth_service.close_session(ctx.uow, ctx.principal, now=ctx.now,
                               cookie_value=cookie(ctx.request, SESSION_COOKIE))
    expired = f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
    if is_https(ctx.request):
        expired += "; Secure"
    return ok({"message": "Signed out."}, headers={"Set-Cookie": expired})
