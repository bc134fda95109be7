"""Who is calling: principals for the four credential kinds, roles and permissions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chalicelib.domain.errors import PermissionDeniedError, ValidationError


class Environment(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"

    @classmethod
    def parse(cls, value: str | None, *, default: Environment | None = None,
              field: str = "environment") -> Environment:
        """Parse an ``X-Environment`` header or body field (errors name ``field``); absent → ``default``."""
        if value is None or value == "":
            if default is None:
                raise ValidationError(f"{field} is required", field=field)
            return default
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValidationError(f"{field} must be 'sandbox' or 'production'", field=field) from None


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MANAGER = "manager"
    VIEWER = "viewer"


class Permission(StrEnum):
    TENANT_READ = "tenant:read"
    TENANT_DELETE = "tenant:delete"
    API_KEYS_READ = "api_keys:read"
    API_KEYS_WRITE = "api_keys:write"
    AUDIT_READ = "audit:read"
    CUSTOMERS_WRITE = "customers:write"
    CREDITS_TOPUP = "credits:topup"  # and the caller's tenant must be the platform tenant
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    BILLING_READ = "billing:read"
    BILLING_WRITE = "billing:write"  # subscribe, change plan, open the portal, cancel


_EVERYONE = frozenset(Role)
_ADMINS = frozenset({Role.OWNER, Role.ADMIN})

#: The one table of who may do what on the dashboard.
ROLE_PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.TENANT_READ: _EVERYONE,
    Permission.TENANT_DELETE: _ADMINS,
    Permission.API_KEYS_READ: _EVERYONE,
    Permission.API_KEYS_WRITE: _ADMINS,
    Permission.AUDIT_READ: _ADMINS,
    Permission.CUSTOMERS_WRITE: _ADMINS | {Role.MANAGER},
    Permission.CREDITS_TOPUP: _ADMINS,
    Permission.WEBHOOKS_READ: _EVERYONE,
    Permission.WEBHOOKS_WRITE: _ADMINS,
    Permission.BILLING_READ: _EVERYONE,
    Permission.BILLING_WRITE: _ADMINS,
}


class Ability(StrEnum):
    """Platform token abilities (seed 002)."""

    TENANTS_READ = "tenants:read"
    TENANTS_WRITE = "tenants:write"
    CROSS_TENANT = "cross-tenant"


PLATFORM_TENANT_ID = "1"


@dataclass(frozen=True)
class DashboardPrincipal:
    """A dashboard user, authenticated by JWT or by session cookie."""

    tenant_id: str
    user_id: str
    role: Role
    environment: Environment
    via: str  # "jwt" | "session"
    session_id: str | None = None

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}"

    def require(self, permission: Permission) -> None:
        """Raise unless this user's role grants ``permission``."""
        if self.role not in ROLE_PERMISSIONS[permission]:
            raise PermissionDeniedError(
                f"Role '{self.role}' cannot perform '{permission}'.", code="FORBIDDEN"
            )


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """A Balance API caller; the key's environment scopes every read and write."""

    tenant_id: str
    environment: Environment
    key_id: str

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_id}"


@dataclass(frozen=True)
class PlatformPrincipal:
    """A platform operator token with explicit abilities."""

    token_id: str
    abilities: frozenset[str]

    @property
    def actor(self) -> str:
        return f"platform_token:{self.token_id}"

    def require(self, *abilities: Ability) -> None:
        """Raise the seed-002 403 unless every ability is granted."""
        if not all(ability in self.abilities for ability in abilities):
            raise PermissionDeniedError("Invalid ability provided.", code="invalid_ability")


@dataclass(frozen=True)
class OperatorPrincipal(PlatformPrincipal):
    """The operator at the ``tally`` CLI: every ability, audited as ``operator:cli`` (no token involved)."""

    token_id: str = "cli"
    abilities: frozenset[str] = frozenset(Ability)

    @property
    def actor(self) -> str:
        return "operator:cli"
