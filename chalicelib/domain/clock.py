"""Time helpers: every timestamp is UTC; wire formats are produced here only."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


def iso_ms(moment: datetime | None) -> str | None:
    """Tenant-facing format: ``2025-01-15T10:30:00.000Z``."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_us(moment: datetime | None) -> str | None:
    """Platform API format (seed 002): ``2026-05-05T12:21:32.000000Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 timestamp written by this module (``Z`` suffix allowed)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def period_of(moment: datetime) -> str:
    """The UTC month ``YYYY-MM`` an instant falls in."""
    return moment.astimezone(UTC).strftime("%Y-%m")
