"""Seed 004: prepaid credit balances and ledger entries; platform-admin top-ups."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.inputs import CURSOR, PAGE_NUMBER, page_size
from chalicelib.api.responses import ok, page_body
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import credit_entry_view
from chalicelib.domain.errors import PermissionDeniedError
from chalicelib.domain.identity import PLATFORM_TENANT_ID, Permission
from chalicelib.services import credits as credit_service

bp = Blueprint(__name__)


@route(bp, "/dashboard/credit/balances", "GET", auth=Auth.DASHBOARD, summary="Credit balance",
       tags=("Credits",), responses={200: "CreditBalances"}, billing=True)
def get_balances(ctx: Ctx) -> Response:
    """`availableBalance = creditBalance - reserved`; one read of the account row."""
    account = credit_service.balances(ctx.uow, ctx.principal.tenant_id)
    return ok({"creditBalance": account.credit_balance, "availableBalance": account.available,
               "reserved": account.reserved})


@route(bp, "/dashboard/credit/entries", "GET", auth=Auth.DASHBOARD, summary="Credit ledger entries",
       tags=("Credits",), responses={200: "CreditEntryPage"}, errors=(400,), billing=True,
       params=(PAGE_NUMBER, page_size(20), CURSOR))
def list_entries(ctx: Ctx, page: int, limit: int, cursor: str | None) -> Response:
    """Newest first: topup, reservation, settlement, release, refund; entries are immutable."""
    page = credit_service.entries(ctx.uow, ctx.principal.tenant_id, limit=limit, cursor=cursor, page=page)
    return ok(page_body([credit_entry_view(e) for e in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=page.total))


@route(bp, "/dashboard/credit/topups", "POST", auth=Auth.DASHBOARD, summary="Top up a tenant's credits",
       tags=("Credits",), responses={201: "CreditTopup"}, errors=(400, 403, 404), request_body="TopupRequest")
def create_topup(ctx: Ctx, body: dict) -> Response:
    """Platform admins only (owners/admins of the platform tenant `1`): credits a tenant's account."""
    ctx.principal.require(Permission.CREDITS_TOPUP)
    if ctx.principal.tenant_id != PLATFORM_TENANT_ID:
        raise PermissionDeniedError("Only platform administrators can top up credits.", code="FORBIDDEN")
    tenant_id, amount, description = body["tenantId"], body["amount"], body.get("description")
    account, entry = credit_service.topup(ctx.uow, tenant_id, amount, actor=ctx.principal.actor, now=ctx.now,
                                          description=description)
    return ok({"tenantId": tenant_id, "entry": credit_entry_view(entry),
               "balances": {"creditBalance": account.credit_balance, "availableBalance": account.available,
                            "reserved": account.reserved}}, 201)
