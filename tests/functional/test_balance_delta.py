"""POST /api/v1/balance/delta and GET /api/v1/balance/delta/{recordId} (X-Api-Key), through HTTP.

SPEC "The delta lifecycle" and seed 003's free cap: exact decimals, validation that names the
field, gap-free per-customer sequence numbers, atomic acceptance (402 stores nothing).
"""

from __future__ import annotations

import json

import pytest

from chalicelib import bootstrap
from chalicelib.domain.identity import Environment
from chalicelib.services import credits as credit_service

DELTA = "/api/v1/balance/delta"
CUSTOMERS = "/api/v1/balance/customers"
USAGE = "/api/v1/balance/usage"
ACCEPTED_KEYS = {"recordId", "receiptId", "status", "customerId", "delta", "sequenceNumber"}


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


@pytest.fixture
def sandbox_key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "sandbox")[1]}


def body(customer_id: str = "cust_1", delta=10, reason: str = "usage", **extra) -> dict:
    return {"customerId": customer_id, "delta": delta, "reason": reason, **extra}


def post_raw(api, key: dict, raw: str):
    return api.post(DELTA, body=raw, headers={**key, "Content-Type": "application/json"})


def accepted(reply) -> dict:
    assert reply.status == 202, reply
    assert reply.json["statusCode"] == 202 and reply.json["success"] is True
    return reply.data


def customer_ids(api, key: dict) -> list[str]:
    reply = api.get(f"{CUSTOMERS}?limit=100", headers=key)
    assert reply.status == 200, reply
    return [c["customerId"] for c in reply.data["items"]]


def consumed(tenant_id: str, period: str = "2026-04") -> int:
    return bootstrap.unit_of_work().usage.get(tenant_id, period).consumed


def prefill_usage(tenant_id: str, count: int, environment: Environment = Environment.PRODUCTION,
                  period: str = "2026-04") -> None:
    uow = bootstrap.unit_of_work()
    uow.usage.add(tenant_id, period, environment, count, cap=None)
    uow.commit()


def top_up(tenant, amount: int, clock) -> None:
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, amount, actor="test", now=clock())


# --- happy path ------------------------------------------------------------------------------------


def test_an_accepted_delta_answers_202_with_the_sdk_fields(api, key):
    data = accepted(api.post(DELTA, json_body=body("cust_1", 10, "api calls"), headers=key))
    assert set(data) == ACCEPTED_KEYS
    assert data["status"] == "QUEUED" and data["customerId"] == "cust_1"
    assert data["delta"] == 10 and data["sequenceNumber"] == 1
    assert data["recordId"].startswith("rec_") and data["receiptId"].startswith("rcpt_")
    assert data["recordId"] != data["receiptId"]


def test_a_reference_id_is_echoed_in_the_answer(api, key):
    data = accepted(api.post(DELTA, json_body=body(referenceId="inv-7"), headers=key))
    assert data["referenceId"] == "inv-7" and "idempotent" not in data


@pytest.mark.parametrize("written, echoed", [
    ("0.000001", b'"delta":0.000001'),
    ("-0.000001", b'"delta":-0.000001'),
    ("-999999999.999999", b'"delta":-999999999.999999'),
    ("999999999.999999", b'"delta":999999999.999999'),
    ("1000000000", b'"delta":1000000000'),
    ("-1000000000", b'"delta":-1000000000'),
    ("1E9", b'"delta":1000000000'),
    ("1.50", b'"delta":1.5'),
    ("0.1", b'"delta":0.1'),
    ("123456.123456", b'"delta":123456.123456'),
    ("2.0000000", b'"delta":2'),
])
def test_delta_is_kept_exact_in_the_raw_body(api, key, written, echoed):
    reply = post_raw(api, key, '{"customerId": "cust_1", "delta": ' + written + ', "reason": "r"}')
    data = accepted(reply)
    assert echoed in reply.body, reply.body
    record = api.get(f"{DELTA}/{data['recordId']}", headers=key)
    assert record.status == 200 and echoed in record.body, record.body


def test_an_unknown_customer_is_created_with_source_integration(api, key):
    assert customer_ids(api, key) == []
    accepted(api.post(DELTA, json_body=body("cust_new"), headers=key))
    items = api.get(CUSTOMERS, headers=key).data["items"]
    assert items == [{"customerId": "cust_new", "displayName": "cust_new", "source": "integration",
                      "createdAt": "2026-04-15T12:00:00.000Z"}]


def test_a_known_customer_is_not_created_twice(api, key):
    for _ in range(3):
        accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))
    assert customer_ids(api, key) == ["cust_1"]


# --- sequence numbers ----------------------------------------------------------------------------


def test_sequence_numbers_are_gap_free_per_customer_and_independent_across_customers(api, key):
    order = ["a", "b", "a", "c", "a", "b", "c", "c", "a"]
    got: dict[str, list[int]] = {}
    for customer in order:
        data = accepted(api.post(DELTA, json_body=body(customer), headers=key))
        got.setdefault(customer, []).append(data["sequenceNumber"])
    assert got == {"a": [1, 2, 3, 4], "b": [1, 2], "c": [1, 2, 3]}


def test_sequence_numbers_are_independent_across_environments(api, key, sandbox_key):
    assert [accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))["sequenceNumber"]
            for _ in range(3)] == [1, 2, 3]
    assert accepted(api.post(DELTA, json_body=body("cust_1"), headers=sandbox_key))["sequenceNumber"] == 1
    assert accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))["sequenceNumber"] == 4
    assert customer_ids(api, sandbox_key) == ["cust_1"]


def test_sequence_numbers_are_independent_across_tenants(api, world, key):
    other = world.tenant("Other Co")
    other_key = {"X-Api-Key": world.api_key(other)[1]}
    accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))
    accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))
    assert accepted(api.post(DELTA, json_body=body("cust_1"), headers=other_key))["sequenceNumber"] == 1


def test_a_rejected_delta_does_not_consume_a_sequence_number(api, key):
    accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))
    assert api.post(DELTA, json_body=body("cust_1", delta=0), headers=key).status == 400
    assert accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))["sequenceNumber"] == 2


# --- validation ------------------------------------------------------------------------------------


def with_metadata(metadata) -> str:
    return '{"customerId": "cust_1", "delta": 1, "reason": "r", "metadata": ' + json.dumps(metadata) + "}"


@pytest.mark.parametrize("raw, field", [
    # delta
    ('{"customerId": "cust_1", "delta": "10", "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": true, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": false, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": null, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": [1], "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": {"v": 1}, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 0, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 0.0, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": -0, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 0E10, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 1000000001, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": -1000000001, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 1000000000.000001, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 1e10, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 1e999999, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 0.0000001, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": -1.1234567, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 1e-7, "reason": "r"}', "delta"),
    ('{"customerId": "cust_1", "delta": 1e-999999, "reason": "r"}', "delta"),
    # customerId
    ('{"customerId": "cust 1", "delta": 1, "reason": "r"}', "customerId"),
    ('{"customerId": "' + "c" * 129 + '", "delta": 1, "reason": "r"}', "customerId"),
    ('{"customerId": "", "delta": 1, "reason": "r"}', "customerId"),
    ('{"delta": 1, "reason": "r"}', "customerId"),
    ('{"customerId": null, "delta": 1, "reason": "r"}', "customerId"),
    ('{"customerId": 42, "delta": 1, "reason": "r"}', "customerId"),
    ('{"customerId": "cust/1", "delta": 1, "reason": "r"}', "customerId"),
    ('{"customerId": "cust\\u00e9", "delta": 1, "reason": "r"}', "customerId"),
    ('{"customerId": "cust_1\\t", "delta": 1, "reason": "r"}', "customerId"),
    # reason
    ('{"customerId": "cust_1", "delta": 1}', "reason"),
    ('{"customerId": "cust_1", "delta": 1, "reason": ""}', "reason"),
    ('{"customerId": "cust_1", "delta": 1, "reason": "   "}', "reason"),
    ('{"customerId": "cust_1", "delta": 1, "reason": null}', "reason"),
    ('{"customerId": "cust_1", "delta": 1, "reason": 7}', "reason"),
    ('{"customerId": "cust_1", "delta": 1, "reason": "' + "r" * 501 + '"}', "reason"),
    # referenceId
    ('{"customerId": "cust_1", "delta": 1, "reason": "r", "referenceId": ""}', "referenceId"),
    ('{"customerId": "cust_1", "delta": 1, "reason": "r", "referenceId": 5}', "referenceId"),
    ('{"customerId": "cust_1", "delta": 1, "reason": "r", "referenceId": "' + "x" * 257 + '"}', "referenceId"),
    # metadata
    ('{"customerId": "cust_1", "delta": 1, "reason": "r", "metadata": []}', "metadata"),
    ('{"customerId": "cust_1", "delta": 1, "reason": "r", "metadata": ["a", "b"]}', "metadata"),
    ('{"customerId": "cust_1", "delta": 1, "reason": "r", "metadata": "x"}', "metadata"),
    ('{"customerId": "cust_1", "delta": 1, "reason": "r", "metadata": 3}', "metadata"),
    (with_metadata({f"k{n}": n for n in range(51)}), "metadata"),
    (with_metadata({"blob": "x" * 4100}), "metadata"),
    (with_metadata({"blob": "\u00e9" * 2100}), "metadata"),
    (with_metadata({"a": {"b": {"c": {"d": 1}}}}), "metadata"),
    # the body itself
    ("[]", "body"),
    ('[{"customerId": "cust_1", "delta": 1, "reason": "r"}]', "body"),
    ('"text"', "body"),
    ("42", "body"),
    ("null", "body"),
    ("", "body"),
])
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(api, tenant, key, raw, field):
    reply = post_raw(api, key, raw)
    assert reply.status == 400, reply
    assert reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == field, reply
    assert reply.json["statusCode"] == 400 and reply.json["success"] is False
    assert customer_ids(api, key) == [] and consumed(tenant.id) == 0


@pytest.mark.parametrize("raw", [
    '{"customerId": "cust_1", "delta": NaN, "reason": "r"}',
    '{"customerId": "cust_1", "delta": Infinity, "reason": "r"}',
    '{"customerId": "cust_1", "delta": -Infinity, "reason": "r"}',
    '{"customerId": "cust_1", "delta": 1, "reason": "r", "metadata": {"x": NaN}}',
    '{"customerId": "cust_1", "delta": 1, "reason": "r"',
    '{"customerId": "cust_1", "delta": 01, "reason": "r"}',
    "{'customerId': 'cust_1'}",
    "not json",
])
def test_non_json_numbers_and_malformed_bodies_are_invalid_json(api, tenant, key, raw):
    reply = post_raw(api, key, raw)
    assert reply.status == 400 and reply.error["code"] == "INVALID_JSON", reply
    assert customer_ids(api, key) == [] and consumed(tenant.id) == 0


@pytest.mark.parametrize("raw", [
    # More significant digits than Decimal's default 28-digit context: normalize() rounds them away.
    '{"customerId": "cust_1", "delta": 0.1000000000000000000000000000001, "reason": "r"}',
    '{"customerId": "cust_1", "delta": 999999999.99999999999999999999999, "reason": "r"}',
])
def test_long_fractions_are_rejected_not_rounded(api, tenant, key, raw):
    reply = post_raw(api, key, raw)
    assert reply.status == 400 and reply.error["field"] == "delta", reply
    assert consumed(tenant.id) == 0


def test_a_customer_id_with_a_trailing_newline_is_rejected(api, tenant, key):
    reply = post_raw(api, key, '{"customerId": "cust_1\\n", "delta": 1, "reason": "r"}')
    assert reply.status == 400 and reply.error["field"] == "customerId", reply
    assert customer_ids(api, key) == []


@pytest.mark.parametrize("metadata", [
    {"note": "\u00e9" * 1500},  # 3,000 bytes of UTF-8
    {"note": "\U0001f600" * 500},  # 2,000 bytes of UTF-8
])
def test_non_ascii_metadata_under_4_kib_is_accepted(api, key, metadata):
    accepted(api.post(DELTA, json_body=body(metadata=metadata), headers=key))


@pytest.mark.parametrize("extra", [
    {"metadata": {"blob": "x" * 4000}},
    {"customerId": "c" * 128},
    {"customerId": "Cust-1.a:b_C"},
    {"reason": "r" * 500},
    {"referenceId": "x" * 256},
    {"metadata": {f"k{n}": n for n in range(50)}},
    {"metadata": {"a": {"b": {"c": 1}}}},
    {"metadata": {}},
    {"metadata": None},
    {"referenceId": None},
])
def test_boundary_values_are_accepted(api, key, extra):
    data = accepted(api.post(DELTA, json_body={**body(), **extra}, headers=key))
    assert data["customerId"] == extra.get("customerId", "cust_1")


def test_a_missing_or_unknown_key_is_a_401_and_stores_nothing(api, tenant, key):
    for headers in ({}, {"X-Api-Key": "pk_live_nope.nope"}):
        reply = api.post(DELTA, json_body=body(), headers=headers)
        assert reply.status == 401 and reply.error["code"] == "INVALID_API_KEY"
    assert consumed(tenant.id) == 0


# --- GET /api/v1/balance/delta/{recordId} ---------------------------------------------------------


def test_status_returns_the_stored_fields(api, key):
    sent = body("cust_1", -2.5, "refund", referenceId="ref-1", metadata={"invoice": "inv_9", "n": 3})
    first = accepted(api.post(DELTA, json_body=sent, headers=key))
    reply = api.get(f"{DELTA}/{first['recordId']}", headers=key)
    assert reply.status == 200, reply
    data = reply.data
    assert {k: data[k] for k in ACCEPTED_KEYS} == {k: first[k] for k in ACCEPTED_KEYS}
    assert data["status"] == "QUEUED"
    assert data["reason"] == "refund" and data["referenceId"] == "ref-1"
    assert data["metadata"] == {"invoice": "inv_9", "n": 3}
    assert data["period"] == "2026-04" and data["environment"] == "production"
    assert data["creditsReserved"] == 0 and data["error"] is None
    assert data["createdAt"] == "2026-04-15T12:00:00.000Z"
    assert b'"delta":-2.5' in reply.body


def test_status_of_a_credits_tenants_delta_shows_the_reservation(api, world, clock):
    tenant = world.tenant("Credits Co", billing_mode="credits")
    top_up(tenant, 5, clock)
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    record_id = accepted(api.post(DELTA, json_body=body(), headers=key))["recordId"]
    assert api.get(f"{DELTA}/{record_id}", headers=key).data["creditsReserved"] == 1


@pytest.mark.parametrize("record_id", ["rec_doesnotexist0000000", "nope", "a" * 200])
def test_an_unknown_record_is_a_404(api, key, record_id):
    reply = api.get(f"{DELTA}/{record_id}", headers=key)
    assert reply.status == 404 and reply.error["code"] == "NOT_FOUND"


def test_another_tenants_record_is_a_404(api, world, key):
    other = world.tenant("Other Co")
    other_key = {"X-Api-Key": world.api_key(other)[1]}
    record_id = accepted(api.post(DELTA, json_body=body("cust_secret"), headers=other_key))["recordId"]
    reply = api.get(f"{DELTA}/{record_id}", headers=key)
    assert reply.status == 404 and reply.error["code"] == "NOT_FOUND"
    assert "cust_secret" not in reply.body.decode()


def test_a_record_is_only_visible_in_its_own_environment(api, key, sandbox_key):
    production = accepted(api.post(DELTA, json_body=body(), headers=key))["recordId"]
    sandbox = accepted(api.post(DELTA, json_body=body(), headers=sandbox_key))["recordId"]
    assert api.get(f"{DELTA}/{production}", headers=sandbox_key).status == 404
    assert api.get(f"{DELTA}/{sandbox}", headers=key).status == 404
    assert api.get(f"{DELTA}/{sandbox}", headers=sandbox_key).data["environment"] == "sandbox"


# --- billing at acceptance: free cap, credits, paid overage -----------------------------------------


def test_the_free_plan_accepts_exactly_100_deltas_in_the_utc_month(api, tenant, key, clock):
    batch = {"deltas": [body("cust_1", reason=f"n{n}") for n in range(99)]}
    assert api.post(f"{DELTA}/batch", json_body=batch, headers=key).data["totalQueued"] == 99
    hundredth = accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))
    assert hundredth["sequenceNumber"] == 100

    refused = api.post(DELTA, json_body=body("cust_1"), headers=key)
    assert refused.status == 402 and refused.error["code"] == "PLAN_LIMIT_EXCEEDED", refused
    new_customer = api.post(DELTA, json_body=body("cust_new"), headers=key)
    assert new_customer.status == 402 and new_customer.error["code"] == "PLAN_LIMIT_EXCEEDED"
    assert consumed(tenant.id) == 100
    assert customer_ids(api, key) == ["cust_1"]

    clock.advance(days=16)  # 2026-05-01T12:00Z
    may = accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))
    assert may["sequenceNumber"] == 101
    record = api.get(f"{DELTA}/{may['recordId']}", headers=key).data
    assert record["period"] == "2026-05"
    assert consumed(tenant.id, "2026-05") == 1 and consumed(tenant.id, "2026-04") == 100


def test_the_free_cap_ends_at_the_utc_month_boundary(api, tenant, key, clock):
    prefill_usage(tenant.id, 100)
    clock.advance(days=15, hours=11, minutes=59, seconds=59)  # 2026-04-30T23:59:59Z
    assert api.post(DELTA, json_body=body(), headers=key).status == 402
    clock.advance(seconds=1)  # 2026-05-01T00:00:00Z
    accepted(api.post(DELTA, json_body=body(), headers=key))


@pytest.mark.parametrize("production, sandbox", [(100, 0), (0, 100), (60, 40)])
def test_the_free_cap_counts_both_environments_together(api, world, tenant, key, sandbox_key,
                                                        production, sandbox):
    if production:
        prefill_usage(tenant.id, production, Environment.PRODUCTION)
    if sandbox:
        prefill_usage(tenant.id, sandbox, Environment.SANDBOX)
    for headers in (key, sandbox_key):
        reply = api.post(DELTA, json_body=body(), headers=headers)
        assert reply.status == 402 and reply.error["code"] == "PLAN_LIMIT_EXCEEDED"
    assert consumed(tenant.id) == 100


def test_the_free_cap_allows_the_last_delta_from_either_environment(api, tenant, sandbox_key):
    prefill_usage(tenant.id, 99)
    accepted(api.post(DELTA, json_body=body(), headers=sandbox_key))
    assert api.post(DELTA, json_body=body(), headers=sandbox_key).status == 402
    assert consumed(tenant.id) == 100


@pytest.mark.parametrize("credits", [1, 3])
def test_a_credits_tenant_accepts_as_many_deltas_as_it_has_credits(api, world, clock, credits):
    tenant = world.tenant("Credits Co", billing_mode="credits")
    top_up(tenant, credits, clock)
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    admin = world.auth(tenant, "admin")
    seqs = [accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))["sequenceNumber"]
            for _ in range(credits)]
    assert seqs == list(range(1, credits + 1))

    refused = api.post(DELTA, json_body=body("cust_1"), headers=key)
    assert refused.status == 402 and refused.error["code"] == "INSUFFICIENT_CREDITS", refused
    other = api.post(DELTA, json_body=body("cust_other"), headers=key)
    assert other.status == 402 and other.error["code"] == "INSUFFICIENT_CREDITS"

    assert customer_ids(api, key) == ["cust_1"]
    assert consumed(tenant.id) == credits
    assert api.get("/dashboard/credit/balances", headers=admin).data == {
        "creditBalance": credits, "availableBalance": 0, "reserved": credits}

    top_up(tenant, 1, clock)
    assert accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))["sequenceNumber"] == credits + 1


def test_a_credits_tenant_without_credits_is_refused(api, world):
    tenant = world.tenant("Credits Co", billing_mode="credits")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    reply = api.post(DELTA, json_body=body(), headers=key)
    assert reply.status == 402 and reply.error["code"] == "INSUFFICIENT_CREDITS"
    assert customer_ids(api, key) == [] and consumed(tenant.id) == 0


def test_a_credits_tenant_on_the_free_plan_is_not_capped_at_100(api, world, clock):
    tenant = world.tenant("Credits Co", billing_mode="credits", plan="free")
    top_up(tenant, 1000, clock)
    prefill_usage(tenant.id, 100)
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    accepted(api.post(DELTA, json_body=body(), headers=key))
    assert consumed(tenant.id) == 101


def _snapshot_keys(api, key: dict) -> list[str]:
    """The keys of the BatchGetItem that reads a single submit's snapshot (by table)."""
    from chalicelib.adapters.dynamodb.connection import shared_connection

    keys: list[str] = []

    def seen(params, **_):
        for table, wanted in params.get("RequestItems", {}).items():
            keys.extend(f"{table.rsplit('-', 1)[-1]}:{k['pk']['S']}" for k in wanted["Keys"])

    events = shared_connection().client.meta.events
    events.register("provide-client-params.dynamodb.BatchGetItem", seen)
    try:
        accepted(api.post(DELTA, json_body=body(), headers=key))
    finally:
        events.unregister("provide-client-params.dynamodb.BatchGetItem", seen)
    return keys


@pytest.mark.parametrize("plan, mode, usage, credits", [("starter", "monthly", 0, 0), ("free", "monthly", 16, 0),
                                                         ("starter", "credits", 0, 17)])
def test_a_submit_reads_only_the_billing_state_its_tenant_needs(api, world, clock, plan, mode, usage, credits):
    """A paid monthly tenant reads its tenant row and the customer; the free plan adds the month's 16 usage
    shards (its cap), credits billing the account and its 16 lanes (its holds)."""
    tenant = world.tenant("Reads Co", plan=plan, billing_mode=mode)
    top_up(tenant, 100, clock)
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    _snapshot_keys(api, key)  # the first submit of a process reads everything: it does not know the tenant yet
    read = _snapshot_keys(api, key)
    assert sum(k.startswith("usage:") for k in read) == usage
    assert sum(k.startswith("ledger:") for k in read) == credits
    assert sum(k.startswith("tenants:") for k in read) == 1 and len(read) == 2 + usage + credits


def test_a_tenant_that_changes_billing_between_submits_is_held_to_its_new_terms(api, world, clock):
    """What the last submit read is only a guess for the next: the tenant row read with it decides, so a
    switch to credits (none bought) is 402 at once, and a downgrade to the free plan meets its cap."""
    from dataclasses import replace

    tenant = world.tenant("Switch Co", plan="starter")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    accepted(api.post(DELTA, json_body=body(), headers=key))
    uow = bootstrap.unit_of_work()
    uow.tenants.save(replace(uow.tenants.get(tenant.id), billing_mode="credits"))
    uow.commit()
    refused = api.post(DELTA, json_body=body(), headers=key)
    assert refused.status == 402 and refused.error["code"] == "INSUFFICIENT_CREDITS"
    uow = bootstrap.unit_of_work()
    uow.tenants.save(replace(uow.tenants.get(tenant.id), billing_mode="monthly", plan="starter"))
    uow.commit()
    accepted(api.post(DELTA, json_body=body(), headers=key))
    prefill_usage(tenant.id, 98)
    uow = bootstrap.unit_of_work()
    uow.tenants.save(replace(uow.tenants.get(tenant.id), plan="free"))
    uow.commit()
    capped = api.post(DELTA, json_body=body(), headers=key)
    assert capped.status == 402 and capped.error["code"] == "PLAN_LIMIT_EXCEEDED"
    assert consumed(tenant.id) == 100


@pytest.mark.parametrize("plan, allotment", [("pilot", 10_000), ("starter", 100_000)])
def test_a_paid_monthly_plan_accepts_beyond_its_allotment(api, world, plan, allotment):
    tenant = world.tenant("Paid Co", plan=plan)
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    prefill_usage(tenant.id, allotment)
    accepted(api.post(DELTA, json_body=body(), headers=key))
    accepted(api.post(DELTA, json_body=body(), headers=key))
    assert consumed(tenant.id) == allotment + 2
    usage = api.get(USAGE, headers=key).data
    assert usage["overage"] == 2 and usage["allowed"] is True


# --- referenceId -----------------------------------------------------------------------------------


def test_a_repeated_reference_id_replays_the_first_answer_and_stores_nothing(api, tenant, key):
    first = accepted(api.post(DELTA, json_body=body("cust_1", 5, referenceId="ref-1"), headers=key))
    again = accepted(api.post(DELTA, json_body=body("cust_1", 5, referenceId="ref-1"), headers=key))
    assert again == {**first, "idempotent": True}
    assert consumed(tenant.id) == 1
    assert accepted(api.post(DELTA, json_body=body("cust_1"), headers=key))["sequenceNumber"] == 2


def test_a_repeated_reference_id_on_a_credits_tenant_reserves_nothing(api, world, clock):
    tenant = world.tenant("Credits Co", billing_mode="credits")
    top_up(tenant, 1, clock)
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    first = accepted(api.post(DELTA, json_body=body(referenceId="ref-1"), headers=key))
    again = accepted(api.post(DELTA, json_body=body(referenceId="ref-1"), headers=key))
    assert again["recordId"] == first["recordId"] and again["idempotent"] is True
    balances = api.get("/dashboard/credit/balances", headers=world.auth(tenant)).data
    assert balances == {"creditBalance": 1, "availableBalance": 0, "reserved": 1}


def test_a_repeated_reference_id_is_replayed_even_when_the_free_cap_is_reached(api, tenant, key):
    prefill_usage(tenant.id, 99)
    first = accepted(api.post(DELTA, json_body=body(referenceId="ref-1"), headers=key))
    again = accepted(api.post(DELTA, json_body=body(referenceId="ref-1"), headers=key))
    assert again["recordId"] == first["recordId"] and again["idempotent"] is True
    assert consumed(tenant.id) == 100


@pytest.mark.parametrize("second_customer, second_env", [
    ("cust_2", "production"),
    ("cust_1", "sandbox"),
])
def test_reference_ids_are_unique_per_customer_and_environment(api, key, sandbox_key, second_customer,
                                                               second_env):
    first = accepted(api.post(DELTA, json_body=body("cust_1", referenceId="ref-1"), headers=key))
    headers = key if second_env == "production" else sandbox_key
    second = accepted(api.post(DELTA, json_body=body(second_customer, referenceId="ref-1"), headers=headers))
    assert second["recordId"] != first["recordId"] and "idempotent" not in second
    assert second["sequenceNumber"] == 1


def test_metadata_with_fractional_numbers_is_stored_and_read_back_exactly(api, key):
    raw = '{"customerId": "cust_meta", "delta": 1, "reason": "r", "metadata": {"rate": 1.25, "tiny": 0.000001, "n": 3}}'
    record_id = accepted(post_raw(api, key, raw))["recordId"]
    reply = api.get(f"/api/v1/balance/delta/{record_id}", headers=key)
    assert reply.status == 200
    assert '"metadata":{"rate":1.25,"tiny":0.000001,"n":3}' in reply.body.decode()
