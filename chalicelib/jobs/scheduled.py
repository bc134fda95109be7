"""Scheduled Lambdas for billing (thin): missing-payment blocks and the period rollover, and the table of
every scheduled job ``tally jobs run NAME`` can run once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib import bootstrap
from chalicelib.log import get_logger

log = get_logger("tally.jobs.scheduled")

ROLLOVER_WORKERS = 8  # tenants closed side by side in one invocation (network-bound)
SAFETY_SECONDS = 90  # of the Lambda's time: left for the last page's writes
MIN_BUDGET_SECONDS = 10.0


def _budget(context: Any, budget_seconds: float | None) -> Callable[[], float]:
    """Seconds left for starting work: the invocation's remaining time less a margin, or a fixed budget."""
    if budget_seconds is None:
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 300.0
        budget_seconds = max(MIN_BUDGET_SECONDS, remaining - SAFETY_SECONDS)
    deadline = time.monotonic() + budget_seconds
    return lambda: deadline - time.monotonic()


def missing_payment_blocks(event: Any = None, context: Any = None) -> dict[str, Any]:
    """Hourly: record each block whose limit date has passed (audit + ``tenant.dashboard_blocked``)."""
    from chalicelib.services import payment_blocks, webhooks

    report = payment_blocks.record_due_blocks(bootstrap.unit_of_work, now=bootstrap.now())
    webhooks.announce(bootstrap.webhook_queue(), report.outbox)
    if report.blocked:
        log.info("dashboard blocks recorded", extra={"tenants": report.blocked})
    return {"blocked": report.blocked, "skipped": report.skipped}


def period_rollover(event: Any = None, context: Any = None, *, period: str | None = None,
                    budget_seconds: float | None = None) -> dict[str, Any]:
    """Close last month (or ``period``) for every tenant, as far as this invocation's time allows."""
    from chalicelib.domain.period_close import previous_period
    from chalicelib.domain.usage import check_period
    from chalicelib.services import rollover

    now = bootstrap.now()
    report = rollover.run(bootstrap.unit_of_work, period=check_period(period) or previous_period(now), now=now,
                          provider=bootstrap.billing_provider(), signer=bootstrap.signer,
                          time_left=_budget(context, budget_seconds), workers=ROLLOVER_WORKERS)
    if report.closed or report.reports or report.checkpoints or report.reverted:
        log.info("period rollover", extra=asdict(report))
    return asdict(report)


def sweep_unverified(event: Any = None, context: Any = None) -> dict[str, Any]:
    from chalicelib.jobs import verifier

    verifier.handle_sweep(event)
    return {}


def deliver_due_webhooks(event: Any = None, context: Any = None) -> dict[str, Any]:
    from chalicelib.jobs import webhooks

    webhooks.handle_sweep(event)
    return {}


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    summary: str
    run: Callable[..., dict[str, Any]]


#: Every scheduled job by its CLI name (the Lambda handlers in app.py call the same functions).
JOBS: dict[str, Job] = {job.name: job for job in (
    Job("missing-payment-blocks", "hourly", "record dashboard blocks whose limit date has passed",
        missing_payment_blocks),
    Job("period-rollover", "every 15 min, from 00:05 UTC on the 1st",
        "close last month: figures, overage report, plan reverts, checkpoints",
        period_rollover),
    Job("sweep-unverified", "every 5 min", "verify accepted deltas the queue missed", sweep_unverified),
    Job("deliver-due-webhooks", "every minute", "fan out stale outbox items, attempt due webhook deliveries",
        deliver_due_webhooks),
)}
