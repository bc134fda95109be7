"""Delta fingerprints: SHA-256 over the RFC 8785 (JCS) canonical JSON of a delta's content.

JCS numbers are IEEE doubles, so the exact decimal ``delta`` is hashed as its
canonical string ("10.5", "-0.000001"); metadata numbers hash as JSON numbers.
Anyone holding the content can recompute the hash with any RFC 8785 library.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import rfc8785

from chalicelib.domain.clock import iso_ms
from chalicelib.domain.deltas import Delta, format_delta

CONTENT_VERSION = 1


def _jcs_ready(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _jcs_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jcs_ready(v) for v in value]
    return value


def delta_content(delta: Delta) -> dict[str, Any]:
    """Exactly what a delta's fingerprint commits to."""
    return {
        "v": CONTENT_VERSION,
        "tenantId": delta.tenant_id,
        "environment": str(delta.environment),
        "recordId": delta.record_id,
        "customerId": delta.customer_id,
        "sequenceNumber": delta.sequence_number,
        "delta": format_delta(delta.delta),
        "reason": delta.reason,
        "referenceId": delta.reference_id,
        "metadata": _jcs_ready(delta.metadata),
        "adjusts": delta.adjusts,
        "createdAt": iso_ms(delta.created_at),
    }


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical bytes (also what signatures are computed over)."""
    return rfc8785.dumps(_jcs_ready(value))


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(content)).hexdigest()


def fingerprint(delta: Delta) -> tuple[str | None, str | None]:
    """(content hash, None), or (None, the terminal error) for content RFC 8785 cannot represent."""
    try:
        return content_hash(delta_content(delta)), None
    except (ValueError, TypeError, OverflowError) as exc:  # rfc8785 errors subclass ValueError
        return None, f"Content cannot be canonicalised (RFC 8785): {exc}"
