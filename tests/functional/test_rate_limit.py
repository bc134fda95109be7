"""Per-API-key rate limit on the Balance API: 429 RATE_LIMITED with Retry-After (SPEC "Envelopes and errors").

The token bucket runs on a monotonic clock; these tests drive that clock by hand so "rapid"
means "no time passes" and refills are exact.
"""

from __future__ import annotations

import types

import pytest

from chalicelib import bootstrap
from chalicelib.api import ratelimit
from chalicelib.settings import get_settings

CUSTOMERS = "/api/v1/balance/customers"
DELTA = "/api/v1/balance/delta"
USAGE = "/api/v1/balance/usage"
ONE = {"customerId": "cust_1", "delta": 1, "reason": "usage"}


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _limit(monkeypatch, rate: str, burst: str) -> Ticker:
    monkeypatch.setenv("TALLY_RATE_LIMIT_PER_SECOND", rate)
    monkeypatch.setenv("TALLY_RATE_LIMIT_BURST", burst)
    get_settings.cache_clear()
    ratelimit.reset()
    ticker = Ticker()
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(monotonic=ticker.monotonic))
    return ticker


@pytest.fixture
def limited(monkeypatch):
    """1 request/second, burst 2; restored afterwards."""
    ticker = _limit(monkeypatch, "1", "2")
    yield ticker
    monkeypatch.undo()
    get_settings.cache_clear()
    ratelimit.reset()


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def request(api, route: str, key: dict):
    if route == DELTA:
        return api.post(DELTA, json_body=ONE, headers=key)
    return api.get(route, headers=key)


def assert_limited(reply) -> int:
    assert reply.status == 429, reply
    assert reply.json["success"] is False and reply.error["code"] == "RATE_LIMITED"
    retry_after = int(reply.headers["retry-after"])
    assert retry_after >= 1
    assert reply.error["retryAfterSeconds"] == retry_after
    return retry_after


@pytest.mark.parametrize("route", [CUSTOMERS, USAGE, DELTA])
def test_the_third_rapid_request_with_one_key_is_a_429(api, limited, key, route):
    assert request(api, route, key).status in (200, 202)
    assert request(api, route, key).status in (200, 202)
    assert assert_limited(request(api, route, key)) == 1


def test_a_limited_write_stores_nothing(api, limited, tenant, key):
    for _ in range(2):
        assert api.post(DELTA, json_body=ONE, headers=key).status == 202
    assert_limited(api.post(DELTA, json_body=ONE, headers=key))
    assert bootstrap.unit_of_work().usage.get(tenant.id, "2026-04").consumed == 2
    limited.advance(1)
    assert api.post(DELTA, json_body=ONE, headers=key).data["sequenceNumber"] == 3


def test_a_limited_write_does_not_claim_its_idempotency_key(api, limited, key):
    for _ in range(2):
        assert api.get(CUSTOMERS, headers=key).status == 200
    assert_limited(api.post(DELTA, json_body=ONE, headers={**key, "Idempotency-Key": "k-1"}))
    limited.advance(1)
    reply = api.post(DELTA, json_body=ONE, headers={**key, "Idempotency-Key": "k-1"})
    assert reply.status == 202 and reply.json["success"] is True and "idempotent-replayed" not in reply.headers


def test_all_routes_of_one_key_share_its_bucket(api, limited, key):
    assert api.get(CUSTOMERS, headers=key).status == 200
    assert api.post(DELTA, json_body=ONE, headers=key).status == 202
    assert_limited(api.get(USAGE, headers=key))


def test_another_key_is_unaffected(api, world, limited, tenant, key):
    same_tenant = {"X-Api-Key": world.api_key(tenant, "production", name="second")[1]}
    sandbox = {"X-Api-Key": world.api_key(tenant, "sandbox")[1]}
    other_tenant = {"X-Api-Key": world.api_key(world.tenant("Other Co"))[1]}
    for _ in range(2):
        assert api.get(CUSTOMERS, headers=key).status == 200
    assert_limited(api.get(CUSTOMERS, headers=key))
    for other in (same_tenant, sandbox, other_tenant):
        assert api.get(CUSTOMERS, headers=other).status == 200
        assert api.get(CUSTOMERS, headers=other).status == 200
    assert_limited(api.get(CUSTOMERS, headers=key))


def test_tokens_refill_at_the_configured_rate_up_to_the_burst(api, limited, key):
    for _ in range(2):
        assert api.get(CUSTOMERS, headers=key).status == 200
    assert_limited(api.get(CUSTOMERS, headers=key))

    limited.advance(1)
    assert api.get(CUSTOMERS, headers=key).status == 200
    assert_limited(api.get(CUSTOMERS, headers=key))

    limited.advance(0.5)
    assert_limited(api.get(CUSTOMERS, headers=key))
    limited.advance(0.5)
    assert api.get(CUSTOMERS, headers=key).status == 200

    limited.advance(60)  # a long pause refills only up to the burst
    for _ in range(2):
        assert api.get(CUSTOMERS, headers=key).status == 200
    assert_limited(api.get(CUSTOMERS, headers=key))


def test_dashboard_routes_are_not_limited_by_it(api, world, limited, tenant, key):
    for _ in range(2):
        assert api.get(CUSTOMERS, headers=key).status == 200
    assert_limited(api.get(CUSTOMERS, headers=key))
    admin = world.auth(tenant)
    for path in ["/dashboard/billing/usage", "/dashboard/credit/balances", "/dashboard/tenant"] * 3:
        assert api.get(path, headers=admin).status == 200, path


def test_unauthenticated_requests_do_not_spend_a_keys_tokens(api, limited, key):
    for _ in range(5):
        assert api.get(CUSTOMERS, headers={"X-Api-Key": "pk_live_nope.nope"}).status == 401
    assert api.get(CUSTOMERS, headers=key).status == 200
    assert api.get(CUSTOMERS, headers=key).status == 200


@pytest.mark.parametrize("rate, burst, allowed, retry_after", [
    ("0.5", "1", 1, 2),
    ("0.25", "3", 3, 4),
    ("2", "1", 1, 1),
])
def test_retry_after_is_the_wait_for_the_next_token(api, monkeypatch, key, rate, burst, allowed, retry_after):
    try:
        _limit(monkeypatch, rate, burst)
        for _ in range(allowed):
            assert api.get(CUSTOMERS, headers=key).status == 200
        assert assert_limited(api.get(CUSTOMERS, headers=key)) == retry_after
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        ratelimit.reset()
