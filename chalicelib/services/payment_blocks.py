"""Missing payments (seed 002, SPEC "Scheduled jobs"): the flag, and the dashboard block it leads to.

One definition of flagging and clearing serves the platform API (``POST/DELETE
/tenants/{t}/missing-payments``) and the Stripe webhook (``invoice.payment_failed`` / ``invoice.paid``):
the first mark is kept (the grace period never restarts), every change is audited. The functions stage
writes in the caller's unit of work and never commit, so a caller can make them part of one transaction
(the webhook: the effect and the event's "handled" mark together).

The block itself is computed from the current time (``Tenant.dashboard_blocked``); the hourly
missing-payment-blocks job *records* it once it has happened (``record_due_blocks``: the tenant's
``dashboard_blocked_at``, an audit entry and a ``tenant.dashboard_blocked`` event, one transaction), and
clearing a recorded block records the unblock the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.errors import ConcurrentWriteError
from chalicelib.domain.identity import Environment
from chalicelib.domain.tenants import Tenant
from chalicelib.services.ports import OutboxRef, UnitOfWork

BLOCK_JOB_ACTOR = "job:missing-payment-blocks"
#: Account events go to the tenant's production endpoints only: the block is a fact about the account, not
#: about test data, and a tenant registering one URL in both environments gets each event once.
ACCOUNT_EVENTS_ENVIRONMENT = Environment.PRODUCTION
DUE_PAGE = 100


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
    if tenant.dashboard_blocked_at is not None:  # a recorded block is lifted: recorded the same way
        _audit(uow, after, "tenant.dashboard_unblocked", actor, now,
               {"dashboardBlockedAt": iso_ms(tenant.dashboard_blocked_at)})
        _stage_event(uow, after, "tenant.dashboard_unblocked", now, {
            "tenantId": after.id, "dashboardBlocked": False, "dashboardBlockedAt": iso_ms(tenant.dashboard_blocked_at),
            "unblockedAt": iso_ms(now)})
    return after


def _stage_event(uow: UnitOfWork, tenant: Tenant, kind: str, now: datetime, data: dict) -> OutboxRef | None:
    """``kind``: an EventType value. The webhook modules load only here, off the cold start."""
    from chalicelib.domain.webhooks import EventType
    from chalicelib.services.webhooks import stage_events

    outbox = stage_events(uow, tenant.id, ACCOUNT_EVENTS_ENVIRONMENT, [(EventType(kind), data)], now=now)
    return uow.webhooks.outbox_ref(outbox) if outbox is not None else None


def stage_record_block(uow: UnitOfWork, tenant: Tenant, *, now: datetime,
                       actor: str = BLOCK_JOB_ACTOR) -> tuple[Tenant, OutboxRef | None] | None:
    """Record a block that is in force (staged): ``dashboard_blocked_at``, its audit entry and the
    ``tenant.dashboard_blocked`` event, for one transaction. None when there is nothing to record (not
    blocked now, or recorded already). The tenant save is conditioned on the version read, so of two
    runs recording the same block one commits."""
    if tenant.dashboard_blocked_at is not None or not tenant.dashboard_blocked(now):
        return None
    limit = tenant.missing_payment_limit_date
    after = replace(tenant, dashboard_blocked_at=now, updated_at=now)
    uow.tenants.save(after)
    _audit(uow, after, "tenant.dashboard_blocked", actor, now, {"missingPaymentLimitDate": iso_ms(limit)})
    ref = _stage_event(uow, after, "tenant.dashboard_blocked", now, {
        "tenantId": after.id, "dashboardBlocked": True, "dashboardBlockedAt": iso_ms(now),
        "hasUnpaidInvoicesAt": iso_ms(after.has_unpaid_invoices_at), "missingPaymentLimitDate": iso_ms(limit)})
    return after, ref


@dataclass
class BlockReport:
    blocked: list[str] = field(default_factory=list)  # tenants whose block this run recorded
    outbox: list[OutboxRef] = field(default_factory=list)  # their events, to announce after commit
    skipped: int = 0  # found on the index but nothing to record (index lag, cleared, changed concurrently)


def record_due_blocks(new_uow: Callable[[], UnitOfWork], *, now: datetime, page_size: int = DUE_PAGE) -> BlockReport:
    """The missing-payment-blocks job: record every block whose limit date has passed, once.

    Candidates come from a key-condition query on the sparse block index (``block_sk < now``): only
    flagged tenants whose block is unrecorded are on it, and recording one takes it off. Each is re-read
    by id (the index lags) and recorded in a transaction of its own, so one tenant's conflict never
    holds up another; a second run finds nothing to record."""
    report = BlockReport()
    reader = new_uow()
    cursor: str | None = None
    while True:
        page = reader.tenants.due_blocks(now, page_size, cursor)
        for candidate in page.items:
            uow = new_uow()
            tenant = uow.tenants.get(candidate.id)
            staged = stage_record_block(uow, tenant, now=now) if tenant is not None else None
            if staged is None:
                report.skipped += 1
                continue
            try:
                uow.commit()
            except ConcurrentWriteError:  # changed since we read it (cleared, or another run recorded it)
                uow.rollback()
                report.skipped += 1
                continue
            report.blocked.append(tenant.id)
            if staged[1] is not None:
                report.outbox.append(staged[1])
        cursor = page.next_cursor
        if cursor is None:
            return report
