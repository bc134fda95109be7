"""Seed 003's plan and Stripe routes through HTTP, over a fake billing provider.

GET /dashboard/billing/plan, POST /dashboard/stripe/create-subscription-session | change-plan |
create-portal-session | cancel-subscription: shapes, codes, roles, the blocked dashboard, audit.
"""

from __future__ import annotations

import pytest

from chalicelib import bootstrap
from chalicelib.api.auth import SESSION_COOKIE
from chalicelib.domain.errors import BillingProviderError, BillingProviderUnavailableError
from chalicelib.domain.identity import Environment
from chalicelib.domain.subscriptions import apply_subscription
from tests.fakes import FakeBillingProvider
from tests.helpers import overriding

PLAN = "/dashboard/billing/plan"
USAGE = "/dashboard/billing/usage"
SUBSCRIBE = "/dashboard/stripe/create-subscription-session"
CHANGE = "/dashboard/stripe/change-plan"
PORTAL = "/dashboard/stripe/create-portal-session"
CANCEL = "/dashboard/stripe/cancel-subscription"
PLAN_KEYS = {"tier", "monthlyAllotment", "planPriceUsd", "overagePriceUsd", "stripeSubscriptionId",
             "cancelAtPeriodEnd", "stripeCurrentPeriodEnd"}


@pytest.fixture
def provider():
    fake = FakeBillingProvider()
    with overriding(billing=fake):
        yield fake


def subscribed(world, provider, tenant, tier: str = "starter"):
    """The tenant as the webhook leaves it after a completed Checkout."""
    subscription = provider.subscribe(tenant.id, tier)
    uow = world.uow()
    current = uow.tenants.get(tenant.id)
    uow.tenants.save(apply_subscription(current, subscription, world.clock()))
    uow.commit()
    return subscription


def audit_actions(world, tenant) -> list[str]:
    return [entry.action for entry in world.uow().audit.list(tenant.id, 50, None).items]


def test_a_free_tenant_sees_the_free_plan(api, tenant, admin):
    reply = api.get(PLAN, headers=admin)
    assert reply.status == 200
    assert reply.data == {"tier": "free", "monthlyAllotment": 100, "planPriceUsd": 0, "overagePriceUsd": None,
                          "stripeSubscriptionId": None, "cancelAtPeriodEnd": False, "stripeCurrentPeriodEnd": None}


def test_a_subscribed_tenant_sees_its_tier_prices_and_period_end(api, world, provider, tenant, admin):
    subscription = subscribed(world, provider, tenant, "starter")
    data = api.get(PLAN, headers=admin).data
    assert set(data) == PLAN_KEYS
    assert data["tier"] == "starter" and data["monthlyAllotment"] == 100_000 and data["planPriceUsd"] == 3000
    assert data["overagePriceUsd"] == 0.012
    assert data["stripeSubscriptionId"] == subscription.id and data["cancelAtPeriodEnd"] is False
    assert data["stripeCurrentPeriodEnd"] == "2031-01-01T00:00:00.000Z"


def test_every_role_may_read_the_plan(api, world, tenant):
    for role in ("owner", "admin", "manager", "viewer"):
        assert api.get(PLAN, headers=world.auth(tenant, role)).status == 200


def test_subscribe_answers_a_checkout_url_and_audits(api, world, provider, tenant, admin):
    reply = api.post(SUBSCRIBE, json_body={"tier": "starter"}, headers=admin)
    assert reply.status == 201 and reply.data == {"url": "https://checkout.test/c/pay/cs_1"}
    (name, params), = provider.calls
    assert name == "create_checkout_session" and params["tenant_id"] == tenant.id and params["tier"] == "starter"
    assert params["success_url"].endswith("/dashboard/billing/plan?checkout=success")
    assert params["idempotency_key"].startswith(f"tally:checkout:{tenant.id}:starter:")
    assert "billing.checkout_session.created" in audit_actions(world, tenant)
    assert api.get(PLAN, headers=admin).data["tier"] == "free"  # active only once the payment is reported


def test_a_repeated_subscribe_click_reuses_the_same_checkout(api, provider, tenant, admin):
    first = api.post(SUBSCRIBE, json_body={"tier": "growth"}, headers=admin).data["url"]
    second = api.post(SUBSCRIBE, json_body={"tier": "growth"}, headers=admin).data["url"]
    assert first == second
    assert provider.calls[0][1]["idempotency_key"] == provider.calls[1][1]["idempotency_key"]


def test_works_with_the_session_cookie_as_the_seed_curl_does(api, world, provider, tenant):
    cookie = {"Cookie": f"{SESSION_COOKIE}={world.session_cookie(tenant, 'owner')}"}
    assert api.post(SUBSCRIBE, json_body={"tier": "pilot"}, headers=cookie).status == 201


@pytest.mark.parametrize("body", [{"tier": "enterprise"}, {"tier": "free"}, {"tier": "Starter"}, {"tier": 3},
                                  {"tier": None}, {}])
@pytest.mark.parametrize("path", [SUBSCRIBE, CHANGE])
def test_a_tier_outside_the_self_serve_ones_is_a_validation_error(api, provider, tenant, admin, body, path):
    reply = api.post(path, json_body=body, headers=admin)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR"
    assert provider.calls == []


@pytest.mark.parametrize("role", ["manager", "viewer"])
@pytest.mark.parametrize("path,body", [(SUBSCRIBE, {"tier": "starter"}), (CHANGE, {"tier": "growth"}),
                                       (PORTAL, None), (CANCEL, None)])
def test_only_owners_and_admins_may_act(api, world, provider, tenant, role, path, body):
    subscribed(world, provider, tenant)
    provider.calls.clear()
    reply = api.post(path, json_body=body, headers=world.auth(tenant, role))
    assert reply.status == 403 and reply.error["code"] == "FORBIDDEN"
    assert provider.calls == []


def test_subscribing_while_subscribed_points_to_change_plan(api, world, provider, tenant, admin):
    subscribed(world, provider, tenant)
    reply = api.post(SUBSCRIBE, json_body={"tier": "growth"}, headers=admin)
    assert reply.status == 409 and reply.error["code"] == "SUBSCRIPTION_EXISTS"
    assert "/dashboard/stripe/change-plan" in reply.error["message"]


@pytest.mark.parametrize("path,body", [(CHANGE, {"tier": "growth"}), (CANCEL, None)])
def test_without_a_subscription_change_and_cancel_point_to_subscribe(api, provider, tenant, admin, path, body):
    reply = api.post(path, json_body=body, headers=admin)
    assert reply.status == 409 and reply.error["code"] == "NO_ACTIVE_SUBSCRIPTION"
    assert "/dashboard/stripe/create-subscription-session" in reply.error["message"]
    assert provider.calls == []


def test_change_plan_takes_effect_at_once_and_keeps_the_months_usage(api, world, provider, tenant, admin):
    subscription = subscribed(world, provider, tenant, "starter")
    uow = world.uow()
    uow.usage.add(tenant.id, "2026-04", Environment.PRODUCTION, 1042, cap=None)
    uow.commit()
    reply = api.post(CHANGE, json_body={"tier": "growth"}, headers=admin)
    assert reply.status == 200 and reply.data == {"subscriptionId": subscription.id, "status": "active"}
    plan = api.get(PLAN, headers=admin).data
    assert plan["tier"] == "growth" and plan["monthlyAllotment"] == 500_000 and plan["overagePriceUsd"] == 0.01
    assert api.get(USAGE, headers=admin).data["consumedDeltas"] == 1042
    assert provider.calls[-1] == ("change_plan", {"subscription_id": subscription.id, "tier": "growth",
                                                  "idempotency_key": provider.calls[-1][1]["idempotency_key"]})
    actions = audit_actions(world, tenant)
    assert "billing.plan.changed" in actions


def test_cancel_keeps_the_plan_until_the_period_end(api, world, provider, tenant, admin):
    subscription = subscribed(world, provider, tenant, "growth")
    reply = api.post(CANCEL, headers=admin)
    assert reply.status == 200
    assert reply.data == {"subscriptionId": subscription.id, "cancelAtPeriodEnd": True,
                          "currentPeriodEnd": "2031-01-01T00:00:00.000Z"}
    plan = api.get(PLAN, headers=admin).data
    assert plan["tier"] == "growth" and plan["cancelAtPeriodEnd"] is True
    assert "billing.subscription.cancel_scheduled" in audit_actions(world, tenant)


def test_the_portal_needs_a_billing_account(api, world, provider, tenant, admin):
    reply = api.post(PORTAL, headers=admin)
    assert reply.status == 409 and reply.error["code"] == "NO_STRIPE_CUSTOMER"
    subscribed(world, provider, tenant)
    reply = api.post(PORTAL, headers=admin)
    assert reply.status == 201 and reply.data["url"] == f"https://billing.test/p/session/cus_{tenant.id}"
    assert provider.calls[-1][1]["return_url"].endswith("/dashboard/billing/plan")
    assert "billing.portal_session.created" in audit_actions(world, tenant)


def test_another_tenants_subscription_is_never_touched(api, world, provider, tenant):
    subscribed(world, provider, tenant, "starter")
    other = world.tenant("Globex")
    reply = api.post(CHANGE, json_body={"tier": "scale"}, headers=world.auth(other, "owner"))
    assert reply.status == 409 and reply.error["code"] == "NO_ACTIVE_SUBSCRIPTION"
    assert api.get(PLAN, headers=world.auth(tenant)).data["tier"] == "starter"


def test_a_blocked_tenant_can_still_reach_billing(api, world, provider, clock, tenant, admin):
    subscribed(world, provider, tenant)
    uow = world.uow()
    uow.tenants.save(uow.tenants.get(tenant.id).mark_missing_payment(clock()))
    uow.commit()
    clock.advance(days=15)
    admin = world.auth(tenant)  # a fresh token at the new time
    assert api.get("/dashboard/tenant", headers=admin).status == 402
    assert api.get(PLAN, headers=admin).status == 200
    assert api.post(PORTAL, headers=admin).status == 201
    assert api.post(CHANGE, json_body={"tier": "scale"}, headers=admin).status == 200


@pytest.mark.parametrize("error,status,code", [
    (BillingProviderError("card_declined"), 502, "BILLING_PROVIDER_ERROR"),
    (BillingProviderUnavailableError(), 503, "BILLING_PROVIDER_UNAVAILABLE"),
])
def test_a_provider_failure_is_an_envelope_and_changes_nothing(api, world, provider, tenant, admin, error, status,
                                                              code):
    subscribed(world, provider, tenant, "starter")
    provider.fail_with = error
    reply = api.post(CHANGE, json_body={"tier": "growth"}, headers=admin)
    assert reply.status == status and reply.error["code"] == code
    assert api.get(PLAN, headers=admin).data["tier"] == "starter"
    assert "billing.plan.changed" not in audit_actions(world, tenant)


def test_a_deployed_stage_without_a_stripe_key_fails_closed(api, tenant, admin, monkeypatch):
    """No stand-in where money is real: subscribing answers 503 and the stand-in's pages do not exist."""
    from chalicelib.settings import get_settings

    monkeypatch.setenv("TALLY_STAGE", "prod")
    get_settings.cache_clear()
    bootstrap.reset()
    try:
        reply = api.post(SUBSCRIBE, json_body={"tier": "starter"}, headers=admin)
        assert reply.status == 503 and reply.error["code"] == "BILLING_NOT_CONFIGURED"
        assert api.get("/local-stripe/checkout/cs_anything").status == 404
        assert api.post("/local-stripe/portal/bps_anything/plan/not-a-tier").status == 404
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        bootstrap.reset()
