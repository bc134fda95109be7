"""Platform tokens: 60 requests per UTC minute each, counted in DynamoDB (SPEC "Credentials" 4, seed 002).

Every answer to a recognised token carries ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining``; the 61st
request of a minute answers 429 in the platform error shape with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.dynamo_calls import DynamoCalls

ALL = ("tenants:read", "tenants:write", "cross-tenant")
LIMIT = 60
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@pytest.fixture
def token(world):
    return {"Authorization": f"Bearer {world.platform_token(*ALL)}"}


def spend(api, headers: dict, n: int) -> list:
    return [api.get("/tenants", headers=headers) for _ in range(n)]


def rate(reply) -> tuple[str | None, str | None]:
    return reply.headers.get("x-ratelimit-limit"), reply.headers.get("x-ratelimit-remaining")


@pytest.fixture
def dynamo_operations(aws) -> Iterator[list[str]]:
    """The name of every DynamoDB call made while the test runs."""
    with DynamoCalls.recording() as calls:
        yield calls.operations


def test_every_request_of_the_minute_reports_what_is_left(api, world, token):
    world.tenant("Acme Inc")
    replies = spend(api, token, LIMIT)
    assert [r.status for r in replies] == [200] * LIMIT
    assert [rate(r) for r in replies] == [("60", str(LIMIT - n)) for n in range(1, LIMIT + 1)]
    assert all("retry-after" not in r.headers for r in replies)


def test_the_61st_request_in_a_minute_is_a_429_with_retry_after(api, world, token):
    world.clock.current = datetime(2026, 4, 15, 12, 0, 15, 500000, tzinfo=UTC)
    spend(api, token, LIMIT)
    reply = api.get("/tenants", headers=token)
    assert reply.status == 429
    assert reply.json == {"message": "Too Many Attempts.", "code": "rate_limited"}
    assert rate(reply) == ("60", "0")
    assert reply.headers["retry-after"] == "45"  # 44.5 s to 12:01, rounded up
    assert reply.headers["x-ratelimit-reset"] == str(int(datetime(2026, 4, 15, 12, 1, tzinfo=UTC).timestamp()))


def test_requests_over_the_limit_stay_refused_and_change_nothing(api, world, token):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    spend(api, token, LIMIT)
    world.clock.advance(seconds=50)
    reply = api.post(f"/tenants/{tenant.id}/missing-payments", headers=token)
    assert reply.status == 429 and reply.headers["retry-after"] == "10"
    assert world.uow().tenants.get(tenant.id).has_unpaid_invoices_at is None
    assert api.delete(f"/tenants/{tenant.id}/missing-payments", headers=token).status == 429


def test_a_new_minute_resets_the_count(api, world, token):
    world.clock.current = datetime(2026, 4, 15, 12, 0, 59, tzinfo=UTC)
    spend(api, token, LIMIT)
    assert api.get("/tenants", headers=token).status == 429
    world.clock.advance(seconds=1)  # 12:01:00, a new window
    reply = api.get("/tenants", headers=token)
    assert reply.status == 200 and rate(reply) == ("60", "59")
    assert "retry-after" not in reply.headers


def test_two_tokens_are_independent(api, world, token):
    other = {"Authorization": f"Bearer {world.platform_token(*ALL)}"}
    spend(api, token, LIMIT)
    assert api.get("/tenants", headers=token).status == 429
    reply = api.get("/tenants", headers=other)
    assert reply.status == 200 and rate(reply) == ("60", "59")
    assert api.get("/tenants", headers=token).status == 429


def test_error_answers_carry_the_headers_and_count(api, world):
    target = world.tenant("Target Co")
    reader = {"Authorization": f"Bearer {world.platform_token('tenants:read')}"}
    forbidden = api.get("/tenants", headers=reader)  # lacks cross-tenant
    assert forbidden.status == 403 and rate(forbidden) == ("60", "59")
    writer = {"Authorization": f"Bearer {world.platform_token(*ALL)}"}
    assert rate(api.post("/tenants/999/missing-payments", headers=writer)) == ("60", "59")  # 404
    assert rate(api.post(f"/tenants/{target.id}/missing-payments", headers=writer)) == ("60", "58")  # 400
    assert rate(api.get("/tenants?per_page=0", headers=writer)) == ("60", "57")  # 422


def test_an_unrecognised_token_is_a_401_without_rate_headers(api, world):
    for headers in ({}, {"Authorization": "Bearer ptk_unknown0000|" + "s" * 43}):
        reply = api.get("/tenants", headers=headers)
        assert reply.status == 401 and rate(reply) == (None, None)


def test_a_revoked_token_is_refused_before_it_is_counted(api, world):
    from chalicelib.services.platform import revoke_platform_token

    plaintext = world.platform_token(*ALL)
    revoke_platform_token(world.uow(), plaintext.split("|")[0], now=world.clock())
    reply = api.get("/tenants", headers={"Authorization": f"Bearer {plaintext}"})
    assert reply.status == 401 and rate(reply) == (None, None)


def test_the_count_lives_in_dynamodb_not_in_the_process(api, world, token):
    """A cold start (another execution environment) continues the same minute's count."""
    from chalicelib import bootstrap
    from chalicelib.api import ratelimit

    spend(api, token, 30)
    bootstrap.reset()
    ratelimit.reset()
    reply = api.get("/tenants", headers=token)
    assert rate(reply) == ("60", "29")


def test_counting_costs_one_dynamodb_write(api, world, token, dynamo_operations):
    api.get("/tenants", headers=token)  # the first use also records last_used_at
    dynamo_operations.clear()
    assert api.get("/tenants", headers=token).status == 200
    assert [op for op in dynamo_operations if op in WRITES] == ["UpdateItem"]
    dynamo_operations.clear()
    spend(api, token, LIMIT)
    dynamo_operations.clear()
    assert api.get("/tenants", headers=token).status == 429  # refused: the same one (conditional) write
    assert [op for op in dynamo_operations if op in WRITES] == ["UpdateItem"]
    assert "Query" not in dynamo_operations


def test_the_window_item_expires_by_ttl(api, world, token):
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.models import RateWindowRecord

    api.get("/tenants", headers=token)
    token_id = token["Authorization"].split()[1].split("|")[0]
    item = RateWindowRecord.get(keys.rate_window_pk("1", token_id), keys.rate_window_sk("202604151200"),
                                consistent_read=True)
    assert item.hits == 1
    assert item.ttl == datetime(2026, 4, 15, 12, 6, tzinfo=UTC)


def test_openapi_documents_the_429_and_the_headers_on_platform_routes(api):
    document = api.get("/openapi.json").json
    for path, method in (("/tenants", "get"), ("/tenants/{tenant}/missing-payments", "post"),
                         ("/tenants/{tenant}/missing-payments", "delete")):
        responses = document["paths"][path][method]["responses"]
        assert responses["429"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/PlatformError"}
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining"} <= set(responses["200"]["headers"])
        assert "headers" not in responses["401"]
