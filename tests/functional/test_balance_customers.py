"""GET /api/v1/balance/customers (X-Api-Key): the key environment's customers, ordered by id."""

from __future__ import annotations

import pytest

from chalicelib.domain.identity import Environment
from tests.helpers import add_customer

CUSTOMERS = "/api/v1/balance/customers"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def ids(reply) -> list[str]:
    assert reply.status == 200, reply
    return [c["customerId"] for c in reply.data["items"]]


def seed(tenant, *customer_ids: str, environment: Environment = Environment.PRODUCTION) -> None:
    for customer_id in customer_ids:
        add_customer(tenant.id, customer_id, environment)


def test_lists_the_key_environments_customers_ordered_by_id(api, world, tenant, key):
    seed(tenant, "cust_c", "cust_a", "cust_b")
    seed(tenant, "cust_sbx", environment=Environment.SANDBOX)

    reply = api.get(CUSTOMERS, headers=key)
    assert ids(reply) == ["cust_a", "cust_b", "cust_c"]
    assert reply.data["items"][0] == {"customerId": "cust_a", "displayName": "cust_a", "source": "integration",
                                      "createdAt": "2026-04-15T12:00:00.000Z"}
    assert reply.data["page"] == 1 and reply.data["limit"] == 25 and reply.data["nextCursor"] is None

    sandbox = {"X-Api-Key": world.api_key(tenant, "sandbox")[1]}
    assert ids(api.get(CUSTOMERS, headers=sandbox)) == ["cust_sbx"]


@pytest.mark.parametrize("search, expected", [
    ("acme", ["acme", "acmeX", "acme_1", "acme_2"]),
    ("acme_", ["acme_1", "acme_2"]),
    ("acme_2", ["acme_2"]),
    ("cme", []),
    ("zzz", []),
])
def test_search_is_an_id_prefix(api, tenant, key, search, expected):
    seed(tenant, "acme_2", "globex", "acme", "acmeX", "acme_1", "xacme")
    assert ids(api.get(f"{CUSTOMERS}?search={search}", headers=key)) == expected


def test_search_longer_than_128_characters_is_a_400(api, key):
    reply = api.get(f"{CUSTOMERS}?search={'a' * 129}", headers=key)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == "search"


def test_cursor_paging_visits_every_customer_once(api, tenant, key):
    everyone = [f"cust_{n:02d}" for n in range(5)]
    seed(tenant, *reversed(everyone))

    seen, pages, cursor = [], [], None
    while True:
        reply = api.get(f"{CUSTOMERS}?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=key)
        seen += ids(reply)
        pages.append(reply.data["page"])
        cursor = reply.data["nextCursor"]
        if cursor is None:
            break
        assert len(pages) < 5, "paging does not terminate"
    assert pages == [1, 2, 3]
    assert seen == everyone


def test_search_and_cursor_page_together(api, tenant, key):
    seed(tenant, "a1", "b1", "a2", "b2", "a3")
    first = api.get(f"{CUSTOMERS}?search=a&limit=2", headers=key)
    assert ids(first) == ["a1", "a2"]
    rest = api.get(f"{CUSTOMERS}?search=a&limit=2&cursor={first.data['nextCursor']}", headers=key)
    assert ids(rest) == ["a3"]


@pytest.mark.parametrize("page, expected", [
    (1, ["c0", "c1"]),
    (2, ["c2", "c3"]),
    (3, ["c4"]),
    (4, []),
    (50, []),
])
def test_page_number_without_a_cursor(api, tenant, key, page, expected):
    seed(tenant, "c0", "c1", "c2", "c3", "c4")
    reply = api.get(f"{CUSTOMERS}?limit=2&page={page}", headers=key)
    assert ids(reply) == expected
    assert reply.data["page"] == page
    if not expected:
        assert reply.data["nextCursor"] is None


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"),
    ("page=0", "page"), ("page=abc", "page"), ("page=1001", "page"),
    ("cursor=garbage", "cursor"),
])
def test_out_of_range_parameters_are_a_400(api, key, query, field):
    reply = api.get(f"{CUSTOMERS}?{query}", headers=key)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == field


def test_another_tenants_customers_never_appear(api, world, tenant, key):
    other = world.tenant("Other Co")
    seed(tenant, "cust_mine")
    seed(other, "cust_mine_too", "cust_theirs", "cust_theirs_2")
    assert ids(api.get(CUSTOMERS, headers=key)) == ["cust_mine"]
    assert ids(api.get(f"{CUSTOMERS}?search=cust_theirs", headers=key)) == []

    other_key = {"X-Api-Key": world.api_key(other, "production")[1]}
    their_cursor = api.get(f"{CUSTOMERS}?limit=1", headers=other_key).data["nextCursor"]
    assert their_cursor
    reply = api.get(f"{CUSTOMERS}?cursor={their_cursor}", headers=key)
    assert reply.status == 400 and "cust_theirs" not in reply.body.decode()


@pytest.mark.parametrize("headers", [
    {},
    {"X-Api-Key": "not-a-key"},
    {"X-Api-Key": "pk_live_AAAAAAAAAAAAAAAA." + "s" * 43},
])
def test_a_missing_or_unknown_key_is_a_401(api, tenant, headers):
    reply = api.get(CUSTOMERS, headers=headers)
    assert reply.status == 401 and reply.error["code"] == "INVALID_API_KEY"


def test_a_key_with_the_wrong_environment_prefix_is_a_401(api, world, tenant):
    _key_id, full_key = world.api_key(tenant, "production")
    reply = api.get(CUSTOMERS, headers={"X-Api-Key": full_key.replace("pk_live_", "pk_test_", 1)})
    assert reply.status == 401 and reply.error["code"] == "INVALID_API_KEY"
