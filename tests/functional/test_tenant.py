"""Seed 000: GET /dashboard/tenant and DELETE /dashboard/tenant."""

from __future__ import annotations

import pytest

from tests.helpers import add_customer

SEED_FIELDS = {"id", "companyName", "status", "billingMode", "environments", "createdAt", "updatedAt"}


def test_get_tenant_returns_the_seed_shape(api, world):
    tenant = world.tenant("Acme Inc")
    reply = api.get("/dashboard/tenant", headers=world.auth(tenant))
    assert reply.status == 200
    assert reply.json["statusCode"] == 200 and reply.json["success"] is True
    data = reply.data
    assert set(data) == SEED_FIELDS
    assert data["id"] == tenant.id and data["companyName"] == "Acme Inc"
    assert data["status"] == "active" and data["billingMode"] == "monthly"
    assert data["environments"] == {"sandbox": "provisioned", "production": "provisioned"}
    assert data["createdAt"] == "2026-04-15T12:00:00.000Z"


def test_get_tenant_works_with_the_session_cookie(api, world):
    tenant = world.tenant()
    reply = api.get("/dashboard/tenant", headers={"Cookie": f"tally_session={world.session_cookie(tenant)}"})
    assert reply.status == 200 and reply.data["id"] == tenant.id


@pytest.mark.parametrize("role", ["viewer", "manager"])
def test_delete_tenant_needs_owner_or_admin(api, world, role):
    tenant = world.tenant()
    reply = api.delete("/dashboard/tenant", headers=world.auth(tenant, role), json_body={"confirmation": "Acme Inc"})
    assert reply.status == 403 and reply.error["code"] == "FORBIDDEN"
    assert api.get("/dashboard/tenant", headers=world.auth(tenant)).data["status"] == "active"


@pytest.mark.parametrize("confirmation, code", [
    ("acme inc", "CONFIRMATION_MISMATCH"),
    ("Acme Inc ", "CONFIRMATION_MISMATCH"),
    ("Other Co", "CONFIRMATION_MISMATCH"),
    ("", "VALIDATION_ERROR"),
    (None, "VALIDATION_ERROR"),
    (42, "VALIDATION_ERROR"),
])
def test_delete_tenant_requires_the_exact_company_name(api, world, confirmation, code):
    tenant = world.tenant("Acme Inc")
    body = {} if confirmation is None else {"confirmation": confirmation}
    reply = api.delete("/dashboard/tenant", headers=world.auth(tenant), json_body=body)
    assert reply.status == 400 and reply.error["code"] == code


def test_delete_tenant_deactivates_everything_but_keeps_verification_data(api, world):
    from chalicelib.domain.identity import Environment

    tenant = world.tenant("Acme Inc", plan="starter")
    admin = world.auth(tenant, "admin")
    viewer = world.auth(tenant, "viewer")
    _key_id, full_key = world.api_key(tenant, "sandbox")
    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key}).status == 200
    add_customer(tenant.id, "cust_keep", Environment.PRODUCTION)

    world.clock.advance(minutes=1)
    reply = api.delete("/dashboard/tenant", headers=admin, json_body={"confirmation": "Acme Inc"})
    assert reply.status == 200
    assert reply.data == {"message": (
        "Your account has been deleted. All API keys, webhooks, and integrations have been deactivated. "
        "Verification data is preserved permanently for audit purposes.")}

    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key}).status == 401
    for headers in (admin, viewer):
        denied = api.get("/dashboard/tenant", headers=headers)
        assert denied.status == 401 and denied.error["code"] in {"ACCOUNT_DELETED", "USER_DEACTIVATED"}

    stored = world.uow().tenants.get(tenant.id)
    assert stored.is_deleted and stored.status == "suspended" and stored.plan == "free"
    assert stored.environments == {"sandbox": "disabled", "production": "disabled"}
    assert world.uow().customers.get(tenant.id, Environment.PRODUCTION, "cust_keep") is not None
    audit = world.uow().audit.list(tenant.id, 10, None).items
    assert audit[0].action == "tenant.deleted" and audit[0].actor.startswith("user:usr_admin")
    assert audit[0].details["apiKeysDisabled"] == 1


def test_deleted_tenant_leaves_the_platform_directory(api, world):
    world.tenant("Platform")
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_1")
    token = world.platform_token("tenants:read", "cross-tenant")
    before = api.get("/tenants", headers={"Authorization": f"Bearer {token}"}).json["data"]
    assert [t["id"] for t in before] == [tenant.id]
    api.delete("/dashboard/tenant", headers=world.auth(tenant, "owner"), json_body={"confirmation": "Acme Inc"})
    after = api.get("/tenants", headers={"Authorization": f"Bearer {token}"}).json["data"]
    assert after == []


def test_delete_tenant_rejects_malformed_json(api, world):
    tenant = world.tenant()
    reply = api.delete("/dashboard/tenant", headers={**world.auth(tenant), "Content-Type": "application/json"},
                       body='{"confirmation": ')
    assert reply.status == 400 and reply.error["code"] == "INVALID_JSON"
