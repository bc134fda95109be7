"""Missing payments (seed 002, SPEC "Scheduled jobs"): the flag, and the dashboard block it leads to.

One definition of flagging and clearing serves the platform API (``POST/DELETE
/tenants/{t}/missing-payments``) and the Stripe webhook (``invoice.payment_failed`` / ``invoice.paid``):
the first mark is kept (the grace period never restarts), every change is audited. The functions stage
writes in the caller's unit of work and never commit, so a caller can make them part of one transaction
(the webhook: the effect and the event's "handled" mark together).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.tenants import Tenant
from chalicelib.services.ports import UnitOfWork


def _audit(uow: UnitOfWork, tenant: Tenant, action: str, actor: str, now: datetime,
           details: dict | None = None) -> None:
    uow.audit.add(AuditEntry(tenant_id=tenant.id, actor=actor, action=action, target=f"tenant:{tenant.id}",
                             at=now, details=details or {}))


def stage_mark_missing_payment(uow: UnitOfWork, tenant: Tenant, *, actor: str, now: datetime,
                               details: dict | None = None) -> Tenant:
    """Flag unpaid invoices (staged); a tenant already flagged is returned unchanged (nothing staged)."""
    after = tenant.mark_missing_payment(now)
    if after is tenant:
        return tenant
    uow.tenants.save(after)
    _audit(uow, after, "tenant.missing_payments.marked", actor, now, details)
    return after


def stage_clear_missing_payment(uow: UnitOfWork, tenant: Tenant, *, actor: str, now: datetime,
                                details: dict | None = None) -> Tenant:
    """Clear the flag (staged), which lifts a block at once; a clear tenant is returned unchanged."""
    after = tenant.clear_missing_payment(now)
    if after is tenant:
        return tenant
    if tenant.dashboard_blocked_at is not None:
        after = replace(after, dashboard_blocked_at=None)
    uow.tenants.save(after)
    _audit(uow, after, "tenant.missing_payments.cleared", actor, now, details)
    return after
