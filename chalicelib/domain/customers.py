"""Customers of a tenant: the subjects balance deltas are recorded for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import Environment

#: Letters, digits and ``_ - . :``, 1-128 characters (SPEC); the API documents and checks this very pattern.
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_\-.:]{1,128}$"
CUSTOMER_ID_RE = re.compile(CUSTOMER_ID_PATTERN)


class SharingState(StrEnum):
    """Whether a customer's verification data may be shared (INHERIT: the tenant's default)."""

    INHERIT = "INHERIT"
    SHARED = "SHARED"
    PRIVATE = "PRIVATE"


class EventCadence(StrEnum):
    """How often the tenant expects deltas for this customer (drives record freshness)."""

    PER_EVENT = "PER_EVENT"
    HOURLY = "HOURLY"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class Policy(StrEnum):
    """How the tenant meters this customer's usage (a label the directory filters on and receipts show):
    TWO_TIER — an allotment, then overage; GATED — usage stops when prepaid units run out; OPEN — unmetered."""

    TWO_TIER = "TWO_TIER"
    GATED = "GATED"
    OPEN = "OPEN"


class CustomerSource(StrEnum):
    INTEGRATION = "integration"  # first seen on a delta
    MANUAL = "manual"  # created from the dashboard


def check_customer_id(value: object) -> str:
    """Letters, digits and ``_ - . :``, 1-128 characters (SPEC)."""
    if not isinstance(value, str) or not CUSTOMER_ID_RE.fullmatch(value):
        raise ValidationError(
            "customerId must be 1-128 characters of letters, digits, '_', '-', '.', ':'",
            field="customerId",
        )
    return value


@dataclass
class Customer:
    tenant_id: str
    environment: Environment
    customer_id: str
    display_name: str
    source: CustomerSource
    created_at: datetime
    updated_at: datetime
    sharing_state_hint: SharingState = SharingState.INHERIT
    event_cadence: EventCadence | None = None
    unit_label: str | None = None
    policy: Policy = Policy.TWO_TIER
    # Kept current by every accepted delta (read-only here; ingest updates them atomically).
    last_seq: int | None = None
    delta_count: int = 0
    balance: Decimal = Decimal(0)
    last_delta_at: datetime | None = None
    # Kept current by the verifier (same transaction as the seal or the failure).
    verified_count: int = 0
    failed_count: int = 0
    # The latest period with accepted deltas: its count and net change (less terminal failures).
    cycle_period: str | None = None
    cycle_count: int = 0
    cycle_net: Decimal = Decimal(0)
    # The newest checkpoint: its period and the last sequence number it covers.
    checkpoint_period: str | None = None
    checkpoint_last_seq: int | None = None

    @property
    def awaiting_verification(self) -> int:
        return max(0, self.delta_count - self.verified_count - self.failed_count)


@dataclass(frozen=True)
class CustomerStats:
    """One tenant environment's customer totals, kept current at write time (the summary reads the shards
    they are spread over in one round trip and adds them up)."""

    customers: int = 0
    manual: int = 0
    integration: int = 0
    deltas: int = 0
    verified: int = 0
    failed: int = 0
    balance: Decimal = Decimal(0)  # sum of every customer's running balance

    @property
    def awaiting_verification(self) -> int:
        return max(0, self.deltas - self.verified - self.failed)

    def __add__(self, other: CustomerStats) -> CustomerStats:
        return CustomerStats(**{name: getattr(self, name) + getattr(other, name) for name in
                                ("customers", "manual", "integration", "deltas", "verified", "failed", "balance")})


NAME_KEY_BYTES = 800  # of the folded name: with a tab and a 128-character id, under DynamoDB's 1,024-byte key


def name_key(display_name: str, customer_id: str) -> str:
    """The directory index's sort key: case-folded name, then id (a tab sorts before any printable
    character, so "Acme" comes before "Acme Corp"). Case folding can grow a name (ΐ becomes 6 bytes), so
    the name is cut by UTF-8 bytes, on a character boundary."""
    folded = "".join(ch if ch.isprintable() else " " for ch in display_name.casefold())
    cut = folded.encode()[:NAME_KEY_BYTES].decode(errors="ignore")
    return f"{cut}\t{customer_id}"


def marker_advances(customer: Customer, period: str, through: int | None) -> bool:
    """Whether a checkpoint of ``period`` settled through sequence ``through`` is newer than the customer's
    recorded one (a checkpoint of an older month, made later, must not move it back)."""
    if customer.checkpoint_period is None or customer.checkpoint_period < period:
        return True
    return customer.checkpoint_period == period and (customer.checkpoint_last_seq or 0) < (through or 0)
