"""Time scopes of the Balance API (SDK `derive`, `compare`, `checkpoint`, `list_checkpoints`, receipts).

Exactly one way to name a scope: ``period`` (``YYYY-MM``), or ``timePreset``
(``current_month``, ``previous_month``, or ``custom`` with ``startDate`` and
``endDate``), or a bare ``startDate`` + ``endDate`` pair. Mixing them is 400
``INVALID_SCOPE_COMBINATION`` (the SDK's own client-side rules, enforced again
here). Dates are ISO 8601; the end is exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.domain.clock import period_of
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.usage import check_period

PRESETS = ("current_month", "previous_month", "custom")


@dataclass(frozen=True)
class TimeScope:
    start: datetime  # inclusive
    end: datetime  # exclusive

    @property
    def period(self) -> str | None:
        """The UTC month this scope is exactly, if it is one."""
        month = period_of(self.start)
        return month if self.start == month_start(month) and self.end == next_month(self.start) else None


def month_start(period: str) -> datetime:
    return datetime(int(period[:4]), int(period[5:7]), 1, tzinfo=UTC)


def next_month(moment: datetime) -> datetime:
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)


MIN_YEAR, MAX_YEAR = 2000, 2999


def _combination(message: str) -> ValidationError:
    return ValidationError(message, code="INVALID_SCOPE_COMBINATION")


def _instant(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be an ISO 8601 date or date-time", field=field)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValidationError(f"{field} must be an ISO 8601 date or date-time", field=field) from exc
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:  # months are named YYYY-MM from 2000 to 2999 (domain/usage)
        raise ValidationError(f"{field} must be between {MIN_YEAR} and {MAX_YEAR}", field=field)
    return parsed


def parse_scope(*, period: object = None, time_preset: object = None, start_date: object = None,
                end_date: object = None, now: datetime) -> TimeScope | None:
    """The scope named, or None when none is (callers pick their default)."""
    if period is not None:
        if any(v is not None for v in (time_preset, start_date, end_date)):
            raise _combination("period cannot be combined with timePreset, startDate or endDate")
        if not isinstance(period, str):
            raise ValidationError("period must be YYYY-MM", field="period")
        start = month_start(check_period(period) or "")
        return TimeScope(start, next_month(start))
    if time_preset is not None and time_preset not in PRESETS:
        raise ValidationError(f"timePreset must be one of {', '.join(PRESETS)}", field="timePreset")
    if time_preset in ("current_month", "previous_month"):
        if start_date is not None or end_date is not None:
            raise _combination("startDate/endDate can only be used when timePreset is 'custom' or omitted")
        start = month_start(period_of(now))
        if time_preset == "previous_month":
            start = month_start(period_of(start - timedelta(days=1)))
        return TimeScope(start, next_month(start))
    if (start_date is None) != (end_date is None) or (time_preset == "custom" and start_date is None):
        raise _combination("startDate and endDate must be provided together")
    if start_date is None:
        return None
    start, end = _instant(start_date, "startDate"), _instant(end_date, "endDate")
    if end <= start:
        raise ValidationError("endDate must be after startDate", field="endDate")
    return TimeScope(start, end)


def single_month(scope: TimeScope | None, *, now: datetime) -> str:
    """The one UTC month a checkpoint-like operation covers (default: the current month)."""
    if scope is None:
        return period_of(now)
    if scope.period is None:
        raise ValidationError("This operation covers exactly one UTC month: pass period (YYYY-MM), or a "
                              "timePreset / startDate-endDate range that is one whole month",
                              code="SCOPE_TOO_WIDE")
    return scope.period
