"""Recording and lifting dashboard blocks (services/payment_blocks.py) over the in-memory unit of work."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.tenants import MISSING_PAYMENT_GRACE
from chalicelib.services import payment_blocks
from tests.fakes import FakeStore, FakeUnitOfWork
from tests.unit.builders import NOW, seed_tenant

LATER = NOW + MISSING_PAYMENT_GRACE + timedelta(seconds=1)


def actions(uow: FakeUnitOfWork, tenant_id: str) -> list[str]:
    return [e.action for e in uow.audit.list(tenant_id, 100, None).items]


def events(store: FakeStore) -> list[tuple[str, str, str]]:
    outbox = getattr(store, "outbox", None)
    return sorted((o.tenant_id, str(o.environment), e.event_type)
                  for o in (outbox.rows.values() if outbox else ()) for e in o.events)


def test_a_passed_block_is_recorded_once_with_its_audit_entry_and_event():
    store = FakeStore()
    uow = FakeUnitOfWork(store)
    seed_tenant(uow, "2", has_unpaid_invoices_at=NOW)
    seed_tenant(uow, "3", has_unpaid_invoices_at=NOW + timedelta(days=1))  # not due yet
    seed_tenant(uow, "4")  # never flagged

    first = payment_blocks.record_due_blocks(lambda: FakeUnitOfWork(store), now=LATER)
    second = payment_blocks.record_due_blocks(lambda: FakeUnitOfWork(store), now=LATER)

    assert (first.blocked, len(first.outbox), second.blocked, second.skipped) == (["2"], 1, [], 0)
    assert uow.tenants.get("2").dashboard_blocked_at == LATER
    assert uow.tenants.get("3").dashboard_blocked_at is None
    assert actions(uow, "2") == ["tenant.dashboard_blocked"]
    assert events(store) == [("2", "production", "tenant.dashboard_blocked")]


def test_the_job_pages_through_every_due_tenant():
    store = FakeStore()
    uow = FakeUnitOfWork(store)
    for n in range(2, 9):
        seed_tenant(uow, str(n), has_unpaid_invoices_at=NOW - timedelta(minutes=n))
    report = payment_blocks.record_due_blocks(lambda: FakeUnitOfWork(store), now=LATER, page_size=3)
    assert sorted(report.blocked, key=int) == [str(n) for n in range(2, 9)]
    assert report.blocked == [str(n) for n in range(8, 1, -1)]  # oldest limit date first


def test_clearing_a_recorded_block_records_the_unblock():
    store = FakeStore()
    uow = FakeUnitOfWork(store)
    seed_tenant(uow, "2", has_unpaid_invoices_at=NOW)
    payment_blocks.record_due_blocks(lambda: FakeUnitOfWork(store), now=LATER)
    tenant = uow.tenants.get("2")

    after = payment_blocks.stage_clear_missing_payment(uow, tenant, actor="platform_token:t1", now=LATER)
    uow.commit()

    assert (after.has_unpaid_invoices_at, after.dashboard_blocked_at, after.dashboard_blocked(LATER)) == (
        None, None, False)
    assert sorted(actions(uow, "2")) == ["tenant.dashboard_blocked", "tenant.dashboard_unblocked",
                                         "tenant.missing_payments.cleared"]
    assert events(store) == [("2", "production", "tenant.dashboard_blocked"),
                             ("2", "production", "tenant.dashboard_unblocked")]


def test_clearing_an_unrecorded_block_records_only_the_clear():
    store = FakeStore()
    uow = FakeUnitOfWork(store)
    tenant = seed_tenant(uow, "2", has_unpaid_invoices_at=NOW)
    payment_blocks.stage_clear_missing_payment(uow, tenant, actor="platform_token:t1", now=LATER)
    uow.commit()
    assert actions(uow, "2") == ["tenant.missing_payments.cleared"] and events(store) == []


def test_nothing_to_record_stages_nothing():
    uow = FakeUnitOfWork()
    tenant = seed_tenant(uow, "2", has_unpaid_invoices_at=NOW)
    assert payment_blocks.stage_record_block(uow, tenant, now=NOW + MISSING_PAYMENT_GRACE) is None
    blocked = payment_blocks.stage_record_block(uow, tenant, now=LATER)
    assert blocked is not None
    uow.commit()
    assert payment_blocks.stage_record_block(uow, uow.tenants.get("2"), now=LATER) is None
