"""Closing a UTC month (SPEC "Scheduled jobs", period rollover): the final figures and the close's steps.

A period is a UTC month ``YYYY-MM`` (a delta's period is the month it was accepted in; Stripe billing
cycles are anchored on the 1st, so a subscription period is the same month). Closing it, per tenant:

1. *figures*: consumed units, overage count and charges, fixed once under the plan in force at the month's end;
2. *report*: the overage sent once to the billing provider — the intent (``reporting``) is stored before
   the call, ``reported`` after; a rerun finding ``reporting`` sends again with the same identifier
   (once Stripe's 35-day meter-event window has closed it cannot: ``expired``, for an operator). Sent as
   a meter event on the subscription's invoice, or, when the subscription ends with the month (Stripe
   deletes it before the job runs, leaving no item to bill a meter event on), as a one-off invoice;
3. *revert*: a subscription cancelled at period end falls back to the free plan (backstop for Stripe's
   ``customer.subscription.deleted``);
4. *checkpoints*: every customer with deltas in the month gets a checkpoint of it, page by page.

Each step's state lives in the close itself, so a crash between steps resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from chalicelib.domain.clock import period_of
from chalicelib.domain.plans import plan_for
from chalicelib.domain.tenants import BillingMode, Tenant
from chalicelib.domain.usage import check_period

# Report step states.
REPORT_NONE = "none"  # no overage
REPORT_UNBILLABLE = "unbillable"  # overage, but no billing-provider customer to bill it to
REPORTING = "reporting"  # the intent is stored; the provider call may or may not have happened
REPORTED = "reported"
REPORT_EXPIRED = "expired"  # still ``reporting`` when the provider's window closed: for an operator to settle

#: Stripe refuses meter events older than this: a month closed (or a report retried) later cannot be sent.
METER_EVENT_MAX_AGE = timedelta(days=35)

# How the overage is billed (decided when the close opens).
REPORT_BY_METER = "meter"  # a Billing Meter event, invoiced with the subscription's next invoice
REPORT_BY_INVOICE = "invoice"  # a one-off invoice: the subscription does not outlive the period

# Revert (cancel at period end) step states.
REVERT_NONE = "none"
REVERT_PENDING = "pending"
REVERT_DONE = "done"

ENVIRONMENTS = ("production", "sandbox")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of a UTC month."""
    check_period(period)
    year, month = int(period[:4]), int(period[5:])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_period(now: datetime) -> str:
    """The month before the one ``now`` falls in: the one the rollover closes by default."""
    start, _end = period_bounds(period_of(now))
    return period_of(start - timedelta(seconds=1))


def last_second(period: str) -> datetime:
    """The meter event's timestamp: inside the period, so Stripe bills it to that period's invoice."""
    return period_bounds(period)[1] - timedelta(seconds=1)


def overage_identifier(tenant_id: str, period: str) -> str:
    """One identifier per tenant and month: the provider drops a resend (Stripe for ~24 h, the stand-in always)."""
    return f"tally-overage-{tenant_id}-{period}"


@dataclass(frozen=True)
class CheckpointProgress:
    """One environment's checkpoint pass: ``cursor`` is the next page of customers (None: from the start)."""

    cursor: str | None = None
    done: bool = False
    created: int = 0


@dataclass(frozen=True)
class PeriodClose:
    tenant_id: str
    period: str
    plan: str
    billing_mode: str
    consumed: int
    overage_count: int
    overage_charges_usd: Decimal
    report: str
    revert: str
    created_at: datetime
    updated_at: datetime
    customer_id: str | None = None  # the billing-provider customer the overage is reported to
    report_by: str = REPORT_BY_METER
    reported_at: datetime | None = None
    reverted_to: str | None = None
    checkpoints: dict[str, CheckpointProgress] = field(
        default_factory=lambda: {env: CheckpointProgress() for env in ENVIRONMENTS})
    version: int | None = None

    @property
    def billed(self) -> bool:
        """The report and revert steps are behind us (what must happen within Stripe's grace hour)."""
        return self.report != REPORTING and self.revert != REVERT_PENDING

    @property
    def done(self) -> bool:
        return self.billed and all(p.done for p in self.checkpoints.values())

    @property
    def identifier(self) -> str:
        return overage_identifier(self.tenant_id, self.period)

    @property
    def overage_cents(self) -> int:
        """The charges in whole cents (half up), as an invoice bills them."""
        return int((self.overage_charges_usd * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def reported(self, now: datetime) -> PeriodClose:
        return replace(self, report=REPORTED, reported_at=now, updated_at=now)

    def report_expired(self, now: datetime) -> bool:
        """Too late to send: the meter event's timestamp is older than the provider accepts (an invoice has
        no such window)."""
        return (self.report == REPORTING and self.report_by == REPORT_BY_METER
                and now - last_second(self.period) > METER_EVENT_MAX_AGE)

    def reverted(self, tier: str | None, now: datetime) -> PeriodClose:
        return replace(self, revert=REVERT_DONE, reverted_to=tier, updated_at=now)

    def checkpointed(self, environment: str, progress: CheckpointProgress, now: datetime) -> PeriodClose:
        return replace(self, checkpoints={**self.checkpoints, environment: progress}, updated_at=now)


def open_close(tenant: Tenant, period: str, consumed: int, *, now: datetime) -> PeriodClose:
    """The close of ``period`` as it starts: final figures under the plan in force at the period's end
    (whenever the job runs: a cancellation or a plan change since then does not reprice it), steps to do.

    Credits billing has no allotment and so no overage; a plan without an overage rate (free: hard cap,
    enterprise: invoiced by contract) reports nothing. The overage goes by invoice when the subscription
    does not outlive the period (none any more, or cancelled at a period end not after the month's):
    Stripe has deleted it by the time the job runs, so a meter event would reach no invoice."""
    _start, end = period_bounds(period)
    tier, mode = tenant.plan_before(end)
    plan = plan_for(tier)
    monthly = mode == BillingMode.MONTHLY
    count = plan.overage_count(consumed) if monthly and plan.overage_usd is not None else 0
    charges = plan.overage_charges_usd(consumed) if count else Decimal(0)
    if count == 0:
        report = REPORT_NONE
    elif tenant.stripe_customer_id:
        report = REPORTING
    else:
        report = REPORT_UNBILLABLE
    ends_with_period = tenant.stripe_current_period_end is None or tenant.stripe_current_period_end <= end
    revert = (REVERT_PENDING if tenant.cancel_at_period_end and tenant.stripe_subscription_id and ends_with_period
              else REVERT_NONE)
    ends = not tenant.stripe_subscription_id or (tenant.cancel_at_period_end and ends_with_period)
    return PeriodClose(tenant_id=tenant.id, period=period, plan=plan.tier, billing_mode=str(mode),
                       consumed=consumed, overage_count=count, overage_charges_usd=charges, report=report,
                       revert=revert, customer_id=tenant.stripe_customer_id,
                       report_by=REPORT_BY_INVOICE if ends else REPORT_BY_METER, created_at=now, updated_at=now)


@dataclass(frozen=True)
class RolloverRun:
    """The job's progress through one period: a pass over the tenant directory per phase (``billing``:
    figures, report and revert for every tenant first, so overage reaches Stripe within its grace hour;
    then ``checkpoints``), and the tenants to try again once a pass is through."""

    period: str
    phase: str = "billing"  # billing | checkpoints | done
    cursor: str | None = None  # the next page of the directory in this phase
    swept: bool = False  # the directory pass of this phase is through (only ``retry`` is left)
    retry: tuple[str, ...] = ()  # tenants of this phase not finished (waiting on verification, or failed)
    tenants: int = 0  # tenants finished in this phase
    started_at: datetime | None = None
    finished_at: datetime | None = None
    version: int | None = None

    @property
    def done(self) -> bool:
        return self.phase == "done"
