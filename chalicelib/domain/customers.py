"""Customers of a tenant: the subjects balance deltas are recorded for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import Environment

CUSTOMER_ID_RE = re.compile(r"^[A-Za-z0-9_\-.:]{1,128}$")


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
    # Kept current by every accepted delta (read-only here; ingest updates them atomically).
    last_seq: int | None = None
    delta_count: int = 0
    balance: Decimal = Decimal(0)
    last_delta_at: datetime | None = None
