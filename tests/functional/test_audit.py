"""GET /dashboard/audit: the tenant's audit trail, newest first, owner/admin only."""

from __future__ import annotations

import pytest

AUDIT = "/dashboard/audit"
KEYS = "/dashboard/api-keys"


def create_key(api, world, headers, name="ci") -> str:
    world.clock.advance(minutes=1)
    reply = api.post(KEYS, headers=headers, json_body={"name": name})
    assert reply.status == 201
    return reply.data["id"]


def test_entries_are_listed_newest_first_with_actor_action_target_and_time(api, world, tenant, admin):
    key_id = create_key(api, world, admin)
    world.clock.advance(minutes=1)
    api.post(f"{KEYS}/{key_id}/rotate", headers=admin)
    world.clock.advance(minutes=1)
    api.post(f"{KEYS}/{key_id}/revoke", headers=admin)

    reply = api.get(AUDIT, headers=admin)
    assert reply.status == 200
    page = reply.data
    user, key = f"user:usr_admin_{tenant.id}", f"api_key:{key_id}"
    assert [(e["actor"], e["action"], e["target"], e["createdAt"]) for e in page["items"]] == [
        (user, "api_key.revoked", key, "2026-04-15T12:03:00.000Z"),
        (user, "api_key.rotated", key, "2026-04-15T12:02:00.000Z"),
        (user, "api_key.created", key, "2026-04-15T12:01:00.000Z"),
        ("operator:cli", "tenant.created", f"tenant:{tenant.id}", "2026-04-15T12:00:00.000Z"),
    ]
    assert [e["environment"] for e in page["items"][:3]] == ["production"] * 3
    assert len({e["id"] for e in page["items"]}) == 4
    assert page["page"] == 1 and page["limit"] == 25 and page["nextCursor"] is None


def test_cursor_paging_visits_every_entry_once_in_order(api, world, admin):
    for n in range(4):
        create_key(api, world, admin, name=f"k{n}")
    everything = api.get(AUDIT, headers=admin).data["items"]
    assert len(everything) == 5

    seen, sizes, cursor = [], [], None
    while True:
        page = api.get(f"{AUDIT}?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=admin).data
        assert page["limit"] == 2 and page["page"] == len(sizes) + 1
        sizes.append(len(page["items"]))
        seen += [e["id"] for e in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert len(sizes) < 5, "paging does not terminate"
    assert sizes == [2, 2, 1]
    assert seen == [e["id"] for e in everything]


@pytest.mark.parametrize("query, field", [("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"),
                                          ("cursor=garbage", "cursor")])
def test_bad_paging_parameters_are_a_400(api, admin, query, field):
    reply = api.get(f"{AUDIT}?{query}", headers=admin)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == field


@pytest.mark.parametrize("role, status", [("viewer", 403), ("manager", 403), ("admin", 200), ("owner", 200)])
def test_only_owners_and_admins_read_the_trail(api, world, tenant, role, status):
    reply = api.get(AUDIT, headers=world.auth(tenant, role))
    assert reply.status == status
    if status == 403:
        assert reply.error["code"] == "FORBIDDEN" and "items" not in reply.body.decode()
    else:
        assert [e["action"] for e in reply.data["items"]] == ["tenant.created"]


def test_the_session_cookie_reads_the_trail_too(api, world, tenant):
    world.clock.advance(seconds=1)
    cookie = world.session_cookie(tenant, "owner")
    reply = api.get(AUDIT, headers={"Cookie": f"tally_session={cookie}"})
    assert reply.status == 200
    assert [e["action"] for e in reply.data["items"]] == ["session.created", "tenant.created"]


def test_a_tenant_never_sees_another_tenants_entries(api, world, tenant, admin):
    other = world.tenant("Other Co")
    other_admin = world.auth(other, "admin")
    mine = create_key(api, world, admin, name="mine")
    theirs = [create_key(api, world, other_admin, name=f"theirs{n}") for n in range(3)]

    targets = {e["target"] for e in api.get(AUDIT, headers=admin).data["items"]}
    assert targets == {f"tenant:{tenant.id}", f"api_key:{mine}"}
    other_targets = {e["target"] for e in api.get(AUDIT, headers=other_admin).data["items"]}
    assert other_targets == {f"tenant:{other.id}", *(f"api_key:{k}" for k in theirs)}

    their_cursor = api.get(f"{AUDIT}?limit=1", headers=other_admin).data["nextCursor"]
    assert their_cursor
    reply = api.get(f"{AUDIT}?cursor={their_cursor}", headers=admin)
    assert reply.status == 400 and reply.error["field"] == "cursor"
