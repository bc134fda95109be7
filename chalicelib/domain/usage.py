"""Monthly usage: accepted billable units per UTC month (both environments counted)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chalicelib.domain.errors import ValidationError

#: A UTC month of 2000-2999, ``YYYY-MM`` in ASCII digits (the API documents and checks this very pattern).
PERIOD_PATTERN = r"^2[0-9]{3}-(0[1-9]|1[0-2])$"
PERIOD_RE = re.compile(PERIOD_PATTERN[:-1])


def check_period(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not PERIOD_RE.fullmatch(value):
        raise ValidationError("period must be YYYY-MM", field="period")
    return value


@dataclass(frozen=True)
class UsageCounter:
    """``consumed`` counts accepted units minus terminal failures released later."""

    tenant_id: str
    period: str
    consumed: int = 0
    by_environment: dict[str, int] = field(default_factory=dict)
    released: int = 0  # units taken back out after terminal failures (already subtracted from consumed)
    capped_shard: int = 0  # what the capped shard holds: ``consumed`` minus it is what the other shards hold
