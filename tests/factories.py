"""Builders for tenants, users and credentials, through the real services."""

from __future__ import annotations

from typing import Any

from chalicelib import bootstrap
from chalicelib.domain.identity import DashboardPrincipal, Environment, Role
from chalicelib.domain.tenants import BillingMode, Tenant
from chalicelib.services import api_keys as key_service
from chalicelib.services import auth as auth_service
from chalicelib.services import platform as platform_service
from chalicelib.services import tenants as tenant_service
from chalicelib.settings import get_settings


class World:
    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def uow(self) -> Any:
        return bootstrap.unit_of_work()

    def tenant(self, name: str = "Acme Inc", **options: Any) -> Tenant:
        options.setdefault("billing_mode", BillingMode.MONTHLY)
        tenant, _owner = tenant_service.create_tenant(self.uow(), company_name=name, now=self.clock(), **options)
        return tenant

    def user(self, tenant: Tenant, role: Role | str = Role.ADMIN, user_id: str | None = None) -> str:
        role = Role(role)
        user_id = user_id or f"usr_{role}_{tenant.id}"
        tenant_service.ensure_user(self.uow(), tenant.id, user_id, role, now=self.clock())
        return user_id

    def jwt(self, tenant: Tenant, role: Role | str = Role.ADMIN, user_id: str | None = None, **claims: Any) -> str:
        user_id = self.user(tenant, role, user_id)
        if not claims:
            return bootstrap.jwt_verifier().issue(tenant_id=tenant.id, user_id=user_id, role=str(role))
        import time

        import jwt

        settings = get_settings()
        payload = {"sub": user_id, "tenant_id": tenant.id, "role": str(role), "iss": settings.jwt_issuer,
                   "aud": settings.jwt_audience, "exp": int(time.time()) + 600}
        payload.update({k: v for k, v in claims.items() if v is not None})
        for key in [k for k, v in claims.items() if v is None]:
            payload.pop(key, None)
        return jwt.encode(payload, settings.jwt_secret, algorithm="HS256")

    def auth(self, tenant: Tenant, role: Role | str = Role.ADMIN, environment: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.jwt(tenant, role)}"}
        if environment:
            headers["X-Environment"] = environment
        return headers

    def session_cookie(self, tenant: Tenant, role: Role | str = Role.ADMIN) -> str:
        user_id = self.user(tenant, role)
        principal = DashboardPrincipal(tenant_id=tenant.id, user_id=user_id, role=Role(role),
                                       environment=Environment.PRODUCTION, via="jwt")
        _session, value = auth_service.open_session(self.uow(), principal, now=self.clock(),
                                                     ttl_seconds=get_settings().session_ttl_seconds)
        return value

    def api_key(self, tenant: Tenant, environment: str = "production", name: str = "test key") -> tuple[str, str]:
        """Returns (key id, full key)."""
        principal = DashboardPrincipal(tenant_id=tenant.id, user_id="factory", role=Role.OWNER,
                                       environment=Environment(environment), via="jwt")
        key, full_key = key_service.create_api_key(self.uow(), principal, name=name,
                                                   environment=Environment(environment), now=self.clock())
        return key.key_id, full_key

    def platform_token(self, *abilities: str) -> str:
        _token, plaintext = platform_service.create_platform_token(
            self.uow(), name="test", abilities=list(abilities), now=self.clock())
        return plaintext
