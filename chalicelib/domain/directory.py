"""The customer directory's derived fields and filters (seed 001 ``include=directory``).

Everything here is computed from one customer item and the clock, so a directory
page costs its index reads and nothing per customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from chalicelib.domain.clock import period_of
from chalicelib.domain.customers import Customer, EventCadence, Policy, SharingState
from chalicelib.domain.errors import ValidationError


class Health(StrEnum):
    """Record freshness against the customer's event cadence.

    HEALTHY — the last delta is within the expected interval; LATE — within twice
    it; STALE — older than that; NO_ACTIVITY — no delta yet; UNMONITORED — no
    cadence set, so nothing is expected.
    """

    HEALTHY = "HEALTHY"
    LATE = "LATE"
    STALE = "STALE"
    NO_ACTIVITY = "NO_ACTIVITY"
    UNMONITORED = "UNMONITORED"


class VerificationState(StrEnum):
    """NONE — no deltas; PENDING — some await verification; VERIFIED — every delta verified;
    ATTENTION — at least one delta failed verification terminally."""

    NONE = "NONE"
    PENDING = "PENDING"
    VERIFIED = "VERIFIED"
    ATTENTION = "ATTENTION"


class CycleCloseWindow(StrEnum):
    """Customers whose current cycle (UTC month) has deltas not yet under a checkpoint and closes
    within 7, 14 or 30 days; ``IDLE``: no delta in the current cycle."""

    DAYS_7 = "7d"
    DAYS_14 = "14d"
    DAYS_30 = "30d"
    IDLE = "IDLE"


EXPECTED_INTERVAL = {
    EventCadence.PER_EVENT: timedelta(hours=1),
    EventCadence.HOURLY: timedelta(hours=1),
    EventCadence.DAILY: timedelta(days=1),
    EventCadence.WEEKLY: timedelta(days=7),
    EventCadence.MONTHLY: timedelta(days=31),
}


def next_close(now: datetime) -> datetime:
    """Cycles are UTC months: the next close is the first instant of next month."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def health(customer: Customer, now: datetime) -> Health:
    if customer.last_delta_at is None:
        return Health.NO_ACTIVITY
    if customer.event_cadence is None:
        return Health.UNMONITORED
    interval = EXPECTED_INTERVAL[customer.event_cadence]
    age = now - customer.last_delta_at
    return Health.HEALTHY if age <= interval else Health.LATE if age <= 2 * interval else Health.STALE


def verification_state(customer: Customer) -> VerificationState:
    if customer.delta_count == 0:
        return VerificationState.NONE
    if customer.failed_count:
        return VerificationState.ATTENTION
    return VerificationState.PENDING if customer.awaiting_verification else VerificationState.VERIFIED


def current_cycle(customer: Customer, now: datetime) -> tuple[int, Decimal]:
    """(deltas, net change) of the current UTC month, failures excluded."""
    if customer.cycle_period != period_of(now):
        return 0, Decimal(0)
    return customer.cycle_count, customer.cycle_net


def open_in_cycle(customer: Customer, now: datetime) -> bool:
    """The current cycle has deltas that no checkpoint of it covers yet."""
    count, _net = current_cycle(customer, now)
    if count == 0:
        return False
    covered = customer.checkpoint_last_seq or 0
    return customer.checkpoint_period != period_of(now) or covered < (customer.last_seq or 0)


@dataclass(frozen=True)
class DirectoryFilter:
    sharing_state: SharingState | None = None
    health: Health | None = None
    policy: Policy | None = None
    event_cadence: EventCadence | None = None
    cycle_close_window: CycleCloseWindow | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.sharing_state, self.health, self.policy, self.event_cadence,
                                           self.cycle_close_window))

    def keeps(self, customer: Customer, now: datetime) -> bool:
        if self.sharing_state is not None and customer.sharing_state_hint != self.sharing_state:
            return False
        if self.policy is not None and customer.policy != self.policy:
            return False
        if self.event_cadence is not None and customer.event_cadence != self.event_cadence:
            return False
        if self.health is not None and health(customer, now) != self.health:
            return False
        window = self.cycle_close_window
        if window is CycleCloseWindow.IDLE:
            return current_cycle(customer, now)[0] == 0
        if window is not None:
            days = int(window.value.rstrip("d"))
            return open_in_cycle(customer, now) and next_close(now) - now <= timedelta(days=days)
        return True


def parse_filter(values: dict[str, str | None]) -> DirectoryFilter:
    """Query values → filter; an unknown enum value is a 400 naming the accepted ones."""
    kinds: dict[str, type[StrEnum]] = {"sharingState": SharingState, "health": Health, "policy": Policy,
                                       "eventCadence": EventCadence, "cycleCloseWindow": CycleCloseWindow}
    parsed: dict[str, Any] = {}
    for name, kind in kinds.items():
        raw = values.get(name)
        if raw is None:
            continue
        try:
            parsed[name] = kind(raw)
        except ValueError:
            raise ValidationError(f"{name} must be one of {', '.join(kind)}", field=name) from None
    return DirectoryFilter(sharing_state=parsed.get("sharingState"), health=parsed.get("health"),
                           policy=parsed.get("policy"), event_cadence=parsed.get("eventCadence"),
                           cycle_close_window=parsed.get("cycleCloseWindow"))
