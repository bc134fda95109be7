"""The local Stripe stand-in's hosted pages over HTTP (chalicelib/api/local_stripe.py): Checkout and the
Customer Portal render, their forms act through the stand-in, and they vanish when Stripe is configured."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.stripe_config import StripeConfig
from tests.fakes import CapturingSink
from tests.helpers import overriding

SAME_ORIGIN = {"Origin": "https://dashboard.tally.test", "Content-Type": "application/x-www-form-urlencoded"}
RETURN = "http://127.0.0.1:8000/dashboard/billing/plan"


@pytest.fixture
def sink(world):
    captured = CapturingSink()
    with overriding(stripe_sink=captured):
        yield captured


@pytest.fixture
def stand_in(sink):
    return bootstrap.billing_provider()


def start_checkout(stand_in, tenant, tier="starter"):
    session = stand_in.create_checkout_session(
        tenant_id=tenant.id, tier=tier, customer_id=None, customer_email="owner@acme.test",
        success_url=RETURN + "?session={CHECKOUT_SESSION_ID}", cancel_url=RETURN,
        idempotency_key=f"checkout-{tenant.id}-{tier}")
    return session, session.url.split("://", 1)[1].split("/", 1)[1]


def html(reply) -> str:
    return reply.body if isinstance(reply.body, str) else reply.body.decode()


def text(reply) -> str:
    """The page's visible text, tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html(reply)))


def test_the_checkout_page_shows_the_plan_its_price_and_a_pay_button(api, stand_in, tenant):
    session, path = start_checkout(stand_in, tenant, "growth")
    assert path == f"local-stripe/checkout/{session.id}"
    reply = api.get(f"/{path}")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["x-frame-options"] == "DENY" and reply.headers["referrer-policy"] == "no-referrer"
    page = text(reply)
    assert "Subscribe to Tally Growth" in page and "$8,000.00 per month" in page
    assert "500,000 deltas per month" in page and "$0.010/delta" in page
    # 15.5 of April's 30 days (the test clock is 2026-04-15 12:00 UTC)
    assert "Due today $4,133.33" in page
    assert f'action="/local-stripe/checkout/{session.id}/complete"' in html(reply)
    assert "<script" not in html(reply) and "http" not in html(reply).split("<body>")[0].replace(
        "http-equiv", "")  # no external assets in the head


def test_paying_completes_checkout_sends_the_events_and_links_back(api, stand_in, sink, tenant):
    session, path = start_checkout(stand_in, tenant)
    reply = api.post(f"/{path}/complete", body="", headers=SAME_ORIGIN)
    assert reply.status == 200
    page = text(reply)
    assert "Payment complete" in page and f"Tenant {tenant.id} subscribed to starter" in page
    assert f'href="{RETURN}?session={session.id}"' in html(reply)
    assert sink.types == ["checkout.session.completed", "customer.subscription.created", "invoice.paid"]
    assert "checkout.session.completed: delivered (200)" in page
    subscription = stand_in.get_subscription(stand_in.tenant_state(tenant.id)["subscription"])
    assert subscription.tier == "starter" and subscription.tenant_id == tenant.id

    again = api.post(f"/{path}/complete", body="", headers=SAME_ORIGIN)  # a second click: nothing new
    assert again.status == 200 and len(sink.calls) == 3
    assert "Payment complete" in text(api.get(f"/{path}"))


def test_a_cross_site_post_is_refused(api, stand_in, sink, tenant):
    _session, path = start_checkout(stand_in, tenant)
    reply = api.post(f"/{path}/complete", body="", headers={"Origin": "https://evil.example",
                                                            "Sec-Fetch-Site": "cross-site"})
    assert reply.status == 403 and reply.error["code"] == "CROSS_SITE_REQUEST"
    assert sink.calls == []


def test_an_expired_session_says_so(api, stand_in, tenant, clock):
    _session, path = start_checkout(stand_in, tenant)
    clock.advance(days=2)
    assert "expired" in text(api.get(f"/{path}"))
    reply = api.post(f"/{path}/complete", body="", headers=SAME_ORIGIN)
    assert reply.status == 409 and "expired" in text(reply)


def test_an_unknown_session_is_404(api, stand_in):
    assert api.get("/local-stripe/checkout/cs_nope").status == 404
    assert api.get("/local-stripe/portal/bps_nope").status == 404
    assert api.post("/local-stripe/checkout/cs_nope/complete", body="").error["code"] == "NOT_FOUND"


def test_the_pages_are_404_when_a_stripe_key_is_configured(api, stand_in, tenant):
    _session, path = start_checkout(stand_in, tenant)
    with overriding(stripe_config=StripeConfig(api_key="sk_test_x", webhook_secret="whsec_x")):
        for reply in (api.get(f"/{path}"), api.post(f"/{path}/complete", body="", headers=SAME_ORIGIN),
                      api.get("/local-stripe/portal/bps_x"),
                      api.post("/local-stripe/portal/bps_x/cancel", body="", headers=SAME_ORIGIN)):
            assert reply.status == 404 and reply.json["success"] is False
            assert reply.error["code"] == "NOT_FOUND"


def subscribed_portal(api, stand_in, tenant, tier="starter") -> str:
    _session, path = start_checkout(stand_in, tenant, tier)
    api.post(f"/{path}/complete", body="", headers=SAME_ORIGIN)
    customer = stand_in.tenant_state(tenant.id)["customer"]
    url = stand_in.create_portal_session(customer, return_url=RETURN)
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_the_portal_shows_the_plan_and_period_end_and_changes_the_plan(api, stand_in, sink, tenant):
    portal = subscribed_portal(api, stand_in, tenant)
    page = api.get(portal)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    shown = text(page)
    assert "Tally Starter ($3,000.00 per month)" in shown and "Renews May 1, 2026" in shown
    for tier in ("pilot", "growth", "scale"):
        assert f'action="{portal}/plan/{tier}"' in html(page)
    assert f'action="{portal}/plan/starter"' not in html(page)
    assert f'href="{RETURN}"' in html(page)

    sink.clear()
    changed = api.post(f"{portal}/plan/growth", body="", headers=SAME_ORIGIN)
    assert changed.status == 200
    assert "Plan changed from starter to growth" in text(changed) and "Tally Growth" in text(changed)
    assert sink.types == ["customer.subscription.updated", "invoice.paid"]
    assert api.post(f"{portal}/plan/enterprise", body="", headers=SAME_ORIGIN).status == 400


def test_the_portal_cancels_at_period_end(api, stand_in, sink, tenant):
    portal = subscribed_portal(api, stand_in, tenant)
    sink.clear()
    reply = api.post(f"{portal}/cancel", body="", headers=SAME_ORIGIN)
    assert reply.status == 200 and "Ends May 1, 2026" in text(reply)
    assert sink.types == ["customer.subscription.updated"]
    assert json.loads(sink.calls[0][0])["data"]["object"]["cancel_at_period_end"] is True
    assert f'action="{portal}/cancel"' not in html(reply)

    stand_in.advance_period(tenant.id)
    assert "No active subscription" in text(api.get(portal))
    late = api.post(f"{portal}/plan/growth", body="", headers=SAME_ORIGIN)
    assert late.status == 409 and "no subscription" in text(late)


def test_the_portal_pays_an_open_invoice(api, stand_in, sink, tenant):
    portal = subscribed_portal(api, stand_in, tenant)
    stand_in.fail_payment(tenant.id)
    page = api.get(portal)
    assert "past due" in text(page) and "$3,000.00 is unpaid" in text(page)
    sink.clear()
    paid = api.post(f"{portal}/pay", body="", headers=SAME_ORIGIN)
    assert paid.status == 200 and "unpaid" not in text(paid)
    assert sink.types == ["invoice.paid", "customer.subscription.updated"]


def test_every_page_is_documented_as_html(api):
    document = api.get("/openapi.json").json
    for path in ("/local-stripe/checkout/{session}", "/local-stripe/portal/{session}"):
        assert "text/html" in document["paths"][path]["get"]["responses"]["200"]["content"]
        assert document["paths"][path]["get"]["security"] == []
    for path in ("/local-stripe/checkout/{session}/complete", "/local-stripe/portal/{session}/plan/{tier}",
                 "/local-stripe/portal/{session}/cancel", "/local-stripe/portal/{session}/pay"):
        assert "text/html" in document["paths"][path]["post"]["responses"]["200"]["content"]


def test_paying_on_the_page_puts_the_plan_in_force_through_the_stripe_webhook(api, world, tenant):
    """End to end in-process: the stand-in's signed events go through the webhook Lambda's handler."""
    webhook = pytest.importorskip("chalicelib.jobs.stripe_webhook")
    answers: list[int] = []

    def deliver(payload: bytes, signature: str) -> int:
        reply = webhook.handle({"httpMethod": "POST", "path": "/stripe/webhook", "body": payload.decode(),
                                "isBase64Encoded": False, "headers": {"Stripe-Signature": signature},
                                "requestContext": {"requestId": "local-stripe-test-0001"}})
        answers.append(reply["statusCode"])
        return reply["statusCode"]

    with overriding(stripe_sink=deliver):
        stand_in = bootstrap.billing_provider()
        _session, path = start_checkout(stand_in, tenant, "scale")
        assert api.post(f"/{path}/complete", body="", headers=SAME_ORIGIN).status == 200
    assert answers == [200, 200, 200]
    after = world.uow().tenants.get(tenant.id)
    assert after.plan == "scale" and after.stripe_subscription_status == "active"
    assert after.stripe_current_period_end == datetime(2026, 5, 1, tzinfo=UTC)
