"""`Idempotency-Key` on the Balance API writes (SPEC "The delta lifecycle").

A new key is processed; the same key and body replays the first response byte for byte
(`Idempotent-Replayed: true`); another body → 409; a key in flight → 202 IDEMPOTENCY_PENDING
with Retry-After. Failures do not poison a key; keys are scoped by tenant, environment and
route, and kept 25 hours.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from chalicelib import bootstrap
from chalicelib.domain.identity import Environment
from chalicelib.jsoncodec import fingerprint
from chalicelib.services import credits as credit_service

DELTA = "/api/v1/balance/delta"
BATCH = "/api/v1/balance/delta/batch"
SCOPES = {DELTA: "POST /api/v1/balance/delta", BATCH: "POST /api/v1/balance/delta/batch"}
REPLAYED = "idempotent-replayed"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def one(customer_id: str = "cust_1", delta="2.5", reason: str = "usage") -> str:
    return json.dumps({"customerId": customer_id, "delta": "@", "reason": reason}).replace('"@"', str(delta))


def payload(route: str, customer_id: str = "cust_1", delta="2.5", reason: str = "usage") -> str:
    single = one(customer_id, delta, reason)
    return single if route == DELTA else '{"deltas": [' + single + "]}"


def send(api, route: str, headers: dict, raw: str, idem: str | None = None):
    extra = {"Content-Type": "application/json"}
    if idem is not None:
        extra["Idempotency-Key"] = idem
    return api.post(route, body=raw, headers={**headers, **extra})


def sequence_of(reply, route: str) -> int:
    data = reply.data
    return data["sequenceNumber"] if route == DELTA else data["results"][0]["sequenceNumber"]


def consumed(tenant_id: str) -> int:
    return bootstrap.unit_of_work().usage.get(tenant_id, "2026-04").consumed


def next_sequence(api, key: dict, customer_id: str = "cust_1") -> int:
    """Submits one more delta (no key) and returns its sequence number."""
    reply = api.post(DELTA, json_body={"customerId": customer_id, "delta": 1, "reason": "probe"}, headers=key)
    assert reply.status == 202, reply
    return reply.data["sequenceNumber"]


def claim(tenant_id: str, route: str, idem: str, raw: str, now, environment=Environment.PRODUCTION) -> bool:
    parsed = json.loads(raw, parse_float=Decimal)
    return bootstrap.unit_of_work().idempotency.claim(
        tenant_id, environment, SCOPES[route], idem, request_hash=fingerprint(parsed), now=now,
        lock_seconds=60, keep_seconds=90000)


ROUTES = pytest.mark.parametrize("route", [DELTA, BATCH])


# --- processing and replay ------------------------------------------------------------------------


@ROUTES
def test_a_new_key_is_processed(api, tenant, key, route):
    reply = send(api, route, key, payload(route), "key-1")
    assert reply.status == 202 and reply.json["success"] is True, reply
    assert REPLAYED not in reply.headers
    assert sequence_of(reply, route) == 1 and consumed(tenant.id) == 1


@ROUTES
def test_the_same_key_and_body_replays_the_first_response_and_stores_nothing(api, tenant, key, route):
    first = send(api, route, key, payload(route, delta="0.000001"), "key-1")
    assert first.status == 202, first
    for _ in range(2):
        again = send(api, route, key, payload(route, delta="0.000001"), "key-1")
        assert again.status == 202
        assert again.body == first.body
        assert again.headers[REPLAYED] == "true"
    assert b'"delta":0.000001' in first.body
    assert consumed(tenant.id) == 1
    assert next_sequence(api, key) == 2


@ROUTES
def test_a_replay_reserves_no_more_credits(api, world, clock, route):
    tenant = world.tenant("Credits Co", billing_mode="credits")
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 5, actor="test", now=clock())
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    first = send(api, route, key, payload(route), "key-1")
    again = send(api, route, key, payload(route), "key-1")
    assert again.body == first.body and again.headers[REPLAYED] == "true"
    balances = api.get("/dashboard/credit/balances", headers=world.auth(tenant)).data
    assert balances == {"creditBalance": 5, "availableBalance": 4, "reserved": 1}


def test_the_same_body_written_differently_is_still_the_same_request(api, tenant, key):
    first = send(api, DELTA, key, '{"customerId": "cust_1", "delta": 2.5, "reason": "usage"}', "key-1")
    again = send(api, DELTA, key, '{"reason":"usage","delta":2.5,\n "customerId":"cust_1"}', "key-1")
    assert again.status == 202 and again.body == first.body and again.headers[REPLAYED] == "true"
    assert consumed(tenant.id) == 1


@ROUTES
@pytest.mark.parametrize("changed", [
    {"delta": "3"},
    {"delta": "2.500001"},
    {"customer_id": "cust_2"},
    {"reason": "other"},
])
def test_the_same_key_with_another_body_is_a_409(api, tenant, key, route, changed):
    assert send(api, route, key, payload(route), "key-1").status == 202
    reply = send(api, route, key, payload(route, **changed), "key-1")
    assert reply.status == 409 and reply.error["code"] == "IDEMPOTENCY_KEY_REUSED", reply
    assert REPLAYED not in reply.headers
    assert consumed(tenant.id) == 1
    assert next_sequence(api, key) == 2


def test_without_a_key_every_request_is_processed(api, tenant, key):
    for expected in (1, 2):
        assert sequence_of(send(api, DELTA, key, payload(DELTA)), DELTA) == expected
    assert consumed(tenant.id) == 2


# --- in flight --------------------------------------------------------------------------------------


@ROUTES
def test_a_key_in_flight_answers_202_pending_with_retry_after(api, tenant, key, clock, route):
    raw = payload(route)
    assert claim(tenant.id, route, "key-1", raw, clock())
    reply = send(api, route, key, raw, "key-1")
    assert reply.status == 202, reply
    assert reply.json["success"] is False and reply.error["code"] == "IDEMPOTENCY_PENDING"
    assert int(reply.headers["retry-after"]) >= 1
    assert consumed(tenant.id) == 0

    clock.advance(seconds=59)
    assert send(api, route, key, raw, "key-1").error["code"] == "IDEMPOTENCY_PENDING"

    clock.advance(seconds=2)  # the claim's 60 s lock has lapsed
    processed = send(api, route, key, raw, "key-1")
    assert processed.status == 202 and processed.json["success"] is True, processed
    assert REPLAYED not in processed.headers
    assert sequence_of(processed, route) == 1 and consumed(tenant.id) == 1

    replay = send(api, route, key, raw, "key-1")
    assert replay.body == processed.body and replay.headers[REPLAYED] == "true"


def test_a_key_in_flight_with_another_body_is_a_409(api, tenant, key, clock):
    assert claim(tenant.id, DELTA, "key-1", payload(DELTA), clock())
    reply = send(api, DELTA, key, payload(DELTA, delta="9"), "key-1")
    assert reply.status == 409 and reply.error["code"] == "IDEMPOTENCY_KEY_REUSED"


# --- failures do not poison the key --------------------------------------------------------------------


def test_a_402_releases_the_key_so_a_retry_after_top_up_is_processed(api, world, clock):
    tenant = world.tenant("Credits Co", billing_mode="credits")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    refused = send(api, DELTA, key, one(), "key-1")
    assert refused.status == 402 and refused.error["code"] == "INSUFFICIENT_CREDITS"
    again = send(api, DELTA, key, one(), "key-1")
    assert again.status == 402 and REPLAYED not in again.headers

    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 1, actor="test", now=clock())
    processed = send(api, DELTA, key, one(), "key-1")
    assert processed.status == 202 and processed.json["success"] is True, processed
    assert REPLAYED not in processed.headers and processed.data["sequenceNumber"] == 1
    assert send(api, DELTA, key, one(), "key-1").headers[REPLAYED] == "true"


def test_a_batch_refused_whole_releases_the_key_so_a_retry_after_top_up_is_processed(api, world, clock):
    """Nothing accepted, refused for payment: a 402 like the single write, never stored for replay."""
    tenant = world.tenant("Credits Co", billing_mode="credits")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    refused = send(api, BATCH, key, payload(BATCH), "key-1")
    assert refused.status == 402 and refused.error["code"] == "INSUFFICIENT_CREDITS"
    again = send(api, BATCH, key, payload(BATCH), "key-1")
    assert again.status == 402 and REPLAYED not in again.headers
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 1, actor="test", now=clock())
    processed = send(api, BATCH, key, payload(BATCH), "key-1")
    assert processed.status == 202 and processed.data["totalQueued"] == 1 and REPLAYED not in processed.headers
    assert send(api, BATCH, key, payload(BATCH), "key-1").headers[REPLAYED] == "true"


def test_a_partly_refused_batch_is_a_completed_answer(api, world, clock):
    """A batch with any accepted item answers per item (202): its refusals are part of the answer,
    replayed like any other even after a top-up."""
    tenant = world.tenant("Credits Co", billing_mode="credits")
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 1, actor="test", now=clock())
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    body = '{"deltas": [' + one() + ", " + one("cust_2") + "]}"
    partly = send(api, BATCH, key, body, "key-1")
    assert partly.status == 202 and [r["status"] for r in partly.data["results"]] == ["QUEUED", "FAILED"]
    assert partly.data["results"][1]["code"] == "INSUFFICIENT_CREDITS"
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 2, actor="test", now=clock())
    replay = send(api, BATCH, key, body, "key-1")
    assert replay.body == partly.body and replay.headers[REPLAYED] == "true"
    assert send(api, BATCH, key, body, "key-2").data["totalQueued"] == 2


def test_a_402_on_the_free_cap_does_not_poison_the_key(api, world, tenant, key, clock):
    uow = bootstrap.unit_of_work()
    uow.usage.add(tenant.id, "2026-04", Environment.PRODUCTION, 100, cap=None)
    uow.commit()
    assert send(api, DELTA, key, one(), "key-1").status == 402
    clock.advance(days=16)  # a new UTC month
    processed = send(api, DELTA, key, one(), "key-1")
    assert processed.status == 202 and processed.json["success"] is True and REPLAYED not in processed.headers


@pytest.mark.parametrize("route, bad", [
    (DELTA, '{"customerId": "cust_1", "delta": 0, "reason": "usage"}'),
    (DELTA, '{"customerId": "cust 1", "delta": 1, "reason": "usage"}'),
    (DELTA, '{"customerId": "cust_1", "delta": NaN, "reason": "usage"}'),
    (DELTA, "[]"),
    (BATCH, '{"deltas": []}'),
    (BATCH, '{"deltas": "x"}'),
    (BATCH, '{"deltas": [{"customerId": "cust_1", "delta": Infinity, "reason": "usage"}]}'),
    (BATCH, "[]"),
])
def test_a_400_does_not_poison_the_key(api, tenant, key, route, bad):
    first = send(api, route, key, bad, "key-1")
    assert first.status == 400, first
    processed = send(api, route, key, payload(route), "key-1")
    assert processed.status == 202 and processed.json["success"] is True, processed
    assert REPLAYED not in processed.headers and consumed(tenant.id) == 1


# --- scope -------------------------------------------------------------------------------------------


def test_keys_are_scoped_by_tenant(api, world, tenant, key):
    other = world.tenant("Other Co")
    other_key = {"X-Api-Key": world.api_key(other)[1]}
    first = send(api, DELTA, key, payload(DELTA), "shared")
    theirs = send(api, DELTA, other_key, payload(DELTA, delta="7"), "shared")
    assert theirs.status == 202 and REPLAYED not in theirs.headers, theirs
    assert theirs.data["recordId"] != first.data["recordId"]
    assert consumed(other.id) == 1 and consumed(tenant.id) == 1


def test_keys_are_scoped_by_environment(api, world, tenant, key):
    sandbox = {"X-Api-Key": world.api_key(tenant, "sandbox")[1]}
    first = send(api, DELTA, key, payload(DELTA), "shared")
    again = send(api, DELTA, sandbox, payload(DELTA), "shared")
    assert again.status == 202 and REPLAYED not in again.headers
    assert again.data["recordId"] != first.data["recordId"]
    assert consumed(tenant.id) == 2


def test_keys_are_scoped_by_route(api, tenant, key):
    single = send(api, DELTA, key, payload(DELTA), "shared")
    batch = send(api, BATCH, key, payload(BATCH, delta="7"), "shared")
    assert batch.status == 202 and REPLAYED not in batch.headers, batch
    assert batch.data["results"][0]["sequenceNumber"] == 2 and single.data["sequenceNumber"] == 1
    assert consumed(tenant.id) == 2


def test_two_api_keys_of_the_same_tenant_and_environment_share_the_scope(api, world, tenant, key):
    second = {"X-Api-Key": world.api_key(tenant, "production", name="second")[1]}
    first = send(api, DELTA, key, payload(DELTA), "shared")
    again = send(api, DELTA, second, payload(DELTA), "shared")
    assert again.body == first.body and again.headers[REPLAYED] == "true"


# --- expiry and key format -------------------------------------------------------------------------


@ROUTES
def test_records_are_kept_25_hours(api, tenant, key, clock, route):
    assert send(api, route, key, payload(route), "key-1").status == 202
    clock.advance(hours=24, minutes=59)
    assert send(api, route, key, payload(route, delta="9"), "key-1").status == 409
    replay = send(api, route, key, payload(route), "key-1")
    assert replay.headers[REPLAYED] == "true"


@ROUTES
def test_records_expire_after_25_hours(api, tenant, key, clock, route):
    first = send(api, route, key, payload(route), "key-1")
    clock.advance(hours=26)
    fresh = send(api, route, key, payload(route, delta="9"), "key-1")
    assert fresh.status == 202 and fresh.json["success"] is True and REPLAYED not in fresh.headers, fresh
    assert sequence_of(fresh, route) == 2 and sequence_of(first, route) == 1
    replay = send(api, route, key, payload(route, delta="9"), "key-1")
    assert replay.body == fresh.body and replay.headers[REPLAYED] == "true"


@ROUTES
@pytest.mark.parametrize("length", [1, 64, 255])
def test_keys_up_to_255_characters_are_accepted(api, key, route, length):
    idem = "k" * length
    first = send(api, route, key, payload(route), idem)
    assert first.status == 202 and first.json["success"] is True
    assert send(api, route, key, payload(route), idem).headers[REPLAYED] == "true"


@ROUTES
@pytest.mark.parametrize("length", [256, 1000])
def test_a_key_longer_than_255_characters_is_a_400(api, tenant, key, route, length):
    reply = send(api, route, key, payload(route), "k" * length)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR", reply
    assert reply.error["field"] == "Idempotency-Key"
    assert consumed(tenant.id) == 0
