"""Period rollover (SPEC "Scheduled jobs"): close last UTC month for every tenant, each effect once.

Per tenant (domain/period_close.py): store the final figures, report the overage once, revert a
subscription cancelled at period end, checkpoint every customer with deltas in the month. Every step
records its state in the tenant's close before the next begins, so a crash at any point followed by a
rerun gives each effect once:

* the overage report is guarded by our own record: the intent (``reporting``, with the quantity) is
  committed *before* the provider is called, ``reported`` after. A crash between the call and that
  record leaves ``reporting``; the rerun sends again with the same identifier
  (``tally-overage-{tenant}-{period}``), which Stripe deduplicates for about 24 hours (the local
  stand-in always) — reruns are meant to follow within the schedule's 15 minutes. The report is a
  meter event, or a one-off invoice when the subscription ends with the month (the close says which);
  the invoice's requests carry the identifier with ``:item`` / ``:invoice`` as idempotency keys;
* checkpoints are made by ``services.checkpoints.create``, which returns the existing checkpoint when
  nothing new would be covered, so a redone page of customers adds none.

Work is bounded per invocation: tenants come from the directory index a page at a time and the job's
progress (``RolloverRun``: phase, directory cursor, tenants to retry) is stored after each page; an
invocation stops when its time budget is spent and the next scheduled one carries on. Two passes:
``billing`` (figures, report, revert — a few calls per tenant, so every overage reaches Stripe within
the hour after the month ends, while the invoice is still open) and then ``checkpoints``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.customers import Customer
from chalicelib.domain.errors import ConcurrentWriteError, ConflictError, ValidationError
from chalicelib.domain.identity import Environment
from chalicelib.domain.period_close import (
    ENVIRONMENTS,
    REPORT_BY_INVOICE,
    REPORT_EXPIRED,
    REPORTING,
    REVERT_PENDING,
    CheckpointProgress,
    PeriodClose,
    RolloverRun,
    last_second,
    open_close,
    period_bounds,
)
from chalicelib.domain.subscriptions import apply_subscription
from chalicelib.log import get_logger
from chalicelib.services import checkpoints
from chalicelib.services.ports import BillingProvider, UnitOfWork

log = get_logger("tally.rollover")

ACTOR = "job:period-rollover"
DIRECTORY_PAGE = 50  # tenants per directory page (the unit of progress of a run)
CUSTOMER_PAGE = 100  # customers per page of a tenant's checkpoint pass (the unit of progress of a close)
BILLING, CHECKPOINTS, DONE = "billing", "checkpoints", "done"

# What closing one tenant came to in this invocation.
CLOSED = "closed"  # every step of the phase is done
WAITING = "waiting"  # a delta of the month still awaits verification, or Stripe has not ended a subscription
OUT_OF_TIME = "out_of_time"  # the budget ran out mid-tenant; its progress is stored
FAILED = "failed"  # an error (logged); retried by later runs


@dataclass
class TenantResult:
    outcome: str
    reported: int = 0  # overage quantity sent to the provider in this invocation
    reverted: bool = False
    checkpoints: int = 0  # checkpoints created in this invocation


@dataclass
class RolloverReport:
    period: str
    phase: str = BILLING
    done: bool = False
    closed: int = 0  # tenants whose phase finished in this invocation
    reports: int = 0  # overage reports sent in this invocation
    reverted: int = 0
    checkpoints: int = 0
    retry: list[str] = field(default_factory=list)  # tenants left for later runs

    def add(self, result: TenantResult) -> None:
        self.closed += result.outcome == CLOSED
        self.reports += result.reported > 0
        self.reverted += result.reverted
        self.checkpoints += result.checkpoints


def _save(uow: UnitOfWork, close: PeriodClose) -> PeriodClose:
    uow.period_closes.save(close)
    uow.commit()
    return replace(close, version=(close.version or 0) + 1)


def _report(uow: UnitOfWork, close: PeriodClose, provider: BillingProvider, now: datetime,
            result: TenantResult) -> PeriodClose:
    """The intent (``reporting``) is already stored: call the provider, then record ``reported``."""
    if close.report != REPORTING:
        return close
    if close.report_expired(now):
        log.warning("overage not reported: the month is older than the provider's meter-event window; "
                    "an operator must settle it", extra={"tenantId": close.tenant_id, "period": close.period,
                                                         "quantity": close.overage_count})
        return _save(uow, replace(close, report=REPORT_EXPIRED, updated_at=now))
    if close.report_by == REPORT_BY_INVOICE:
        provider.invoice_overage(customer_id=close.customer_id or "", quantity=close.overage_count,
                                 amount_cents=close.overage_cents, description=_invoice_description(close),
                                 identifier=close.identifier)
    else:
        provider.report_overage(customer_id=close.customer_id or "", quantity=close.overage_count,
                                identifier=close.identifier, timestamp=last_second(close.period))
    result.reported = close.overage_count
    return _save(uow, close.reported(now))


def _invoice_description(close: PeriodClose) -> str:
    """The invoice line: deterministic, so a resend under the same idempotency key sends the same request."""
    return f"Tally {close.plan.title()} overage: {close.overage_count:,} deltas in {close.period}"


def _revert(uow: UnitOfWork, close: PeriodClose, provider: BillingProvider, now: datetime,
            result: TenantResult) -> PeriodClose:
    """Backstop for Stripe's ``customer.subscription.deleted``: re-read the subscription and apply it. The
    tenant, its audit entry and the step's state commit together."""
    if close.revert != REVERT_PENDING:
        return close
    tenant = uow.tenants.get(close.tenant_id)
    if tenant is None or not tenant.stripe_subscription_id:
        return _save(uow, close.reverted(None, now))  # Stripe's event got there first
    subscription = provider.get_subscription(tenant.stripe_subscription_id)
    if subscription.live and subscription.cancel_at_period_end and subscription.current_period_end is not None \
            and subscription.current_period_end <= now:
        return close  # Stripe has not ended it yet: a later run looks again
    after = apply_subscription(tenant, subscription, now)
    reverted = after is not tenant and after.plan != tenant.plan
    if after is not tenant:
        uow.tenants.save(after)
        if reverted:
            uow.audit.add(AuditEntry(tenant_id=tenant.id, actor=ACTOR, action="tenant.plan_reverted",
                                     target=f"tenant:{tenant.id}", at=now,
                                     details={"from": tenant.plan, "to": after.plan, "period": close.period,
                                              "subscriptionId": subscription.id}))
    uow.period_closes.save(close.reverted(after.plan if reverted else None, now))
    uow.commit()
    result.reverted = reverted
    return replace(close.reverted(after.plan if reverted else None, now), version=(close.version or 0) + 1)


def _may_have_deltas(customer: Customer, period: str) -> bool:
    """From the customer row alone: could it have deltas in ``period``? (No delta rows are read.)"""
    start, end = period_bounds(period)
    if customer.last_delta_at is None or customer.last_delta_at < start or customer.created_at >= end:
        return False
    if customer.cycle_period == period:
        return customer.cycle_count > 0  # every delta of the month failed terminally: nothing to seal
    return True  # active since: whether the month has deltas is known once they are read


def _checkpoint_customer(uow: UnitOfWork, scope: checkpoints.Scope, *, now: datetime, signer: Any,
                         certain: bool) -> bool:
    """Seal the customer's month (strict: not while a delta of it awaits verification); True if created."""
    if not certain:
        _candidates, latest, covered = checkpoints.fingerprint_candidates(uow, scope)
        if latest is None and not covered.leaves and not covered.waiting:
            return False  # no deltas in the month after all
    _checkpoint, created = checkpoints.create(uow, scope, now=now, signer=signer, strict=True)
    return created


def _checkpoint_pass(uow: UnitOfWork, close: PeriodClose, environment: str, *, now: datetime, signer: Any,
                     time_left: Callable[[], float], result: TenantResult) -> tuple[PeriodClose, str]:
    """One environment's customers, a page at a time; the cursor is stored after each page."""
    progress = close.checkpoints[environment]
    while not progress.done:
        if time_left() <= 0:
            return close, OUT_OF_TIME
        try:
            page = uow.customers.list(close.tenant_id, Environment(environment), CUSTOMER_PAGE, progress.cursor)
        except ValidationError:
            # A stored cursor from before a listing's format changed: the pass starts over (checkpoints
            # already made are found, not made twice), rather than failing on every run.
            log.warning("stored customer cursor no longer reads; the checkpoint pass starts over",
                        extra={"tenantId": close.tenant_id, "environment": environment})
            page = uow.customers.list(close.tenant_id, Environment(environment), CUSTOMER_PAGE, None)
        created = 0
        for customer in page.items:
            if not _may_have_deltas(customer, close.period):
                continue
            scope = checkpoints.Scope(close.tenant_id, Environment(environment), customer.customer_id, close.period)
            try:
                created += _checkpoint_customer(uow, scope, now=now, signer=signer,
                                                certain=customer.cycle_period == close.period)
            except ConflictError as exc:
                if exc.code != "CHECKPOINT_NOT_READY":
                    raise
                result.checkpoints += created
                return close, WAITING  # the page is redone later (its checkpoints so far are kept)
        result.checkpoints += created
        progress = CheckpointProgress(cursor=page.next_cursor, done=page.next_cursor is None,
                                      created=progress.created + created)
        close = _save(uow, close.checkpointed(environment, progress, now))
    return close, CLOSED


def close_tenant(uow: UnitOfWork, tenant_id: str, period: str, *, phase: str, now: datetime,
                 provider: BillingProvider, signer: Any, time_left: Callable[[], float]) -> TenantResult:
    """Advance one tenant's close of ``period`` as far as ``phase`` goes (billing steps in both phases)."""
    result = TenantResult(CLOSED)
    close = uow.period_closes.get(tenant_id, period)
    if close is None:
        tenant = uow.tenants.get(tenant_id)
        if tenant is None or tenant.created_at >= period_bounds(period)[1]:
            return result  # nothing to close: gone, or created after the month
        close = _save(uow, open_close(tenant, period, uow.usage.get(tenant_id, period).consumed, now=now))
    close = _report(uow, close, provider, now, result)
    close = _revert(uow, close, provider, now, result)
    outcome = CLOSED if close.billed else WAITING
    if phase == CHECKPOINTS:
        for environment in ENVIRONMENTS:
            close, status = _checkpoint_pass(uow, close, environment, now=now, signer=signer,
                                             time_left=time_left, result=result)
            if status != CLOSED:
                outcome = status
                break
    result.outcome = outcome
    return result


def _close_many(new_uow: Callable[[], UnitOfWork], tenant_ids: Iterable[str], period: str, *, phase: str,
                now: datetime, provider: BillingProvider, signer: Any, time_left: Callable[[], float],
                workers: int) -> dict[str, TenantResult]:
    """Each tenant with a unit of work of its own, ``workers`` at a time (DynamoDB and Stripe calls wait on
    the network, so threads multiply a Lambda's throughput). An error costs that tenant only."""

    def one(tenant_id: str) -> TenantResult:
        if time_left() <= 0:
            return TenantResult(OUT_OF_TIME)
        try:
            return close_tenant(new_uow(), tenant_id, period, phase=phase, now=now, provider=provider,
                                signer=signer, time_left=time_left)
        except Exception:
            log.exception("closing a tenant's period failed; a later run retries",
                          extra={"tenantId": tenant_id, "period": period})
            return TenantResult(FAILED)

    ids = list(tenant_ids)
    if workers <= 1 or len(ids) <= 1:
        return {tenant_id: one(tenant_id) for tenant_id in ids}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(ids, pool.map(one, ids), strict=True))


def run(new_uow: Callable[[], UnitOfWork], *, period: str, now: datetime, provider: BillingProvider,
        signer: Callable[[], Any], time_left: Callable[[], float], workers: int = 1,
        page_size: int = DIRECTORY_PAGE) -> RolloverReport:
    """Advance the rollover of ``period`` until it is done or the budget (``time_left``) is spent.

    Tenants come from the directory index (live customer tenants), a page at a time; after each page the
    run's progress is committed (versioned: if another invocation moved it first, this one stops). A
    tenant left waiting or failed goes to ``retry`` and is tried again once the pass is through. ``signer``
    is called only when the checkpoint pass starts."""
    uow = new_uow()
    state = uow.period_closes.get_run(period) or RolloverRun(period=period, started_at=now)
    report = RolloverReport(period=period, phase=state.phase, done=state.done)
    signing: list[Any] = []

    def close(ids: list[str]) -> dict[str, TenantResult]:
        if state.phase == CHECKPOINTS and not signing and ids:
            signing.append(signer())
        results = _close_many(new_uow, ids, period, phase=state.phase, now=now, provider=provider,
                              signer=signing[0] if signing else None, time_left=time_left, workers=workers)
        for result in results.values():
            report.add(result)
        return results

    while not state.done and time_left() > 0:
        if not state.swept:
            page = uow.tenants.directory(page_size, state.cursor)
            results = close([t.id for t in page.items])
            if any(r.outcome == OUT_OF_TIME for r in results.values()):
                break  # this page is redone by the next invocation (finished tenants cost one read)
            left = [t for t, r in results.items() if r.outcome != CLOSED and t not in state.retry]
            after = replace(state, cursor=page.next_cursor, swept=page.next_cursor is None,
                            retry=state.retry + tuple(left),
                            tenants=state.tenants + sum(r.outcome == CLOSED for r in results.values()))
        elif state.phase == BILLING:
            # Tenants the billing pass left behind are visited again by the checkpoint pass (billing steps
            # run in both), so one stuck tenant never holds back everyone's checkpoints.
            after = replace(state, phase=CHECKPOINTS, cursor=None, swept=False, retry=(), tenants=0)
        elif state.retry:
            results = close(list(state.retry))
            left = tuple(t for t in state.retry if results[t].outcome != CLOSED)
            if left == state.retry:
                break  # no progress now (waiting on verification, Stripe, or an error): a later run retries
            after = replace(state, retry=left, tenants=state.tenants + len(state.retry) - len(left))
        else:
            after = replace(state, phase=DONE, finished_at=now)
        try:
            uow.period_closes.save_run(after, now=now)
            uow.commit()
        except ConcurrentWriteError:
            uow.rollback()
            log.info("another rollover invocation moved this run first; stopping", extra={"period": period})
            break
        state = replace(after, version=(after.version or 0) + 1)
    report.phase, report.done, report.retry = state.phase, state.done, list(state.retry)
    return report
