"""The per-minute window's arithmetic (platform tokens, 60 requests a UTC minute)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.domain.errors import RateLimitedError
from chalicelib.domain.rate_limits import RateWindow, window_id, window_start

START = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)


def test_a_window_is_the_utc_minute():
    local = datetime(2026, 4, 15, 9, 0, 59, 999999, tzinfo=timezone(timedelta(hours=-3)))
    assert window_start(local) == START
    assert window_id(START) == "202604151200"


@pytest.mark.parametrize("offset, retry", [(0, 60), (0.5, 60), (15.5, 45), (59, 1), (59.999, 1)])
def test_retry_after_counts_whole_seconds_to_the_next_minute(offset, retry):
    window = RateWindow(limit=60, start=START, count=None)
    assert window.retry_after(START + timedelta(seconds=offset)) == retry


def test_remaining_is_what_the_count_leaves_and_zero_once_full():
    assert [RateWindow(60, START, n).remaining for n in (1, 59, 60)] == [59, 1, 0]
    assert RateWindow(60, START, None).remaining == 0


def test_only_a_request_that_did_not_fit_is_refused():
    RateWindow(60, START, 60).enforce(START)
    with pytest.raises(RateLimitedError) as refused:
        RateWindow(60, START, None).enforce(START + timedelta(seconds=20))
    assert refused.value.details == {"retryAfterSeconds": 40}


def test_the_counter_item_outlives_its_minute_briefly():
    window = RateWindow(60, START, 1)
    assert window.resets_at == START + timedelta(minutes=1)
    assert window.expires_at == START + timedelta(minutes=6)
