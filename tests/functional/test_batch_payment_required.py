"""Seed 003's 402 for writes, on the batch route: POST /api/v1/balance/delta/batch.

A batch of which nothing is accepted because the free cap or the credits are exhausted answers 402
with the error envelope (PLAN_LIMIT_EXCEEDED / INSUFFICIENT_CREDITS), stores nothing and keeps no
idempotency record, so a retry after an upgrade or a top-up is processed. A batch with any accepted
item — new or an idempotent replay — stays 202 with per-item failures. The single write already
answers 402 (tests/functional/test_balance_delta.py); both routes declare it in the OpenAPI document.
"""

from __future__ import annotations

import pytest

from chalicelib import bootstrap
from chalicelib.domain.identity import Environment
from chalicelib.services import credits as credit_service

BATCH = "/api/v1/balance/delta/batch"
DELTA = "/api/v1/balance/delta"
CUSTOMERS = "/api/v1/balance/customers"
REPLAYED = "idempotent-replayed"


def item(customer_id: str = "cust_1", delta=1, reason: str = "usage", **extra) -> dict:
    return {"customerId": customer_id, "delta": delta, "reason": reason, **extra}


def consumed(tenant_id: str, period: str = "2026-04") -> int:
    return bootstrap.unit_of_work().usage.get(tenant_id, period).consumed


def exhaust_free_cap(tenant_id: str) -> None:
    uow = bootstrap.unit_of_work()
    uow.usage.add(tenant_id, "2026-04", Environment.PRODUCTION, 100, cap=None)
    uow.commit()


def customer_ids(api, key: dict) -> list[str]:
    reply = api.get(f"{CUSTOMERS}?limit=100", headers=key)
    assert reply.status == 200, reply
    return [c["customerId"] for c in reply.data["items"]]


def entries(api, world, tenant) -> list[dict]:
    return api.get("/dashboard/credit/entries?limit=100", headers=world.auth(tenant)).data["items"]


@pytest.fixture
def free(world):
    tenant = world.tenant("Free Co")
    return tenant, {"X-Api-Key": world.api_key(tenant, "production")[1]}


@pytest.fixture
def credits(world):
    tenant = world.tenant("Credits Co", billing_mode="credits")
    return tenant, {"X-Api-Key": world.api_key(tenant, "production")[1]}


def refused(reply, code: str, size: int) -> dict:
    """The 402 error envelope, with the per-item results a direct API user needs to fix invalid items."""
    assert reply.status == 402, reply
    assert reply.json["statusCode"] == 402 and reply.json["success"] is False
    error = reply.error
    assert error["code"] == code and error["message"]
    assert error["totalQueued"] == 0 and error["totalFailed"] == size
    assert [r["index"] for r in error["results"]] == list(range(size))
    assert all(r["status"] == "FAILED" for r in error["results"])
    return error


# --- 402: nothing accepted, billing refused ----------------------------------------------------------


def test_a_batch_past_the_free_cap_is_a_402_and_stores_nothing(api, free):
    tenant, key = free
    exhaust_free_cap(tenant.id)
    reply = api.post(BATCH, json_body={"deltas": [item("cust_new"), item("cust_1"), item("cust_1")]}, headers=key)
    error = refused(reply, "PLAN_LIMIT_EXCEEDED", 3)
    assert {r["code"] for r in error["results"]} == {"PLAN_LIMIT_EXCEEDED"}
    assert "upgrade" in error["message"]
    assert consumed(tenant.id) == 100 and customer_ids(api, key) == []


def test_a_batch_without_credits_is_a_402_and_reserves_nothing(api, world, credits):
    tenant, key = credits
    reply = api.post(BATCH, json_body={"deltas": [item(f"cust_{n}") for n in range(100)]}, headers=key)
    error = refused(reply, "INSUFFICIENT_CREDITS", 100)
    assert {r["code"] for r in error["results"]} == {"INSUFFICIENT_CREDITS"}
    assert customer_ids(api, key) == [] and consumed(tenant.id) == 0
    assert entries(api, world, tenant) == []
    assert api.get("/dashboard/credit/balances", headers=world.auth(tenant)).data == {
        "creditBalance": 0, "availableBalance": 0, "reserved": 0}


def test_invalid_items_among_refused_ones_are_still_a_402_that_names_them(api, credits):
    """Nothing could be accepted and paying is what unblocks the rest: 402, each item's reason kept."""
    _tenant, key = credits
    reply = api.post(BATCH, json_body={"deltas": [item("a"), item("a", delta=0), item("b c")]}, headers=key)
    error = refused(reply, "INSUFFICIENT_CREDITS", 3)
    assert [r["code"] for r in error["results"]] == ["INSUFFICIENT_CREDITS", "VALIDATION_ERROR", "VALIDATION_ERROR"]
    assert "deltas[1].delta" in error["results"][1]["error"]


def test_the_sdks_batch_flush_keeps_refused_items_queued_and_sends_them_after_a_top_up(api, clock, credits):
    """pacspace-sdk 0.7.0 maps any 402 to InsufficientCreditsError (errors.py) and, when a batch request
    raises, keeps every item of it queued for the next flush (submission.py): right, since nothing was
    stored. After a top-up the next flush submits them."""
    from pacspace_sdk.errors import InsufficientCreditsError, map_api_error
    from pacspace_sdk.submission import SubmissionCoordinator

    tenant, key = credits
    raised: list[Exception] = []

    def submit_batch(deltas: list[dict]) -> dict:  # the SDK's internal batch transport, over the test client
        reply = api.post(BATCH, json_body={"deltas": deltas}, headers=key)
        if reply.status >= 400:
            raised.append(map_api_error(reply.status, reply.error["message"], BATCH, api_error=reply.error))
            raise raised[-1]
        return reply.data

    sdk = SubmissionCoordinator(submit_batch, {"autoStart": False, "autoFlushOnShutdown": False,
                                               "maxRequestsPerMinute": 60_000})  # no pacing between flushes
    sdk.queue_summaries([{"customerId": f"cust_{n}", "delta": 5, "windowStart": "2026-04-14T00:00:00Z",
                          "windowEnd": "2026-04-15T00:00:00Z"} for n in range(3)])
    flushed = sdk.flush_summaries()
    assert isinstance(raised[0], InsufficientCreditsError) and raised[0].status_code == 402
    assert (flushed["submitted"], flushed["failed"], flushed["queuedAfterFlush"]) == (0, 3, 3)
    assert customer_ids(api, key) == []

    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 3, actor="test", now=clock())
    flushed = sdk.flush_summaries()
    assert (flushed["submitted"], flushed["failed"], flushed["queuedAfterFlush"]) == (3, 0, 0)
    assert customer_ids(api, key) == ["cust_0", "cust_1", "cust_2"]


# --- 202: anything accepted, or nothing refused for payment --------------------------------------------


def test_a_partly_accepted_batch_stays_202_with_per_item_failures(api, world, clock, credits):
    tenant, key = credits
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 1, actor="test", now=clock())
    reply = api.post(BATCH, json_body={"deltas": [item("a"), item("b")]}, headers=key)
    assert reply.status == 202, reply
    assert [(r["status"], r.get("code")) for r in reply.data["results"]] == [
        ("QUEUED", None), ("FAILED", "INSUFFICIENT_CREDITS")]


def test_an_idempotent_replay_among_refusals_keeps_the_batch_202(api, world, clock, credits):
    """The replayed item's answer is success (the SDK drops it from its queue); the rest fail in place."""
    tenant, key = credits
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 1, actor="test", now=clock())
    first = api.post(BATCH, json_body={"deltas": [item("a", referenceId="r1"), item("b")]}, headers=key)
    assert first.data["totalQueued"] == 1
    again = api.post(BATCH, json_body={"deltas": [item("a", referenceId="r1"), item("b")]}, headers=key)
    assert again.status == 202, again
    assert again.data["results"][0]["idempotent"] is True
    assert again.data["results"][0]["recordId"] == first.data["results"][0]["recordId"]
    assert again.data["results"][1]["code"] == "INSUFFICIENT_CREDITS"
    assert consumed(tenant.id) == 1


def test_a_batch_of_only_invalid_items_stays_202(api, free):
    """No billing refusal: the per-item answer says what to fix; paying would not help."""
    tenant, key = free
    exhaust_free_cap(tenant.id)
    reply = api.post(BATCH, json_body={"deltas": [item(delta=0), item("bad id")]}, headers=key)
    assert reply.status == 202 and reply.data["totalFailed"] == 2, reply
    assert {r["code"] for r in reply.data["results"]} == {"VALIDATION_ERROR"}


# --- no idempotency record replays a 402 ---------------------------------------------------------------


def test_after_an_upgrade_the_retried_batch_is_processed_not_replayed(api, world, free):
    tenant, key = free
    exhaust_free_cap(tenant.id)
    body = {"deltas": [item("cust_1"), item("cust_2")]}
    headers = {**key, "Idempotency-Key": "batch-1"}
    refused(api.post(BATCH, json_body=body, headers=headers), "PLAN_LIMIT_EXCEEDED", 2)
    again = api.post(BATCH, json_body=body, headers=headers)
    assert again.status == 402 and REPLAYED not in again.headers
    key_record = bootstrap.unit_of_work().idempotency.get(tenant.id, Environment.PRODUCTION,
                                                          "POST /api/v1/balance/delta/batch", "batch-1")
    assert key_record is None  # the claim was released: nothing would replay the 402 (or a 202)

    _upgrade(tenant.id, "pilot")
    processed = api.post(BATCH, json_body=body, headers=headers)
    assert processed.status == 202 and processed.data["totalQueued"] == 2 and REPLAYED not in processed.headers
    replay = api.post(BATCH, json_body=body, headers=headers)
    assert replay.body == processed.body and replay.headers[REPLAYED] == "true"
    assert consumed(tenant.id) == 102 and customer_ids(api, key) == ["cust_1", "cust_2"]


def _upgrade(tenant_id: str, plan: str) -> None:
    from dataclasses import replace

    uow = bootstrap.unit_of_work()
    tenant = uow.tenants.get(tenant_id)
    uow.tenants.save(replace(tenant, plan=plan))
    uow.commit()


# --- the contract --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DELTA, BATCH])
def test_both_write_routes_declare_the_402(api, path):
    operation = api.get("/openapi.json").json["paths"][path]["post"]
    assert "402" in operation["responses"]


def test_the_single_write_answers_402_with_the_same_envelope(api, free):
    tenant, key = free
    exhaust_free_cap(tenant.id)
    reply = api.post(DELTA, json_body=item(), headers={**key, "Idempotency-Key": "one-1"})
    assert reply.status == 402 and reply.json["success"] is False
    assert reply.error["code"] == "PLAN_LIMIT_EXCEEDED"
    assert api.post(DELTA, json_body=item(), headers={**key, "Idempotency-Key": "one-1"}).headers.get(REPLAYED) is None
