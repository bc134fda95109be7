"""Tenant use cases: read, create (operator), delete (seed 000)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.domain.access import KeyStatus
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.credentials import random_id
from chalicelib.domain.errors import NotFoundError, ValidationError
from chalicelib.domain.identity import DashboardPrincipal, Permission, Role
from chalicelib.domain.tenants import (
    DELETION_MESSAGE,
    BillingMode,
    Tenant,
    TenantStatus,
    User,
    UserStatus,
)
from chalicelib.services.ports import UnitOfWork

#: Writes per transaction when disabling a tenant's keys and users in chunks.
_CHUNK = 50


def get_tenant(uow: UnitOfWork, tenant_id: str) -> Tenant:
    tenant = uow.tenants.get(tenant_id)
    if tenant is None:
        raise NotFoundError("Tenant not found.")
    return tenant


def create_tenant(
    uow: UnitOfWork,
    *,
    company_name: str,
    now: datetime,
    actor: str = "operator:cli",
    billing_mode: BillingMode = BillingMode.MONTHLY,
    plan: str = "free",
    status: TenantStatus = TenantStatus.ACTIVE,
    stripe_customer_id: str | None = None,
    subdomain: str | None = None,
    final_domain: str | None = None,
    lang: str = "en",
    owner_email: str | None = None,
    tenant_id: str | None = None,
) -> tuple[Tenant, User]:
    """Create a tenant and its owner user. ``tenant_id`` is only for seeding fixed ids."""
    name = (company_name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError("name must be 1-200 characters", field="name")
    if stripe_customer_id is not None and not stripe_customer_id.startswith("cus_"):
        raise ValidationError("stripe customer ids start with 'cus_'", field="stripeCustomerId")
    new_id = tenant_id or uow.tenants.next_id()
    tenant = Tenant(
        id=new_id,
        company_name=name,
        created_at=now,
        updated_at=now,
        status=status,
        billing_mode=billing_mode,
        plan=plan,
        stripe_customer_id=stripe_customer_id,
        subdomain=subdomain or f"tenant-{new_id}.tally.local",
        final_domain=final_domain,
        lang=lang,
    )
    owner = User(
        tenant_id=new_id,
        user_id=random_id("usr_", 12),
        email=owner_email or f"owner@tenant-{new_id}.example",
        role=Role.OWNER,
        created_at=now,
    )
    uow.tenants.add(tenant)
    uow.users.save(owner)
    uow.audit.add(
        AuditEntry(tenant_id=new_id, actor=actor, action="tenant.created", target=f"tenant:{new_id}", at=now)
    )
    uow.commit()
    return tenant, owner


def ensure_user(uow: UnitOfWork, tenant_id: str, user_id: str, role: Role, *, now: datetime) -> User:
    """Provision a user in a tenant if absent (operator and dev tooling)."""
    get_tenant(uow, tenant_id)
    user = uow.users.get(tenant_id, user_id)
    if user is not None and user.role == role and user.is_active:
        return user
    user = User(
        tenant_id=tenant_id,
        user_id=user_id,
        email=user.email if user else f"{user_id}@tenant-{tenant_id}.example",
        role=role,
        created_at=user.created_at if user else now,
    )
    uow.users.save(user)
    uow.commit()
    return user


def delete_tenant(uow: UnitOfWork, principal: DashboardPrincipal, confirmation: object, *, now: datetime) -> str:
    """Deactivate the account; verification data stays readable for audit.

    Keys and users are disabled in chunked transactions first, and the tenant row
    last (with the audit entry), so a crash midway is finished by simply retrying.
    """
    principal.require(Permission.TENANT_DELETE)
    tenant = get_tenant(uow, principal.tenant_id)
    tenant.check_deletion_confirmation(confirmation)

    pending_keys = [
        replace(key, status=KeyStatus.DISABLED, revoked_at=key.revoked_at or now)
        for key in uow.api_keys.list_all(tenant.id)
        if key.status == KeyStatus.ACTIVE
    ]
    pending_users = [
        replace(user, status=UserStatus.DEACTIVATED)
        for user in uow.users.list(tenant.id)
        if user.is_active
    ]
    for start in range(0, len(pending_keys), _CHUNK):
        for key in pending_keys[start : start + _CHUNK]:
            uow.api_keys.save(key)
        uow.commit()
    for start in range(0, len(pending_users), _CHUNK):
        for user in pending_users[start : start + _CHUNK]:
            uow.users.save(user)
        uow.commit()
    from chalicelib.services import webhooks

    webhooks_disabled = webhooks.disable_all(uow, tenant.id, now=now)  # ≤ 40 endpoints: one transaction
    if webhooks_disabled:
        uow.commit()

    uow.tenants.save(tenant.deleted(now))
    uow.audit.add(
        AuditEntry(
            tenant_id=tenant.id,
            actor=principal.actor,
            action="tenant.deleted",
            target=f"tenant:{tenant.id}",
            at=now,
            details={
                "apiKeysDisabled": len(pending_keys),
                "usersDeactivated": len(pending_users),
                "webhooksDisabled": webhooks_disabled,
                "planCancelled": tenant.plan,
            },
        )
    )
    uow.commit()
    return DELETION_MESSAGE
