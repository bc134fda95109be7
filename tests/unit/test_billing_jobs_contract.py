"""The billing jobs' storage, one contract for the fake and DynamoDB under moto (as
test_unit_of_work_contract.py): period closes and rollover runs are versioned, the block index holds
exactly the flagged tenants whose block is unrecorded, by limit date."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.errors import ConflictError
from chalicelib.domain.period_close import CheckpointProgress, RolloverRun, open_close
from chalicelib.services.ports import UnitOfWork
from tests.unit.builders import NOW, tenant

GRACE = timedelta(days=14)


@pytest.fixture
def uow(new_uow) -> UnitOfWork:
    """One unit of work of ``new_uow`` (tests/unit/conftest.py): the fake, or DynamoDB under moto."""
    return new_uow()


def test_a_period_close_reads_back_equal_and_saves_are_versioned(uow):
    close = open_close(tenant(plan="pilot", stripe_customer_id="cus_1", stripe_subscription_id="sub_1",
                              cancel_at_period_end=True), "2026-04", 10_251, now=NOW)
    close = close.checkpointed("sandbox", CheckpointProgress(cursor="abc", created=3), NOW)
    uow.period_closes.save(close)
    uow.commit()
    stored = uow.period_closes.get("2", "2026-04")
    assert stored == replace(close, version=1)
    assert stored.overage_charges_usd == Decimal("5.02") and uow.period_closes.get("2", "2026-03") is None

    uow.period_closes.save(close)  # a second "new" close of the same month
    with pytest.raises(ConflictError):
        uow.commit()
    uow.period_closes.save(stored.reported(NOW))
    uow.commit()
    uow.period_closes.save(stored.reverted("free", NOW))  # decided from a stale read
    with pytest.raises(ConflictError):
        uow.commit()
    assert uow.period_closes.get("2", "2026-04").report == "reported"


def test_a_close_stored_before_invoices_were_an_option_reports_by_meter_event():
    from chalicelib.adapters.dynamodb.models import PeriodCloseRecord
    from chalicelib.adapters.dynamodb.period_close_repository import _close_data, _close_from

    close = open_close(tenant(plan="pilot", stripe_customer_id="cus_1"), "2026-04", 10_251, now=NOW)
    data = _close_data(close)
    assert data["report"]["by"] == "invoice"
    del data["report"]["by"]
    record = PeriodCloseRecord("T#2", "PERIOD#2026-04", tenant_id="2", period="2026-04", data=data,
                               updated_at=NOW)
    assert _close_from(record).report_by == "meter"


def test_a_rollover_run_reads_back_equal_and_saves_are_versioned(uow):
    run = RolloverRun(period="2026-04", cursor="c1", retry=("4", "7"), tenants=12, started_at=NOW)
    uow.period_closes.save_run(run, now=NOW)
    uow.commit()
    stored = uow.period_closes.get_run("2026-04")
    assert stored == replace(run, version=1)
    assert uow.period_closes.get("*", "2026-04") is None  # runs are not tenant closes
    uow.period_closes.save_run(replace(stored, phase="checkpoints"), now=NOW)
    uow.commit()
    uow.period_closes.save_run(replace(stored, phase="done"), now=NOW)
    with pytest.raises(ConflictError):
        uow.commit()


def test_the_block_index_lists_due_unrecorded_blocks_oldest_first_in_pages(uow):
    flagged = {"2": NOW, "3": NOW - timedelta(hours=1), "4": NOW + timedelta(hours=1), "5": NOW - timedelta(hours=2)}
    for tenant_id, at in flagged.items():
        uow.tenants.add(tenant(tenant_id, has_unpaid_invoices_at=at))
    uow.tenants.add(tenant("6"))  # never flagged
    uow.tenants.add(tenant("7", has_unpaid_invoices_at=NOW - timedelta(days=1), dashboard_blocked_at=NOW))
    uow.commit()
    before = NOW + GRACE + timedelta(minutes=30)

    first = uow.tenants.due_blocks(before, 2, None)
    second = uow.tenants.due_blocks(before, 2, first.next_cursor)
    assert [t.id for t in first.items] == ["5", "3"] and [t.id for t in second.items] == ["2"]
    assert second.next_cursor is None
    assert [t.id for t in uow.tenants.due_blocks(NOW + GRACE, 10, None).items] == ["5", "3"]  # strictly before

    recorded = replace(uow.tenants.get("3"), dashboard_blocked_at=before)
    uow.tenants.save(recorded)
    uow.commit()
    assert [t.id for t in uow.tenants.due_blocks(before, 10, None).items] == ["5", "2"]
