"""Credential extraction at the HTTP edge: which header, which cookie, which origin.

The decisions themselves (is this key live, is this user active) are services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from chalice.app import Request

from chalicelib import bootstrap
from chalicelib.api.request import cookie, header, is_https
from chalicelib.domain.errors import AuthenticationError, InvalidApiKeyError, PermissionDeniedError
from chalicelib.domain.identity import ApiKeyPrincipal, DashboardPrincipal, Environment, PlatformPrincipal
from chalicelib.domain.tenants import Tenant
from chalicelib.services import auth as auth_service
from chalicelib.services.ports import UnitOfWork
from chalicelib.settings import get_settings

SESSION_COOKIE = "tally_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_token(request: Request) -> str | None:
    value = header(request, "authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authorization must be 'Bearer <token>'.", code="INVALID_TOKEN")
    return token.strip()


def request_environment(request: Request) -> Environment:
    """The ``X-Environment`` scope (default production); a value outside its enum is refused naming the header,
    as the router's check of the declared header does (ENVIRONMENT_HEADER)."""
    return Environment.parse(header(request, "x-environment"), default=Environment.PRODUCTION, field="X-Environment")


def check_same_origin(request: Request) -> None:
    """CSRF guard for cookie-authenticated writes, as modern frameworks do it.

    Allowed: an ``Origin`` in the allow-list or equal to this host, ``Sec-Fetch-Site``
    of ``same-origin``/``none``, or neither header (curl and server clients).
    """
    origin = header(request, "origin")
    if origin and origin in get_settings().allowed_origins:
        return
    site = (header(request, "sec-fetch-site") or "").lower()
    if site and site not in ("same-origin", "none"):
        raise PermissionDeniedError("Cross-site request rejected.", code="CROSS_SITE_REQUEST")
    if origin:
        host = header(request, "host")
        parsed = urlparse(origin)
        scheme = "https" if is_https(request) else "http"  # http://host is another origin than https://host
        if origin == "null" or not host or parsed.netloc.lower() != host.lower() or parsed.scheme.lower() != scheme:
            raise PermissionDeniedError("Request origin is not allowed.", code="CROSS_SITE_REQUEST")


def authenticate_dashboard(
    request: Request, uow: UnitOfWork, now: datetime, *, jwt_only: bool = False
) -> tuple[DashboardPrincipal, Tenant]:
    """Bearer JWT first, else the session cookie; cookie writes pass the origin check."""
    settings = get_settings()
    token = bearer_token(request)
    if token:
        claims: dict[str, Any] = bootstrap.jwt_verifier().verify(token)
        return auth_service.dashboard_principal_from_claims(
            uow,
            claims,
            tenant_claim=settings.jwt_tenant_claim,
            role_claim=settings.jwt_role_claim,
            environment=request_environment(request),
        )
    if jwt_only:
        raise AuthenticationError("A bearer JWT is required.", code="UNAUTHORIZED")
    session_value = cookie(request, SESSION_COOKIE)
    if session_value is None:
        raise AuthenticationError("Sign in: send a bearer JWT or the session cookie.", code="UNAUTHORIZED")
    if request.method not in SAFE_METHODS:
        check_same_origin(request)
    return auth_service.resolve_session(uow, session_value, now=now, environment=request_environment(request))


def authenticate_api_key(request: Request, uow: UnitOfWork, now: datetime) -> ApiKeyPrincipal:
    presented = header(request, "x-api-key")
    if presented is None:
        raise InvalidApiKeyError("Missing X-Api-Key header.")
    return auth_service.authenticate_api_key(
        uow, presented, now=now, touch_every_seconds=get_settings().api_key_touch_seconds
    )


def authenticate_platform(request: Request, uow: UnitOfWork, now: datetime) -> PlatformPrincipal:
    try:
        token = bearer_token(request)
    except AuthenticationError:
        token = None
    return auth_service.authenticate_platform_token(uow, token, now=now)


def session_cookie_header(value: str, *, max_age: int, secure: bool) -> str:
    parts = [f"{SESSION_COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
