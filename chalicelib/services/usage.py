"""Usage reads: the seed-003 dashboard figures and the SDK's `usage` answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from chalicelib.domain.billing import Capacity, acceptance_capacity
from chalicelib.domain.clock import period_of
from chalicelib.domain.credits import CreditAccount
from chalicelib.domain.errors import NotFoundError
from chalicelib.domain.plans import Plan, plan_for
from chalicelib.domain.tenants import Tenant
from chalicelib.domain.usage import UsageCounter, check_period
from chalicelib.services.ports import UnitOfWork

if TYPE_CHECKING:  # annotations only: `import app` skips the rollover's domain
    from chalicelib.domain.period_close import PeriodClose


@dataclass(frozen=True)
class UsageFigures:
    tenant: Tenant
    plan: Plan
    counter: UsageCounter

    @property
    def overage_count(self) -> int:
        return self.plan.overage_count(self.counter.consumed)

    @property
    def overage_charges_usd(self) -> Decimal:
        return self.plan.overage_charges_usd(self.counter.consumed)

    @property
    def remaining(self) -> int | None:
        return self.plan.remaining(self.counter.consumed)


@dataclass(frozen=True)
class ClosedUsageFigures(UsageFigures):
    """A closed month: the figures the period rollover stored (and reported), not recomputed under today's
    plan — so ``overageChargesUsd`` is what was billed."""

    close: PeriodClose | None = None

    @property
    def overage_count(self) -> int:
        return self.close.overage_count if self.close else super().overage_count

    @property
    def overage_charges_usd(self) -> Decimal:
        return self.close.overage_charges_usd if self.close else super().overage_charges_usd


def usage_figures(uow: UnitOfWork, tenant_id: str, *, period: str | None, now: datetime) -> UsageFigures:
    """Consumed units of a UTC month (terminal failures are released from it), against the plan; a month
    the rollover has closed answers its stored figures."""
    period = check_period(period) or period_of(now)
    tenant = uow.tenants.get(tenant_id)
    if tenant is None:
        raise NotFoundError("Tenant not found.")
    if period < period_of(now):
        close = uow.period_closes.get(tenant_id, period)
        if close is not None:
            counter = UsageCounter(tenant_id=tenant_id, period=period, consumed=close.consumed)
            return ClosedUsageFigures(tenant=tenant, plan=plan_for(close.plan), counter=counter, close=close)
    return UsageFigures(tenant=tenant, plan=plan_for(tenant.plan), counter=uow.usage.get(tenant_id, period))


def current_capacity(uow: UnitOfWork, figures: UsageFigures) -> tuple[Capacity, CreditAccount]:
    """How many more deltas would be accepted now (SDK `usage`: `allowed`, `remaining`)."""
    account = uow.credits.position(figures.tenant.id).balances()
    capacity = acceptance_capacity(figures.tenant, figures.plan, consumed=figures.counter.consumed, credits=account)
    return capacity, account


def current(uow: UnitOfWork, tenant_id: str, *, now: datetime) -> tuple[UsageFigures, Capacity, CreditAccount]:
    """SDK ``usage``: this UTC month's figures and how many more deltas would be accepted now."""
    figures = usage_figures(uow, tenant_id, period=None, now=now)
    return figures, *current_capacity(uow, figures)
