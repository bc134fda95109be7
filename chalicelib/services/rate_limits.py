"""Request limits kept in the store, so they hold across every execution environment.

An in-process counter would allow 60 requests a minute *per Lambda instance* (and per local worker);
the count therefore lives in DynamoDB: one conditional ADD per request, nothing else.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.domain.identity import PlatformPrincipal
from chalicelib.domain.rate_limits import PLATFORM_TOKEN_REQUESTS_PER_MINUTE, RateWindow, window_id, window_start
from chalicelib.services.ports import UnitOfWork


def count_platform_request(uow: UnitOfWork, principal: PlatformPrincipal, *, now: datetime,
                           limit: int = PLATFORM_TOKEN_REQUESTS_PER_MINUTE) -> RateWindow:
    """Count this request in its token's UTC minute; the window says whether it fit (see ``enforce``)."""
    window = RateWindow(limit=limit, start=window_start(now), count=None)
    count = uow.platform_tokens.count_request(principal.token_id, window_id(window.start), limit=limit,
                                              expires_at=window.expires_at)
    return replace(window, count=count)
