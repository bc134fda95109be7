"""Reading the audit trail (writes happen inside each use case's unit of work)."""

from __future__ import annotations

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.identity import DashboardPrincipal, Permission
from chalicelib.services.ports import Page, UnitOfWork


def list_audit_entries(
    uow: UnitOfWork, principal: DashboardPrincipal, *, limit: int, cursor: str | None
) -> Page[AuditEntry]:
    principal.require(Permission.AUDIT_READ)
    return uow.audit.list(principal.tenant_id, limit, cursor)
