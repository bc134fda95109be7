"""The local Stripe stand-in (adapters/stripe_local.py) on moto: Stripe-shaped objects, UTC-month periods,
idempotency, meter-event dedup, one-off overage invoices, signed events in order, delivery retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.adapters.stripe_local import (
    LocalStripe,
    next_month_start,
    prorated_cents,
    signature_header,
)
from chalicelib.domain.errors import BillingProviderError, ConflictError, NotFoundError
from chalicelib.settings import get_settings
from tests.conftest import FrozenClock
from tests.fakes import CapturingSink

SECRET = "whsec_test_local_stripe"
BASE = get_settings().public_base_url


@pytest.fixture
def sink() -> CapturingSink:
    return CapturingSink()


@pytest.fixture
def stripe_local(aws, clock, sink) -> LocalStripe:
    return LocalStripe(get_settings(), webhook_secret=SECRET, sink=sink, clock=clock)


def checkout(stand_in: LocalStripe, tenant: str = "7", tier: str = "starter", key: str | None = None, **extra):
    params = {"tenant_id": tenant, "tier": tier, "customer_id": None, "customer_email": "owner@acme.test",
              "success_url": "http://127.0.0.1:8000/dashboard/billing/plan?ok=1",
              "cancel_url": "http://127.0.0.1:8000/dashboard/billing/plan", **extra}
    return stand_in.create_checkout_session(idempotency_key=key or f"checkout-{tenant}-{tier}", **params)


def subscribe(stand_in: LocalStripe, tenant: str = "7", tier: str = "starter", customer_id: str | None = None) -> dict:
    session = checkout(stand_in, tenant, tier, customer_id=customer_id)
    stand_in.complete_checkout(session.id)
    state = stand_in.tenant_state(tenant)
    return stand_in.get_object(state["subscription"])


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


# --- periods and money ---------------------------------------------------------------------------------


def test_periods_end_at_midnight_utc_on_the_first_of_the_next_month():
    assert next_month_start(datetime(2026, 4, 15, 12, tzinfo=UTC)) == datetime(2026, 5, 1, tzinfo=UTC)
    assert next_month_start(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_month_start(datetime(2026, 5, 1, tzinfo=UTC)) == datetime(2026, 6, 1, tzinfo=UTC)


def test_proration_is_by_the_second_rounded_half_up():
    april = (ts(2026, 4, 1), ts(2026, 5, 1))
    assert prorated_cents(300_000, start=april[0], end=april[1], now=ts(2026, 4, 16)) == 150_000
    assert prorated_cents(100, start=0, end=3, now=1) == 67  # 66.67
    assert prorated_cents(300_000, start=april[0], end=april[1], now=april[1]) == 0


# --- checkout -----------------------------------------------------------------------------------------


def test_a_checkout_session_is_stripe_shaped_and_opens_the_local_page(stripe_local, sink):
    session = checkout(stripe_local)
    assert session.id.startswith("cs_")
    assert session.url == f"{BASE}/local-stripe/checkout/{session.id}"
    stored = stripe_local.get_object(session.id)
    assert stored["object"] == "checkout.session"
    assert stored["mode"] == "subscription" and stored["status"] == "open"
    assert stored["client_reference_id"] == "7"
    assert stored["metadata"] == {"tenant_id": "7", "tier": "starter"}
    assert stored["subscription_data"]["billing_cycle_anchor"] == ts(2026, 5, 1)
    assert [line["price"]["id"] for line in stored["line_items"]["data"]] == [
        "price_tally_starter", "price_tally_starter_overage"]
    assert sink.calls == []  # Stripe sends no event for a new session


def test_the_same_idempotency_key_gives_the_same_session(stripe_local):
    first = checkout(stripe_local, key="k1")
    assert checkout(stripe_local, key="k1") == first
    assert checkout(stripe_local, key="k2").id != first.id


def test_an_idempotency_key_reused_with_other_parameters_is_refused(stripe_local):
    checkout(stripe_local, key="k1", tier="starter")
    with pytest.raises(BillingProviderError):
        checkout(stripe_local, key="k1", tier="growth")


def test_an_unknown_tier_is_refused(stripe_local):
    with pytest.raises(BillingProviderError):
        checkout(stripe_local, tier="enterprise")


def test_completing_checkout_creates_the_customer_subscription_and_a_paid_prorated_invoice(stripe_local, sink):
    session = checkout(stripe_local)
    outcome = stripe_local.complete_checkout(session.id)

    assert [e.type for e in outcome.events] == ["checkout.session.completed", "customer.subscription.created",
                                                "invoice.paid"]
    assert all(e.delivered for e in outcome.events)
    assert sink.types == ["checkout.session.completed", "customer.subscription.created", "invoice.paid"]
    completed, created, paid = (event["data"]["object"] for event in sink.events)

    assert completed["status"] == "complete" and completed["payment_status"] == "paid"
    assert completed["client_reference_id"] == "7"
    sub_id, cus_id = completed["subscription"], completed["customer"]
    assert sub_id.startswith("sub_") and cus_id.startswith("cus_")
    customer = stripe_local.get_object(cus_id)
    assert customer["email"] == "owner@acme.test" and customer["metadata"] == {"tenant_id": "7"}

    assert created["id"] == sub_id and created["customer"] == cus_id and created["status"] == "active"
    assert created["metadata"] == {"tenant_id": "7"} and created["cancel_at_period_end"] is False
    items = created["items"]["data"]
    assert [item["price"]["id"] for item in items] == ["price_tally_starter", "price_tally_starter_overage"]
    assert all(item["id"].startswith("si_") for item in items)
    # API 2026-10-28: the period is on the items; it ends at 00:00 UTC on the 1st of the next month.
    assert {(item["current_period_start"], item["current_period_end"]) for item in items} == {
        (ts(2026, 4, 15, 12), ts(2026, 5, 1))}

    # 15.5 of April's 30 days of $3,000.
    assert paid["status"] == "paid" and paid["amount_due"] == paid["amount_paid"] == 155_000
    assert paid["customer"] == cus_id and paid["billing_reason"] == "subscription_create"
    assert paid["parent"]["subscription_details"]["subscription"] == sub_id
    assert paid["parent"]["subscription_details"]["metadata"] == {"tenant_id": "7"}
    assert stripe_local.tenant_state("7")["subscription"] == sub_id


def test_completing_a_completed_session_changes_nothing(stripe_local, sink):
    session = checkout(stripe_local)
    stripe_local.complete_checkout(session.id)
    sink.clear()
    again = stripe_local.complete_checkout(session.id)
    assert again.events == () and sink.calls == []
    assert again.object["status"] == "complete"


def test_a_concurrent_completion_is_detected_and_not_repeated(stripe_local, sink, clock, monkeypatch):
    from chalicelib.adapters.stripe_local import _Work

    session = checkout(stripe_local)
    commit, raced = _Work.commit, []

    def racing_commit(self):
        if not raced:  # another request pays the same session between this one's reads and its commit
            raced.append(True)
            LocalStripe(get_settings(), webhook_secret=SECRET, sink=sink, clock=clock).complete_checkout(session.id)
        return commit(self)

    monkeypatch.setattr(_Work, "commit", racing_commit)
    outcome = stripe_local.complete_checkout(session.id)
    assert outcome.summary == "The Checkout session was already completed." and outcome.events == ()
    assert sink.types == ["checkout.session.completed", "customer.subscription.created", "invoice.paid"]
    assert len(stripe_local.tenant_state("7")["invoices"]) == 1


def test_an_expired_session_cannot_be_completed(stripe_local, clock):
    session = checkout(stripe_local)
    clock.advance(hours=24)
    with pytest.raises(ConflictError):
        stripe_local.complete_checkout(session.id)


def test_an_unknown_session_is_not_found(stripe_local):
    with pytest.raises(NotFoundError):
        stripe_local.complete_checkout("cs_missing")


def test_a_returning_customer_keeps_its_customer(stripe_local):
    first = subscribe(stripe_local)
    stripe_local.cancel_at_period_end(first["id"], idempotency_key="cancel-1")
    stripe_local.advance_period("7")
    session = checkout(stripe_local, key="again", customer_id=first["customer"])
    stripe_local.complete_checkout(session.id)
    second = stripe_local.get_object(stripe_local.tenant_state("7")["subscription"])
    assert second["id"] != first["id"] and second["customer"] == first["customer"]


# --- the provider's reads and writes ---------------------------------------------------------------------


def test_get_subscription_reads_what_plan_state_needs(stripe_local):
    sub = subscribe(stripe_local, tier="growth")
    found = stripe_local.get_subscription(sub["id"])
    assert (found.id, found.customer_id, found.status, found.tier, found.tenant_id) == (
        sub["id"], sub["customer"], "active", "growth", "7")
    assert found.current_period_end == datetime(2026, 5, 1, tzinfo=UTC)
    assert found.live and not found.cancel_at_period_end
    with pytest.raises(BillingProviderError):
        stripe_local.get_subscription("sub_missing")


def test_change_plan_swaps_both_prices_keeps_the_items_and_invoices_the_proration(stripe_local, sink, clock):
    sub = subscribe(stripe_local, tier="starter")
    sink.clear()
    clock.current = datetime(2026, 4, 16, tzinfo=UTC)  # half of April left
    changed = stripe_local.change_plan(sub["id"], tier="growth", idempotency_key="change-1")
    assert changed.tier == "growth" and changed.current_period_end == datetime(2026, 5, 1, tzinfo=UTC)

    assert sink.types == ["customer.subscription.updated", "invoice.paid"]
    updated, invoice = (event["data"]["object"] for event in sink.events)
    assert [i["id"] for i in updated["items"]["data"]] == [i["id"] for i in sub["items"]["data"]]
    assert [i["price"]["id"] for i in updated["items"]["data"]] == ["price_tally_growth", "price_tally_growth_overage"]
    previous = sink.events[0]["data"]["previous_attributes"]["items"]["data"]
    assert previous[0]["price"]["id"] == "price_tally_starter"
    # ($8,000 - $3,000) for half the month
    assert invoice["billing_reason"] == "subscription_update" and invoice["amount_paid"] == 250_000


def test_change_plan_with_the_same_key_replays_without_a_second_change(stripe_local, sink):
    sub = subscribe(stripe_local)
    first = stripe_local.change_plan(sub["id"], tier="growth", idempotency_key="change-1")
    sink.clear()
    again = stripe_local.change_plan(sub["id"], tier="growth", idempotency_key="change-1")
    assert again == first and sink.calls == []


def test_changing_to_the_current_tier_sends_nothing(stripe_local, sink):
    sub = subscribe(stripe_local)
    sink.clear()
    assert stripe_local.change_plan(sub["id"], tier="starter", idempotency_key="same").tier == "starter"
    assert sink.calls == []


def test_cancel_at_period_end_then_the_period_end_cancels_it(stripe_local, sink):
    sub = subscribe(stripe_local)
    sink.clear()
    result = stripe_local.cancel_at_period_end(sub["id"], idempotency_key="cancel-1")
    assert result.cancel_at_period_end and result.live
    assert sink.types == ["customer.subscription.updated"]
    updated = sink.events[0]["data"]["object"]
    assert updated["cancel_at_period_end"] is True and updated["cancel_at"] == ts(2026, 5, 1)
    assert sink.events[0]["data"]["previous_attributes"]["cancel_at_period_end"] is False
    sink.clear()
    assert stripe_local.cancel_at_period_end(sub["id"], idempotency_key="cancel-1") == result
    assert sink.calls == []

    outcome = stripe_local.advance_period("7")
    assert [e.type for e in outcome.events] == ["customer.subscription.deleted"]
    deleted = sink.events[0]["data"]["object"]
    assert deleted["status"] == "canceled" and deleted["ended_at"] == ts(2026, 5, 1)
    assert not stripe_local.get_subscription(sub["id"]).live
    assert stripe_local.tenant_state("7")["subscription"] is None
    with pytest.raises(BillingProviderError):
        stripe_local.change_plan(sub["id"], tier="growth", idempotency_key="too-late")
    with pytest.raises(NotFoundError):
        stripe_local.advance_period("7")


def test_a_portal_session_shows_the_customers_subscription(stripe_local):
    sub = subscribe(stripe_local)
    url = stripe_local.create_portal_session(sub["customer"], return_url="http://127.0.0.1:8000/back")
    assert url.startswith(f"{BASE}/local-stripe/portal/bps_")
    page = stripe_local.portal_page(url.rsplit("/", 1)[1])
    assert page["tier"] == "starter" and page["subscription"]["id"] == sub["id"]
    assert page["period_end"] == datetime(2026, 5, 1, tzinfo=UTC)



def test_a_customer_tally_names_is_adopted_by_the_portal_and_later_by_checkout(stripe_local):
    """A tenant created with `--stripe-customer cus_…` (the demo's Acme): the stand-in never saw it."""
    url = stripe_local.create_portal_session("cus_adopted", return_url="http://127.0.0.1:8000/back")
    page = stripe_local.portal_page(url.rsplit("/", 1)[1])
    assert page["customer"]["id"] == "cus_adopted" and page["subscription"] is None
    sub = subscribe(stripe_local, customer_id="cus_adopted")
    assert sub["customer"] == "cus_adopted"
    page = stripe_local.portal_page(url.rsplit("/", 1)[1])
    assert page["subscription"]["id"] == sub["id"] and page["tier"] == "starter"


# --- renewals, overage, failed payments --------------------------------------------------------------------


def test_advance_period_renews_for_the_next_utc_month_with_a_paid_invoice(stripe_local, sink):
    sub = subscribe(stripe_local, tier="starter")
    sink.clear()
    outcome = stripe_local.advance_period("7")
    assert [e.type for e in outcome.events] == ["customer.subscription.updated", "invoice.paid"]
    updated, invoice = (event["data"]["object"] for event in sink.events)
    assert {(i["current_period_start"], i["current_period_end"]) for i in updated["items"]["data"]} == {
        (ts(2026, 5, 1), ts(2026, 6, 1))}
    assert invoice["billing_reason"] == "subscription_cycle" and invoice["amount_paid"] == 300_000
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
    assert stripe_local.get_subscription(sub["id"]).current_period_end == datetime(2026, 6, 1, tzinfo=UTC)
    stripe_local.advance_period("7")
    assert stripe_local.get_subscription(sub["id"]).current_period_end == datetime(2026, 7, 1, tzinfo=UTC)


def test_a_meter_event_identifier_counts_once_and_is_billed_at_renewal(stripe_local, sink, clock):
    sub = subscribe(stripe_local, tier="starter")
    at = datetime(2026, 4, 30, 23, 59, tzinfo=UTC)
    clock.current = datetime(2026, 4, 30, 23, 59, 30, tzinfo=UTC)
    for _ in range(2):
        stripe_local.report_overage(customer_id=sub["customer"], quantity=1000, identifier="overage-7-2026-04",
                                    timestamp=at)
    stripe_local.report_overage(customer_id=sub["customer"], quantity=5, identifier="overage-7-extra",
                                timestamp=at - timedelta(days=1))
    assert sink.calls == [] or sink.types[-1] == "invoice.paid"  # meter events send no webhook
    sink.clear()
    stripe_local.advance_period("7")
    invoice = sink.events[-1]["data"]["object"]
    overage = [line for line in invoice["lines"]["data"] if line["quantity"] == 1005]
    assert overage and overage[0]["amount"] == 1206  # 1005 x $0.012
    assert invoice["amount_due"] == 300_000 + 1206


def test_meter_events_outside_stripes_window_are_refused(stripe_local, clock):
    with pytest.raises(BillingProviderError):
        stripe_local.report_overage(customer_id="cus_x", quantity=1, identifier="old",
                                    timestamp=clock() - timedelta(days=36))
    with pytest.raises(BillingProviderError):
        stripe_local.report_overage(customer_id="cus_x", quantity=-1, identifier="neg", timestamp=clock())


def test_an_overage_invoice_is_one_paid_one_off_invoice_and_a_resend_is_a_no_op(stripe_local, sink):
    sub = subscribe(stripe_local, tier="pilot")
    sink.clear()
    params = {"customer_id": sub["customer"], "quantity": 251, "amount_cents": 502,
              "description": "Tally Pilot overage: 251 deltas in 2026-04", "identifier": "tally-overage-7-2026-04"}
    stripe_local.invoice_overage(**params)
    assert sink.types == ["invoice.paid"]
    invoice = sink.events[0]["data"]["object"]
    assert invoice["object"] == "invoice" and invoice["id"].startswith("in_")
    assert (invoice["status"], invoice["amount_due"], invoice["amount_paid"], invoice["amount_remaining"]) == (
        "paid", 502, 502, 0)
    assert (invoice["customer"], invoice["billing_reason"], invoice["parent"]) == (sub["customer"], "manual", None)
    assert invoice["collection_method"] == "charge_automatically"
    assert invoice["metadata"] == {"identifier": "tally-overage-7-2026-04"}
    [line] = invoice["lines"]["data"]
    assert (line["amount"], line["quantity"], line["description"]) == (
        502, 1, "Tally Pilot overage: 251 deltas in 2026-04")
    assert stripe_local.get_object(invoice["id"]) == invoice
    assert stripe_local.tenant_state("7")["invoices"][-1] == invoice["id"]  # on the portal page

    sink.clear()
    stripe_local.invoice_overage(**params)
    assert sink.calls == []
    assert stripe_local.tenant_state("7")["invoices"].count(invoice["id"]) == 1
    with pytest.raises(BillingProviderError):  # the same identifier with another amount
        stripe_local.invoice_overage(**{**params, "amount_cents": 503})
    with pytest.raises(BillingProviderError):
        stripe_local.invoice_overage(**{**params, "identifier": "neg", "amount_cents": -1})


def test_fail_payment_then_pay_invoice(stripe_local, sink):
    sub = subscribe(stripe_local)
    sink.clear()
    failed = stripe_local.fail_payment("7")
    assert [e.type for e in failed.events] == ["invoice.payment_failed", "customer.subscription.updated"]
    invoice, updated = (event["data"]["object"] for event in sink.events)
    assert invoice["status"] == "open" and invoice["amount_due"] == 300_000 and invoice["amount_paid"] == 0
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]
    assert updated["status"] == "past_due"
    assert stripe_local.get_subscription(sub["id"]).status == "past_due"

    sink.clear()
    again = stripe_local.fail_payment("7")  # the same invoice's next attempt; already past due
    assert [e.type for e in again.events] == ["invoice.payment_failed"]
    assert sink.events[0]["data"]["object"]["id"] == invoice["id"]
    assert sink.events[0]["data"]["object"]["attempt_count"] == 2

    sink.clear()
    paid = stripe_local.pay_invoice("7")
    assert [e.type for e in paid.events] == ["invoice.paid", "customer.subscription.updated"]
    assert sink.events[0]["data"]["object"]["id"] == invoice["id"]
    assert sink.events[0]["data"]["object"]["status"] == "paid"
    assert sink.events[1]["data"]["object"]["status"] == "active"
    assert stripe_local.tenant_state("7")["open_invoices"] == []
    assert stripe_local.pay_invoice("7").events == ()


def test_a_past_due_subscription_renews_with_a_failed_payment(stripe_local, sink):
    subscribe(stripe_local)
    stripe_local.fail_payment("7")
    sink.clear()
    stripe_local.advance_period("7")
    assert sink.types == ["customer.subscription.updated", "invoice.payment_failed"]
    assert len(stripe_local.tenant_state("7")["open_invoices"]) == 2
    stripe_local.pay_invoice("7")
    assert sink.types[-3:] == ["invoice.paid", "invoice.paid", "customer.subscription.updated"]


def test_operations_on_a_tenant_without_subscription_are_not_found(stripe_local):
    for operation in (stripe_local.advance_period, stripe_local.fail_payment):
        with pytest.raises(NotFoundError):
            operation("99")


# --- events: envelope, signature, delivery ----------------------------------------------------------------


def test_events_are_stripe_events_signed_with_stripes_scheme(aws):
    import stripe

    sink = CapturingSink()
    wall = FrozenClock(datetime.now(UTC))  # the SDK checks the signature's age against the wall clock
    stand_in = LocalStripe(get_settings(), webhook_secret=SECRET, sink=sink, clock=wall)
    stand_in.complete_checkout(checkout(stand_in).id)
    assert len(sink.calls) == 3
    for payload, header in sink.calls:
        assert stripe.WebhookSignature.verify_header(payload, header, SECRET, tolerance=300)
        event = stripe.Webhook.construct_event(payload, header, SECRET)
        assert event.object == "event" and event.livemode is False
        assert event.api_version == "2026-10-28.endive"
        assert event.id.startswith("evt_") and event.created == int(wall().timestamp())
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(payload, header, "whsec_other", tolerance=300)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(payload + b" ", header, SECRET, tolerance=300)
    assert len({json.loads(p)["id"] for p, _ in sink.calls}) == 3


def test_signature_header_format():
    header = signature_header(b'{"a":1}', "whsec_x", 1_700_000_000)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64


def test_a_failed_delivery_is_retried_first_by_the_next_operation(aws, clock):
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord

    sink = CapturingSink(503, 200)
    stand_in = LocalStripe(get_settings(), webhook_secret=SECRET, sink=sink, clock=clock)
    outcome = stand_in.complete_checkout(checkout(stand_in).id)
    assert [e.status for e in outcome.events] == [503, 200, 200]
    failed_id = outcome.events[0].id
    record = LocalStripeObjectRecord.get(keys.localstripe_pk(failed_id), keys.LOCALSTRIPE_SK).data
    assert record["delivery"]["status"] == "failed" and record["delivery"]["attempts"] == 1

    sink.clear()
    stand_in.advance_period("7")
    assert sink.types == ["checkout.session.completed", "customer.subscription.updated", "invoice.paid"]
    record = LocalStripeObjectRecord.get(keys.localstripe_pk(failed_id), keys.LOCALSTRIPE_SK).data
    assert record["delivery"]["status"] == "delivered" and record["delivery"]["attempts"] == 2
    assert stand_in.deliver_pending() == []


def test_an_unreachable_endpoint_keeps_every_event_for_later(aws, clock):
    sink = CapturingSink(0)
    stand_in = LocalStripe(get_settings(), webhook_secret=SECRET, sink=sink, clock=clock)
    outcome = stand_in.complete_checkout(checkout(stand_in).id)
    assert [e.status for e in outcome.events] == [0, 0, 0]
    assert len(sink.calls) == 1  # the first failure stops the round
    sink.statuses = [200]
    sink.clear()
    delivered = stand_in.deliver_pending()
    assert [e.type for e in delivered] == ["checkout.session.completed", "customer.subscription.created",
                                           "invoice.paid"]
    assert all(e.delivered for e in delivered) and sink.types == [e.type for e in delivered]


def test_without_a_sink_the_test_stage_records_events_without_sending(aws, clock):
    stand_in = LocalStripe(get_settings(), webhook_secret=SECRET, clock=clock)
    outcome = stand_in.complete_checkout(checkout(stand_in).id)
    assert [e.status for e in outcome.events] == [-1, -1, -1]
    assert stand_in.deliver_pending() == []


def test_the_default_sink_posts_to_the_stacks_stripe_webhook(aws, clock):
    from dataclasses import replace

    from chalicelib.adapters.stripe_local import HttpSink

    stand_in = LocalStripe(replace(get_settings(), stage="local"), webhook_secret=SECRET, clock=clock)
    assert isinstance(stand_in._sink, HttpSink)
    assert stand_in._sink.url == f"{BASE}/stripe/webhook" and stand_in._sink.timeout == 10
