"""Platform operator use cases (seed 002): tenant directory, missing payments, tokens."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

from chalicelib.domain.access import PlatformToken
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.credentials import hash_secret, new_secret, random_id
from chalicelib.domain.errors import NotFoundError, PermissionDeniedError, ValidationError
from chalicelib.domain.identity import PLATFORM_TENANT_ID, Ability, PlatformPrincipal
from chalicelib.domain.tenants import Tenant
from chalicelib.services.ports import Page, UnitOfWork

#: Seed 002's page sizes of the tenant directory (the API and the operator CLI alike).
PER_PAGE_MAX = 500


def per_page_value(raw: str) -> int | None:
    """The page size ``raw`` names, or None when it is not a whole number from 1 to PER_PAGE_MAX."""
    if not re.fullmatch(r"[0-9]{1,4}", raw):  # str.isdigit() takes "²" and "٣", which are not page sizes
        return None
    return int(raw) if 1 <= int(raw) <= PER_PAGE_MAX else None


def create_platform_token(
    uow: UnitOfWork, *, name: str, abilities: list[str], now: datetime
) -> tuple[PlatformToken, str]:
    """Returns the token and its one-time plaintext ``id|secret``."""
    known = {a.value for a in Ability}
    unknown = sorted(set(abilities) - known)
    if unknown:
        raise ValidationError(f"unknown abilities: {', '.join(unknown)}", field="abilities")
    token_id = random_id("ptk_", 16)
    plaintext = f"{token_id}|{new_secret()}"
    token = PlatformToken(
        token_id=token_id,
        name=name or token_id,
        abilities=frozenset(abilities),
        secret_hash=hash_secret(plaintext),
        created_at=now,
    )
    uow.platform_tokens.add(token)
    uow.audit.add(
        AuditEntry(
            tenant_id=PLATFORM_TENANT_ID,
            actor="operator:cli",
            action="platform_token.created",
            target=f"platform_token:{token_id}",
            at=now,
            details={"abilities": sorted(abilities)},
        )
    )
    uow.commit()
    return token, plaintext


def revoke_platform_token(uow: UnitOfWork, token_id: str, *, now: datetime) -> PlatformToken:
    token = uow.platform_tokens.get(token_id)
    if token is None:
        raise NotFoundError("Platform token not found.")
    if not token.is_active:
        return token
    revoked = replace(token, revoked_at=now)
    uow.platform_tokens.save(revoked)
    uow.audit.add(
        AuditEntry(
            tenant_id=PLATFORM_TENANT_ID,
            actor="operator:cli",
            action="platform_token.revoked",
            target=f"platform_token:{token_id}",
            at=now,
        )
    )
    uow.commit()
    return revoked


def list_platform_tokens(uow: UnitOfWork) -> list[PlatformToken]:
    """Every token, revoked ones included, by id: the operator's view (only hashes are stored)."""
    return uow.platform_tokens.list()


def list_tenants(uow: UnitOfWork, principal: PlatformPrincipal, *, per_page: int, cursor: str | None) -> Page[Tenant]:
    principal.require(Ability.TENANTS_READ, Ability.CROSS_TENANT)
    return uow.tenants.directory(per_page, cursor)


def _target_tenant(uow: UnitOfWork, principal: PlatformPrincipal, tenant_id: str) -> Tenant:
    principal.require(Ability.TENANTS_WRITE)
    if tenant_id == PLATFORM_TENANT_ID:
        raise PermissionDeniedError(
            "The platform tenant cannot be modified through a tenant URL.", code="platform_tenant_forbidden"
        )
    tenant = uow.tenants.get(tenant_id) if tenant_id.isdigit() else None
    if tenant is None:
        raise NotFoundError("Tenant not found.", code="tenant_not_found")
    return tenant


def mark_missing_payments(uow: UnitOfWork, principal: PlatformPrincipal, tenant_id: str, *, now: datetime) -> Tenant:
    tenant = _target_tenant(uow, principal, tenant_id)
    if not tenant.stripe_customer_id:
        raise ValidationError(
            "The tenant has no Stripe customer attached.", code="tenant_has_no_stripe_customer"
        )
    from chalicelib.services import payment_blocks

    after = payment_blocks.stage_mark_missing_payment(uow, tenant, actor=principal.actor, now=now)
    uow.commit()
    return after


def clear_missing_payments(uow: UnitOfWork, principal: PlatformPrincipal, tenant_id: str, *, now: datetime) -> Tenant:
    """Without a Stripe customer the state is implicitly clear: a no-op answering 200."""
    tenant = _target_tenant(uow, principal, tenant_id)
    from chalicelib.services import payment_blocks

    after = payment_blocks.stage_clear_missing_payment(uow, tenant, actor=principal.actor, now=now)
    uow.commit()
    return after
