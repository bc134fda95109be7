"""Request rate limits at the HTTP edge.

API keys: a token bucket in each Lambda instance. It protects the tables from one
runaway client at no storage cost; the deployed API Gateway stage throttling bounds
the total across instances.

Platform tokens (seed 002): 60 requests a minute each, counted in DynamoDB by
``services/rate_limits.py`` (a promise to the operator, so it must hold across
instances); here only the headers that report it.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime

from chalicelib.domain.errors import RateLimitedError
from chalicelib.domain.rate_limits import RateWindow
from chalicelib.settings import get_settings

_lock = threading.Lock()
_buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill, monotonic)


def check_rate(key_id: str, *, now: float | None = None) -> None:
    """Take one token for ``key_id`` or raise 429 with the seconds until one is free."""
    settings = get_settings()
    rate, burst = settings.rate_limit_per_second, settings.rate_limit_burst
    if rate <= 0:
        return
    now = time.monotonic() if now is None else now
    with _lock:
        tokens, last = _buckets.get(key_id, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens < 1:
            _buckets[key_id] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / rate))
            raise RateLimitedError(f"Rate limit of {rate:g} requests/second exceeded for this API key.",
                                   retryAfterSeconds=wait)
        _buckets[key_id] = (tokens - 1, now)


def platform_rate_headers(window: RateWindow, now: datetime) -> dict[str, str]:
    """Laravel's throttle headers (seed 002's platform): the limit and what is left, and on a 429 when to retry."""
    headers = {"X-RateLimit-Limit": str(window.limit), "X-RateLimit-Remaining": str(window.remaining)}
    if window.exceeded:
        headers["Retry-After"] = str(window.retry_after(now))
        headers["X-RateLimit-Reset"] = str(int(window.resets_at.timestamp()))
    return headers


def reset() -> None:
    with _lock:
        _buckets.clear()
