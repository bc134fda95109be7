"""Seed 002, to the letter: the platform tenants API (directory, missing payments, abilities)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.domain.tenants import TenantStatus
from tests.helpers import platform_operator

FIELDS = {"id", "name", "subdomain", "final_domain", "https", "lang"}
ALL = ("tenants:read", "tenants:write", "cross-tenant")
MARKED_AT = "2026-04-15T12:00:00.000000Z"
LIMIT_DATE = "2026-04-29T12:00:00.000000Z"


@pytest.fixture
def platform(world):
    return platform_operator(world)


@pytest.fixture
def bearer(world, platform):
    return {"Authorization": f"Bearer {world.platform_token(*ALL)}"}


def mp(tenant_id: str) -> str:
    return f"/tenants/{tenant_id}/missing-payments"


def audit_of(world, tenant) -> list[tuple[str, str, str]]:
    return [(e.action, e.actor, e.target) for e in world.uow().audit.list(tenant.id, 100, None).items]


# --- GET /tenants -------------------------------------------------------------------------------


def test_directory_lists_active_customer_tenants_in_the_slim_shape(api, world, bearer):
    ciudad = world.tenant("Ciudad Nueva", subdomain="ciudadnueva-qetffdw-93.app.publica.la",
                          final_domain="ciudadnueva.publicala.me", lang="es")
    plain = world.tenant("Plain Co", stripe_customer_id="cus_plain")
    world.tenant("Pending Co", status=TenantStatus.PENDING)
    world.tenant("Suspended Co", status=TenantStatus.SUSPENDED)
    gone = world.tenant("Gone Co")
    api.delete("/dashboard/tenant", headers=world.auth(gone, "owner"), json_body={"confirmation": "Gone Co"})

    reply = api.get("/tenants", headers=bearer)
    assert reply.status == 200
    assert reply.json["data"] == [
        {"id": ciudad.id, "name": "Ciudad Nueva", "subdomain": "ciudadnueva-qetffdw-93.app.publica.la",
         "final_domain": "ciudadnueva.publicala.me", "https": True, "lang": "es"},
        {"id": plain.id, "name": "Plain Co", "subdomain": plain.subdomain, "final_domain": None,
         "https": True, "lang": "en"},
    ]
    assert all(set(t) == FIELDS and isinstance(t["id"], str) for t in reply.json["data"])
    assert reply.json["links"]["next"] is None and reply.json["links"]["prev"] is None
    assert reply.json["meta"]["has_more"] is False and reply.json["meta"]["next_cursor"] is None
    assert reply.json["meta"]["per_page"] == 15


def test_directory_cursor_pagination_yields_every_tenant_once(api, world, bearer):
    ids = [world.tenant(f"Tenant {n}").id for n in range(5)]

    seen, shape, path = [], [], "/tenants?per_page=2"
    while path:
        body = api.get(path, headers=bearer).json
        seen += [t["id"] for t in body["data"]]
        meta, next_link = body["meta"], body["links"]["next"]
        shape.append((len(body["data"]), meta["has_more"]))
        assert meta["per_page"] == 2
        if meta["has_more"]:
            query = parse_qs(urlsplit(next_link).query)
            assert query == {"per_page": ["2"], "cursor": [meta["next_cursor"]]}
            path = f"/tenants?per_page=2&cursor={meta['next_cursor']}"
        else:
            assert next_link is None and meta["next_cursor"] is None
            path = None
        assert len(shape) <= 3
    assert shape == [(2, True), (2, True), (1, False)]
    assert seen == ids and "1" not in seen


def test_has_more_is_false_when_the_last_page_is_exactly_full(api, world, bearer):
    for n in range(4):
        world.tenant(f"Tenant {n}")
    first = api.get("/tenants?per_page=2", headers=bearer).json
    second = api.get(f"/tenants?per_page=2&cursor={first['meta']['next_cursor']}", headers=bearer).json
    assert len(second["data"]) == 2
    assert second["meta"]["has_more"] is False and second["links"]["next"] is None


@pytest.mark.parametrize("per_page", ["0", "501", "abc", "-1", "2.5"])
def test_per_page_outside_1_to_500_is_a_422(api, bearer, per_page):
    reply = api.get(f"/tenants?per_page={per_page}", headers=bearer)
    assert reply.status == 422
    assert reply.json["message"] and "per_page" in reply.json["errors"]


@pytest.mark.parametrize("per_page", ["1", "500"])
def test_per_page_bounds_are_accepted(api, world, bearer, per_page):
    world.tenant("Only Co")
    reply = api.get(f"/tenants?per_page={per_page}", headers=bearer)
    assert reply.status == 200 and reply.json["meta"]["per_page"] == int(per_page)
    assert len(reply.json["data"]) == 1


def test_an_invalid_cursor_is_a_422(api, bearer):
    reply = api.get("/tenants?cursor=garbage", headers=bearer)
    assert reply.status == 422 and "cursor" in reply.json["errors"]


# --- abilities ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, abilities", [
    ("GET", "/tenants", ("tenants:read",)),
    ("GET", "/tenants", ("cross-tenant",)),
    ("GET", "/tenants", ("tenants:write", "cross-tenant")),
    ("POST", "/tenants/2/missing-payments", ("tenants:read", "cross-tenant")),
    ("DELETE", "/tenants/2/missing-payments", ("tenants:read", "cross-tenant")),
])
def test_a_missing_ability_is_a_403(api, world, platform, method, path, abilities):
    world.tenant("Target Co", stripe_customer_id="cus_target")
    token = world.platform_token(*abilities)
    reply = api.request(method, path, headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 403 and reply.json == {"message": "Invalid ability provided."}
    assert world.uow().tenants.get("2").has_unpaid_invoices_at is None


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer ptk_unknown0000|" + "s" * 43},
                                     {"Authorization": "Bearer not-a-token"}])
def test_without_a_valid_token_is_a_401(api, platform, headers):
    assert api.get("/tenants", headers=headers).status == 401
    assert api.post(mp("2"), headers=headers).status == 401


# --- missing payments ---------------------------------------------------------------------------


def test_mark_flags_the_tenant_with_a_two_week_limit(api, world, bearer):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    reply = api.post(mp(tenant.id), headers=bearer)
    assert reply.status == 200
    assert reply.json == {"data": {"tenant_id": tenant.id, "has_unpaid_invoices_at": MARKED_AT,
                                   "dashboard_blocked": False, "missing_payment_limit_date": LIMIT_DATE}}


def test_re_marking_keeps_the_original_timestamp(api, world, bearer):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    api.post(mp(tenant.id), headers=bearer)
    world.clock.advance(days=3)
    reply = api.post(mp(tenant.id), headers=bearer)
    assert reply.status == 200
    assert reply.json["data"]["has_unpaid_invoices_at"] == MARKED_AT
    assert reply.json["data"]["missing_payment_limit_date"] == LIMIT_DATE


def test_mark_without_a_stripe_customer_is_a_400(api, world, bearer):
    tenant = world.tenant("No Stripe Co")
    reply = api.post(mp(tenant.id), headers=bearer)
    assert reply.status == 400
    assert set(reply.json) == {"message", "code"} and reply.json["message"]
    assert reply.json["code"] == "tenant_has_no_stripe_customer"
    assert world.uow().tenants.get(tenant.id).has_unpaid_invoices_at is None


def test_clear_removes_the_flag_and_omits_the_limit_date(api, world, bearer):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    api.post(mp(tenant.id), headers=bearer)
    world.clock.advance(days=1)
    reply = api.delete(mp(tenant.id), headers=bearer)
    assert reply.status == 200
    assert reply.json == {"data": {"tenant_id": tenant.id, "has_unpaid_invoices_at": None,
                                   "dashboard_blocked": False}}
    assert world.uow().tenants.get(tenant.id).has_unpaid_invoices_at is None
    assert api.delete(mp(tenant.id), headers=bearer).json == reply.json


def test_clear_without_a_stripe_customer_is_a_200_no_op(api, world, bearer):
    tenant = world.tenant("No Stripe Co")
    reply = api.delete(mp(tenant.id), headers=bearer)
    assert reply.status == 200
    assert reply.json == {"data": {"tenant_id": tenant.id, "has_unpaid_invoices_at": None,
                                   "dashboard_blocked": False}}
    assert [a for a, *_ in audit_of(world, tenant)] == ["tenant.created"]


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_the_platform_tenant_cannot_be_targeted_by_path(api, world, platform, bearer, method):
    reply = api.request(method, mp("1"), headers=bearer)
    assert reply.status == 403 and reply.json["message"]
    assert world.uow().tenants.get("1").has_unpaid_invoices_at is None


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("tenant_id", ["999", "abc", "2x", "-2", "2.0"])
def test_unknown_or_non_numeric_tenant_is_a_404(api, world, bearer, method, tenant_id):
    world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    reply = api.request(method, mp(tenant_id), headers=bearer)
    assert reply.status == 404 and reply.json["message"]


def test_dashboard_blocks_after_the_grace_period_except_billing_routes(api, world, bearer):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    jwt = world.auth(tenant, "admin")
    _key_id, full_key = world.api_key(tenant)
    api.post(mp(tenant.id), headers=bearer)

    world.clock.advance(days=14)
    assert api.post(mp(tenant.id), headers=bearer).json["data"]["dashboard_blocked"] is False
    assert api.get("/dashboard/tenant", headers=jwt).status == 200

    world.clock.advance(seconds=1)
    marked = api.post(mp(tenant.id), headers=bearer).json["data"]
    assert marked == {"tenant_id": tenant.id, "has_unpaid_invoices_at": MARKED_AT,
                      "dashboard_blocked": True, "missing_payment_limit_date": LIMIT_DATE}
    for path in ("/dashboard/tenant", "/dashboard/api-keys", "/dashboard/audit"):
        blocked = api.get(path, headers=jwt)
        assert blocked.status == 402 and blocked.error["code"] == "DASHBOARD_BLOCKED", path
    assert api.post("/dashboard/session", headers=jwt).status == 201
    assert api.get("/dashboard/session", headers=jwt).status == 200
    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key}).status == 200

    cleared = api.delete(mp(tenant.id), headers=bearer).json["data"]
    assert cleared["dashboard_blocked"] is False and cleared["has_unpaid_invoices_at"] is None
    assert api.get("/dashboard/tenant", headers=jwt).status == 200


def test_mark_and_clear_are_audited_on_the_target_tenant(api, world, platform):
    token = world.platform_token(*ALL)
    token_id = token.split("|")[0]
    bearer = {"Authorization": f"Bearer {token}"}
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    for method in ("POST", "POST", "DELETE", "DELETE"):
        world.clock.advance(minutes=1)
        assert api.request(method, mp(tenant.id), headers=bearer).status == 200

    entries = api.get("/dashboard/audit", headers=world.auth(tenant, "admin")).data["items"]
    actor, target = f"platform_token:{token_id}", f"tenant:{tenant.id}"
    assert [(e["action"], e["actor"], e["target"], e["createdAt"]) for e in entries[:2]] == [
        ("tenant.missing_payments.cleared", actor, target, "2026-04-15T12:03:00.000Z"),
        ("tenant.missing_payments.marked", actor, target, "2026-04-15T12:01:00.000Z"),
    ]
    assert [e["action"] for e in entries[2:]] == ["tenant.created"]
    assert not any("missing_payments" in action for action, *_ in audit_of(world, platform))
