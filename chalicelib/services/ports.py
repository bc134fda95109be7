"""What services need from storage: repository protocols and the unit of work.

Reads go straight to the store. Writes are *staged* on the unit of work and land
together in one DynamoDB ``TransactWriteItems`` on :meth:`UnitOfWork.commit`
(all or nothing). Every repository method takes the tenant (and environment)
first, except the credential lookups that must find the tenant from a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from chalicelib.domain.access import ApiKey, PlatformToken, Session
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.customers import Customer
from chalicelib.domain.identity import Environment
from chalicelib.domain.tenants import Tenant, User

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None = None
    total: int | None = None
    extra: dict = field(default_factory=dict)


class TenantRepository(Protocol):
    def get(self, tenant_id: str) -> Tenant | None: ...
    def next_id(self) -> str: ...
    def add(self, tenant: Tenant) -> None: ...
    def save(self, tenant: Tenant) -> None: ...
    def directory(self, limit: int, cursor: str | None) -> Page[Tenant]: ...


class UserRepository(Protocol):
    def get(self, tenant_id: str, user_id: str) -> User | None: ...
    def get_with_tenant(self, tenant_id: str, user_id: str) -> tuple[Tenant | None, User | None]:
        """Both in one consistent read: every dashboard request needs the pair."""
    def list(self, tenant_id: str) -> list[User]: ...
    def save(self, user: User) -> None: ...


class ApiKeyRepository(Protocol):
    def get(self, tenant_id: str, environment: Environment, key_id: str) -> ApiKey | None: ...
    def find(self, key_id: str) -> ApiKey | None: ...
    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None) -> Page[ApiKey]: ...
    def list_all(self, tenant_id: str) -> list[ApiKey]: ...
    def add(self, key: ApiKey) -> None: ...
    def save(self, key: ApiKey) -> None: ...
    def touch(self, key: ApiKey, now: datetime) -> None: ...


class SessionRepository(Protocol):
    def get(self, tenant_id: str, session_id: str) -> Session | None: ...
    def add(self, session: Session) -> None: ...
    def delete(self, tenant_id: str, session_id: str) -> None: ...


class PlatformTokenRepository(Protocol):
    def get(self, token_id: str) -> PlatformToken | None: ...
    def add(self, token: PlatformToken) -> None: ...
    def save(self, token: PlatformToken) -> None: ...
    def touch(self, token: PlatformToken, now: datetime) -> None: ...


class AuditRepository(Protocol):
    def add(self, entry: AuditEntry) -> None: ...
    def list(self, tenant_id: str, limit: int, cursor: str | None) -> Page[AuditEntry]: ...


class CustomerRepository(Protocol):
    def get(self, tenant_id: str, environment: Environment, customer_id: str) -> Customer | None: ...
    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None,
             prefix: str | None = None) -> Page[Customer]: ...
    def add(self, customer: Customer) -> None: ...


class UnitOfWork(Protocol):
    tenants: TenantRepository
    users: UserRepository
    api_keys: ApiKeyRepository
    sessions: SessionRepository
    platform_tokens: PlatformTokenRepository
    audit: AuditRepository
    customers: CustomerRepository

    def commit(self) -> None:
        """Apply every staged write in one transaction; raise ConflictError if a condition fails."""

    def rollback(self) -> None:
        """Drop staged writes."""

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc: object) -> None: ...
