"""The period rollover (SPEC "Scheduled jobs"): closing April 2026 on May 1st, under moto.

The world: a ``pilot`` tenant (10,000 deltas included, $0.020 each beyond) that consumed 10,251 units in
April (10,247 counted straight onto its usage counter, 4 real verified deltas for 3 customers across both
environments), whose Stripe subscription was cancelled at period end; and a free tenant with nothing.
The billing provider is a fake that records every call and, like Stripe, bills an identifier once.

Checked: the figures stored and reported (251 overage deltas, $5.02), one report — a one-off invoice, as the
subscription ends with the month (a tenant whose subscription continues gets a meter event) — one
checkpoint per customer, the plan reverted once; a second run changes nothing; a crash before or after any
DynamoDB call or provider call, followed by reruns, ends exactly as the run without a crash; DynamoDB calls
per tenant do not grow with the number of deltas.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.domain.deltas import DeltaInput
from chalicelib.domain.identity import ApiKeyPrincipal, Environment
from chalicelib.domain.period_close import (
    REPORT_BY_INVOICE,
    REPORT_BY_METER,
    REPORT_NONE,
    REPORTED,
    REVERT_DONE,
    REVERT_NONE,
)
from chalicelib.domain.subscriptions import Subscription
from chalicelib.jobs import scheduled
from chalicelib.services import ingest, rollover, verification
from tests.conftest import empty_world
from tests.dynamo_calls import CrashError, DynamoCalls
from tests.factories import World
from tests.helpers import few_list_shards, overriding

P, S = Environment.PRODUCTION, Environment.SANDBOX
APRIL, MAY = "2026-04", "2026-05"
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
RUN_AT = datetime(2026, 5, 1, 0, 5, tzinfo=UTC)
COUNTED = 10_247  # units put straight onto April's usage counter (10,000 real deltas are too many for moto)
DELTAS = [(P, "cust_a", "10"), (P, "cust_b", "-2.5"), (P, "cust_a", "3"), (S, "cust_s", "1")]
CONSUMED = COUNTED + len(DELTAS)
OVERAGE = CONSUMED - 10_000
OVERAGE_CENTS = 502  # 251 x $0.020
DESCRIPTION = "Tally Pilot overage: 251 deltas in 2026-04"
JUNE_1 = datetime(2026, 6, 1, tzinfo=UTC)
IDENTIFIER = "tally-overage-{tenant}-2026-04"
LAST_SECOND = datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC)
FOREVER = 10.0**9


class FakeBilling:
    """Records every call. Like Stripe's meter events (and its idempotency keys for an invoice), an identifier
    is billed once however often it is sent. ``crash`` makes the next matching call crash the process:
    ``report-before`` (nothing sent), ``report-after`` (sent, the answer lost) — meter event or invoice alike
    — and ``subscription``; ``fail`` raises an ordinary error."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, int, str, datetime]] = []
        self.invoices: list[tuple[str, int, int, str, str]] = []  # customer, quantity, cents, description, id
        self.subscriptions: dict[str, Subscription] = {}
        self.reads: list[str] = []
        self.crash: str | None = None
        self.fail = False

    def _crash(self, point: str) -> None:
        if self.crash == point:
            self.crash = None
            raise CrashError(f"crash at {point}")

    def report_overage(self, *, customer_id: str, quantity: int, identifier: str, timestamp: datetime) -> None:
        if self.fail:
            raise RuntimeError("Stripe is unavailable")
        self._crash("report-before")
        self.reports.append((customer_id, quantity, identifier, timestamp))
        self._crash("report-after")

    def invoice_overage(self, *, customer_id: str, quantity: int, amount_cents: int, description: str,
                        identifier: str) -> None:
        if self.fail:
            raise RuntimeError("Stripe is unavailable")
        self._crash("report-before")
        self.invoices.append((customer_id, quantity, amount_cents, description, identifier))
        self._crash("report-after")

    def get_subscription(self, subscription_id: str) -> Subscription:
        self._crash("subscription")
        self.reads.append(subscription_id)
        return self.subscriptions[subscription_id]

    @property
    def billed(self) -> dict[str, tuple[str, int, datetime]]:
        """What the customer pays for: one meter event per identifier (Stripe deduplicates)."""
        billed: dict[str, tuple[str, int, datetime]] = {}
        for customer_id, quantity, identifier, timestamp in self.reports:
            billed.setdefault(identifier, (customer_id, quantity, timestamp))
        return billed

    @property
    def invoiced(self) -> dict[str, tuple[str, int, int]]:
        """One-off invoices: one per identifier (Stripe replays a request under the same idempotency key)."""
        invoiced: dict[str, tuple[str, int, int]] = {}
        for customer_id, quantity, cents, _description, identifier in self.invoices:
            invoiced.setdefault(identifier, (customer_id, quantity, cents))
        return invoiced


@dataclass(frozen=True)
class Arranged:
    acme: str
    free: str
    billing: FakeBilling


def arrange(world: World) -> Arranged:
    """The April world (see the module docstring); the clock is left at May 1st, 00:05."""
    world.clock.current = datetime(2026, 4, 15, 12, tzinfo=UTC)
    world.tenant("Platform")
    acme = world.tenant("Acme", plan="pilot", stripe_customer_id="cus_acme")
    free = world.tenant("Free Co")
    uow = bootstrap.unit_of_work()
    tenant = uow.tenants.get(acme.id)
    uow.tenants.save(replace(tenant, stripe_subscription_id="sub_acme", stripe_subscription_status="active",
                             cancel_at_period_end=True, stripe_current_period_end=MAY_1))
    uow.usage.add(acme.id, APRIL, P, COUNTED, cap=None)
    uow.commit()
    refs = []
    for environment, customer, amount in DELTAS:
        principal = ApiKeyPrincipal(tenant_id=acme.id, environment=environment, key_id="key_test")
        [outcome] = ingest.submit_deltas(bootstrap.unit_of_work(), principal,
                                         [DeltaInput(customer_id=customer, delta=Decimal(amount), reason="use")],
                                         now=world.clock())
        refs.append((acme.id, environment, outcome.data["recordId"]))
    report = verification.verify_records(bootstrap.unit_of_work(), refs, now=world.clock(), signer=bootstrap.signer())
    assert len(report.verified) == len(DELTAS)
    billing = FakeBilling()
    billing.subscriptions["sub_acme"] = Subscription(
        id="sub_acme", customer_id="cus_acme", status="canceled", tier="pilot", current_period_end=MAY_1,
        cancel_at_period_end=True, tenant_id=acme.id)
    world.clock.current = RUN_AT
    return Arranged(acme.id, free.id, billing)


def continue_subscription(arranged: Arranged) -> None:
    """Acme's subscription is not cancelled: Stripe renewed it at 00:00 on May 1st, until June 1st."""
    uow = bootstrap.unit_of_work()
    tenant = uow.tenants.get(arranged.acme)
    uow.tenants.save(replace(tenant, cancel_at_period_end=False, stripe_current_period_end=JUNE_1))
    uow.commit()
    arranged.billing.subscriptions["sub_acme"] = replace(arranged.billing.subscriptions["sub_acme"],
                                                         status="active", cancel_at_period_end=False,
                                                         current_period_end=JUNE_1)


def run(arranged: Arranged, *, time_left: Any = lambda: FOREVER, workers: int = 1) -> rollover.RolloverReport:
    return rollover.run(bootstrap.unit_of_work, period=APRIL, now=RUN_AT, provider=arranged.billing,
                        signer=bootstrap.signer, time_left=time_left, workers=workers)


def observe(arranged: Arranged) -> tuple:
    """Every effect of the close, checked to have happened exactly once."""
    uow = bootstrap.unit_of_work()
    acme, billing = arranged.acme, arranged.billing
    close = uow.period_closes.get(acme, APRIL)
    assert close is not None and close.done
    assert (close.plan, close.consumed, close.overage_count, close.overage_charges_usd) == (
        "pilot", CONSUMED, OVERAGE, Decimal("5.02"))
    assert (close.report, close.report_by, close.revert, close.reverted_to) == (
        REPORTED, REPORT_BY_INVOICE, REVERT_DONE, "free")
    identifier = IDENTIFIER.format(tenant=acme)
    # The subscription ended with April: no item is left to bill a meter event on, so a one-off invoice.
    assert billing.reports == []
    assert billing.invoiced == {identifier: ("cus_acme", OVERAGE, OVERAGE_CENTS)}
    assert set(billing.invoices) == {("cus_acme", OVERAGE, OVERAGE_CENTS, DESCRIPTION, identifier)}  # a resend is
    # the same request, under the same idempotency keys
    tenant = uow.tenants.get(acme)
    assert (tenant.plan, tenant.stripe_subscription_id, tenant.cancel_at_period_end) == ("free", None, False)
    reverts = [e for e in uow.audit.list(acme, 100, None).items if e.action == "tenant.plan_reverted"]
    assert [(e.actor, e.details["from"], e.details["to"]) for e in reverts] == [(rollover.ACTOR, "pilot", "free")]
    checkpoints = {}
    for environment, customer in sorted({(e, c) for e, c, _a in DELTAS}):
        page = uow.checkpoints.list(acme, environment, customer, APRIL, 10, None)
        assert len(page.items) == 1, (environment, customer, page.items)  # one checkpoint, never two
        checkpoints[(str(environment), customer)] = page.items[0].tree_size
    free = uow.period_closes.get(arranged.free, APRIL)
    assert free.done and (free.report, free.revert, free.consumed) == (REPORT_NONE, REVERT_NONE, 0)
    assert uow.period_closes.get_run(APRIL).done
    return close.overage_count, tuple(sorted(checkpoints.items())), len(reverts)


@pytest.fixture
def arranged(world) -> Arranged:
    return arrange(world)


@pytest.fixture
def billing_override(arranged):
    with overriding(billing=arranged.billing):
        yield arranged.billing


# --- the close ---------------------------------------------------------------------------------------


def test_the_rollover_closes_the_month_once_and_a_second_run_changes_nothing(world, arranged, billing_override):
    newcomer = world.tenant("Signed Up In May")
    first = scheduled.period_rollover(None, None)  # the scheduled Lambda's work (threads, default period)
    assert bootstrap.unit_of_work().period_closes.get(newcomer.id, APRIL) is None
    outcome = observe(arranged)
    assert outcome == (OVERAGE, ((("production", "cust_a"), 2), (("production", "cust_b"), 1),
                                 (("sandbox", "cust_s"), 1)), 1)
    assert (first["done"], first["reports"], first["reverted"], first["checkpoints"]) == (True, 1, 1, 3)

    with DynamoCalls.recording() as calls:
        second = scheduled.period_rollover(None, None)
    assert calls.operations == ["GetItem"]  # the run's record says April is closed
    assert (second["reports"], second["checkpoints"], second["closed"]) == (0, 0, 0)
    assert len(arranged.billing.invoices) == 1 and observe(arranged) == outcome


def test_usage_of_the_closed_month_answers_the_stored_figures(api, world, arranged, billing_override):
    auth = world.auth(bootstrap.unit_of_work().tenants.get(arranged.acme), "admin")
    before = api.get(f"/dashboard/billing/usage?period={APRIL}", headers=auth).data
    assert before == {"period": APRIL, "consumedDeltas": CONSUMED, "overageCount": OVERAGE,
                      "overageChargesUsd": 5.02, "remainingDeltas": 0}
    scheduled.period_rollover(None, None)
    # The plan is free now (the cancellation took effect): recomputed, April would show no overage charges.
    after = api.get(f"/dashboard/billing/usage?period={APRIL}", headers=auth).data
    assert after == before
    current = api.get("/dashboard/billing/usage", headers=auth).data
    assert current == {"period": MAY, "consumedDeltas": 0, "overageCount": 0, "overageChargesUsd": 0,
                       "remainingDeltas": 100}


def test_a_cancellation_applied_before_the_rollover_does_not_reprice_the_month(arranged):
    """Stripe ends the subscription at 00:00 on the 1st and its `customer.subscription.deleted` reaches the
    webhook before the rollover gets to the tenant: the month is still closed under the plan it ended on."""
    from chalicelib.domain.subscriptions import apply_subscription

    uow = bootstrap.unit_of_work()
    tenant = uow.tenants.get(arranged.acme)
    uow.tenants.save(apply_subscription(tenant, arranged.billing.subscriptions["sub_acme"],
                                        datetime(2026, 5, 1, 0, 0, 30, tzinfo=UTC)))
    uow.commit()
    assert bootstrap.unit_of_work().tenants.get(arranged.acme).plan == "free"
    assert run(arranged).done
    close = bootstrap.unit_of_work().period_closes.get(arranged.acme, APRIL)
    assert (close.plan, close.overage_count, close.overage_charges_usd, close.report, close.report_by) == (
        "pilot", OVERAGE, Decimal("5.02"), REPORTED, REPORT_BY_INVOICE)
    assert arranged.billing.invoiced == {IDENTIFIER.format(tenant=arranged.acme): ("cus_acme", OVERAGE, OVERAGE_CENTS)}
    assert arranged.billing.reports == []


def test_a_plan_change_on_the_first_morning_prices_the_month_under_the_plan_it_ended_on(world, arranged):
    uow = bootstrap.unit_of_work()
    tenant = uow.tenants.get(arranged.acme)
    uow.tenants.save(replace(tenant, cancel_at_period_end=False).with_plan(
        "scale", tenant.billing_mode, datetime(2026, 5, 1, 0, 1, tzinfo=UTC)))  # before the run at 00:05
    uow.commit()
    arranged.billing.subscriptions["sub_acme"] = replace(arranged.billing.subscriptions["sub_acme"],
                                                         status="active", tier="scale", cancel_at_period_end=False)
    assert run(arranged).done
    close = bootstrap.unit_of_work().period_closes.get(arranged.acme, APRIL)
    assert (close.plan, close.overage_count, close.overage_charges_usd) == ("pilot", OVERAGE, Decimal("5.02"))
    assert close.report_by == REPORT_BY_METER  # the subscription goes on: April's invoice takes a meter event
    assert arranged.billing.billed == {IDENTIFIER.format(tenant=arranged.acme): ("cus_acme", OVERAGE, LAST_SECOND)}


def test_a_continuing_subscription_is_billed_by_a_meter_event_not_an_invoice(arranged):
    continue_subscription(arranged)
    report = run(arranged)
    assert report.done and (report.reports, report.reverted) == (1, 0)
    uow = bootstrap.unit_of_work()
    close = uow.period_closes.get(arranged.acme, APRIL)
    assert (close.report, close.report_by, close.revert, close.overage_count) == (
        REPORTED, REPORT_BY_METER, REVERT_NONE, OVERAGE)
    assert arranged.billing.billed == {IDENTIFIER.format(tenant=arranged.acme): ("cus_acme", OVERAGE, LAST_SECOND)}
    assert arranged.billing.invoices == []
    assert uow.tenants.get(arranged.acme).plan == "pilot"
    run(arranged)
    assert len(arranged.billing.reports) == 1  # a second run sends nothing


def test_an_ordinary_provider_error_costs_that_tenant_only_and_a_later_run_finishes(arranged):
    arranged.billing.fail = True
    first = run(arranged)
    assert not first.done and first.retry == [arranged.acme]
    uow = bootstrap.unit_of_work()
    assert uow.period_closes.get(arranged.free, APRIL).done
    assert uow.period_closes.get(arranged.acme, APRIL).report == "reporting"  # the intent, kept for the rerun
    arranged.billing.fail = False
    assert run(arranged).done
    observe(arranged)


def test_a_delta_still_awaiting_verification_holds_back_its_customers_checkpoint(world, arranged):
    world.clock.current = datetime(2026, 4, 30, 23, 59, tzinfo=UTC)
    principal = ApiKeyPrincipal(tenant_id=arranged.acme, environment=P, key_id="key_test")
    [late] = ingest.submit_deltas(bootstrap.unit_of_work(), principal,
                                  [DeltaInput(customer_id="cust_b", delta=Decimal("1"), reason="late")],
                                  now=world.clock())
    first = run(arranged)
    assert not first.done and first.retry == [arranged.acme]
    verification.verify_records(bootstrap.unit_of_work(), [(arranged.acme, P, late.data["recordId"])],
                                now=RUN_AT, signer=bootstrap.signer())
    assert run(arranged).done
    page = bootstrap.unit_of_work().checkpoints.list(arranged.acme, P, "cust_b", APRIL, 10, None)
    assert [c.tree_size for c in page.items] == [2]  # sealed once, with the late delta under it


def test_a_stored_customer_cursor_that_no_longer_reads_starts_the_pass_over(world, arranged):
    """A close in progress stores where its checkpoint pass is; a cursor of an older listing format (or any
    that no longer decodes) restarts that pass instead of failing the tenant on every run."""
    from chalicelib.domain.period_close import CheckpointProgress

    world.clock.current = datetime(2026, 4, 30, 23, 59, tzinfo=UTC)
    principal = ApiKeyPrincipal(tenant_id=arranged.acme, environment=P, key_id="key_test")
    [late] = ingest.submit_deltas(bootstrap.unit_of_work(), principal,
                                  [DeltaInput(customer_id="cust_b", delta=Decimal("1"), reason="late")],
                                  now=world.clock())
    assert not run(arranged).done  # waiting on the late delta
    uow = bootstrap.unit_of_work()
    close = uow.period_closes.get(arranged.acme, APRIL)
    uow.period_closes.save(close.checkpointed(str(P), CheckpointProgress(cursor="eyJtIjpbXX0"), RUN_AT))
    uow.commit()
    verification.verify_records(bootstrap.unit_of_work(), [(arranged.acme, P, late.data["recordId"])],
                                now=RUN_AT, signer=bootstrap.signer())
    assert run(arranged).done
    page = bootstrap.unit_of_work().checkpoints.list(arranged.acme, P, "cust_b", APRIL, 10, None)
    assert [c.tree_size for c in page.items] == [2]


def test_a_budget_spent_mid_run_is_resumed_by_the_next_invocation(arranged):
    ticks = iter(range(6, -1, -1))  # a few checks' worth of time, then none
    first = run(arranged, time_left=lambda: next(ticks, -1))
    assert not first.done
    assert run(arranged).done
    observe(arranged)


def test_an_overlapping_invocation_stops_when_the_other_moved_the_run_first(arranged):
    nested: list[rollover.RolloverReport] = []

    def time_left() -> float:
        if not nested:  # another invocation starts, and finishes, right after this one read the run
            nested.append(run(arranged))
        return FOREVER

    outer = run(arranged, time_left=time_left)
    assert nested[0].done and (outer.reports, outer.checkpoints) == (0, 0)
    observe(arranged)


def test_a_month_closed_after_the_meter_event_window_keeps_its_figures_and_reports_nothing(arranged):
    continue_subscription(arranged)
    late = datetime(2026, 6, 10, tzinfo=UTC)  # more than 35 days after April's last second
    report = rollover.run(bootstrap.unit_of_work, period=APRIL, now=late, provider=arranged.billing,
                          signer=bootstrap.signer, time_left=lambda: FOREVER)
    assert report.done and arranged.billing.reports == [] and arranged.billing.invoices == []
    close = bootstrap.unit_of_work().period_closes.get(arranged.acme, APRIL)
    assert (close.report, close.overage_count, close.overage_charges_usd) == ("expired", OVERAGE, Decimal("5.02"))


def test_an_invoice_has_no_meter_event_window_and_is_sent_however_late(arranged):
    late = datetime(2026, 6, 10, tzinfo=UTC)
    report = rollover.run(bootstrap.unit_of_work, period=APRIL, now=late, provider=arranged.billing,
                          signer=bootstrap.signer, time_left=lambda: FOREVER)
    assert report.done and arranged.billing.reports == []
    assert arranged.billing.invoiced == {IDENTIFIER.format(tenant=arranged.acme): ("cus_acme", OVERAGE, OVERAGE_CENTS)}
    assert bootstrap.unit_of_work().period_closes.get(arranged.acme, APRIL).report == REPORTED


def test_the_local_stripe_stand_in_gets_one_meter_event_however_often_it_is_sent(world, arranged):
    """The provider the local stack uses (no Stripe key): its meter usage holds the overage once, even when
    a crash after the call makes the rerun send it again."""
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord
    from chalicelib.adapters.stripe_local import LocalStripe
    from chalicelib.settings import get_settings

    continue_subscription(arranged)
    stand_in = LocalStripe(get_settings(), webhook_secret="whsec_test", clock=world.clock)
    crashing = FakeBilling()
    crashing.subscriptions = arranged.billing.subscriptions

    def crash_after(**event: Any) -> None:
        stand_in.report_overage(**event)
        raise CrashError("crash after the meter event was sent")

    crashing.report_overage = crash_after  # type: ignore[method-assign]
    with pytest.raises(CrashError):
        rollover.run(bootstrap.unit_of_work, period=APRIL, now=RUN_AT, provider=crashing,
                     signer=bootstrap.signer, time_left=lambda: FOREVER)
    crashing.report_overage = stand_in.report_overage  # type: ignore[method-assign]
    for _attempt in range(2):
        rollover.run(bootstrap.unit_of_work, period=APRIL, now=RUN_AT, provider=crashing,
                     signer=bootstrap.signer, time_left=lambda: FOREVER)
    usage = list(LocalStripeObjectRecord.query(keys.localstripe_usage_pk("cus_acme"), consistent_read=True))
    assert [int(row.data["value"]) for row in usage] == [OVERAGE]
    assert bootstrap.unit_of_work().period_closes.get(arranged.acme, APRIL).report == REPORTED


def test_the_local_stripe_stand_in_gets_one_invoice_however_often_it_is_sent(world, arranged):
    """The subscription ends with April: the stand-in makes one paid invoice of the overage, even when a
    crash after the call makes the rerun send it again."""
    from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord
    from chalicelib.adapters.stripe_local import LocalStripe
    from chalicelib.settings import get_settings

    stand_in = LocalStripe(get_settings(), webhook_secret="whsec_test", clock=world.clock)
    crashing = FakeBilling()
    crashing.subscriptions = arranged.billing.subscriptions

    def crash_after(**invoice: Any) -> None:
        stand_in.invoice_overage(**invoice)
        raise CrashError("crash after the invoice was sent")

    crashing.invoice_overage = crash_after  # type: ignore[method-assign]
    with pytest.raises(CrashError):
        rollover.run(bootstrap.unit_of_work, period=APRIL, now=RUN_AT, provider=crashing,
                     signer=bootstrap.signer, time_left=lambda: FOREVER)
    crashing.invoice_overage = stand_in.invoice_overage  # type: ignore[method-assign]
    for _attempt in range(2):
        rollover.run(bootstrap.unit_of_work, period=APRIL, now=RUN_AT, provider=crashing,
                     signer=bootstrap.signer, time_left=lambda: FOREVER)
    invoices = [row.data for row in LocalStripeObjectRecord.scan(LocalStripeObjectRecord.kind == "invoice")]
    assert [(i["customer"], i["status"], i["amount_paid"], i["metadata"]) for i in invoices] == [
        ("cus_acme", "paid", OVERAGE_CENTS, {"identifier": IDENTIFIER.format(tenant=arranged.acme)})]
    assert [line["description"] for line in invoices[0]["lines"]["data"]] == [DESCRIPTION]
    assert bootstrap.unit_of_work().period_closes.get(arranged.acme, APRIL).report == REPORTED


# --- crashes -----------------------------------------------------------------------------------------


def _fresh_world(clock: Any) -> Arranged:
    empty_world()
    bootstrap.reset()
    return arrange(World(clock))


def _finish(arranged: Arranged) -> None:
    for _attempt in range(5):
        if run(arranged).done:
            return
    raise AssertionError("the rollover did not finish after a crash")


def test_a_crash_at_any_dynamodb_or_provider_call_then_reruns_give_each_effect_once(aws, clock):
    with few_list_shards():
        baseline_world = _fresh_world(clock)
        calls = DynamoCalls().attach()
        try:
            with calls.run():
                run(baseline_world)
            operations = list(calls.operations)
            expected = observe(baseline_world)
            assert "Scan" not in operations
            crashes = [(k, phase) for k in range(1, len(operations) + 1) for phase in ("before", "after")]
            crashes += [(None, point) for point in ("report-before", "report-after", "subscription")]
            for crash_at, point in crashes:
                arranged = _fresh_world(clock)
                if crash_at is None:
                    arranged.billing.crash = point
                with calls.run(crash_at=crash_at, phase=point), pytest.raises(CrashError):
                    run(arranged)
                _finish(arranged)
                assert observe(arranged) == expected, (crash_at, point, operations[(crash_at or 1) - 1])
        finally:
            calls.detach()


# --- round trips -------------------------------------------------------------------------------------


def _calls_for_one_tenant(clock: Any, deltas_per_customer: int) -> list[str]:
    empty_world()
    bootstrap.reset()
    world = World(clock)
    world.clock.current = datetime(2026, 4, 15, 12, tzinfo=UTC)
    world.tenant("Platform")
    tenant = world.tenant("Acme", plan="pilot")
    principal = ApiKeyPrincipal(tenant_id=tenant.id, environment=P, key_id="key_test")
    inputs = [DeltaInput(customer_id=f"cust_{n % 3}", delta=Decimal(1), reason="use")
              for n in range(3 * deltas_per_customer)]
    outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, inputs, now=world.clock())
    verification.verify_records(bootstrap.unit_of_work(), [(tenant.id, P, o.data["recordId"]) for o in outcomes],
                                now=world.clock(), signer=bootstrap.signer())
    with DynamoCalls.recording() as calls:
        report = rollover.run(bootstrap.unit_of_work, period=APRIL, now=RUN_AT, provider=FakeBilling(),
                              signer=bootstrap.signer, time_left=lambda: FOREVER)
    assert report.done and report.checkpoints == 3
    return calls.operations


def test_dynamodb_calls_per_tenant_do_not_grow_with_its_deltas(aws, clock):
    few = _calls_for_one_tenant(clock, 1)
    many = _calls_for_one_tenant(clock, 30)
    assert few == many
    assert "Scan" not in few
    # Per tenant: run bookkeeping aside, a handful of calls plus four per customer checkpointed.
    assert Counter(few)["TransactWriteItems"] == 3


# --- wiring --------------------------------------------------------------------------------------------


def test_both_schedules_are_registered_and_run_in_the_local_job_runner(arranged, billing_override):
    import app
    from chalicelib.cli.runner import JobRunner

    sources = {s.name: s for s in app.app.event_sources if type(s).__name__ == "ScheduledEventConfig"}
    assert sources["missing_payment_blocks"].schedule_expression == "rate(1 hour)"
    assert sources["period_rollover"].schedule_expression.to_string() == "cron(5/15 * * * ? *)"
    runner = JobRunner(app=app.app)
    runner.run_schedules_once({}, time.monotonic())
    assert runner.runs.get("missing_payment_blocks") == 1 and runner.runs.get("period_rollover") == 1
    observe(arranged)


def test_tally_jobs_run_lists_and_runs_the_jobs(arranged, billing_override, capsys, monkeypatch):
    from chalicelib.cli import main

    with pytest.raises(SystemExit):
        main.main(["jobs", "run", "--help"])
    listing = capsys.readouterr().out
    for name in ("missing-payment-blocks", "period-rollover", "sweep-unverified", "deliver-due-webhooks"):
        assert name in listing
    monkeypatch.setattr(main, "_connect", lambda: None)
    assert main.main(["jobs", "run", "period-rollover", "--period", APRIL]) == 0
    result = json.loads(capsys.readouterr().out)  # the result alone: the job's log lines go to stderr
    assert (result["job"], result["done"], result["reports"], result["checkpoints"]) == ("period-rollover", True, 1, 3)
    observe(arranged)
    assert main.main(["jobs", "run", "missing-payment-blocks"]) == 0
    assert json.loads(capsys.readouterr().out) == {"job": "missing-payment-blocks", "blocked": [], "skipped": 0}
