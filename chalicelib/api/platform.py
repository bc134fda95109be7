"""Seed 002: the platform tenants API (platform tokens with abilities)."""

from __future__ import annotations

from urllib.parse import urlencode

from chalice import Blueprint, Response

from chalicelib.api.inputs import CURSOR, path_param, query
from chalicelib.api.responses import platform_ok
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import missing_payments_view, tenant_directory_view
from chalicelib.services import platform as platform_service
from chalicelib.settings import get_settings

bp = Blueprint(__name__)
TENANT = path_param("tenant", "Tenant id (decimal string). The platform tenant `1` is rejected with 403.")


#: Seed 002's page size: 1-500, default 15, refused with Laravel's own words (422 ``errors.per_page``).
PER_PAGE = query("per_page", f"Page size 1-{platform_service.PER_PAGE_MAX} (default 15).",
                 {"type": "integer", "minimum": 1, "maximum": platform_service.PER_PAGE_MAX}, default=15,
                 message=f"The per page field must be between 1 and {platform_service.PER_PAGE_MAX}.")


@route(bp, "/tenants", "GET", auth=Auth.PLATFORM, summary="List tenants with an active plan",
       tags=("Platform",), responses={200: "PlatformTenantList"}, errors=(403, 422),
       params=(PER_PAGE, CURSOR))
def list_tenants(ctx: Ctx, per_page: int, cursor: str | None) -> Response:
    """Requires `tenants:read` and `cross-tenant`. Cursor-paginated, ordered by id."""
    page = platform_service.list_tenants(ctx.uow, ctx.principal, per_page=per_page, cursor=cursor)
    base = f"{get_settings().public_base_url}/tenants"
    next_link = f"{base}?{urlencode({'per_page': per_page, 'cursor': page.next_cursor})}" if page.next_cursor else None
    return platform_ok(
        [tenant_directory_view(t) for t in page.items],
        links={"first": f"{base}?{urlencode({'per_page': per_page})}", "prev": None, "next": next_link},
        meta={"path": base, "per_page": per_page, "next_cursor": page.next_cursor,
              "has_more": page.next_cursor is not None},
    )


@route(bp, "/tenants/{tenant}/missing-payments", "POST", auth=Auth.PLATFORM,
       summary="Flag a tenant as having unpaid invoices", tags=("Platform",),
       responses={200: "MissingPayments"}, errors=(400, 403, 404), params=(TENANT,))
def mark_missing_payments(ctx: Ctx, tenant: str) -> Response:
    """Requires `tenants:write`. The dashboard blocks 14 days after the first mark."""
    updated = platform_service.mark_missing_payments(ctx.uow, ctx.principal, tenant, now=ctx.now)
    return platform_ok(missing_payments_view(updated, ctx.now))


@route(bp, "/tenants/{tenant}/missing-payments", "DELETE", auth=Auth.PLATFORM,
       summary="Clear the unpaid-invoices flag", tags=("Platform",),
       responses={200: "MissingPayments"}, errors=(403, 404), params=(TENANT,))
def clear_missing_payments(ctx: Ctx, tenant: str) -> Response:
    """Requires `tenants:write`. Clearing an already clear state is a no-op (200)."""
    updated = platform_service.clear_missing_payments(ctx.uow, ctx.principal, tenant, now=ctx.now)
    return platform_ok(missing_payments_view(updated, ctx.now))
