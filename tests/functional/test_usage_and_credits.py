"""Seed 003 (usage, free cap, overage) and seed 004 (credit balances and entries), through HTTP.

GET /dashboard/billing/usage, GET /api/v1/balance/usage, GET /dashboard/credit/balances,
GET /dashboard/credit/entries and the platform admins' POST /dashboard/credit/topups.
"""

from __future__ import annotations

import pytest

from chalicelib import bootstrap
from chalicelib.domain.identity import Environment
from chalicelib.services import credits as credit_service

USAGE = "/dashboard/billing/usage"
API_USAGE = "/api/v1/balance/usage"
BALANCES = "/dashboard/credit/balances"
ENTRIES = "/dashboard/credit/entries"
TOPUPS = "/dashboard/credit/topups"
DELTA = "/api/v1/balance/delta"
USAGE_KEYS = {"period", "consumedDeltas", "overageCount", "overageChargesUsd", "remainingDeltas"}
BALANCE_KEYS = {"creditBalance", "availableBalance", "reserved"}
ENTRY_KEYS = {"id", "type", "amount", "description", "balanceAfter", "createdAt"}


@pytest.fixture
def platform(world):
    """The platform operator's tenant: created first, so its id is "1"."""
    tenant = world.tenant("Tally Platform", plan="enterprise")
    assert tenant.id == "1"
    return tenant


@pytest.fixture
def acme(world, platform):
    return world.tenant("Acme Inc", stripe_customer_id="cus_acme")


def make(world, platform, plan: str = "free", billing_mode: str = "monthly"):
    return world.tenant(f"{plan} {billing_mode} Co", plan=plan, billing_mode=billing_mode,
                        stripe_customer_id="cus_" + plan)


def add_usage(tenant_id: str, count: int, environment: Environment = Environment.PRODUCTION,
              period: str = "2026-04") -> None:
    uow = bootstrap.unit_of_work()
    uow.usage.add(tenant_id, period, environment, count, cap=None)
    uow.commit()


def top_up(tenant, amount: int, now, description: str | None = None) -> None:
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, amount, actor="test", now=now,
                         description=description)


def emit(api, key: dict, customer_id: str = "cust_1") -> dict:
    reply = api.post(DELTA, json_body={"customerId": customer_id, "delta": 1, "reason": "usage"}, headers=key)
    assert reply.status == 202, reply
    return reply.data


def usage(api, headers: dict, query: str = ""):
    reply = api.get(USAGE + query, headers=headers)
    assert reply.status == 200, reply
    assert set(reply.data) == USAGE_KEYS
    return reply


# --- GET /dashboard/billing/usage (seed 003) ------------------------------------------------------


def test_usage_has_exactly_the_seed_shape_for_the_current_period(api, world, acme):
    key = {"X-Api-Key": world.api_key(acme)[1]}
    for _ in range(3):
        emit(api, key)
    reply = usage(api, world.auth(acme))
    assert reply.json == {"statusCode": 200, "success": True, "data": {
        "period": "2026-04", "consumedDeltas": 3, "overageCount": 0, "overageChargesUsd": 0,
        "remainingDeltas": 97}}


def test_the_seed_example_figures(api, world, platform):
    tenant = make(world, platform, "starter")
    add_usage(tenant.id, 1042)
    reply = usage(api, world.auth(tenant))
    assert reply.data == {"period": "2026-04", "consumedDeltas": 1042, "overageCount": 0,
                          "overageChargesUsd": 0, "remainingDeltas": 98958}
    assert b'"overageChargesUsd":0,' in reply.body


@pytest.mark.parametrize("plan, consumed, overage, charges, remaining", [
    ("starter", 100_012, 12, b"0.144", 0),
    ("starter", 100_000, 0, b"0", 0),
    ("starter", 99_999, 0, b"0", 1),
    ("pilot", 10_001, 1, b"0.02", 0),
    ("pilot", 10_333, 333, b"6.66", 0),
    ("growth", 500_100, 100, b"1", 0),
    ("scale", 2_000_003, 3, b"0.024", 0),
    ("scale", 2_000_001, 1, b"0.008", 0),
])
def test_paid_plan_overage_is_exact(api, world, platform, plan, consumed, overage, charges, remaining):
    tenant = make(world, platform, plan)
    add_usage(tenant.id, consumed - 7)
    add_usage(tenant.id, 7, Environment.SANDBOX)
    reply = usage(api, world.auth(tenant))
    assert reply.data["consumedDeltas"] == consumed
    assert reply.data["overageCount"] == overage and reply.data["remainingDeltas"] == remaining
    assert b'"overageChargesUsd":' + charges + b"," in reply.body, reply.body


def test_the_free_plan_has_no_overage_at_its_cap(api, world, acme):
    add_usage(acme.id, 100)
    assert usage(api, world.auth(acme)).data == {"period": "2026-04", "consumedDeltas": 100, "overageCount": 0,
                                                 "overageChargesUsd": 0, "remainingDeltas": 0}


@pytest.mark.parametrize("period, expected", [("2026-01", 0), ("2026-03", 5), ("2026-04", 9), ("2025-12", 0)])
def test_a_named_period_reads_that_period(api, world, acme, period, expected):
    add_usage(acme.id, 5, period="2026-03")
    add_usage(acme.id, 9, period="2026-04")
    data = usage(api, world.auth(acme), f"?period={period}").data
    assert data == {"period": period, "consumedDeltas": expected, "overageCount": 0, "overageChargesUsd": 0,
                    "remainingDeltas": 100 - expected}


def test_the_default_period_follows_the_utc_month(api, world, acme, clock):
    add_usage(acme.id, 9)
    clock.advance(days=16)
    assert usage(api, world.auth(acme)).data["period"] == "2026-05"
    assert usage(api, world.auth(acme)).data["consumedDeltas"] == 0


@pytest.mark.parametrize("period", ["2026-13", "26-01", "abc", "2026-00", "2026-1", "2026-01-01", "202601",
                                    "2026/01", " 2026-01"])
def test_a_bad_period_is_a_400(api, world, acme, period):
    reply = api.get(f"{USAGE}?period={period}", headers=world.auth(acme))
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == "period"


def test_usage_counts_both_environments_and_never_another_tenant(api, world, acme):
    other = world.tenant("Other Co")
    add_usage(acme.id, 4, Environment.PRODUCTION)
    add_usage(acme.id, 3, Environment.SANDBOX)
    add_usage(other.id, 50)
    for environment in (None, "sandbox", "production"):
        assert usage(api, world.auth(acme, "admin", environment)).data["consumedDeltas"] == 7


@pytest.mark.parametrize("role", ["owner", "admin", "manager", "viewer"])
def test_every_role_reads_usage(api, world, acme, role):
    assert usage(api, world.auth(acme, role)).data["consumedDeltas"] == 0


def test_the_session_cookie_reads_usage(api, world, acme):
    reply = usage(api, {"Cookie": f"tally_session={world.session_cookie(acme)}"})
    assert reply.data["period"] == "2026-04"


def test_usage_needs_a_dashboard_credential(api, world, acme):
    key = {"X-Api-Key": world.api_key(acme)[1]}
    for headers in ({}, key):
        assert api.get(USAGE, headers=headers).status == 401


def test_billing_reads_stay_open_while_the_dashboard_is_blocked(api, world, acme, clock):
    token = world.platform_token("tenants:write")
    assert api.post(f"/tenants/{acme.id}/missing-payments",
                    headers={"Authorization": f"Bearer {token}"}).status == 200
    top_up(acme, 10, clock())
    key = {"X-Api-Key": world.api_key(acme)[1]}
    clock.advance(days=15)
    admin = world.auth(acme)

    blocked = api.get("/dashboard/tenant", headers=admin)
    assert blocked.status == 402 and blocked.error["code"] == "DASHBOARD_BLOCKED"
    emit(api, key)  # the Balance API keeps accepting deltas
    assert usage(api, admin).data["consumedDeltas"] == 1
    assert api.get(f"{USAGE}?period=2026-04", headers=admin).status == 200
    assert api.get(BALANCES, headers=admin).data == {"creditBalance": 10, "availableBalance": 10, "reserved": 0}
    entries = api.get(f"{ENTRIES}?page=1&limit=20", headers=admin)
    assert entries.status == 200 and entries.data["total"] == 1


# --- GET /api/v1/balance/usage (SDK `usage`) --------------------------------------------------------


def api_usage(api, key: dict) -> dict:
    reply = api.get(API_USAGE, headers=key)
    assert reply.status == 200, reply
    return reply.data


def test_api_usage_of_a_free_tenant(api, world, acme):
    production = {"X-Api-Key": world.api_key(acme)[1]}
    sandbox = {"X-Api-Key": world.api_key(acme, "sandbox")[1]}
    for _ in range(3):
        emit(api, production)
    for _ in range(2):
        emit(api, sandbox)
    for key in (production, sandbox):
        data = api_usage(api, key)
        assert {k: data[k] for k in ("allowed", "remaining", "period", "plan", "consumed", "allotment",
                                     "overage")} == {
            "allowed": True, "remaining": 95, "period": "2026-04", "plan": "free", "consumed": 5,
            "allotment": 100, "overage": 0}
        assert data["byEnvironment"] == {"sandbox": 2, "production": 3}
        assert data["billingMode"] == "monthly"


def test_api_usage_of_a_free_tenant_at_its_cap(api, world, acme):
    add_usage(acme.id, 100)
    data = api_usage(api, {"X-Api-Key": world.api_key(acme)[1]})
    assert data["allowed"] is False and data["remaining"] == 0 and data["consumed"] == 100
    assert data["overage"] == 0


@pytest.mark.parametrize("credits, emitted", [(10, 3), (2, 2), (0, 0)])
def test_api_usage_of_a_credits_tenant(api, world, platform, clock, credits, emitted):
    tenant = make(world, platform, "free", "credits")
    if credits:
        top_up(tenant, credits, clock())
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    for _ in range(emitted):
        emit(api, key)
    data = api_usage(api, key)
    assert data["billingMode"] == "credits" and data["consumed"] == emitted
    assert data["remaining"] == credits - emitted
    assert data["allowed"] is (credits - emitted > 0)
    assert data["credits"] == {"creditBalance": credits, "availableBalance": credits - emitted,
                               "reserved": emitted}


def test_api_usage_of_a_paid_tenant_in_overage(api, world, platform):
    tenant = make(world, platform, "starter")
    add_usage(tenant.id, 100_010, Environment.PRODUCTION)
    add_usage(tenant.id, 2, Environment.SANDBOX)
    reply = api.get(API_USAGE, headers={"X-Api-Key": world.api_key(tenant, "sandbox")[1]})
    data = reply.data
    assert data["allowed"] is True and data["plan"] == "starter" and data["allotment"] == 100_000
    assert data["consumed"] == 100_012 and data["overage"] == 12
    assert data["byEnvironment"] == {"sandbox": 2, "production": 100_010}
    assert b'"overageChargesUsd":0.144' in reply.body


# --- GET /dashboard/credit/balances (seed 004) -------------------------------------------------------


def test_balances_of_a_fresh_tenant_are_zero_with_exactly_the_seed_keys(api, world, acme):
    reply = api.get(BALANCES, headers=world.auth(acme))
    assert reply.status == 200
    assert reply.json == {"statusCode": 200, "success": True,
                          "data": {"creditBalance": 0, "availableBalance": 0, "reserved": 0}}


def test_available_is_balance_minus_reserved(api, world, platform, clock):
    tenant = make(world, platform, "starter", "credits")
    top_up(tenant, 95_000, clock())
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    for customer in ("a", "b", "c"):
        emit(api, key, customer)
    for role in ("owner", "viewer"):
        data = api.get(BALANCES, headers=world.auth(tenant, role)).data
        assert set(data) == BALANCE_KEYS
        assert data == {"creditBalance": 95_000, "availableBalance": 94_997, "reserved": 3}


def test_balances_never_show_another_tenants_credits(api, world, acme, clock):
    other = world.tenant("Other Co")
    top_up(other, 500, clock())
    assert api.get(BALANCES, headers=world.auth(acme)).data["creditBalance"] == 0


# --- GET /dashboard/credit/entries (seed 004) --------------------------------------------------------


def test_entries_are_newest_first_with_the_seed_fields(api, world, platform, clock):
    tenant = make(world, platform, "starter", "credits")
    top_up(tenant, 10_000, clock())
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    clock.advance(minutes=1)
    emit(api, key)
    clock.advance(minutes=1)
    batch = {"deltas": [{"customerId": "c", "delta": 1, "reason": "r"} for _ in range(2)]}
    assert api.post(f"{DELTA}/batch", json_body=batch, headers=key).data["totalQueued"] == 2
    clock.advance(minutes=1)
    top_up(tenant, 500, clock(), description="Sales credit")

    reply = api.get(f"{ENTRIES}?page=1&limit=20", headers=world.auth(tenant))
    assert reply.status == 200
    data = reply.data
    assert set(data) == {"items", "total", "page", "limit", "nextCursor"}
    assert data["total"] == 3 and data["page"] == 1 and data["limit"] == 20 and data["nextCursor"] is None
    assert all(set(item) == ENTRY_KEYS for item in data["items"])
    # The holds of the three accepted deltas are posted by the next ledger writer (here the top-up), as one
    # reservation entry just before its own (domain/credits.py); the balances show them from acceptance on.
    assert [(e["type"], e["amount"], e["balanceAfter"], e["createdAt"]) for e in data["items"]] == [
        ("topup", 500, 10_497, "2026-04-15T12:03:00.000Z"),
        ("reservation", -3, 9_997, "2026-04-15T12:03:00.000Z"),
        ("topup", 10_000, 10_000, "2026-04-15T12:00:00.000Z"),
    ]
    assert data["items"][0]["description"] == "Sales credit"
    assert data["items"][2]["description"] == "Manual credit top-up"
    assert data["items"][1]["description"] == "Credits reserved for pending verifications — 3 deltas"
    assert len({e["id"] for e in data["items"]}) == 3


def test_entries_of_the_same_millisecond_are_still_newest_first(api, world, acme, clock):
    for amount in range(1, 11):
        top_up(acme, amount, clock())
    items = api.get(f"{ENTRIES}?limit=20", headers=world.auth(acme)).data["items"]
    assert [e["amount"] for e in items] == list(range(10, 0, -1))
    assert [e["balanceAfter"] for e in items] == [55, 45, 36, 28, 21, 15, 10, 6, 3, 1]


def test_page_numbers_and_cursors_agree(api, world, acme, clock):
    for amount in range(1, 26):
        top_up(acme, amount, clock())
        clock.advance(seconds=1)
    admin = world.auth(acme)

    by_page = [api.get(f"{ENTRIES}?page={n}&limit=10", headers=admin).data for n in (1, 2, 3)]
    assert [p["page"] for p in by_page] == [1, 2, 3]
    assert all(p["total"] == 25 and p["limit"] == 10 for p in by_page)
    assert [len(p["items"]) for p in by_page] == [10, 10, 5]
    assert by_page[2]["nextCursor"] is None

    by_cursor, cursor = [], None
    while True:
        data = api.get(f"{ENTRIES}?limit=10" + (f"&cursor={cursor}" if cursor else ""), headers=admin).data
        by_cursor.append(data)
        cursor = data["nextCursor"]
        if cursor is None:
            break
        assert len(by_cursor) < 5
    assert [p["items"] for p in by_cursor] == [p["items"] for p in by_page]
    assert [e["amount"] for p in by_page for e in p["items"]] == list(range(25, 0, -1))

    beyond = api.get(f"{ENTRIES}?page=4&limit=10", headers=admin).data
    assert beyond["items"] == [] and beyond["nextCursor"] is None and beyond["total"] == 25


def test_entries_default_to_page_1_of_20(api, world, acme, clock):
    for amount in range(1, 23):
        top_up(acme, amount, clock())
        clock.advance(seconds=1)
    data = api.get(ENTRIES, headers=world.auth(acme)).data
    assert data["page"] == 1 and data["limit"] == 20 and len(data["items"]) == 20 and data["total"] == 22
    assert data["nextCursor"]


@pytest.mark.parametrize("query, field", [
    ("page=0", "page"), ("page=abc", "page"), ("page=1001", "page"),
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
    ("cursor=garbage", "cursor"),
])
def test_bad_paging_parameters_are_a_400(api, world, acme, query, field):
    reply = api.get(f"{ENTRIES}?{query}", headers=world.auth(acme))
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == field


def test_another_tenants_cursor_reveals_nothing(api, world, acme, clock):
    other = world.tenant("Other Co")
    for amount in (1, 2, 3):
        top_up(other, amount, clock())
        clock.advance(seconds=1)
    cursor = api.get(f"{ENTRIES}?limit=1", headers=world.auth(other)).data["nextCursor"]
    assert cursor
    reply = api.get(f"{ENTRIES}?cursor={cursor}", headers=world.auth(acme))
    assert reply.status == 400 and reply.error["field"] == "cursor"
    assert "balanceAfter" not in reply.body.decode()
    assert api.get(ENTRIES, headers=world.auth(acme)).data == {"items": [], "total": 0, "page": 1, "limit": 20,
                                                               "nextCursor": None}


def _ledger_items(tenant) -> dict[str, list[str]]:
    """Every ledger item of ``tenant`` by partition (sort keys), read straight from the table."""
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.connection import shared_connection
    from chalicelib.adapters.dynamodb.models import LedgerEntryRecord

    client, table = shared_connection().client, LedgerEntryRecord.Meta.table_name
    partitions = [keys.credits_pk(tenant.id)] + [f"{keys.credits_pk(tenant.id)}#E#{n}" for n in range(8)]
    return {pk: [item["sk"]["S"] for item in client.query(
        TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}})["Items"]]
        for pk in partitions}


def test_entries_are_spread_over_eight_partitions_and_a_page_is_read_by_key(api, world, acme, clock):
    """Not beside the account, which every credits seal updates; entries are numbered without gaps, so a page
    is the account (the newest number and the total) and one BatchGetItem."""
    from tests.dynamo_calls import AwsCalls

    for amount in range(1, 18):
        top_up(acme, amount, clock())
    stored = _ledger_items(acme)
    account_partition = stored.pop(next(iter(stored)))
    assert account_partition == ["ACCOUNT"]
    assert sorted(len(sks) for sks in stored.values()) == [2, 2, 2, 2, 2, 2, 2, 3]
    admin = world.auth(acme)
    with AwsCalls.recording() as calls:
        first = api.get(f"{ENTRIES}?limit=10", headers=admin).data
    ledger = [c.operation for c in calls.calls if c.target.startswith("tally-test-ledger")]
    assert ledger == ["GetItem", "BatchGetItem"]
    with AwsCalls.recording() as calls:
        second = api.get(f"{ENTRIES}?limit=10&cursor={first['nextCursor']}", headers=admin).data
    ledger = [c.operation for c in calls.calls if c.target.startswith("tally-test-ledger")]
    assert ledger == ["GetItem", "BatchGetItem"]
    assert [e["amount"] for e in first["items"] + second["items"]] == list(range(17, 0, -1))
    assert first["total"] == second["total"] == 17 and second["nextCursor"] is None


def test_a_numbered_ledger_page_is_read_directly(api, world, acme, clock):
    """Entries are numbered, so page N is its own numbers: the account and one BatchGetItem, however deep."""
    from tests.dynamo_calls import AwsCalls

    for amount in range(1, 18):
        top_up(acme, amount, clock())
    with AwsCalls.recording() as calls:
        data = api.get(f"{ENTRIES}?limit=5&page=3", headers=world.auth(acme)).data
    assert [e["amount"] for e in data["items"]] == [7, 6, 5, 4, 3] and data["page"] == 3
    assert [c.operation for c in calls.calls if c.target.startswith("tally-test-ledger")] == ["GetItem",
                                                                                              "BatchGetItem"]


def test_entries_written_before_the_shards_are_still_listed(api, world, acme, clock):
    """Entries stored under the account's partition (before the shards existed) are found there."""
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.connection import shared_connection
    from chalicelib.adapters.dynamodb.models import LedgerEntryRecord

    for amount in range(1, 6):
        top_up(acme, amount, clock())
    admin = world.auth(acme)
    before = api.get(f"{ENTRIES}?limit=3", headers=admin).data
    client, table = shared_connection().client, LedgerEntryRecord.Meta.table_name
    for pk, sks in _ledger_items(acme).items():
        for sk in sks:
            if sk.startswith("E#") and sk != "E#ent_000000000005":  # all but the newest, moved back
                item = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"]
                client.delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
                client.put_item(TableName=table, Item=item | {"pk": {"S": keys.credits_pk(acme.id)}})
    assert len(_ledger_items(acme)[keys.credits_pk(acme.id)]) == 5  # the account and four entries
    assert api.get(f"{ENTRIES}?limit=3", headers=admin).data == before
    rest = api.get(f"{ENTRIES}?limit=3&cursor={before['nextCursor']}", headers=admin).data
    assert [e["amount"] for e in before["items"] + rest["items"]] == [5, 4, 3, 2, 1]


def test_a_cursor_past_the_newest_entry_starts_at_the_newest(api, world, acme, clock):
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.cursors import encode_cursor

    for amount in (1, 2, 3):
        top_up(acme, amount, clock())
    cursor = encode_cursor({"pk": {"S": keys.credits_pk(acme.id)}, "sk": {"S": "E#ent_999999999999"}}, 1)
    data = api.get(f"{ENTRIES}?cursor={cursor}", headers=world.auth(acme)).data
    assert [e["amount"] for e in data["items"]] == [3, 2, 1] and data["nextCursor"] is None


@pytest.mark.parametrize("entry", ["E#nope", "E#ent_12", "E#ent_00000000000x", "E#ent_-00000000001"])
def test_a_cursor_naming_no_entry_number_is_a_400(api, world, acme, clock, entry):
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.cursors import encode_cursor

    top_up(acme, 1, clock())
    cursor = encode_cursor({"pk": {"S": keys.credits_pk(acme.id)}, "sk": {"S": entry}}, 1)
    reply = api.get(f"{ENTRIES}?cursor={cursor}", headers=world.auth(acme))
    assert reply.status == 400 and reply.error["field"] == "cursor"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "POST"])
def test_entries_are_immutable(api, world, acme, clock, method):
    top_up(acme, 10, clock())
    admin = world.auth(acme, "owner")
    reply = api.request(method, ENTRIES, headers=admin, json_body={"amount": 1})
    assert reply.status == 405 and reply.error["code"] == "METHOD_NOT_ALLOWED"
    assert reply.headers["allow"] == "GET"
    entry_id = api.get(ENTRIES, headers=admin).data["items"][0]["id"]
    assert api.request(method, f"{ENTRIES}/{entry_id}", headers=admin, json_body={"amount": 1}).status == 404
    assert api.get(BALANCES, headers=admin).data["creditBalance"] == 10


# --- POST /dashboard/credit/topups -------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_a_platform_admin_tops_up_another_tenant(api, world, platform, acme, clock, role):
    clock.advance(seconds=1)
    reply = api.post(TOPUPS, headers=world.auth(platform, role), json_body={"tenantId": acme.id, "amount": 2500})
    assert reply.status == 201, reply
    data = reply.data
    assert data["tenantId"] == acme.id
    assert data["balances"] == {"creditBalance": 2500, "availableBalance": 2500, "reserved": 0}
    entry = data["entry"]
    assert set(entry) == ENTRY_KEYS
    assert {k: entry[k] for k in ("type", "amount", "balanceAfter", "description", "createdAt")} == {
        "type": "topup", "amount": 2500, "balanceAfter": 2500, "description": "Manual credit top-up",
        "createdAt": "2026-04-15T12:00:01.000Z"}

    acme_admin = world.auth(acme)
    assert api.get(BALANCES, headers=acme_admin).data == data["balances"]
    assert api.get(ENTRIES, headers=acme_admin).data["items"] == [entry]
    audit = api.get("/dashboard/audit", headers=acme_admin).data["items"]
    assert (audit[0]["action"], audit[0]["actor"], audit[0]["target"], audit[0]["createdAt"]) == (
        "credits.topup", f"user:usr_{role}_1", f"tenant:{acme.id}", "2026-04-15T12:00:01.000Z")
    assert audit[0]["details"]["amount"] == 2500
    assert api.get(BALANCES, headers=world.auth(platform)).data["creditBalance"] == 0


def test_a_top_up_adds_to_the_balance_with_its_description(api, world, platform, acme, clock):
    top_up(acme, 100, clock())
    reply = api.post(TOPUPS, headers=world.auth(platform),
                     json_body={"tenantId": acme.id, "amount": 50, "description": "Goodwill"})
    assert reply.status == 201
    assert reply.data["entry"]["description"] == "Goodwill" and reply.data["entry"]["balanceAfter"] == 150
    assert reply.data["balances"]["creditBalance"] == 150


@pytest.mark.parametrize("who, role", [
    ("customer", "owner"), ("customer", "admin"), ("customer", "manager"), ("customer", "viewer"),
    ("platform", "manager"), ("platform", "viewer"),
])
def test_only_platform_owners_and_admins_top_up(api, world, platform, acme, who, role):
    tenant = platform if who == "platform" else acme
    for target in (acme.id, tenant.id):
        reply = api.post(TOPUPS, headers=world.auth(tenant, role), json_body={"tenantId": target, "amount": 10})
        assert reply.status == 403, reply
    assert api.get(BALANCES, headers=world.auth(acme)).data["creditBalance"] == 0


@pytest.mark.parametrize("amount", [0, -1, 1.5, "10", True, None, [10], 1_000_000_001])
def test_a_bad_amount_is_a_400(api, world, platform, acme, amount):
    reply = api.post(TOPUPS, headers=world.auth(platform), json_body={"tenantId": acme.id, "amount": amount})
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == "amount"
    assert api.get(BALANCES, headers=world.auth(acme)).data["creditBalance"] == 0
    assert api.get(ENTRIES, headers=world.auth(acme)).data["total"] == 0


def test_a_missing_amount_is_a_400(api, world, platform, acme):
    reply = api.post(TOPUPS, headers=world.auth(platform), json_body={"tenantId": acme.id})
    assert reply.status == 400 and reply.error["field"] == "amount"


@pytest.mark.parametrize("tenant_id, field", [(None, "tenantId"), (2, "tenantId"), ("abc", "tenantId"),
                                              ("", "tenantId")])
def test_a_bad_tenant_id_is_a_400(api, world, platform, acme, tenant_id, field):
    body = {"amount": 10} if tenant_id is None else {"tenantId": tenant_id, "amount": 10}
    reply = api.post(TOPUPS, headers=world.auth(platform), json_body=body)
    assert reply.status == 400 and reply.error["field"] == field


def test_a_too_long_description_is_a_400(api, world, platform, acme):
    reply = api.post(TOPUPS, headers=world.auth(platform),
                     json_body={"tenantId": acme.id, "amount": 10, "description": "d" * 201})
    assert reply.status == 400 and reply.error["field"] == "description"


@pytest.mark.parametrize("tenant_id", ["999", "0"])
def test_an_unknown_tenant_is_a_404(api, world, platform, tenant_id):
    reply = api.post(TOPUPS, headers=world.auth(platform), json_body={"tenantId": tenant_id, "amount": 10})
    assert reply.status == 404 and reply.error["code"] == "NOT_FOUND"


def test_a_topped_up_credits_tenant_can_emit(api, world, platform):
    tenant = make(world, platform, "starter", "credits")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    assert api.post(DELTA, json_body={"customerId": "a", "delta": 1, "reason": "r"}, headers=key).status == 402
    assert api.post(TOPUPS, headers=world.auth(platform), json_body={"tenantId": tenant.id, "amount": 1}).status == 201
    emit(api, key, "a")
    assert api.get(BALANCES, headers=world.auth(tenant)).data == {
        "creditBalance": 1, "availableBalance": 0, "reserved": 1}
