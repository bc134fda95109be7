"""The Stripe webhook's rules over the in-memory unit of work: races between deliveries and events."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chalicelib.domain.stripe_events import INVOICE_PAID, RECEIVED
from chalicelib.services import stripe_webhooks
from tests.fakes import FakeBillingProvider, FakeStore, FakeUnitOfWork
from tests.unit.builders import NOW, seed_tenant

SECRET = "whsec_unit_0123456789abcdef"


def signed(event: dict) -> tuple[bytes, str]:
    import stripe

    payload = json.dumps(event)
    return payload.encode(), stripe.WebhookSignature.generate_signature_header(payload, SECRET,
                                                                                timestamp=int(NOW.timestamp()))


def handle(uow, event: dict, provider=None) -> stripe_webhooks.Result:
    payload, header = signed(event)
    return stripe_webhooks.handle(uow, payload=payload, signature_header=header, now=NOW,
                                  provider=provider or FakeBillingProvider(), webhook_secret=SECRET)


def invoice_failed(event_id: str = "evt_failed", invoice_id: str = "in_1") -> dict:
    return {"id": event_id, "type": "invoice.payment_failed",
            "data": {"object": {"id": invoice_id, "customer": "cus_a", "parent": None}}}


@pytest.fixture
def store() -> FakeStore:
    store = FakeStore()
    seed_tenant(FakeUnitOfWork(store), "2", stripe_customer_id="cus_a")
    return store


class Interleaved(FakeUnitOfWork):
    """A unit of work that lets another delivery commit right before its first apply-phase commit."""

    def __init__(self, store: FakeStore, meanwhile) -> None:
        super().__init__(store)
        self._meanwhile = meanwhile
        self._commits = 0

    def commit(self) -> None:
        self._commits += 1
        if self._commits == 2 and self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        super().commit()


def test_a_concurrent_delivery_that_applied_the_event_first_makes_this_one_a_replay(store):
    outcome = handle(Interleaved(store, lambda: handle(FakeUnitOfWork(store), invoice_failed())), invoice_failed())
    assert outcome.status == 200 and outcome.body["duplicate"] is True
    audit = FakeUnitOfWork(store).audit.list("2", 10, None).items
    assert [e.action for e in audit] == ["tenant.missing_payments.marked"]


def test_a_payment_failure_racing_its_invoice_being_paid_ends_paid(store):
    def paid_meanwhile() -> None:
        paid = {"id": "evt_paid", "type": "invoice.paid",
                "data": {"object": {"id": "in_1", "customer": "cus_a", "parent": None}}}
        assert handle(FakeUnitOfWork(store), paid).body["outcome"] == "unchanged"

    outcome = handle(Interleaved(store, paid_meanwhile), invoice_failed())
    assert (outcome.status, outcome.body["outcome"]) == (200, "invoice_already_paid")
    uow = FakeUnitOfWork(store)
    assert uow.tenants.get("2").has_unpaid_invoices_at is None
    assert uow.stripe_events.invoice_status("in_1") == INVOICE_PAID


def test_a_tenant_saved_concurrently_is_re_read_and_the_event_applied(store):
    def rename() -> None:
        uow = FakeUnitOfWork(store)
        uow.tenants.save(replace(uow.tenants.get("2"), company_name="Acme Renamed"))
        uow.commit()

    outcome = handle(Interleaved(store, rename), invoice_failed())
    assert (outcome.status, outcome.body["outcome"]) == (200, "payment_flagged")
    after = FakeUnitOfWork(store).tenants.get("2")
    assert (after.company_name, after.has_unpaid_invoices_at) == ("Acme Renamed", NOW)


def test_an_unknown_tenant_leaves_the_event_received_and_stages_nothing(store):
    uow = FakeUnitOfWork(store)
    event = {"id": "evt_x", "type": "invoice.paid", "data": {"object": {"id": "in_9", "customer": "cus_zz"}}}
    outcome = handle(uow, event)
    assert (outcome.status, outcome.body["code"]) == (503, "TENANT_NOT_FOUND")
    assert uow.stripe_events.get("evt_x").state == RECEIVED
    assert uow.stripe_events.invoice_status("in_9") is None
    assert uow._staged == []


def test_a_checkout_for_a_deleted_tenant_changes_nothing(store):
    uow = FakeUnitOfWork(store)
    uow.tenants.save(uow.tenants.get("2").deleted(NOW))
    uow.commit()
    provider = FakeBillingProvider()
    sub = provider.subscribe("2", "starter", customer_id="cus_a")
    event = {"id": "evt_c", "type": "checkout.session.completed", "data": {"object": {
        "id": "cs_1", "mode": "subscription", "client_reference_id": "2", "subscription": sub.id, "customer": "cus_a"}}}
    outcome = handle(uow, event, provider)
    assert (outcome.status, outcome.body["outcome"]) == (200, "tenant_deleted")
    assert uow.tenants.get("2").plan == "free"


def test_a_one_time_payment_checkout_is_ignored(store):
    event = {"id": "evt_c", "type": "checkout.session.completed",
             "data": {"object": {"id": "cs_1", "mode": "payment", "client_reference_id": "2"}}}
    assert handle(FakeUnitOfWork(store), event).body["outcome"] == "ignored"


def test_an_expanded_subscription_reference_is_followed(store):
    provider = FakeBillingProvider()
    sub = provider.subscribe("2", "pilot", customer_id="cus_a")
    event = {"id": "evt_c", "type": "checkout.session.completed", "data": {"object": {
        "id": "cs_1", "client_reference_id": "2", "subscription": {"id": sub.id, "object": "subscription"}}}}
    assert handle(FakeUnitOfWork(store), event, provider).body["outcome"] == "plan_synced"
    assert FakeUnitOfWork(store).tenants.get("2").plan == "pilot"


def test_the_cold_start_does_not_load_the_webhook_service_or_stripe():
    """The API handler never needs them, and the webhook function loads them on its first event."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, app; print(sorted(m for m in sys.modules if m == 'stripe' or m.startswith(("
            "'stripe.', 'chalicelib.services.stripe_webhooks', 'chalicelib.jobs.stripe_webhook'))))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"
