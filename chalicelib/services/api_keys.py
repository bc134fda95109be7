"""API key management from the dashboard: create, list, get, rotate, revoke."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.domain.access import ApiKey, KeyStatus
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.credentials import hash_secret, make_api_key, time_ordered_id
from chalicelib.domain.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.domain.identity import DashboardPrincipal, Environment, Permission
from chalicelib.services.ports import Page, UnitOfWork

MAX_NAME = 100


def _audit(principal: DashboardPrincipal, key: ApiKey, action: str, now: datetime) -> AuditEntry:
    return AuditEntry(
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=action,
        target=f"api_key:{key.key_id}",
        environment=str(key.environment),
        at=now,
        details={"name": key.name},
    )


def _issue(key_id: str, environment: Environment) -> tuple[str, str, str]:
    full_key = make_api_key(environment, key_id)
    return full_key, hash_secret(full_key), full_key[-4:]


def create_api_key(
    uow: UnitOfWork, principal: DashboardPrincipal, *, name: object, environment: Environment, now: datetime
) -> tuple[ApiKey, str]:
    """Returns the stored key and the full key string, which is never shown again."""
    principal.require(Permission.API_KEYS_WRITE)
    name = name.strip() if isinstance(name, str) else None
    if not name or len(name) > MAX_NAME:
        raise ValidationError(f"name must be 1-{MAX_NAME} characters", field="name")
    key_id = time_ordered_id(int(now.timestamp() * 1000))  # list order = creation order
    full_key, secret_hash, last4 = _issue(key_id, environment)
    key = ApiKey(
        tenant_id=principal.tenant_id,
        environment=environment,
        key_id=key_id,
        name=name,
        secret_hash=secret_hash,
        last4=last4,
        created_at=now,
        created_by=principal.actor,
    )
    uow.api_keys.add(key)
    uow.audit.add(_audit(principal, key, "api_key.created", now))
    uow.commit()
    return key, full_key


def list_api_keys(
    uow: UnitOfWork, principal: DashboardPrincipal, *, limit: int, cursor: str | None
) -> Page[ApiKey]:
    principal.require(Permission.API_KEYS_READ)
    return uow.api_keys.list(principal.tenant_id, principal.environment, limit, cursor)


def get_api_key(uow: UnitOfWork, principal: DashboardPrincipal, key_id: str) -> ApiKey:
    principal.require(Permission.API_KEYS_READ)
    key = uow.api_keys.get(principal.tenant_id, principal.environment, key_id)
    if key is None:
        raise NotFoundError("API key not found.")
    return key


def rotate_api_key(
    uow: UnitOfWork, principal: DashboardPrincipal, key_id: str, *, now: datetime
) -> tuple[ApiKey, str]:
    """New secret, same id: the old secret stops working the moment this commits."""
    principal.require(Permission.API_KEYS_WRITE)
    key = get_api_key(uow, principal, key_id)
    if not key.is_active:
        raise ConflictError("Only an active key can be rotated.", code="API_KEY_REVOKED")
    full_key, secret_hash, last4 = _issue(key.key_id, key.environment)
    rotated = replace(key, secret_hash=secret_hash, last4=last4, rotated_at=now)
    uow.api_keys.save(rotated)
    uow.audit.add(_audit(principal, rotated, "api_key.rotated", now))
    uow.commit()
    return rotated, full_key


def revoke_api_key(uow: UnitOfWork, principal: DashboardPrincipal, key_id: str, *, now: datetime) -> ApiKey:
    """Idempotent: revoking a revoked key returns it unchanged."""
    principal.require(Permission.API_KEYS_WRITE)
    key = get_api_key(uow, principal, key_id)
    if key.status != KeyStatus.ACTIVE:
        return key
    revoked = replace(key, status=KeyStatus.REVOKED, revoked_at=now)
    uow.api_keys.save(revoked)
    uow.audit.add(_audit(principal, revoked, "api_key.revoked", now))
    uow.commit()
    return revoked
