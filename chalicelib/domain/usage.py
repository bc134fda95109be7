"""Monthly usage: accepted billable units per UTC month (both environments counted)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chalicelib.domain.errors import ValidationError

PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def check_period(value: str | None) -> str | None:
    if value is None:
        return None
    if not PERIOD_RE.match(value) or not 2000 <= int(value[:4]) <= 2999:
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
