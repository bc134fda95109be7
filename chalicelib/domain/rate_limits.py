"""Per-minute request windows: the platform-token limit (seed 002 tokens, 60 requests a minute each).

A fixed window per UTC minute: its count lives in the store (one item per token and minute), so every
execution environment sees the same count; what a request learns from the count is decided here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.domain.errors import RateLimitedError

PLATFORM_TOKEN_REQUESTS_PER_MINUTE = 60
WINDOW = timedelta(minutes=1)
#: How long a window's counter item outlives its minute before DynamoDB's TTL may delete it.
WINDOW_RETENTION = timedelta(minutes=5)


def window_start(now: datetime) -> datetime:
    """The UTC minute ``now`` falls in."""
    return now.astimezone(UTC).replace(second=0, microsecond=0)


def window_id(start: datetime) -> str:
    """The minute as a sortable key fragment: ``202604151200``."""
    return start.strftime("%Y%m%d%H%M")


@dataclass(frozen=True)
class RateWindow:
    """One request's view of its window: ``count`` is this request's position, None when the window was full."""

    limit: int
    start: datetime
    count: int | None

    @property
    def exceeded(self) -> bool:
        return self.count is None

    @property
    def remaining(self) -> int:
        return 0 if self.count is None else max(0, self.limit - self.count)

    @property
    def resets_at(self) -> datetime:
        return self.start + WINDOW

    @property
    def expires_at(self) -> datetime:
        """When the stored counter may be deleted (TTL)."""
        return self.resets_at + WINDOW_RETENTION

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the next window opens (at least 1)."""
        return max(1, math.ceil((self.resets_at - now).total_seconds()))

    def enforce(self, now: datetime) -> None:
        """Raise the 429 when this request did not fit in the window."""
        if self.exceeded:
            raise RateLimitedError("Too Many Attempts.", retryAfterSeconds=self.retry_after(now))
