"""Seed 000: tenant details and account deletion."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.inputs import ENVIRONMENT_HEADER
from chalicelib.api.responses import ok
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import tenant_view
from chalicelib.services import tenants as tenant_service

bp = Blueprint(__name__)


@route(bp, "/dashboard/tenant", "GET", auth=Auth.DASHBOARD, summary="Get tenant details",
       tags=("Tenant",), responses={200: "Tenant"}, params=(ENVIRONMENT_HEADER,))
def get_tenant(ctx: Ctx) -> Response:
    """Your organization's tenant id, company name, status, billing mode and environments."""
    return ok(tenant_view(ctx.tenant))


@route(bp, "/dashboard/tenant", "DELETE", auth=Auth.DASHBOARD, summary="Delete account",
       tags=("Tenant",), responses={200: "Message"}, errors=(400, 403),
       request_body="DeleteTenantRequest", params=(ENVIRONMENT_HEADER,))
def delete_tenant(ctx: Ctx, body: dict) -> Response:
    """Deactivate the account (owner/admin). `confirmation` must equal the company name exactly.

    Disables users, API keys, webhooks and integrations and cancels the plan;
    verification data stays readable permanently.
    """
    message = tenant_service.delete_tenant(ctx.uow, ctx.principal, body.get("confirmation"), now=ctx.now)
    return ok({"message": message})
