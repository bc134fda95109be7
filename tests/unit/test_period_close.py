"""Closing a month (domain/period_close.py): UTC month bounds, which figures are final, which steps a
close starts with."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.period_close import (
    METER_EVENT_MAX_AGE,
    REPORT_BY_INVOICE,
    REPORT_BY_METER,
    REPORT_NONE,
    REPORT_UNBILLABLE,
    REPORTED,
    REPORTING,
    REVERT_NONE,
    REVERT_PENDING,
    CheckpointProgress,
    last_second,
    open_close,
    overage_identifier,
    period_bounds,
    previous_period,
)
from chalicelib.domain.tenants import BillingMode
from tests.unit.builders import NOW, tenant

MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(("period", "start", "end"), [
    ("2026-04", datetime(2026, 4, 1, tzinfo=UTC), MAY_1),
    ("2026-12", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ("2028-02", datetime(2028, 2, 1, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC)),
])
def test_a_period_is_a_utc_month(period, start, end):
    assert period_bounds(period) == (start, end)


def test_a_malformed_period_is_refused():
    with pytest.raises(ValidationError):
        period_bounds("2026-13")


@pytest.mark.parametrize(("now", "closed"), [
    (datetime(2026, 5, 1, 0, 5, tzinfo=UTC), "2026-04"),
    (datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC), "2026-04"),
    (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "2026-12"),
])
def test_the_rollover_closes_the_month_before_now(now, closed):
    assert previous_period(now) == closed


def test_the_overage_is_timestamped_in_its_period_with_one_identifier_per_tenant_and_month():
    assert last_second("2026-04") == datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC)
    assert overage_identifier("14", "2026-04") == "tally-overage-14-2026-04"


def test_a_paid_plan_over_its_allotment_is_reported_at_its_rate():
    close = open_close(tenant(plan="pilot", stripe_customer_id="cus_1"), "2026-04", 10_251, now=NOW)
    assert (close.overage_count, close.overage_charges_usd, close.report, close.customer_id) == (
        251, Decimal("5.02"), REPORTING, "cus_1")
    assert not close.billed and not close.done


@pytest.mark.parametrize(("fields", "consumed"), [
    ({"plan": "starter", "stripe_customer_id": "cus_1"}, 100_000),  # exactly the allotment
    ({"plan": "free", "stripe_customer_id": "cus_1"}, 100),  # hard cap: never overage
    ({"plan": "enterprise", "stripe_customer_id": "cus_1"}, 10**9),  # invoiced by contract
    ({"plan": "starter", "billing_mode": BillingMode.CREDITS, "stripe_customer_id": "cus_1"}, 200_000),
])
def test_no_overage_means_nothing_to_report(fields, consumed):
    close = open_close(tenant(**fields), "2026-04", consumed, now=NOW)
    assert (close.overage_count, close.overage_charges_usd, close.report) == (0, Decimal(0), REPORT_NONE)
    assert close.billed


def test_overage_without_a_billing_customer_is_kept_but_not_reported():
    close = open_close(tenant(plan="growth"), "2026-04", 500_010, now=NOW)
    assert (close.overage_count, close.overage_charges_usd, close.report) == (10, Decimal("0.1"), REPORT_UNBILLABLE)


@pytest.mark.parametrize(("period_end", "cancel", "revert"), [
    (MAY_1, True, REVERT_PENDING),  # the subscription ends with the month
    (None, True, REVERT_PENDING),  # unknown end: the step re-reads the subscription
    (datetime(2026, 5, 14, tzinfo=UTC), True, REVERT_NONE),  # ends later: next month's close
    (MAY_1, False, REVERT_NONE),
])
def test_a_cancellation_at_period_end_is_a_step_of_the_close(period_end, cancel, revert):
    subscribed = tenant(plan="pilot", stripe_customer_id="cus_1", stripe_subscription_id="sub_1",
                        cancel_at_period_end=cancel, stripe_current_period_end=period_end)
    assert open_close(subscribed, "2026-04", 0, now=NOW).revert == revert


@pytest.mark.parametrize(("fields", "by"), [
    ({"stripe_subscription_id": "sub_1", "stripe_current_period_end": datetime(2026, 6, 1, tzinfo=UTC)},
     REPORT_BY_METER),  # renewed: April's invoice takes the meter event
    ({"stripe_subscription_id": "sub_1", "stripe_current_period_end": MAY_1}, REPORT_BY_METER),  # not yet renewed
    ({"stripe_subscription_id": "sub_1", "cancel_at_period_end": True, "stripe_current_period_end": MAY_1},
     REPORT_BY_INVOICE),  # Stripe deletes it at 00:00: no subscription item left to bill a meter event on
    ({"stripe_subscription_id": "sub_1", "cancel_at_period_end": True}, REPORT_BY_INVOICE),  # end unknown
    ({"stripe_subscription_id": "sub_1", "cancel_at_period_end": True,
      "stripe_current_period_end": datetime(2026, 5, 14, tzinfo=UTC)}, REPORT_BY_METER),  # ends after the month
    ({}, REPORT_BY_INVOICE),  # no subscription any more (already ended)
])
def test_the_overage_goes_by_invoice_when_the_subscription_does_not_outlive_the_month(fields, by):
    close = open_close(tenant(plan="pilot", stripe_customer_id="cus_1", **fields), "2026-04", 10_251, now=NOW)
    assert (close.report, close.report_by) == (REPORTING, by)


@pytest.mark.parametrize(("consumed", "plan", "charges", "cents"), [
    (10_251, "pilot", Decimal("5.02"), 502),
    (100_001, "starter", Decimal("0.012"), 1),  # $0.012 rounds half up to 1 cent
    (100_125, "starter", Decimal("1.500"), 150),
])
def test_an_invoice_bills_the_charges_in_whole_cents_rounded_half_up(consumed, plan, charges, cents):
    close = open_close(tenant(plan=plan, stripe_customer_id="cus_1"), "2026-04", consumed, now=NOW)
    assert (close.overage_charges_usd, close.overage_cents) == (charges, cents)
    assert replace(close, overage_charges_usd=Decimal("0.125")).overage_cents == 13
    assert replace(close, overage_charges_usd=Decimal("0.124")).overage_cents == 12


def test_a_close_is_done_once_reported_reverted_and_checkpointed_everywhere():
    subscribed = tenant(plan="pilot", stripe_customer_id="cus_1", stripe_subscription_id="sub_1",
                        cancel_at_period_end=True, stripe_current_period_end=MAY_1)
    close = open_close(subscribed, "2026-04", 10_001, now=NOW)
    close = close.reported(NOW)
    assert close.report == REPORTED and not close.billed
    close = close.reverted("free", NOW)
    assert close.billed and not close.done
    close = close.checkpointed("production", CheckpointProgress(done=True, created=2), NOW)
    assert not close.done
    close = replace(close.checkpointed("sandbox", CheckpointProgress(done=True), NOW))
    assert close.done


def test_a_report_is_too_late_once_the_meter_event_window_has_closed():
    close = open_close(tenant(plan="pilot", stripe_customer_id="cus_1", stripe_subscription_id="sub_1"),
                       "2026-04", 10_001, now=NOW)
    assert close.report_by == REPORT_BY_METER
    edge = last_second("2026-04") + METER_EVENT_MAX_AGE
    assert not close.report_expired(edge)
    assert close.report_expired(edge + timedelta(seconds=1))
    assert not close.reported(edge).report_expired(edge + timedelta(days=1))


def test_an_invoice_has_no_window():
    close = open_close(tenant(plan="pilot", stripe_customer_id="cus_1"), "2026-04", 10_001, now=NOW)
    assert close.report_by == REPORT_BY_INVOICE
    assert not close.report_expired(last_second("2026-04") + METER_EVENT_MAX_AGE + timedelta(days=365))
