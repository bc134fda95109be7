"""Authentication use cases for the four credential kinds.

Token *signature* checks (JWT) happen in an adapter; here we decide whether the
verified identity may act: the tenant exists and is not deleted, the user is
active, the key or token is live, and the session has not expired.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.access import Session
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.credentials import (
    hash_secret,
    new_secret,
    parse_api_key,
    parse_platform_token,
    parse_session_cookie,
    random_id,
    secret_matches,
)
from chalicelib.domain.errors import AuthenticationError, InvalidApiKeyError, PaymentRequiredError
from chalicelib.domain.identity import (
    ApiKeyPrincipal,
    DashboardPrincipal,
    Environment,
    PlatformPrincipal,
    Role,
)
from chalicelib.domain.tenants import Tenant
from chalicelib.services.ports import UnitOfWork


def _load_active_member(uow: UnitOfWork, tenant_id: str, user_id: str) -> Tenant:
    """The tenant, provided it is live and the user is active in it (one read)."""
    tenant, user = uow.users.get_with_tenant(tenant_id, user_id)
    if tenant is None:
        raise AuthenticationError("Unknown tenant for this credential.", code="INVALID_TOKEN")
    if tenant.is_deleted:
        raise AuthenticationError("This account has been deleted.", code="ACCOUNT_DELETED")
    if user is None or not user.is_active:
        raise AuthenticationError("This user is not active in the tenant.", code="USER_DEACTIVATED")
    return tenant


def check_dashboard_block(tenant: Tenant, now: datetime, *, billing_route: bool) -> None:
    """A tenant flagged for missing payments past its limit date may only reach billing routes."""
    if tenant.dashboard_blocked(now) and not billing_route:
        raise PaymentRequiredError(
            "The dashboard is blocked because of unpaid invoices. Settle them on the billing page.",
            code="DASHBOARD_BLOCKED",
        )


def dashboard_principal_from_claims(
    uow: UnitOfWork,
    claims: Mapping[str, Any],
    *,
    tenant_claim: str,
    role_claim: str,
    environment: Environment,
) -> tuple[DashboardPrincipal, Tenant]:
    """Turn verified JWT claims into a principal; the user must be active in that tenant."""
    user_id, tenant_id, role = claims.get("sub"), claims.get(tenant_claim), claims.get(role_claim)
    if not isinstance(user_id, str) or not user_id or tenant_id is None:
        raise AuthenticationError("The token lacks the user or tenant claim.", code="INVALID_TOKEN")
    try:
        role = Role(str(role))
    except ValueError:
        raise AuthenticationError("The token carries no valid role.", code="INVALID_TOKEN") from None
    tenant = _load_active_member(uow, str(tenant_id), user_id)
    principal = DashboardPrincipal(
        tenant_id=tenant.id, user_id=user_id, role=role, environment=environment, via="jwt"
    )
    return principal, tenant


# --- sessions ------------------------------------------------------------------------------


def open_session(
    uow: UnitOfWork, principal: DashboardPrincipal, *, now: datetime, ttl_seconds: int
) -> tuple[Session, str]:
    """Exchange a verified JWT identity for a server-side session; returns the cookie value."""
    secret = new_secret()
    session = Session(
        tenant_id=principal.tenant_id,
        session_id=random_id("ses_", 20),
        user_id=principal.user_id,
        role=str(principal.role),
        secret_hash=hash_secret(secret),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    uow.sessions.add(session)
    uow.audit.add(
        AuditEntry(
            tenant_id=principal.tenant_id,
            actor=principal.actor,
            action="session.created",
            target=f"session:{session.session_id}",
            at=now,
        )
    )
    uow.commit()
    return session, f"{session.tenant_id}.{session.session_id}.{secret}"


def resolve_session(
    uow: UnitOfWork, cookie_value: str | None, *, now: datetime, environment: Environment
) -> tuple[DashboardPrincipal, Tenant]:
    parsed = parse_session_cookie(cookie_value)
    if parsed is None:
        raise AuthenticationError("The session cookie is missing or malformed.", code="INVALID_SESSION")
    tenant_id, session_id, secret = parsed
    session = uow.sessions.get(tenant_id, session_id)
    if session is None or not secret_matches(secret, session.secret_hash):
        raise AuthenticationError("The session is not valid.", code="INVALID_SESSION")
    if not session.is_live(now):
        raise AuthenticationError("The session has expired; sign in again.", code="SESSION_EXPIRED")
    tenant = _load_active_member(uow, tenant_id, session.user_id)
    principal = DashboardPrincipal(
        tenant_id=tenant_id,
        user_id=session.user_id,
        role=Role(session.role),
        environment=environment,
        via="session",
        session_id=session_id,
    )
    return principal, tenant


def close_session(
    uow: UnitOfWork, principal: DashboardPrincipal, *, now: datetime, cookie_value: str | None = None
) -> None:
    """Log out: the session stops working at once (its row is deleted).

    A request authenticated by JWT that also carries the cookie ends that cookie's
    session too, provided it belongs to the same user.
    """
    session_id = principal.session_id
    parsed = parse_session_cookie(cookie_value) if session_id is None else None
    if parsed is not None and parsed[0] == principal.tenant_id:
        session = uow.sessions.get(parsed[0], parsed[1])
        if session and session.user_id == principal.user_id and secret_matches(parsed[2], session.secret_hash):
            session_id = session.session_id
    if session_id is None:
        return
    uow.sessions.delete(principal.tenant_id, session_id)
    uow.audit.add(
        AuditEntry(
            tenant_id=principal.tenant_id,
            actor=principal.actor,
            action="session.deleted",
            target=f"session:{session_id}",
            at=now,
        )
    )
    uow.commit()


# --- API keys ------------------------------------------------------------------------------


def authenticate_api_key(
    uow: UnitOfWork, presented: str | None, *, now: datetime, touch_every_seconds: int
) -> ApiKeyPrincipal:
    """One index lookup; ``lastUsedAt`` is refreshed at most every ``touch_every_seconds``."""
    parsed = parse_api_key(presented)
    if parsed is None:
        raise InvalidApiKeyError("Invalid or missing API key.")
    key = uow.api_keys.find(parsed.public_id)
    if (
        key is None
        or key.environment != parsed.environment
        or not key.is_active
        or not secret_matches(parsed.full_key, key.secret_hash)
    ):
        raise InvalidApiKeyError("Invalid or missing API key.")
    if key.needs_touch(now, touch_every_seconds):
        uow.api_keys.touch(key, now)
    return ApiKeyPrincipal(tenant_id=key.tenant_id, environment=key.environment, key_id=key.key_id)


# --- platform tokens -------------------------------------------------------------------------


def authenticate_platform_token(uow: UnitOfWork, presented: str | None, *, now: datetime) -> PlatformPrincipal:
    parsed = parse_platform_token(presented)
    if parsed is None:
        raise AuthenticationError("Unauthenticated.", code="unauthenticated")
    token_id, secret = parsed
    token = uow.platform_tokens.get(token_id)
    if token is None or not token.is_active or not secret_matches(f"{token_id}|{secret}", token.secret_hash):
        raise AuthenticationError("Unauthenticated.", code="unauthenticated")
    if token.last_used_at is None or now - token.last_used_at >= timedelta(seconds=60):
        uow.platform_tokens.touch(token, now)
    return PlatformPrincipal(token_id=token.token_id, abilities=token.abilities)
