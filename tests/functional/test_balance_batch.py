"""POST /api/v1/balance/delta/batch (X-Api-Key): up to 100 deltas, answered per item in input order.

Invalid items fail in place; billing (free cap, credits) accepts a prefix of what is valid and
refuses the rest (a batch it accepts nothing of is a 402: test_batch_payment_required.py); sequence
numbers stay gap-free however many transactions a batch needs.
"""

from __future__ import annotations

import pytest

from chalicelib import bootstrap
from chalicelib.domain.identity import Environment
from chalicelib.services import credits as credit_service

BATCH = "/api/v1/balance/delta/batch"
DELTA = "/api/v1/balance/delta"
CUSTOMERS = "/api/v1/balance/customers"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def item(customer_id: str = "cust_1", delta=1, reason: str = "usage", **extra) -> dict:
    return {"customerId": customer_id, "delta": delta, "reason": reason, **extra}


def submit(api, key: dict, deltas) -> dict:
    reply = api.post(BATCH, json_body={"deltas": deltas}, headers=key)
    assert reply.status == 202, reply
    assert reply.json["statusCode"] == 202 and reply.json["success"] is True
    data = reply.data
    assert [r["index"] for r in data["results"]] == list(range(len(deltas)))
    assert data["totalQueued"] == sum(r["status"] == "QUEUED" for r in data["results"])
    assert data["totalFailed"] == sum(r["status"] == "FAILED" for r in data["results"])
    assert data["totalQueued"] + data["totalFailed"] == len(deltas)
    return data


def statuses(data: dict) -> list[str]:
    return [r["status"] if r["status"] == "QUEUED" else r["code"] for r in data["results"]]


def all_customer_ids(api, key: dict) -> list[str]:
    seen, cursor = [], None
    while True:
        reply = api.get(f"{CUSTOMERS}?limit=100" + (f"&cursor={cursor}" if cursor else ""), headers=key)
        assert reply.status == 200, reply
        seen += [c["customerId"] for c in reply.data["items"]]
        cursor = reply.data["nextCursor"]
        if not cursor:
            return seen


def consumed(tenant_id: str, period: str = "2026-04") -> int:
    return bootstrap.unit_of_work().usage.get(tenant_id, period).consumed


def prefill_usage(tenant_id: str, count: int) -> None:
    uow = bootstrap.unit_of_work()
    uow.usage.add(tenant_id, "2026-04", Environment.PRODUCTION, count, cap=None)
    uow.commit()


def credits_tenant(world, clock, credits: int):
    tenant = world.tenant("Credits Co", billing_mode="credits")
    if credits:
        credit_service.topup(bootstrap.unit_of_work(), tenant.id, credits, actor="test", now=clock())
    return tenant, {"X-Api-Key": world.api_key(tenant)[1]}


# --- the answer ----------------------------------------------------------------------------------


def test_results_are_in_input_order_with_the_accepted_fields(api, key):
    data = submit(api, key, [item("a", 1), item("b", -2.5, referenceId="r-b"), item("a", 0.000001)])
    assert data["totalQueued"] == 3 and data["totalFailed"] == 0
    first, second, third = data["results"]
    assert first["status"] == "QUEUED" and first["customerId"] == "a" and first["sequenceNumber"] == 1
    assert second["customerId"] == "b" and second["sequenceNumber"] == 1 and second["referenceId"] == "r-b"
    assert third["customerId"] == "a" and third["sequenceNumber"] == 2
    for result in data["results"]:
        assert {"recordId", "receiptId", "status", "customerId", "delta", "sequenceNumber"} <= set(result)
        assert "idempotent" not in result and "error" not in result
    assert len({r["recordId"] for r in data["results"]}) == 3


def test_decimals_stay_exact_in_the_raw_body(api, key):
    raw = '{"deltas": [{"customerId": "a", "delta": 0.000001, "reason": "r"},' \
          ' {"customerId": "a", "delta": -999999999.999999, "reason": "r"}]}'
    reply = api.post(BATCH, body=raw, headers={**key, "Content-Type": "application/json"})
    assert reply.status == 202, reply
    assert b'"delta":0.000001' in reply.body and b'"delta":-999999999.999999' in reply.body


def test_each_accepted_item_can_be_read_back(api, key):
    data = submit(api, key, [item("a", 3, reason="first"), item("b", 4, reason="second")])
    for result, reason in zip(data["results"], ("first", "second"), strict=True):
        record = api.get(f"{DELTA}/{result['recordId']}", headers=key)
        assert record.status == 200
        assert record.data["reason"] == reason and record.data["sequenceNumber"] == result["sequenceNumber"]


def test_invalid_items_fail_in_place_and_valid_ones_are_accepted(api, tenant, key):
    deltas = [
        item("a"),
        item("a"),
        item("a", delta="10"),
        item("a"),
        item("bad id"),
        {"customerId": "a", "delta": 1},
        "not an object",
        item("a", metadata=[1]),
        item("b"),
    ]
    data = submit(api, key, deltas)
    assert statuses(data) == ["QUEUED", "QUEUED", "VALIDATION_ERROR", "QUEUED", "VALIDATION_ERROR",
                              "VALIDATION_ERROR", "VALIDATION_ERROR", "VALIDATION_ERROR", "QUEUED"]
    results = data["results"]
    for index, field in ((2, "deltas[2].delta"), (4, "deltas[4].customerId"), (5, "deltas[5].reason"),
                         (6, "deltas[6]"), (7, "deltas[7].metadata")):
        assert results[index]["status"] == "FAILED"
        assert field in results[index]["error"], results[index]
        assert "recordId" not in results[index] and "sequenceNumber" not in results[index]
    assert [results[i]["sequenceNumber"] for i in (0, 1, 3)] == [1, 2, 3]
    assert results[8]["sequenceNumber"] == 1
    assert data["totalQueued"] == 4 and data["totalFailed"] == 5
    assert consumed(tenant.id) == 4
    assert all_customer_ids(api, key) == ["a", "b"]


def test_a_batch_of_only_invalid_items_stores_nothing(api, tenant, key):
    data = submit(api, key, [item(delta=0), item(delta=None)])
    assert data["totalQueued"] == 0 and data["totalFailed"] == 2
    assert consumed(tenant.id) == 0 and all_customer_ids(api, key) == []


@pytest.mark.parametrize("payload", [
    {},
    {"deltas": None},
    {"deltas": []},
    {"deltas": {"customerId": "a", "delta": 1, "reason": "r"}},
    {"deltas": "a"},
    {"deltas": 3},
    {"deltas": [item(reason=f"n{n}") for n in range(101)]},
])
def test_deltas_must_be_a_list_of_1_to_100(api, tenant, key, payload):
    reply = api.post(BATCH, json_body=payload, headers=key)
    assert reply.status == 400, reply
    assert reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == "deltas"
    assert consumed(tenant.id) == 0


@pytest.mark.parametrize("raw, code", [
    ("[]", "VALIDATION_ERROR"),
    ("", "VALIDATION_ERROR"),
    ('{"deltas": [{"customerId": "a", "delta": NaN, "reason": "r"}]}', "INVALID_JSON"),
    ('{"deltas": [', "INVALID_JSON"),
])
def test_a_body_that_is_not_an_object_is_a_400(api, key, raw, code):
    reply = api.post(BATCH, body=raw, headers={**key, "Content-Type": "application/json"})
    assert reply.status == 400 and reply.error["code"] == code and reply.error["field"] == "body"


# --- many deltas, several transactions ---------------------------------------------------------------


@pytest.mark.parametrize("with_reference", [False, True])
def test_100_deltas_for_100_customers_are_all_accepted(api, world, with_reference):
    tenant = world.tenant("Paid Co", plan="starter")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    customers = [f"cust_{n:03d}" for n in range(100)]
    extra = (lambda n: {"referenceId": f"ref-{n}"}) if with_reference else (lambda n: {})
    data = submit(api, key, [item(c, n + 1, **extra(n)) for n, c in enumerate(customers)])
    assert data["totalQueued"] == 100 and data["totalFailed"] == 0
    assert [r["customerId"] for r in data["results"]] == customers
    assert [r["sequenceNumber"] for r in data["results"]] == [1] * 100
    assert [r["delta"] for r in data["results"]] == list(range(1, 101))
    assert len({r["recordId"] for r in data["results"]}) == 100
    assert consumed(tenant.id) == 100
    assert all_customer_ids(api, key) == customers

    again = submit(api, key, [item(c) for c in customers[:3]])
    assert [r["sequenceNumber"] for r in again["results"]] == [2, 2, 2]


def test_100_deltas_for_one_customer_are_numbered_1_to_100_in_order(api, world):
    tenant = world.tenant("Paid Co", plan="starter")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    data = submit(api, key, [item("cust_1", n + 1, reason=f"n{n}", referenceId=f"r{n}") for n in range(100)])
    assert data["totalQueued"] == 100
    assert [r["sequenceNumber"] for r in data["results"]] == list(range(1, 101))
    assert [r["delta"] for r in data["results"]] == list(range(1, 101))
    record = api.get(f"{DELTA}/{data['results'][56]['recordId']}", headers=key).data
    assert record["sequenceNumber"] == 57 and record["reason"] == "n56"
    next_one = api.post(DELTA, json_body=item("cust_1"), headers=key)
    assert next_one.data["sequenceNumber"] == 101


def test_interleaved_customers_in_a_batch_each_get_gap_free_numbers(api, key):
    api.post(DELTA, json_body=item("b"), headers=key)
    order = ["a", "b", "a", "c", "b", "a"]
    data = submit(api, key, [item(c) for c in order])
    assert [(r["customerId"], r["sequenceNumber"]) for r in data["results"]] == [
        ("a", 1), ("b", 2), ("a", 2), ("c", 1), ("b", 3), ("a", 3)]


# --- referenceId inside and across batches -------------------------------------------------------------


def test_a_duplicate_reference_in_one_batch_replays_the_first(api, tenant, key):
    data = submit(api, key, [item("a", referenceId="r1"), item("b", referenceId="r1"),
                             item("a", referenceId="r1"), item("a", referenceId="r2")])
    first, other_customer, duplicate, fourth = data["results"]
    assert duplicate["status"] == "QUEUED" and duplicate["idempotent"] is True
    assert duplicate["recordId"] == first["recordId"] and duplicate["sequenceNumber"] == 1
    assert "idempotent" not in first
    assert other_customer["recordId"] != first["recordId"] and "idempotent" not in other_customer
    assert fourth["sequenceNumber"] == 2
    assert data["totalQueued"] == 4
    assert consumed(tenant.id) == 3


def test_a_reference_already_stored_is_replayed_in_a_batch(api, tenant, key):
    stored = api.post(DELTA, json_body=item("a", referenceId="r1"), headers=key).data
    data = submit(api, key, [item("a", referenceId="r1"), item("a")])
    assert data["results"][0]["recordId"] == stored["recordId"] and data["results"][0]["idempotent"] is True
    assert data["results"][1]["sequenceNumber"] == 2
    assert consumed(tenant.id) == 2


# --- billing inside a batch -------------------------------------------------------------------------


@pytest.mark.parametrize("available, size", [(1, 4), (3, 5), (7, 10), (5, 5)])  # none at all: a 402
def test_credits_running_out_mid_batch_accept_a_prefix(api, world, clock, available, size):
    tenant, key = credits_tenant(world, clock, available)
    data = submit(api, key, [item("cust_1", reason=f"n{n}") for n in range(size)])
    accepted = min(available, size)
    assert statuses(data) == ["QUEUED"] * accepted + ["INSUFFICIENT_CREDITS"] * (size - accepted)
    assert [r["sequenceNumber"] for r in data["results"][:accepted]] == list(range(1, accepted + 1))
    assert data["totalQueued"] == accepted and data["totalFailed"] == size - accepted
    balances = api.get("/dashboard/credit/balances", headers=world.auth(tenant)).data
    assert balances == {"creditBalance": available, "availableBalance": available - accepted,
                        "reserved": accepted}
    assert consumed(tenant.id) == accepted
    assert all_customer_ids(api, key) == (["cust_1"] if accepted else [])


def test_invalid_items_cost_no_credits(api, world, clock):
    _tenant, key = credits_tenant(world, clock, 2)
    data = submit(api, key, [item("a"), item("a", delta=0), item("b"), item("c")])
    assert statuses(data) == ["QUEUED", "VALIDATION_ERROR", "QUEUED", "INSUFFICIENT_CREDITS"]
    assert all_customer_ids(api, key) == ["a", "b"]


def test_credits_refused_items_create_no_customer(api, world, clock):
    _tenant, key = credits_tenant(world, clock, 2)
    data = submit(api, key, [item(f"cust_{n}") for n in range(4)])
    assert data["totalQueued"] == 2
    assert all_customer_ids(api, key) == ["cust_0", "cust_1"]


@pytest.mark.parametrize("already, size, queued", [(95, 10, 5), (0, 100, 100), (99, 3, 1)])  # none: a 402
def test_the_free_cap_accepts_a_prefix_of_a_batch(api, tenant, key, already, size, queued):
    if already:
        prefill_usage(tenant.id, already)
    data = submit(api, key, [item("cust_1", reason=f"n{n}") for n in range(size)])
    assert statuses(data) == ["QUEUED"] * queued + ["PLAN_LIMIT_EXCEEDED"] * (size - queued)
    assert consumed(tenant.id) == already + queued


def test_a_paid_plan_batch_runs_into_overage(api, world):
    tenant = world.tenant("Paid Co", plan="pilot")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    prefill_usage(tenant.id, 9_995)
    data = submit(api, key, [item("cust_1") for _ in range(10)])
    assert data["totalQueued"] == 10
    assert consumed(tenant.id) == 10_005


@pytest.mark.parametrize("available", [50, 100])
def test_credits_across_several_transactions_are_reserved_exactly(api, world, clock, available):
    tenant, key = credits_tenant(world, clock, available)
    data = submit(api, key, [item(f"cust_{n:03d}", referenceId=f"ref-{n}") for n in range(100)])
    assert statuses(data) == ["QUEUED"] * available + ["INSUFFICIENT_CREDITS"] * (100 - available)
    balances = api.get("/dashboard/credit/balances", headers=world.auth(tenant)).data
    assert balances == {"creditBalance": available, "availableBalance": 0, "reserved": available}
    assert len(all_customer_ids(api, key)) == available


def test_a_duplicate_of_an_accepted_item_is_not_charged_again(api, world, clock):
    _tenant, key = credits_tenant(world, clock, 1)
    data = submit(api, key, [item("a", referenceId="r1"), item("b"), item("a", referenceId="r1")])
    assert statuses(data) == ["QUEUED", "INSUFFICIENT_CREDITS", "QUEUED"]
    assert data["results"][2]["idempotent"] is True
    assert data["results"][2]["recordId"] == data["results"][0]["recordId"]
