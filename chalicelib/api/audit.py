"""The tenant's audit trail (owner/admin)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.inputs import CURSOR, page_size
from chalicelib.api.responses import ok, page_body
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import audit_entry_view
from chalicelib.services.audit import list_audit_entries

bp = Blueprint(__name__)


@route(bp, "/dashboard/audit", "GET", auth=Auth.DASHBOARD, summary="List audit entries",
       tags=("Audit",), responses={200: "AuditPage"}, errors=(400, 403),
       params=(page_size(25),
               CURSOR))
def list_audit(ctx: Ctx, limit: int, cursor: str | None) -> Response:
    """Every state-changing action, newest first: actor, action, target, time."""
    page = list_audit_entries(ctx.uow, ctx.principal, limit=limit, cursor=cursor)
    return ok(page_body([audit_entry_view(e) for e in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))
