"""Directory rules that need no storage: the index key, the checkpoint marker, month counters, health."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain import directory
from chalicelib.domain.customers import Customer, CustomerSource, EventCadence, marker_advances, name_key
from chalicelib.domain.identity import Environment
from chalicelib.services.ingest import cycle_move

NOW = datetime(2026, 4, 15, 12, tzinfo=UTC)
BASE = Customer(tenant_id="2", environment=Environment.PRODUCTION, customer_id="c", display_name="C",
                source=CustomerSource.MANUAL, created_at=NOW, updated_at=NOW)


def test_the_name_key_sorts_names_before_longer_names_and_stays_under_the_key_limit():
    assert sorted([name_key("Acme Corp", "a"), name_key("acme", "z"), name_key("ACME", "b")]) == [
        name_key("ACME", "b"), name_key("acme", "z"), name_key("Acme Corp", "a")]
    worst = name_key("\u0390" * 100 + "\U0001f600" * 100, "x" * 128)  # casefolding grows ΐ to 6 bytes
    assert len(worst.encode()) <= 1024 and worst.endswith("\t" + "x" * 128)
    worst.encode().decode()  # cut on a character boundary
    assert name_key("a\nb", "c") == "a b\tc"


@pytest.mark.parametrize(("marker", "period", "through", "moves"), [
    ((None, None), "2026-03", 1, True),
    (("2026-03", 5), "2026-04", 1, True),
    (("2026-04", 5), "2026-04", 6, True),
    (("2026-04", 5), "2026-04", 5, False),
    (("2026-04", 5), "2026-03", 99, False),
])
def test_the_checkpoint_marker_only_moves_forward(marker, period, through, moves):
    customer = replace(BASE, checkpoint_period=marker[0], checkpoint_last_seq=marker[1])
    assert marker_advances(customer, period, through) is moves


def test_month_counters_add_restart_or_stay_with_a_later_month():
    assert cycle_move("2026-04", "2026-04") == "add"
    assert cycle_move(None, "2026-04") == cycle_move("2026-03", "2026-04") == "restart"
    assert cycle_move("2026-05", "2026-04") == "keep"


@pytest.mark.parametrize(("cadence", "age", "health"), [
    (EventCadence.HOURLY, timedelta(minutes=60), directory.Health.HEALTHY),
    (EventCadence.HOURLY, timedelta(minutes=61), directory.Health.LATE),
    (EventCadence.HOURLY, timedelta(hours=2, seconds=1), directory.Health.STALE),
    (EventCadence.MONTHLY, timedelta(days=31), directory.Health.HEALTHY),
    (None, timedelta(days=400), directory.Health.UNMONITORED),
])
def test_health_compares_age_with_the_cadence(cadence, age, health):
    assert directory.health(replace(BASE, event_cadence=cadence, last_delta_at=NOW - age), NOW) is health
    assert directory.health(replace(BASE, event_cadence=cadence), NOW) is directory.Health.NO_ACTIVITY


def test_the_next_close_is_the_first_of_next_month():
    assert directory.next_close(NOW) == datetime(2026, 5, 1, tzinfo=UTC)
    assert directory.next_close(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
