"""Customers: Balance API reads (the key's environment scopes them) and dashboard manual creation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import iso_ms, period_of
from chalicelib.domain.credentials import random_id
from chalicelib.domain.customers import (
    Customer,
    CustomerSource,
    CustomerStats,
    EventCadence,
    Policy,
    SharingState,
    check_customer_id,
    name_key,
)
from chalicelib.domain.deltas import Delta, DeltaStatus
from chalicelib.domain.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.domain.identity import ApiKeyPrincipal, DashboardPrincipal, Environment, Permission
from chalicelib.services.ports import Page, UnitOfWork
from chalicelib.services.retry import retry_on_conflict

if TYPE_CHECKING:
    from chalicelib.domain.directory import DirectoryFilter
    from chalicelib.domain.usage import UsageCounter
    from chalicelib.domain.webhooks import Outbox


DIRECTORY_SORTS = ("displayName", "customerId")
FILTER_BUDGET = 1_000  # customers examined per filtered page (10 index queries of 100)


def list_customers(
    uow: UnitOfWork,
    principal: ApiKeyPrincipal | DashboardPrincipal,
    *,
    limit: int,
    cursor: str | None = None,
    search: str | None = None,
    page: int = 1,
    sort_by: str = "customerId",
    descending: bool = False,
    filters: DirectoryFilter | None = None,
    now: datetime | None = None,
) -> Page[Customer]:
    """Customers by id (the table) or by display name (the directory index), optionally filtered.

    ``search`` is a prefix of what the page is sorted by — the id, or the display name in any case —
    so it is a key condition either way. Filters are applied to index pages as they are read, at most
    ``FILTER_BUDGET`` customers per request (a short page then carries a cursor), so filtered pages are
    followed by cursor only. A ``cursor`` resumes in one request; a bare ``page`` number (unfiltered)
    passes over the earlier pages' index keys (no rows read for them), so clients should follow cursors.
    """
    if sort_by not in DIRECTORY_SORTS:
        raise ValidationError(f"sortBy must be one of {', '.join(DIRECTORY_SORTS)}", field="sortBy")
    if search is not None and not 1 <= len(search) <= 128:
        raise ValidationError("search must be 1-128 characters", field="search")
    by_name = sort_by == "displayName"
    prefix = None if search is None else name_key(search, "")[:-1] if by_name else search
    keep = partial(filters.keeps, now=now) if filters is not None and filters.active else None
    if keep is not None and page > 1 and cursor is None:
        raise ValidationError("With filters, pages may come back short: follow nextCursor instead of page numbers",
                              field="page")

    return uow.customers.directory(principal.tenant_id, principal.environment, by_name=by_name,
                                   descending=descending, limit=limit, cursor=cursor, prefix=prefix, keep=keep,
                                   budget=FILTER_BUDGET, page=page)


def summary(uow: UnitOfWork, principal: DashboardPrincipal, *, now: datetime) -> tuple[CustomerStats, UsageCounter]:
    """The environment's totals and this period's usage counter, both kept current at write time (in shards):
    one BatchGetItem whatever the number of customers or deltas."""
    return uow.customers.stats_and_usage(principal.tenant_id, principal.environment, period_of(now))


MAX_DISPLAY_NAME = 200
CREATE_ATTEMPTS = 5
MAX_UNIT_LABEL = 40


def _enum(value: object, kind: type[StrEnum], field: str, default: Any) -> Any:
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        raise ValidationError(f"{field} must be one of {', '.join(kind)}", field=field) from None


def create_customer(uow: UnitOfWork, principal: DashboardPrincipal, body: dict[str, Any], *,
                    now: datetime) -> tuple[Customer, Outbox | None]:
    """Seed 001 manual creation (admins and managers): audit entry and ``customer.created`` event,
    all in one transaction. An id already used — manually or by integration records — is a 409."""
    from chalicelib.domain.webhooks import EventType
    from chalicelib.services import webhooks

    principal.require(Permission.CUSTOMERS_WRITE)
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_DISPLAY_NAME:
        raise ValidationError(f"displayName must be 1-{MAX_DISPLAY_NAME} characters", field="displayName")
    raw_id = body.get("customerId")
    customer_id = check_customer_id(raw_id) if raw_id is not None else "cust_" + random_id("", 16)
    unit_label = body.get("unitLabel")
    if unit_label is not None and (not isinstance(unit_label, str) or not 1 <= len(unit_label) <= MAX_UNIT_LABEL):
        raise ValidationError(f"unitLabel must be 1-{MAX_UNIT_LABEL} characters", field="unitLabel")
    customer = Customer(
        tenant_id=principal.tenant_id, environment=principal.environment, customer_id=customer_id,
        display_name=name.strip(), source=CustomerSource.MANUAL, created_at=now, updated_at=now,
        sharing_state_hint=_enum(body.get("sharingStateHint"), SharingState, "sharingStateHint",
                                 SharingState.INHERIT),
        event_cadence=_enum(body.get("eventCadence"), EventCadence, "eventCadence", None),
        unit_label=unit_label,
        policy=_enum(body.get("policy"), Policy, "policy", Policy.TWO_TIER),
    )
    def attempt(_n: int) -> Any:
        existing = uow.customers.get(principal.tenant_id, principal.environment, customer_id)
        if existing is not None:  # created meanwhile, even by the race that made the last attempt fail
            _duplicate(existing)
        uow.customers.add(customer)
        uow.customers.count(principal.tenant_id, principal.environment, customers=1, manual=1)
        uow.audit.add(AuditEntry(tenant_id=principal.tenant_id, actor=principal.actor, action="customer.created",
                                 target=f"customer:{customer_id}", environment=str(principal.environment), at=now,
                                 details={"displayName": customer.display_name}))
        outbox = webhooks.stage_events(uow, principal.tenant_id, principal.environment,
                                       [(EventType.CUSTOMER_CREATED, customer_event(customer))], now=now)
        uow.commit()
        return outbox

    outbox = retry_on_conflict(uow, attempt, attempts=CREATE_ATTEMPTS,
                               message="The customer directory is busy; retry the request.")
    return customer, outbox


def create_and_announce(uow: UnitOfWork, principal: DashboardPrincipal, body: dict[str, Any], *, now: datetime,
                        queue: Any) -> Customer:
    """:func:`create_customer`, then the webhook worker is woken for its ``customer.created`` event (if SQS is
    unreachable the sweep fans it out later)."""
    from chalicelib.services import webhooks

    customer, outbox = create_customer(uow, principal, body, now=now)
    if outbox is not None:
        webhooks.announce(queue, [uow.webhooks.outbox_ref(outbox)])
    return customer


def _duplicate(existing: Customer) -> None:
    if existing.source == CustomerSource.INTEGRATION:
        raise ConflictError(
            f"Customer '{existing.customer_id}' already exists from integration records. It was not adopted: "
            "use it as it is (its deltas already define it), or create the manual customer under another id.",
            code="CUSTOMER_EXISTS_FROM_INTEGRATION", customerId=existing.customer_id, source=str(existing.source),
        )
    raise ConflictError(f"Customer '{existing.customer_id}' already exists.", code="CUSTOMER_EXISTS",
                        customerId=existing.customer_id)


def customer_event(customer: Customer) -> dict[str, Any]:
    """``customer.created`` payload."""
    return {
        "customerId": customer.customer_id,
        "displayName": customer.display_name,
        "source": str(customer.source),
        "sharingStateHint": str(customer.sharing_state_hint),
        "eventCadence": str(customer.event_cadence) if customer.event_cadence else None,
        "unitLabel": customer.unit_label,
        "policy": str(customer.policy),
        "environment": str(customer.environment),
        "createdAt": iso_ms(customer.created_at),
    }


# --- Balance API reads of one customer ------------------------------------------------------------

MAX_GAP_WINDOW = 10_000


def get_customer(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str) -> Customer:
    customer = uow.customers.get(tenant_id, environment, check_customer_id(customer_id))
    if customer is None:
        raise NotFoundError("Customer not found.")
    return customer


def recent_activity(uow: UnitOfWork, customer: Customer, *, page: int, limit: int) -> list[Delta]:
    """Page ``page`` of the customer's deltas, newest first. Sequence numbers are gap-free, so any page is
    one key-range query (no walking)."""
    last = customer.last_seq or 0
    newest = last - (page - 1) * limit
    return uow.deltas.customer_range(customer.tenant_id, customer.environment, customer.customer_id,
                                     max(1, newest - limit + 1), newest, newest_first=True)


@dataclass(frozen=True)
class Gap:
    first: int
    last: int
    reason: str  # awaiting_verification | failed | missing

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def gaps(uow: UnitOfWork, customer: Customer, *, first: int | None, last: int | None,
         limit: int) -> tuple[int, int, list[Gap]]:
    """Sequence numbers in ``first..last`` without a verified delta, as runs: still awaiting verification,
    failed terminally, or missing. The window is at most 10,000 numbers (default: the latest 10,000)."""
    top = customer.last_seq or 0
    last = top if last is None else last
    first = max(1, last - MAX_GAP_WINDOW + 1) if first is None else first
    if first < 1 or last < first - 1:
        raise ValidationError("fromSequence must be ≥ 1 and ≤ toSequence", field="fromSequence")
    if last - first + 1 > MAX_GAP_WINDOW:
        raise ValidationError(f"at most {MAX_GAP_WINDOW} sequence numbers per request", code="SCOPE_TOO_WIDE",
                              field="toSequence")
    found = {d.sequence_number: d for d in uow.deltas.customer_range(
        customer.tenant_id, customer.environment, customer.customer_id, first, min(last, top))}
    runs: list[Gap] = []
    for number in range(first, last + 1):
        delta = found.get(number)
        if delta is not None and delta.status == DeltaStatus.VERIFIED:
            continue
        reason = "missing" if delta is None else "failed" if delta.status == DeltaStatus.FAILED \
            else "awaiting_verification"
        if runs and runs[-1].reason == reason and runs[-1].last == number - 1:
            runs[-1] = Gap(runs[-1].first, number, reason)
        else:
            if len(runs) == limit:
                break
            runs.append(Gap(number, number, reason))
    return first, last, runs


MAX_FILTERED = 50_000


@dataclass(frozen=True)
class ActivityPage:
    items: list[Delta]
    total: int


def activity_page(uow: UnitOfWork, customer: Customer, *, page: int, limit: int, status: str | None,
                  reason: str | None, window: Any, search: str | None, sort_by: str,
                  descending: bool) -> ActivityPage:
    """A page of the customer's deltas. By sequence with no filter: one key-range query (gap-free sequence
    numbers). Otherwise the deltas are read a page at a time (bounded), filtered, sorted, sliced."""
    total = customer.delta_count
    filtered = status or reason or window or search
    if not filtered and sort_by == "sequenceNumber":
        last = customer.last_seq or 0
        if descending:
            return ActivityPage(recent_activity(uow, customer, page=page, limit=limit), total)
        first = (page - 1) * limit + 1
        return ActivityPage(uow.deltas.customer_range(customer.tenant_id, customer.environment,
                                                      customer.customer_id, first, min(last, first + limit - 1)),
                            total)
    if (customer.last_seq or 0) > MAX_FILTERED:
        raise ValidationError(f"Filtering or sorting reads every delta of the customer (more than {MAX_FILTERED:,}"
                              "); narrow with the export instead.", code="SCOPE_TOO_WIDE")
    from chalicelib.services.exports import customer_deltas

    def wanted(d: Delta) -> bool:
        return ((status is None or str(d.status) == status) and (reason is None or d.reason == reason)
                and (window is None or window.start <= d.created_at < window.end)
                and (search is None or any((v or "").startswith(search)
                                           for v in (d.record_id, d.receipt_id, d.reference_id))))

    keys = {"sequenceNumber": lambda d: d.sequence_number, "createdAt": lambda d: (d.created_at, d.sequence_number),
            "delta": lambda d: (d.delta, d.sequence_number)}
    chosen = sorted((d for d in customer_deltas(uow, customer) if wanted(d)), key=keys[sort_by],
                    reverse=descending)
    return ActivityPage(chosen[(page - 1) * limit : page * limit], len(chosen))
