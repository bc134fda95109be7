"""The Stripe webhook's storage contract, against the fake and DynamoUnitOfWork under moto alike:
the event guard, the ``handled`` mark, paid-wins invoice states and the tenant found by Stripe customer."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.errors import ConflictError
from chalicelib.domain.stripe_events import INVOICE_FAILED, INVOICE_PAID, RECEIVED, StripeEvent
from tests.unit.builders import NOW, tenant


def received(event_id: str = "evt_1") -> StripeEvent:
    return StripeEvent(event_id=event_id, event_type="invoice.paid", state=RECEIVED, received_at=NOW)


def test_an_event_is_recorded_once(new_uow):
    uow = new_uow()
    uow.stripe_events.add(received())
    uow.commit()
    assert new_uow().stripe_events.get("evt_1") == received()
    again = new_uow()
    again.stripe_events.add(replace(received(), received_at=NOW + timedelta(seconds=5)))
    with pytest.raises(ConflictError):
        again.commit()
    assert new_uow().stripe_events.get("evt_1").received_at == NOW
    assert new_uow().stripe_events.get("evt_2") is None


def test_only_a_received_event_becomes_handled(new_uow):
    uow = new_uow()
    uow.stripe_events.add(received())
    uow.commit()
    handled = received().mark_handled(outcome="payment_cleared", tenant_id="2", now=NOW + timedelta(seconds=1))
    first, second = new_uow(), new_uow()
    first.stripe_events.mark_handled(handled)
    second.stripe_events.mark_handled(replace(handled, outcome="other"))
    first.commit()
    with pytest.raises(ConflictError):
        second.commit()
    assert new_uow().stripe_events.get("evt_1") == handled
    never_recorded = new_uow()
    never_recorded.stripe_events.mark_handled(replace(handled, event_id="evt_9"))
    with pytest.raises(ConflictError):
        never_recorded.commit()


def test_paid_is_never_replaced_by_another_invoice_status(new_uow):
    uow = new_uow()
    assert uow.stripe_events.invoice_status("in_1") is None
    uow.stripe_events.set_invoice_status("in_1", tenant_id="2", status=INVOICE_FAILED, now=NOW)
    uow.commit()
    assert uow.stripe_events.invoice_status("in_1") == INVOICE_FAILED
    uow.stripe_events.set_invoice_status("in_1", tenant_id="2", status=INVOICE_PAID, now=NOW)
    uow.commit()
    uow.stripe_events.set_invoice_status("in_1", tenant_id="2", status=INVOICE_FAILED, now=NOW)
    with pytest.raises(ConflictError):
        uow.commit()
    uow.stripe_events.set_invoice_status("in_1", tenant_id="2", status=INVOICE_PAID, now=NOW)
    uow.commit()
    assert new_uow().stripe_events.invoice_status("in_1") == INVOICE_PAID


def test_a_tenant_is_found_by_its_stripe_customer(new_uow):
    uow = new_uow()
    uow.tenants.add(tenant("2", stripe_customer_id="cus_a"))
    uow.tenants.add(tenant("3"))
    uow.commit()
    found = new_uow().tenants.by_stripe_customer("cus_a")
    assert found is not None and found.id == "2" and found.stripe_customer_id == "cus_a"
    assert new_uow().tenants.by_stripe_customer("cus_b") is None
