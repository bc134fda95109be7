"""Dashboard API keys: create (full key shown once), list, get, rotate, revoke; only hashes stored."""

from __future__ import annotations

import base64
import json
import re

import boto3
import pytest

KEYS = "/dashboard/api-keys"
BALANCE = "/api/v1/balance/customers"
LIVE = re.compile(r"^pk_live_[A-Za-z0-9]{16}\.[A-Za-z0-9_-]+$")
TEST = re.compile(r"^pk_test_[A-Za-z0-9]{16}\.[A-Za-z0-9_-]+$")


def create(api, headers, name="ci key", **body):
    reply = api.post(KEYS, headers=headers, json_body={"name": name, **body})
    assert reply.status == 201, reply
    return reply.data


def secret_of(full_key: str) -> str:
    return full_key.split(".", 1)[1]


def balance_status(api, full_key: str) -> int:
    return api.get(BALANCE, headers={"X-Api-Key": full_key}).status


def cursor_of(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def audit_actions(world, tenant) -> list:
    return [(e.action, e.actor, e.target) for e in world.uow().audit.list(tenant.id, 100, None).items]


# --- create -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body_env, header_env, expected", [
    (None, None, "production"),
    ("production", None, "production"),
    ("sandbox", None, "sandbox"),
    (None, "sandbox", "sandbox"),
    (None, "production", "production"),
    ("production", "sandbox", "production"),
    ("sandbox", "production", "sandbox"),
])
def test_create_shows_the_full_key_once_with_the_environment_prefix(api, world, tenant, body_env, header_env,
                                                                    expected):
    headers = world.auth(tenant, "admin", environment=header_env)
    body = {"name": "ci key"} | ({"environment": body_env} if body_env else {})
    reply = api.post(KEYS, headers=headers, json_body=body)

    assert reply.status == 201 and reply.json["statusCode"] == 201 and reply.json["success"] is True
    data = reply.data
    assert (LIVE if expected == "production" else TEST).match(data["fullKey"]), data["fullKey"]
    key_id = data["fullKey"].split("_", 2)[2].split(".")[0]
    assert data["id"] == key_id
    assert data["prefix"] == data["fullKey"].split(".")[0]
    assert data["last4"] == data["fullKey"][-4:]
    assert data["environment"] == expected and data["name"] == "ci key" and data["status"] == "active"
    assert data["createdAt"] == "2026-04-15T12:00:00.000Z"
    assert data["createdBy"] == f"user:usr_admin_{tenant.id}"
    assert data["rotatedAt"] is None and data["revokedAt"] is None and data["lastUsedAt"] is None
    assert data["warning"]
    assert balance_status(api, data["fullKey"]) == 200


def test_name_is_trimmed_and_100_characters_are_accepted(api, admin):
    assert create(api, admin, name="  padded  ")["name"] == "padded"
    assert create(api, admin, name="n" * 100)["name"] == "n" * 100


def test_the_full_key_and_its_secret_are_never_stored(api, world, tenant, admin):
    live = create(api, admin)
    sandbox = create(api, admin, environment="sandbox")
    rotated = api.post(f"{KEYS}/{live['id']}/rotate", headers=admin).data
    shown = [live["fullKey"], sandbox["fullKey"], rotated["fullKey"]]

    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName="tally-test-api-keys")["Items"]
    assert {i["key_id"]["S"] for i in items} == {live["id"], sandbox["id"]}
    values = [json.dumps(value) for item in items for value in item.values()]
    for full_key in shown:
        for value in values:
            assert full_key not in value and secret_of(full_key) not in value


@pytest.mark.parametrize("body, code, field", [
    ({}, "VALIDATION_ERROR", "name"),
    ({"name": ""}, "VALIDATION_ERROR", "name"),
    ({"name": "   "}, "VALIDATION_ERROR", "name"),
    ({"name": "n" * 101}, "VALIDATION_ERROR", "name"),
    ({"name": 42}, "VALIDATION_ERROR", "name"),
    ({"name": None}, "VALIDATION_ERROR", "name"),
    ({"name": ["ci"]}, "VALIDATION_ERROR", "name"),
    ({"name": {"x": 1}}, "VALIDATION_ERROR", "name"),
    ({"name": "ci", "environment": "staging"}, "VALIDATION_ERROR", "environment"),
    ({"name": "ci", "environment": 1}, "VALIDATION_ERROR", "environment"),
    ({"name": "ci", "environment": ["sandbox"]}, "VALIDATION_ERROR", "environment"),
    ("[]", "VALIDATION_ERROR", "body"),
    ('"ci"', "VALIDATION_ERROR", "body"),
    ("", "VALIDATION_ERROR", "body"),
    ('{"name": ', "INVALID_JSON", "body"),
    ("{'name': 'ci'}", "INVALID_JSON", "body"),
    ('{"name": NaN}', "INVALID_JSON", "body"),
])
def test_create_rejects_invalid_bodies(api, admin, body, code, field):
    headers = {**admin, "Content-Type": "application/json"}
    raw = body if isinstance(body, str) else json.dumps(body)
    reply = api.post(KEYS, headers=headers, body=raw)
    assert reply.status == 400 and reply.error["code"] == code, reply
    assert reply.error["field"] == field
    assert api.get(KEYS, headers=admin).data["total"] == 0


def test_create_with_an_unknown_x_environment_is_a_400(api, world, tenant):
    reply = api.post(KEYS, headers=world.auth(tenant, "admin", environment="staging"), json_body={"name": "ci"})
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR"


# --- list / get ---------------------------------------------------------------------------------


def test_list_is_newest_first_scoped_to_the_environment_and_never_shows_a_secret(api, world, admin):
    created = []
    for name in ("first", "second", "third"):
        created.append(create(api, admin, name=name))
        world.clock.advance(seconds=1)
    sandbox = create(api, admin, name="sandbox", environment="sandbox")

    reply = api.get(KEYS, headers=admin)
    assert reply.status == 200
    page = reply.data
    assert [k["id"] for k in page["items"]] == [k["id"] for k in reversed(created)]
    assert page["total"] == 3 and page["limit"] == 25 and page["page"] == 1 and page["nextCursor"] is None
    assert all("fullKey" not in k and "warning" not in k and "secretHash" not in k for k in page["items"])
    for key in [*created, sandbox]:
        assert secret_of(key["fullKey"]) not in reply.body.decode()

    scoped = api.get(KEYS, headers={**admin, "X-Environment": "sandbox"}).data
    assert [k["id"] for k in scoped["items"]] == [sandbox["id"]] and scoped["total"] == 1


def test_cursor_paging_visits_every_key_exactly_once(api, world, admin):
    ids = []
    for n in range(5):
        ids.append(create(api, admin, name=f"k{n}")["id"])
        world.clock.advance(seconds=1)

    seen, pages, cursor = [], [], None
    while True:
        path = f"{KEYS}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(path, headers=admin).data
        assert page["total"] == 5 and page["limit"] == 2
        pages.append((page["page"], len(page["items"])))
        seen += [k["id"] for k in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert len(pages) < 5, "paging does not terminate"
    assert pages == [(1, 2), (2, 2), (3, 1)]
    assert seen == ids[::-1]


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1", "2.5"])
def test_limit_out_of_range_is_a_field_level_400(api, admin, limit):
    reply = api.get(f"{KEYS}?limit={limit}", headers=admin)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR"
    assert reply.error["field"] == "limit" and "limit" in reply.error["message"]


@pytest.mark.parametrize("cursor", [
    "not-a-cursor",
    "%21%21%21",
    cursor_of([]),
    cursor_of({"k": {"pk": {"S": "T#999#E#production"}, "sk": {"S": "KEY#x"}}, "p": 1}),
])
def test_invalid_cursor_is_a_400(api, admin, cursor):
    reply = api.get(f"{KEYS}?cursor={cursor}", headers=admin)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == "cursor"


@pytest.mark.parametrize("page", [0, -5, "INF"])
def test_cursor_with_a_tampered_page_number_is_a_400(api, world, tenant, admin, page):
    payload = json.dumps({"k": {"pk": {"S": f"T#{tenant.id}#E#production"}, "sk": {"S": "KEY#x"}}, "p": page})
    cursor = base64.urlsafe_b64encode(payload.replace('"INF"', "1e400").encode()).decode().rstrip("=")
    reply = api.get(f"{KEYS}?cursor={cursor}", headers=admin)
    assert reply.status == 400 and reply.error["field"] == "cursor"


def test_a_cursor_from_another_tenant_or_environment_is_rejected(api, world, admin):
    for n in range(3):
        create(api, admin, name=f"k{n}")
    cursor = api.get(f"{KEYS}?limit=1", headers=admin).data["nextCursor"]
    assert cursor

    other = world.auth(world.tenant("Other Co"), "admin")
    assert api.get(f"{KEYS}?cursor={cursor}", headers=other).status == 400
    assert api.get(f"{KEYS}?cursor={cursor}", headers={**admin, "X-Environment": "sandbox"}).status == 400


def test_get_returns_the_key_without_its_secret(api, admin):
    created = create(api, admin)
    reply = api.get(f"{KEYS}/{created['id']}", headers=admin)
    assert reply.status == 200
    assert reply.data == {k: v for k, v in created.items() if k not in ("fullKey", "warning")}
    assert secret_of(created["fullKey"]) not in reply.body.decode()


@pytest.mark.parametrize("method, suffix", [("GET", ""), ("POST", "/rotate"), ("POST", "/revoke"), ("DELETE", "")])
def test_unknown_other_tenant_or_other_environment_key_is_404(api, world, tenant, admin, method, suffix):
    other_tenant_key, _ = world.api_key(world.tenant("Other Co"), "production")
    sandbox_key, _ = world.api_key(tenant, "sandbox")
    for key_id in ("doesnotexist0000", other_tenant_key, sandbox_key):
        reply = api.request(method, f"{KEYS}/{key_id}{suffix}", headers=admin)
        assert reply.status == 404 and reply.error["code"] == "NOT_FOUND", (key_id, reply)


# --- rotate / revoke ----------------------------------------------------------------------------


def test_rotate_issues_a_new_secret_and_the_old_one_stops_working(api, world, admin):
    created = create(api, admin)
    world.clock.advance(minutes=5)
    reply = api.post(f"{KEYS}/{created['id']}/rotate", headers=admin)

    assert reply.status == 200
    rotated = reply.data
    assert LIVE.match(rotated["fullKey"]) and rotated["fullKey"] != created["fullKey"]
    assert rotated["id"] == created["id"] and rotated["prefix"] == created["prefix"]
    assert rotated["rotatedAt"] == "2026-04-15T12:05:00.000Z" and rotated["createdAt"] == created["createdAt"]
    assert rotated["last4"] == rotated["fullKey"][-4:] and rotated["status"] == "active"

    old = api.get(BALANCE, headers={"X-Api-Key": created["fullKey"]})
    assert old.status == 401 and old.error["code"] == "INVALID_API_KEY"
    assert balance_status(api, rotated["fullKey"]) == 200
    assert api.get(f"{KEYS}/{created['id']}", headers=admin).data["rotatedAt"] == "2026-04-15T12:05:00.000Z"


@pytest.mark.parametrize("method, suffix", [("POST", "/revoke"), ("DELETE", "")])
def test_revoke_is_final_and_idempotent(api, world, tenant, admin, method, suffix):
    created = create(api, admin)
    world.clock.advance(minutes=1)
    reply = api.request(method, f"{KEYS}/{created['id']}{suffix}", headers=admin)

    assert reply.status == 200
    assert reply.data["status"] == "revoked" and reply.data["revokedAt"] == "2026-04-15T12:01:00.000Z"
    assert "fullKey" not in reply.data
    denied = api.get(BALANCE, headers={"X-Api-Key": created["fullKey"]})
    assert denied.status == 401 and denied.error["code"] == "INVALID_API_KEY"

    world.clock.advance(minutes=1)
    again = api.request(method, f"{KEYS}/{created['id']}{suffix}", headers=admin)
    assert again.status == 200 and again.data == reply.data
    listed = api.get(KEYS, headers=admin).data
    assert [(k["id"], k["status"]) for k in listed["items"]] == [(created["id"], "revoked")]
    assert [a for a, *_ in audit_actions(world, tenant)].count("api_key.revoked") == 1


def test_rotating_a_revoked_key_is_a_409(api, admin):
    created = create(api, admin)
    api.post(f"{KEYS}/{created['id']}/revoke", headers=admin)
    reply = api.post(f"{KEYS}/{created['id']}/rotate", headers=admin)
    assert reply.status == 409 and reply.error["code"] == "API_KEY_REVOKED"
    assert api.get(f"{KEYS}/{created['id']}", headers=admin).data["rotatedAt"] is None


# --- roles and audit ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "manager"])
@pytest.mark.parametrize("method, suffix", [("POST", None), ("POST", "/rotate"), ("POST", "/revoke"), ("DELETE", "")])
def test_viewers_and_managers_cannot_change_keys(api, world, tenant, role, method, suffix):
    key_id, full_key = world.api_key(tenant, "production")
    path = KEYS if suffix is None else f"{KEYS}/{key_id}{suffix}"
    reply = api.request(method, path, headers=world.auth(tenant, role), json_body={"name": "nope"})
    assert reply.status == 403 and reply.error["code"] == "FORBIDDEN"
    assert balance_status(api, full_key) == 200
    listed = api.get(KEYS, headers=world.auth(tenant, "owner")).data
    assert [(k["id"], k["status"], k["rotatedAt"]) for k in listed["items"]] == [(key_id, "active", None)]


@pytest.mark.parametrize("role", ["viewer", "manager", "admin", "owner"])
def test_every_role_can_list_and_get_keys(api, world, tenant, role):
    key_id, _ = world.api_key(tenant, "production")
    headers = world.auth(tenant, role)
    assert [k["id"] for k in api.get(KEYS, headers=headers).data["items"]] == [key_id]
    assert api.get(f"{KEYS}/{key_id}", headers=headers).data["id"] == key_id


def test_create_rotate_and_revoke_are_audited(api, world, tenant, admin):
    created = create(api, admin, environment="sandbox")
    sandbox_admin = {**admin, "X-Environment": "sandbox"}
    world.clock.advance(seconds=1)
    api.post(f"{KEYS}/{created['id']}/rotate", headers=sandbox_admin)
    world.clock.advance(seconds=1)
    api.delete(f"{KEYS}/{created['id']}", headers=sandbox_admin)

    actor, target = f"user:usr_admin_{tenant.id}", f"api_key:{created['id']}"
    entries = world.uow().audit.list(tenant.id, 100, None).items
    key_entries = [e for e in entries if e.target == target]
    assert [(e.action, e.actor, e.environment) for e in key_entries] == [
        ("api_key.revoked", actor, "sandbox"),
        ("api_key.rotated", actor, "sandbox"),
        ("api_key.created", actor, "sandbox"),
    ]
    assert all(secret_of(created["fullKey"]) not in json.dumps(e.details) for e in key_entries)
