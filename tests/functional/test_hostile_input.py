"""No 500 for any input (issue 13, first cases): each answers its route's 4xx with a clear code.

* a lone UTF-16 surrogate (``"\\ud800"``, valid JSON, not Unicode text) in any string of a body;
* a body nested hundreds of levels deep (JSON allows it; code that walks it would overflow the stack);
* page sizes in non-ASCII digits (``²`` is ``str.isdigit()``, ``٣`` is ``int()``-able);
* dates outside the years a month can be named in (before 1000 used to reach a 500).
"""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.identity import Ability

DELTA = "/api/v1/balance/delta"
LONE = "\ud800"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant)[1]}


def raw(api, path: str, headers: dict, document: object):
    """The body exactly as a client would send it: json.dumps escapes the surrogate as \\ud800."""
    return api.post(path, body=json.dumps(document), headers={**headers, "Content-Type": "application/json"})


def assert_refused(reply, code: str = "INVALID_JSON") -> None:
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.error["code"] == code and reply.error["message"]


@pytest.mark.parametrize("delta", [
    {"customerId": "c", "delta": 1, "reason": LONE},
    {"customerId": "c", "delta": 1, "reason": "r", "referenceId": f"ref{LONE}"},
    {"customerId": "c", "delta": 1, "reason": "r", "metadata": {"k": LONE}},
    {"customerId": "c", "delta": 1, "reason": "r", "metadata": {LONE: "v"}},
    {"customerId": "c", "delta": 1, "reason": "r", "adjusts": LONE},
])
def test_a_lone_surrogate_in_a_delta_is_a_400_and_nothing_is_stored(api, key, world, tenant, delta):
    assert_refused(raw(api, DELTA, key, delta))
    assert api.get("/api/v1/balance/customers/c", headers=key).status == 404


def test_a_lone_surrogate_anywhere_in_a_batch_refuses_the_batch(api, key):
    batch = {"deltas": [{"customerId": "c", "delta": 1, "reason": "ok"}, {"customerId": "c", "delta": 1,
                                                                         "reason": f"bad {LONE}"}]}
    assert_refused(raw(api, f"{DELTA}/batch", key, batch))
    assert api.get("/api/v1/balance/customers/c", headers=key).status == 404


@pytest.mark.parametrize(("path", "document"), [
    ("/dashboard/customers", {"displayName": LONE, "customerId": "cust_x"}),
    ("/dashboard/api-keys", {"name": LONE}),
    ("/dashboard/webhooks", {"url": "https://hooks.example.com/t", "description": LONE}),
])
def test_a_lone_surrogate_in_a_dashboard_body_is_a_400(api, admin, path, document):
    assert_refused(raw(api, path, admin, document))


@pytest.mark.parametrize("depth", [33, 400, 900])
def test_metadata_nested_hundreds_deep_is_a_400(api, key, depth):
    nested: object = "leaf"
    for _ in range(depth):
        nested = {"n": nested}
    assert_refused(raw(api, DELTA, key, {"customerId": "c", "delta": 1, "reason": "r", "metadata": nested}))


def test_nesting_within_the_bound_reaches_the_metadata_rule(api, key):
    nested: object = "leaf"
    for _ in range(10):
        nested = {"n": nested}
    reply = raw(api, DELTA, key, {"customerId": "c", "delta": 1, "reason": "r", "metadata": nested})
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR"  # 3 levels at most (the domain)


@pytest.mark.parametrize("per_page", ["²", "٣", "\uff13", " 3", "+3"])  # the last ones: full-width 3, space, plus
def test_the_platform_page_size_takes_ascii_digits_only(api, world, per_page):
    world.tenant("Platform")
    bearer = {"Authorization": f"Bearer {world.platform_token(*Ability)}"}
    reply = api.get(f"/tenants?per_page={per_page}", headers=bearer)
    assert reply.status == 422 and "per_page" in reply.json["errors"]


@pytest.mark.parametrize("limit", ["٣", "²", "+3"])
def test_a_tenant_route_page_size_takes_ascii_digits_only(api, key, limit):
    reply = api.get(f"/api/v1/balance/customers?limit={limit}", headers=key)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("start", ["0999-01-01", "0001-01-01T00:00:00+14:00", "1999-12-31", "3000-01-01"])
def test_dates_outside_the_named_months_are_a_400(api, key, start):
    assert api.post(DELTA, headers=key, json_body={"customerId": "cust_a", "delta": 1, "reason": "r"}).status == 202
    window = f"startDate={start}&endDate=2026-05-01"
    for path in (f"/api/v1/balance/derive/cust_a?{window}", f"/api/v1/balance/invoice-proof/cust_a?{window}"):
        reply = api.get(path, headers=key)
        assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR", (path, reply.status)
    reply = api.post("/api/v1/balance/checkpoint", headers=key,
                     json_body={"customerId": "cust_a", "startDate": start, "endDate": "2026-05-01"})
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""])
def test_a_body_that_is_not_json_is_a_415_and_nothing_is_stored(api, key, media):
    headers = {**key, "Content-Type": media} if media else dict(key)
    reply = api.post(DELTA, body=json.dumps({"customerId": "c", "delta": 1, "reason": "r"}), headers=headers)
    assert reply.status == 415 and reply.error["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert api.get("/api/v1/balance/customers/c", headers=key).status == 404


@pytest.mark.parametrize("media", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/merge+json"])
def test_json_media_types_are_taken(api, key, media):
    reply = api.post(DELTA, body=json.dumps({"customerId": "c", "delta": 1, "reason": "r"}),
                     headers={**key, "Content-Type": media})
    assert reply.status == 202
