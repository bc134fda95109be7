"""Customer records read back: one customer's balance detail and sequence gaps (Balance API) and its dashboard
page. Each takes the customer by id from the credential's tenant environment (else 404)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.clock import period_of
from chalicelib.domain.customers import Customer
from chalicelib.domain.deltas import Delta, DeltaStatus
from chalicelib.domain.identity import Environment
from chalicelib.services.customers import ActivityPage, Gap, activity_page, gaps, get_customer, recent_activity
from chalicelib.services.ports import UnitOfWork


@dataclass(frozen=True)
class PeriodSummary:
    period: str
    net_change: Decimal
    delta_count: int
    verified: int
    failed: int
    awaiting_verification: int


@dataclass(frozen=True)
class BalanceDetail:
    customer: Customer
    recent: list[Delta]  # the requested page, newest first
    period_summary: PeriodSummary | None


def balance_detail(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, *, page: int,
                   limit: int, period: str | None) -> BalanceDetail:
    """SDK ``customer``: the customer (counters kept by every accepted delta), a page of its recent activity
    (one key-range query) and, with ``period``, that month's net change and counts (a read of its deltas)."""
    customer = get_customer(uow, tenant_id, environment, customer_id)
    recent = recent_activity(uow, customer, page=page, limit=limit)
    summary = None
    if period is not None:
        deltas = uow.deltas.customer_period(customer.tenant_id, customer.environment, customer.customer_id, period)
        summary = PeriodSummary(
            period=period,
            net_change=sum((d.delta for d in deltas), Decimal(0)),
            delta_count=len(deltas),
            verified=sum(1 for d in deltas if d.status == DeltaStatus.VERIFIED),
            failed=sum(1 for d in deltas if d.status == DeltaStatus.FAILED),
            awaiting_verification=sum(1 for d in deltas if d.awaiting_verification),
        )
    return BalanceDetail(customer, recent, summary)


@dataclass(frozen=True)
class GapReport:
    customer: Customer
    first: int
    last: int
    runs: list[Gap]


def customer_gaps(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, *,
                  first: int | None, last: int | None, limit: int) -> GapReport:
    """:func:`gaps` of a customer of this tenant environment (else 404)."""
    customer = get_customer(uow, tenant_id, environment, customer_id)
    checked_first, checked_last, runs = gaps(uow, customer, first=first, last=last, limit=limit)
    return GapReport(customer, checked_first, checked_last, runs)


@dataclass(frozen=True)
class CustomerDetail:
    customer: Customer
    activity: ActivityPage
    latest_checkpoint: Checkpoint | None  # of this UTC month


def dashboard_detail(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, *, page: int,
                     limit: int, status: str | None, reason: str | None, window: Any, search: str | None,
                     sort_by: str, descending: bool, now: datetime) -> CustomerDetail:
    """The dashboard's customer page: the customer, a page of its activity (:func:`activity_page`) and its latest
    checkpoint of this UTC month."""
    customer = get_customer(uow, tenant_id, environment, customer_id)
    activity = activity_page(uow, customer, page=page, limit=limit, status=status, reason=reason, window=window,
                             search=search, sort_by=sort_by, descending=descending)
    latest = uow.checkpoints.latest(customer.tenant_id, customer.environment, customer.customer_id,
                                    period_of(now))
    return CustomerDetail(customer, activity, latest)
