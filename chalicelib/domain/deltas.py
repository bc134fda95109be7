"""Balance deltas: validation of what tenants submit, and the stored record.

``delta`` is exact: JSON numbers are parsed as Decimal, never binary floats, and
kept with at most 6 fractional digits within ±1,000,000,000 (SPEC).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from chalicelib.domain.amounts import fraction_digits, plain
from chalicelib.domain.customers import check_customer_id
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import Environment

MAX_ABS_DELTA = Decimal(1_000_000_000)
MAX_FRACTION_DIGITS = 6
MAX_REASON = 500
MAX_REFERENCE = 256
MAX_METADATA_BYTES = 4096
MAX_METADATA_KEYS = 50
MAX_METADATA_DEPTH = 3
MAX_BATCH = 100


class DeltaStatus(StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"


class CreditState(StrEnum):
    NONE = "none"  # monthly billing: nothing reserved
    RESERVED = "reserved"
    SETTLED = "settled"
    REFUNDED = "refunded"


@dataclass(frozen=True)
class DeltaInput:
    customer_id: str
    delta: Decimal
    reason: str
    reference_id: str | None = None
    metadata: dict[str, Any] | None = None
    adjusts: str | None = None

    def content(self) -> dict[str, Any]:
        """What the submitter asked for, canonically (idempotency hashes, replays)."""
        return {
            "customerId": self.customer_id,
            "delta": format_delta(self.delta),
            "reason": self.reason,
            "referenceId": self.reference_id,
            "metadata": self.metadata,
            "adjusts": self.adjusts,
        }


def format_delta(value: Decimal) -> str:
    """Canonical text: no exponent, no trailing zeros (``10``, ``-0.5``)."""
    return str(plain(value))


def _fail(field_name: str, message: str, prefix: str) -> ValidationError:
    return ValidationError(f"{prefix}{field_name} {message}", field=f"{prefix}{field_name}")


def _check_delta(value: object, prefix: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _fail("delta", "must be a JSON number (not a string, boolean or null)", prefix)
    amount = Decimal(value)
    if not amount.is_finite():
        raise _fail("delta", "must be finite", prefix)
    if amount == 0:
        raise _fail("delta", "must not be zero", prefix)
    if abs(amount) > MAX_ABS_DELTA:
        raise _fail("delta", "must be within ±1,000,000,000", prefix)
    if fraction_digits(amount) > MAX_FRACTION_DIGITS:
        raise _fail("delta", f"must have at most {MAX_FRACTION_DIGITS} fractional digits", prefix)
    return plain(amount)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _check_metadata(value: object, prefix: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail("metadata", "must be a JSON object", prefix)
    if len(value) > MAX_METADATA_KEYS:
        raise _fail("metadata", f"must have at most {MAX_METADATA_KEYS} keys", prefix)
    if _depth(value) > MAX_METADATA_DEPTH:
        raise _fail("metadata", f"must nest at most {MAX_METADATA_DEPTH} levels", prefix)
    size = len(json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise _fail("metadata", f"must serialise to at most {MAX_METADATA_BYTES} bytes", prefix)
    return value


def _optional_text(body: dict, name: str, limit: int, prefix: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _fail(name, f"must be a non-empty string of at most {limit} characters", prefix)
    return value


def parse_delta(body: object, *, prefix: str = "") -> DeltaInput:
    """Validate one submitted delta; errors name the field (``deltas[3].delta``)."""
    if not isinstance(body, dict):
        where = prefix.rstrip(".") or "body"
        raise ValidationError(f"{where} must be a JSON object", field=where)
    try:
        customer_id = check_customer_id(body.get("customerId"))
    except ValidationError as exc:
        raise ValidationError(f"{prefix}{exc.message}", field=f"{prefix}customerId") from None
    delta = _check_delta(body.get("delta"), prefix)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise _fail("reason", f"must be a non-empty string of at most {MAX_REASON} characters", prefix)
    return DeltaInput(
        customer_id=customer_id,
        delta=delta,
        reason=reason,
        reference_id=_optional_text(body, "referenceId", MAX_REFERENCE, prefix),
        metadata=_check_metadata(body.get("metadata"), prefix),
        adjusts=_optional_text(body, "adjusts", MAX_REFERENCE, prefix),
    )


@dataclass
class Delta:
    """An accepted delta, as stored."""

    tenant_id: str
    environment: Environment
    record_id: str
    receipt_id: str
    customer_id: str
    sequence_number: int
    delta: Decimal
    reason: str
    period: str
    created_at: datetime
    status: DeltaStatus = DeltaStatus.QUEUED
    reference_id: str | None = None
    metadata: dict[str, Any] | None = None
    adjusts: str | None = None
    credits_reserved: int = 0
    credit_state: CreditState = CreditState.NONE
    credit_lane: int | None = None  # the escrow lane its hold came from (domain/credits.py)
    error: str | None = None
    updated_at: datetime | None = None
    # Set when verified: fingerprint, place in the signed batch, inclusion proof.
    content_hash: str | None = None
    leaf_index: int | None = None
    proof: list[str] | None = None
    batch_id: str | None = None
    proof_root: str | None = None
    verified_at: datetime | None = None

    @property
    def awaiting_verification(self) -> bool:
        return self.status in (DeltaStatus.QUEUED, DeltaStatus.PROCESSING)


def credit_state_after(delta: Delta, *, verified: bool) -> CreditState:
    """A delta's hold is resolved with it: settled when it is verified, refunded when it fails terminally;
    a delta that held nothing keeps its state."""
    if delta.credit_state != CreditState.RESERVED:
        return delta.credit_state
    return CreditState.SETTLED if verified else CreditState.REFUNDED
