"""Builders for unit tests: domain objects seeded straight into a fake unit of work.

Everything is pinned to one fixed instant, :data:`NOW`, so time rules are exact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.access import ApiKey, KeyStatus, PlatformToken
from chalicelib.domain.credentials import hash_secret, make_api_key, random_id
from chalicelib.domain.identity import Ability, DashboardPrincipal, Environment, PlatformPrincipal, Role
from chalicelib.domain.tenants import Tenant, User, UserStatus
from tests.fakes import FakeUnitOfWork

NOW = datetime(2026, 4, 15, 12, 0, 0, tzinfo=UTC)


def tenant(tenant_id: str = "2", company_name: str = "Acme Inc", **fields: Any) -> Tenant:
    return Tenant(id=tenant_id, company_name=company_name, created_at=NOW, updated_at=NOW, **fields)


def seed_tenant(uow: FakeUnitOfWork, tenant_id: str = "2", company_name: str = "Acme Inc", **fields: Any) -> Tenant:
    """Store a tenant and return it as a repository read returns it (with its version)."""
    uow.tenants.add(tenant(tenant_id, company_name, **fields))
    uow.commit()
    found = uow.tenants.get(tenant_id)
    assert found is not None
    return found


def seed_user(uow: FakeUnitOfWork, tenant_id: str, user_id: str = "usr_admin", role: Role = Role.ADMIN,
              status: UserStatus = UserStatus.ACTIVE) -> User:
    user = User(tenant_id=tenant_id, user_id=user_id, email=f"{user_id}@example.com", role=role,
                created_at=NOW, status=status)
    uow.users.save(user)
    uow.commit()
    return user


def seed_key(uow: FakeUnitOfWork, tenant_id: str = "2", environment: Environment = Environment.PRODUCTION, *,
             key_id: str | None = None, status: KeyStatus = KeyStatus.ACTIVE,
             last_used_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Store a key the way create_api_key does; returns (key, full key)."""
    key_id = key_id or random_id("", 16)
    full_key = make_api_key(environment, key_id)
    key = ApiKey(tenant_id=tenant_id, environment=environment, key_id=key_id, name=f"key {key_id}",
                 secret_hash=hash_secret(full_key), last4=full_key[-4:], created_at=NOW, created_by="user:seed",
                 status=status, last_used_at=last_used_at)
    uow.api_keys.add(key)
    uow.commit()
    return key, full_key


def seed_platform_token(uow: FakeUnitOfWork, *abilities: str, revoked: bool = False,
                        last_used_at: datetime | None = None) -> tuple[PlatformToken, str]:
    token_id = random_id("ptk_", 16)
    plaintext = f"{token_id}|{random_id('', 43)}"
    token = PlatformToken(token_id=token_id, name="ops", abilities=frozenset(abilities),
                          secret_hash=hash_secret(plaintext), created_at=NOW,
                          revoked_at=NOW if revoked else None, last_used_at=last_used_at)
    uow.platform_tokens.add(token)
    uow.commit()
    return token, plaintext


def dashboard(tenant_id: str = "2", role: Role = Role.ADMIN, *, user_id: str = "usr_admin",
              environment: Environment = Environment.PRODUCTION, session_id: str | None = None) -> DashboardPrincipal:
    return DashboardPrincipal(tenant_id=tenant_id, user_id=user_id, role=role, environment=environment,
                              via="session" if session_id else "jwt", session_id=session_id)


def platform(*abilities: Ability) -> PlatformPrincipal:
    return PlatformPrincipal(token_id="ptk_testtoken", abilities=frozenset(str(a) for a in abilities))


def audit_actions(uow: FakeUnitOfWork, tenant_id: str) -> list[str]:
    """Actions of a tenant's audit trail, newest first."""
    return [entry.action for entry in uow.audit.list(tenant_id, 1000, None).items]
