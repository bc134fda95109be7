"""The Stripe webhook Lambda: signed events in, plan and missing-payment state out, each event once.

Events are signed as Stripe signs them (``t=…,v1=HMAC-SHA256(secret, "{t}.{body}")``, built with the
SDK's ``generate_signature_header``) and delivered as API Gateway proxy events to the ``stripe_webhook``
function (chalice.test's ``lambda_.invoke``), or over HTTP through the local gateway's routing. The
billing provider is the in-memory fake: handlers re-read subscriptions from it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.stripe_config import StripeConfig
from chalicelib.domain.stripe_events import RECEIVED, StripeEvent
from tests.dynamo_calls import DynamoCalls
from tests.fakes import FakeBillingProvider
from tests.helpers import overriding

SECRET = "whsec_test_0123456789abcdef0123456789abcdef"


@pytest.fixture
def provider(world):
    """The fake provider and the webhook secret; the platform operator's tenant ("1") exists first."""
    assert world.tenant("Tally Platform").id == "1"
    fake = FakeBillingProvider()
    with overriding(billing=fake, stripe_config=StripeConfig(api_key="", webhook_secret=SECRET)):
        yield fake


@pytest.fixture
def deliver(world, provider):
    """``deliver(event)`` → (status, body) of the function's proxy response; the event is signed now."""
    from chalice.test import Client

    from app import app

    client = Client(app)

    def send(event: dict, *, secret: str = SECRET, signed_at: int | None = None, header: str | None = None,
             payload: str | None = None, base64_body: bool = False) -> tuple[int, dict]:
        import base64

        import stripe

        payload = payload if payload is not None else json.dumps(event)
        if header is None:
            timestamp = signed_at if signed_at is not None else int(world.clock().timestamp())
            header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
        proxy = {
            "resource": "/stripe/webhook", "path": "/stripe/webhook", "httpMethod": "POST",
            "headers": {"Content-Type": "application/json", "Stripe-Signature": header},
            "requestContext": {"requestId": "req-test", "resourcePath": "/stripe/webhook"},
            "body": base64.b64encode(payload.encode()).decode() if base64_body else payload,
            "isBase64Encoded": base64_body,
        }
        answer = client.lambda_.invoke("stripe_webhook", proxy).payload
        assert answer["headers"]["Content-Type"] == "application/json"
        assert answer["headers"]["X-Request-Id"] == "req-test"
        return answer["statusCode"], json.loads(answer["body"])

    return send


# --- event builders (Stripe's shapes, API 2026-10-28) -----------------------------------------------------


def checkout_completed(event_id: str, *, tenant_id: str | None, subscription_id: str, customer_id: str) -> dict:
    return {"id": event_id, "object": "event", "type": "checkout.session.completed", "data": {"object": {
        "id": f"cs_{event_id}", "object": "checkout.session", "mode": "subscription",
        "client_reference_id": tenant_id, "customer": customer_id, "subscription": subscription_id}}}


def subscription_event(event_id: str, kind: str, *, subscription_id: str, customer_id: str,
                       metadata: dict | None = None) -> dict:
    return {"id": event_id, "object": "event", "type": f"customer.subscription.{kind}", "data": {"object": {
        "id": subscription_id, "object": "subscription", "customer": customer_id, "status": "stale-copy",
        "metadata": metadata or {}}}}


def invoice_event(event_id: str, kind: str, *, invoice_id: str, customer_id: str,
                  subscription_id: str | None = None, metadata: dict | None = None) -> dict:
    parent = None
    if subscription_id:
        parent = {"type": "subscription_details",
                  "subscription_details": {"subscription": subscription_id, "metadata": metadata or {}}}
    return {"id": event_id, "object": "event", "type": f"invoice.{kind}", "data": {"object": {
        "id": invoice_id, "object": "invoice", "customer": customer_id, "parent": parent}}}


# --- helpers ------------------------------------------------------------------------------------------------


def tenant_now(world, tenant_id: str) -> Any:
    return world.uow().tenants.get(tenant_id)


def attach_customer(world, tenant, customer_id: str):
    uow = world.uow()
    current = uow.tenants.get(tenant.id)
    uow.tenants.save(replace(current, stripe_customer_id=customer_id))
    uow.commit()
    return uow.tenants.get(tenant.id)


def audit_actions(world, tenant_id: str) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in world.uow().audit.list(tenant_id, 100, None).items]


def stored_event(world, event_id: str):
    return world.uow().stripe_events.get(event_id)


def three_times(deliver, event: dict) -> list[tuple[int, dict]]:
    answers = [deliver(event) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 200], answers
    assert [body["data"]["duplicate"] for _, body in answers] == [False, True, True]
    assert len({body["data"]["outcome"] for _, body in answers}) == 1  # a replay reports the first outcome
    return answers


# --- every handled type, replayed 3x: one effect ------------------------------------------------------------


def test_checkout_completed_activates_the_plan_once(world, deliver, provider):
    tenant = world.tenant("Acme Inc")
    sub = provider.subscribe(tenant.id, "starter", customer_id="cus_acme")
    answers = three_times(deliver, checkout_completed("evt_checkout", tenant_id=tenant.id, subscription_id=sub.id,
                                                      customer_id="cus_acme"))
    assert answers[0][1] == {"statusCode": 200, "success": True, "data": {
        "received": True, "eventId": "evt_checkout", "type": "checkout.session.completed",
        "outcome": "plan_synced", "duplicate": False}}
    after = tenant_now(world, tenant.id)
    assert (after.plan, after.stripe_customer_id, after.stripe_subscription_id) == ("starter", "cus_acme", sub.id)
    assert after.stripe_subscription_status == "active" and after.stripe_current_period_end == provider.period_end
    assert audit_actions(world, tenant.id).count(("stripe:webhook", "billing.subscription.synced")) == 1
    assert provider.names().count("get_subscription") == 1  # replays never reach the provider
    event = stored_event(world, "evt_checkout")
    assert (event.state, event.outcome, event.tenant_id) == ("handled", "plan_synced", tenant.id)


@pytest.mark.parametrize("kind", ["created", "updated"])
def test_subscription_created_or_updated_applies_the_fresh_subscription_once(world, deliver, provider, kind):
    tenant = world.tenant("Acme Inc")
    sub = provider.subscribe(tenant.id, "starter", customer_id="cus_acme")
    provider.subscriptions[sub.id] = replace(sub, tier="growth", cancel_at_period_end=True)  # the provider's truth
    event = subscription_event(f"evt_sub_{kind}", kind, subscription_id=sub.id, customer_id="cus_acme",
                               metadata={"tenant_id": tenant.id})
    three_times(deliver, event)
    after = tenant_now(world, tenant.id)
    assert (after.plan, after.cancel_at_period_end, after.stripe_subscription_id) == ("growth", True, sub.id)
    assert audit_actions(world, tenant.id).count(("stripe:webhook", "billing.subscription.synced")) == 1


def test_subscription_deleted_reverts_to_free_once(world, deliver, provider):
    tenant = world.tenant("Acme Inc")
    sub = provider.subscribe(tenant.id, "scale", customer_id="cus_acme")
    deliver(checkout_completed("evt_checkout", tenant_id=tenant.id, subscription_id=sub.id, customer_id="cus_acme"))
    assert tenant_now(world, tenant.id).plan == "scale"
    provider.subscriptions[sub.id] = replace(sub, status="canceled")
    three_times(deliver, subscription_event("evt_deleted", "deleted", subscription_id=sub.id,
                                            customer_id="cus_acme"))  # no metadata: found by customer
    after = tenant_now(world, tenant.id)
    assert (after.plan, after.stripe_subscription_id, after.stripe_customer_id) == ("free", None, "cus_acme")
    assert after.stripe_subscription_status == "canceled"
    assert audit_actions(world, tenant.id).count(("stripe:webhook", "billing.subscription.synced")) == 2


def test_payment_failed_flags_once_and_keeps_the_first_mark(world, deliver, provider):
    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    first = world.clock()
    event = invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_acme",
                          subscription_id="sub_x")
    status, body = deliver(event)
    assert (status, body["data"]["outcome"]) == (200, "payment_flagged")
    world.clock.advance(hours=1)
    deliver(event)
    deliver(event)
    # another invoice failing later keeps the first mark, so the grace period never restarts
    status, body = deliver(invoice_event("evt_failed_2", "payment_failed", invoice_id="in_2", customer_id="cus_acme"))
    assert (status, body["data"]["outcome"]) == (200, "unchanged")
    after = tenant_now(world, tenant.id)
    assert after.has_unpaid_invoices_at == first
    assert audit_actions(world, tenant.id).count(("stripe:webhook", "tenant.missing_payments.marked")) == 1


def test_payment_failed_answers_like_the_platform_missing_payments_route(world, deliver, api):
    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    deliver(invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_acme"))
    token = world.platform_token("tenants:write")
    reply = api.post(f"/tenants/{tenant.id}/missing-payments", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200
    assert reply.json["data"]["has_unpaid_invoices_at"] == "2026-04-15T12:00:00.000000Z"  # the webhook's mark


def test_invoice_paid_clears_the_flag_once(world, deliver, provider):
    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    deliver(invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_acme"))
    assert tenant_now(world, tenant.id).has_unpaid_invoices_at is not None
    answers = three_times(deliver, invoice_event("evt_paid", "paid", invoice_id="in_1", customer_id="cus_acme"))
    assert answers[0][1]["data"]["outcome"] == "payment_cleared"
    assert tenant_now(world, tenant.id).has_unpaid_invoices_at is None
    actions = audit_actions(world, tenant.id)
    assert actions.count(("stripe:webhook", "tenant.missing_payments.cleared")) == 1
    assert actions.count(("stripe:webhook", "tenant.missing_payments.marked")) == 1


def test_invoice_tenant_is_found_from_the_subscription_metadata(world, deliver, provider):
    """A tenant without its customer id yet (checkout not processed) is found through the invoice's parent."""
    tenant = world.tenant("Acme Inc")
    event = invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_new",
                          subscription_id="sub_9", metadata={"tenant_id": tenant.id})
    assert deliver(event)[0] == 200
    assert tenant_now(world, tenant.id).has_unpaid_invoices_at == world.clock()


# --- order, retries, crashes ---------------------------------------------------------------------------------


def test_subscription_updated_before_checkout_completed_ends_in_the_right_state(world, deliver, provider):
    tenant = world.tenant("Acme Inc")
    sub = provider.subscribe(tenant.id, "pilot", customer_id="cus_acme")
    provider.subscriptions[sub.id] = replace(sub, tier="growth")  # upgraded right after checkout
    updated = subscription_event("evt_updated", "updated", subscription_id=sub.id, customer_id="cus_acme",
                                 metadata={"tenant_id": tenant.id})
    completed = checkout_completed("evt_checkout", tenant_id=tenant.id, subscription_id=sub.id,
                                   customer_id="cus_acme")
    assert deliver(updated)[1]["data"]["outcome"] == "plan_synced"
    assert deliver(completed)[1]["data"]["outcome"] == "unchanged"  # the late event's stale view changes nothing
    after = tenant_now(world, tenant.id)
    assert (after.plan, after.stripe_subscription_id, after.stripe_customer_id) == ("growth", sub.id, "cus_acme")


def test_a_second_paid_checkout_never_replaces_the_first_subscription(world, deliver, provider):
    """Two Checkout sessions paid (two tabs): the first subscription stays in force, the second is audited
    for an operator to refund, and its later updates never flip the plan."""
    tenant = world.tenant("Acme Inc")
    first = provider.subscribe(tenant.id, "starter", customer_id="cus_acme")
    second = provider.subscribe(tenant.id, "growth", customer_id="cus_acme")
    deliver(checkout_completed("evt_first", tenant_id=tenant.id, subscription_id=first.id, customer_id="cus_acme"))
    status, body = deliver(checkout_completed("evt_second", tenant_id=tenant.id, subscription_id=second.id,
                                              customer_id="cus_acme"))
    assert status == 200 and body["data"]["outcome"] == "duplicate_subscription"
    deliver(subscription_event("evt_second_updated", "updated", subscription_id=second.id, customer_id="cus_acme",
                               metadata={"tenant_id": tenant.id}))
    after = tenant_now(world, tenant.id)
    assert (after.plan, after.stripe_subscription_id) == ("starter", first.id)
    assert audit_actions(world, tenant.id).count(("stripe:webhook", "billing.subscription.duplicate")) == 2
    provider.subscriptions[first.id] = replace(first, status="canceled")  # the first ends: the second may take over
    deliver(subscription_event("evt_first_deleted", "deleted", subscription_id=first.id, customer_id="cus_acme",
                               metadata={"tenant_id": tenant.id}))
    deliver(subscription_event("evt_second_again", "updated", subscription_id=second.id, customer_id="cus_acme",
                               metadata={"tenant_id": tenant.id}))
    after = tenant_now(world, tenant.id)
    assert (after.plan, after.stripe_subscription_id) == ("growth", second.id)


def test_payment_failure_after_the_invoice_was_paid_is_ignored(world, deliver, provider):
    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    assert deliver(invoice_event("evt_paid", "paid", invoice_id="in_1", customer_id="cus_acme"))[0] == 200
    status, body = deliver(invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_acme"))
    assert (status, body["data"]["outcome"]) == (200, "invoice_already_paid")
    assert tenant_now(world, tenant.id).has_unpaid_invoices_at is None
    assert ("stripe:webhook", "tenant.missing_payments.marked") not in audit_actions(world, tenant.id)


def test_unknown_tenant_answers_503_then_succeeds_once_the_tenant_exists(world, deliver, provider):
    event = invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_later")
    status, body = deliver(event)
    assert status == 503
    assert body == {"statusCode": 503, "success": False, "error": {
        "code": "TENANT_NOT_FOUND",
        "message": "The event's tenant is not known yet; the event stays unhandled and is retried."}}
    assert stored_event(world, "evt_failed").state == RECEIVED  # recorded, not handled
    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_later")
    assert tenant.has_unpaid_invoices_at is None
    status, body = deliver(event)  # Stripe's retry
    assert (status, body["data"]["outcome"], body["data"]["duplicate"]) == (200, "payment_flagged", False)
    assert tenant_now(world, tenant.id).has_unpaid_invoices_at is not None
    assert stored_event(world, "evt_failed").state == "handled"


def test_stripe_unreachable_answers_503_and_the_retry_applies_the_event(world, deliver, provider):
    from chalicelib.domain.errors import BillingProviderUnavailableError

    tenant = world.tenant("Acme Inc")
    sub = provider.subscribe(tenant.id, "starter", customer_id="cus_acme")
    event = checkout_completed("evt_unreachable", tenant_id=tenant.id, subscription_id=sub.id, customer_id="cus_acme")
    provider.fail_with = BillingProviderUnavailableError()
    status, body = deliver(event)
    assert (status, body["error"]["code"]) == (503, "BILLING_PROVIDER_UNAVAILABLE")
    assert stored_event(world, "evt_unreachable").state == "received"  # not handled: Stripe's retry applies it
    status, body = deliver(event)
    assert (status, body["data"]["outcome"]) == (200, "plan_synced")
    assert tenant_now(world, tenant.id).plan == "starter"


def test_an_event_recorded_but_not_handled_is_applied_again(world, deliver, provider):
    """A crash between recording the event and its effect: the next delivery applies it."""
    tenant = world.tenant("Acme Inc")
    sub = provider.subscribe(tenant.id, "starter", customer_id="cus_acme")
    uow = world.uow()
    uow.stripe_events.add(StripeEvent(event_id="evt_checkout", event_type="checkout.session.completed",
                                      state=RECEIVED, received_at=world.clock()))
    uow.commit()
    status, body = deliver(checkout_completed("evt_checkout", tenant_id=tenant.id, subscription_id=sub.id,
                                              customer_id="cus_acme"))
    assert (status, body["data"]["outcome"], body["data"]["duplicate"]) == (200, "plan_synced", False)
    assert tenant_now(world, tenant.id).plan == "starter"


def test_unknown_event_types_are_recorded_and_ignored(world, deliver, provider):
    event = {"id": "evt_other", "object": "event", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    status, body = deliver(event)
    assert (status, body["data"]["outcome"], body["data"]["duplicate"]) == (200, "ignored", False)
    stored = stored_event(world, "evt_other")
    assert (stored.state, stored.outcome, stored.event_type) == ("handled", "ignored", "customer.created")
    assert deliver(event)[1]["data"]["duplicate"] is True
    assert provider.calls == []


def test_a_base64_encoded_body_is_verified_as_sent(world, deliver, provider):
    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    event = invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_acme")
    assert deliver(event, base64_body=True)[0] == 200
    assert tenant_now(world, tenant.id).has_unpaid_invoices_at is not None


# --- refused deliveries: 400, nothing stored ---------------------------------------------------------------


@pytest.mark.parametrize("case", ["wrong secret", "tampered body", "stale", "no header", "garbled header"])
def test_a_bad_or_stale_signature_is_refused_and_nothing_is_stored(world, deliver, provider, case):
    import stripe

    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    event = invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_acme")
    now = int(world.clock().timestamp())
    signed = json.dumps(event)
    kwargs: dict[str, Any] = {
        "wrong secret": {"secret": "whsec_someone_else"},
        "tampered body": {"header": stripe.WebhookSignature.generate_signature_header(signed, SECRET, timestamp=now),
                          "payload": signed.replace("in_1", "in_2")},
        "stale": {"signed_at": now - 301},
        "no header": {"header": ""},
        "garbled header": {"header": "t=soon,v1=zz"},
    }[case]
    with DynamoCalls.recording() as calls:
        status, body = deliver(event, **kwargs)
    assert status == 400 and body["success"] is False and body["error"]["code"] == "INVALID_SIGNATURE"
    assert calls.operations == []  # refused before any storage
    assert stored_event(world, "evt_failed") is None
    assert tenant_now(world, tenant.id).has_unpaid_invoices_at is None


def test_a_signature_just_within_the_tolerance_is_accepted(world, deliver, provider):
    attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    event = invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_acme")
    assert deliver(event, signed_at=int(world.clock().timestamp()) - 299)[0] == 200


@pytest.mark.parametrize("payload", ['{"hello": "world"}', "[1, 2]", "not json", '{"id": "evt_1", "type": "x"}'])
def test_a_signed_body_that_is_not_an_event_is_refused(world, deliver, provider, payload):
    status, body = deliver({}, payload=payload)
    assert (status, body["error"]["code"]) == (400, "VALIDATION_ERROR")


def test_without_a_webhook_secret_every_event_is_refused_with_503(world, deliver, provider):
    bootstrap.override(stripe_config=StripeConfig(api_key="", webhook_secret=""))
    status, body = deliver({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}, header="t=1,v1=00")
    assert (status, body["error"]["code"]) == (503, "WEBHOOK_NOT_CONFIGURED")


# --- over HTTP, through the local gateway's routing (contract-checked against /openapi.json) ----------------


def test_the_local_gateway_routes_post_stripe_webhook_to_the_function(world, api, provider):
    import stripe

    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    payload = json.dumps(invoice_event("evt_http", "payment_failed", invoice_id="in_1", customer_id="cus_acme"))
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET,
                                                               timestamp=int(world.clock().timestamp()))
    headers = {"Stripe-Signature": header, "Content-Type": "application/json; charset=utf-8"}
    reply = api.post("/stripe/webhook", body=payload, headers=headers)
    assert reply.status == 200 and reply.data["outcome"] == "payment_flagged"
    assert api.post("/stripe/webhook", body=payload, headers=headers).data["duplicate"] is True
    refused = api.post("/stripe/webhook", body=payload + " ", headers=headers)
    assert refused.status == 400 and refused.error["code"] == "INVALID_SIGNATURE"
    assert api.get("/stripe/webhook").status == 404  # only POST is routed, as on API Gateway
    assert tenant_now(world, tenant.id).has_unpaid_invoices_at is not None


def test_the_openapi_document_lists_the_webhook(api):
    operation = api.get("/openapi.json").json["paths"]["/stripe/webhook"]["post"]
    assert operation["tags"] == ["Stripe"] and operation["security"] == []
    assert {"200", "400", "503"} <= set(operation["responses"])
    assert operation["parameters"][0]["name"] == "Stripe-Signature"


# --- DynamoDB round trips per event ----------------------------------------------------------------------------


def test_dynamodb_round_trips_per_event_are_few_and_constant(world, deliver, provider):
    tenant = attach_customer(world, world.tenant("Acme Inc"), "cus_acme")
    sub = provider.subscribe(tenant.id, "starter", customer_id="cus_acme")
    checkout = checkout_completed("evt_checkout", tenant_id=tenant.id, subscription_id=sub.id, customer_id="cus_acme")
    failed = invoice_event("evt_failed", "payment_failed", invoice_id="in_1", customer_id="cus_acme")
    other = {"id": "evt_other", "object": "event", "type": "customer.created", "data": {"object": {"id": "c"}}}
    figures = {}
    for name, event in (("checkout", checkout), ("payment_failed", failed), ("ignored", other)):
        with DynamoCalls.recording() as calls:
            assert deliver(event)[0] == 200
        figures[name] = dict(Counter(calls.operations))
        with DynamoCalls.recording() as calls:
            assert deliver(event)[1]["data"]["duplicate"] is True
        figures[name + " replay"] = dict(Counter(calls.operations))
    totals = {name: sum(calls.values()) for name, calls in figures.items()}
    print("DynamoDB calls per event:", figures)
    # checkout: put (received), get tenant, transaction (tenant + audit + handled)
    assert totals["checkout"] <= 3, figures
    # payment_failed by customer: put, index query + get tenant, get invoice state, transaction
    assert totals["payment_failed"] <= 5, figures
    assert totals["ignored"] == 1, figures  # one conditional put, recorded as handled at once
    assert all(totals[f"{name} replay"] <= 2 for name in ("checkout", "payment_failed", "ignored")), figures
    assert "Scan" not in {op for calls in figures.values() for op in calls}
