"""Concurrent acceptance against moto: billing limits hold exactly, sequences stay gap-free.

SPEC "The delta lifecycle": acceptance is one atomic step (delta stored, usage
counted, credits reserved), "all or nothing, correct under concurrency". Many
threads race ``ingest.submit_deltas`` for one tenant and we check every counter
against what was actually stored.

The moto the tests run (chalicelib/cli/motofixes.py) applies each DynamoDB request
atomically, as DynamoDB does, and nothing more: the product's read → plan →
conditional-write races remain fully exposed. Within one process, writers of one
customer take turns (``ingest.TURNS``), so the races between them are exposed only
when the threads stand for separate processes (the ``writers`` fixture turns the
turns off), as Lambda's execution environments are.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import CustomerRecord, DeltaRecord
from chalicelib.domain.clock import period_of
from chalicelib.domain.credits import EntryType
from chalicelib.domain.deltas import CreditState, DeltaInput, DeltaStatus
from chalicelib.domain.identity import ApiKeyPrincipal, Environment
from chalicelib.domain.tenants import BillingMode, Tenant
from chalicelib.services import credits as credit_service
from chalicelib.services import ingest
from chalicelib.services.usage import usage_figures
from tests.dynamo_calls import AwsCalls

P, S = Environment.PRODUCTION, Environment.SANDBOX
CUSTOMERS = [f"cust_{n}" for n in range(5)]

@pytest.fixture
def tenant_factory(world) -> Callable[..., Tenant]:
    world.tenant("Platform")  # id "1" is the operator; customer tenants start at "2"

    def make(name: str, **options: Any) -> Tenant:
        return world.tenant(name, **options)

    return make


class _NoTurns:
    """Writers that share no process (Lambda): nothing to wait for in-process, every race goes to storage."""

    def taken(self, _keys: Iterable[tuple[str, ...]]) -> AbstractContextManager[None]:
        return nullcontext()


@pytest.fixture(params=["one-process", "separate-processes"])
def writers(request, monkeypatch) -> str:
    """The racing threads as writers of one process (taking turns per customer) or of separate processes."""
    if request.param == "separate-processes":
        monkeypatch.setattr(ingest, "TURNS", _NoTurns())
    return request.param


@dataclass
class Submitted:
    environment: Environment
    item: DeltaInput
    outcome: ingest.Outcome


Workload = list[tuple[Environment, list[list[DeltaInput]]]]  # per thread: its environment and its calls


def _workload(threads: int, sizes: list[int], seed: int, environments: tuple[Environment, ...] = (P,)) -> Workload:
    """Per thread, per call: the deltas to submit (1 = a single `emit`, >1 = a small batch)."""
    rng = random.Random(seed)
    plan: Workload = []
    serial = 0
    for thread in range(threads):
        calls = []
        for call, size in enumerate(sizes):
            items = []
            for _ in range(size):
                serial += 1
                # Distinct exact amounts (some negative, some fractional) so balances are checkable.
                amount = Decimal(serial) / 100 * (-1 if serial % 7 == 0 else 1)
                items.append(DeltaInput(customer_id=rng.choice(CUSTOMERS), delta=amount,
                                        reason=f"thread {thread} call {call}"))
            calls.append(items)
        plan.append((environments[thread % len(environments)], calls))
    return plan


def _run_concurrently(tenant: Tenant, workload: Workload, now) -> list[Submitted]:
    """Every thread submits its calls in order, all threads released at once; outcomes flattened."""
    start = threading.Barrier(len(workload))

    def worker(environment: Environment, calls: list[list[DeltaInput]]) -> list[Submitted]:
        principal = ApiKeyPrincipal(tenant_id=tenant.id, environment=environment, key_id=f"key_{environment}")
        start.wait(timeout=30)
        done = []
        for items in calls:
            uow = bootstrap.unit_of_work()  # one per call: units of work hold staged writes
            outcomes = ingest.submit_deltas(uow, principal, list(items), now=now)
            assert [o.index for o in outcomes] == list(range(len(items)))
            done.extend(Submitted(environment, item, outcome) for item, outcome in zip(items, outcomes, strict=True))
        return done

    with ThreadPoolExecutor(max_workers=len(workload)) as pool:
        futures = [pool.submit(worker, environment, calls) for environment, calls in workload]
        return [done for future in futures for done in future.result(timeout=120)]


def _customer_row(tenant: Tenant, environment: Environment, customer_id: str) -> CustomerRecord | None:
    try:
        return CustomerRecord.get(keys.customer_pk(tenant.id, str(environment), customer_id), keys.CUSTOMER_SK,
                                  consistent_read=True)
    except CustomerRecord.DoesNotExist:
        return None


def _assert_stored_deltas_match(tenant: Tenant, accepted: list[Submitted], *, credits_each: int,
                                customers: list[str] = CUSTOMERS) -> None:
    """Per customer: stored sequence numbers are exactly 1..k, the row's counters agree, and
    the stored deltas are exactly the accepted ones (a refused delta left nothing behind)."""
    uow = bootstrap.unit_of_work()
    by_record = {s.outcome.data["recordId"]: s for s in accepted}
    assert len(by_record) == len(accepted), "record ids must be unique"
    stored_ids: set[str] = set()
    for environment in Environment:
        for customer_id in customers:
            rows = list(DeltaRecord.customer_seq_index.query(keys.customer_key(tenant.id, environment, customer_id)))
            sequence = [int(row.sequence_number) for row in rows]
            k = len(rows)
            assert sequence == list(range(1, k + 1)), f"{environment}/{customer_id}: sequence numbers {sequence}"
            customer = _customer_row(tenant, environment, customer_id)
            if k == 0:
                assert customer is None or not customer.last_seq
                continue
            assert customer is not None
            assert (int(customer.last_seq), int(customer.delta_count)) == (k, k), customer_id
            assert customer.balance == sum((row.delta for row in rows), Decimal(0)), customer_id
            assert customer.source == "integration"
            for row in rows:
                stored_ids.add(row.record_id)
                submitted = by_record[row.record_id]
                assert submitted.environment == environment
                assert submitted.outcome.data["sequenceNumber"] == int(row.sequence_number)
                item = submitted.item
                assert (row.customer_id, row.delta, row.reason) == (item.customer_id, item.delta, item.reason)
    assert stored_ids == set(by_record)
    for record_id, submitted in by_record.items():
        delta = uow.deltas.get(tenant.id, submitted.environment, record_id)
        assert delta is not None and delta.status == DeltaStatus.QUEUED
        assert delta.sequence_number == submitted.outcome.data["sequenceNumber"]
        assert delta.delta == submitted.item.delta
        assert delta.credits_reserved == credits_each
        assert delta.credit_state == (CreditState.RESERVED if credits_each else CreditState.NONE)


def _split(results: list[Submitted]) -> tuple[list[Submitted], list[Submitted]]:
    accepted = [s for s in results if s.outcome.status == "QUEUED"]
    failed = [s for s in results if s.outcome.status != "QUEUED"]
    return accepted, failed


# --- credits billing ------------------------------------------------------------------------


def test_credits_cover_exactly_n_deltas_under_concurrency(tenant_factory, clock, writers):
    """12 threads x 8 calls (single emits and small batches) race for 40 credits, from both
    environments (credits are per tenant): exactly 40 accepted, the rest refused, nothing lost."""
    tenant = tenant_factory("Credits Co", billing_mode=BillingMode.CREDITS, plan="starter")
    n = 40
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, n, actor="test", now=clock())
    workload = _workload(threads=12, sizes=[1, 1, 2, 1, 1, 3, 1, 1], seed=4, environments=(P, S))
    attempted = sum(len(items) for _env, calls in workload for items in calls)
    assert attempted == 132

    results = _run_concurrently(tenant, workload, clock())

    accepted, failed = _split(results)
    assert len(results) == attempted
    assert len(accepted) == n
    assert Counter(s.outcome.error.code for s in failed) == {"INSUFFICIENT_CREDITS": attempted - n}
    assert all(s.outcome.data["status"] == "QUEUED" and not s.outcome.idempotent for s in accepted)

    uow = bootstrap.unit_of_work()
    account = credit_service.balances(uow, tenant.id)
    assert (account.credit_balance, account.reserved, account.available) == (n, n, 0)

    # The holds spread over the escrow lanes; every credit is in exactly one place (domain/credits.py).
    position = uow.credits.position(tenant.id)
    assert position.pool + sum(lane.free for lane in position.lanes) + position.reserved == n
    assert all(lane.free >= 0 for lane in position.lanes) and position.pool >= 0
    assert (position.unposted, position.unposted_deltas) == (n, n)
    # Nothing on the ledger yet but the top-up: the next ledger writer posts the holds as one reservation,
    # so balanceAfter stays exact in commit order.
    assert [e.entry_type for e in uow.credits.entries(tenant.id, 1000, None).items] == [EntryType.TOPUP]
    credit_service.topup(uow, tenant.id, 5, actor="test", now=clock())
    entries = list(uow.credits.entries(tenant.id, 1000, None).items)
    assert [(e.entry_type, e.amount, e.balance_after) for e in entries] == [
        (EntryType.TOPUP, 5, 5), (EntryType.RESERVATION, -n, 0), (EntryType.TOPUP, n, n)]
    assert entries[1].description == f"Credits reserved for pending verifications — {n} deltas"
    assert uow.credits.position(tenant.id).unposted == 0

    usage = uow.usage.get(tenant.id, period_of(clock()))
    assert usage.consumed == n
    assert usage.by_environment == {str(env): sum(1 for s in accepted if s.environment == env) for env in (P, S)}
    _assert_stored_deltas_match(tenant, accepted, credits_each=1)


# --- free plan hard cap --------------------------------------------------------------------------


def test_free_plan_accepts_exactly_its_cap_under_concurrency(tenant_factory, clock, writers):
    """130 deltas race for the free plan's 100 a month; the cap counts both environments together."""
    tenant = tenant_factory("Free Co", plan="free")
    workload = _workload(threads=10, sizes=[1, 2, 1, 4, 1, 3, 1], seed=7, environments=(P, S))
    attempted = sum(len(items) for _env, calls in workload for items in calls)
    assert attempted == 130

    results = _run_concurrently(tenant, workload, clock())

    accepted, failed = _split(results)
    assert len(accepted) == 100
    assert Counter(s.outcome.error.code for s in failed) == {"PLAN_LIMIT_EXCEEDED": 30}
    uow = bootstrap.unit_of_work()
    usage = uow.usage.get(tenant.id, period_of(clock()))
    assert usage.consumed == 100
    assert usage.by_environment == {str(env): sum(1 for s in accepted if s.environment == env) for env in (P, S)}
    account = uow.credits.account(tenant.id)
    assert (account.credit_balance, account.reserved) == (0, 0)
    assert uow.credits.account(tenant.id).entry_count == 0
    _assert_stored_deltas_match(tenant, accepted, credits_each=0)


# --- paid monthly plan: overage, never refused ----------------------------------------------------


def test_paid_monthly_plan_accepts_everything_and_overage_is_only_read(tenant_factory, clock, writers):
    tenant = tenant_factory("Starter Co", plan="starter")
    period = period_of(clock())
    seed = bootstrap.unit_of_work()
    seed.usage.add(tenant.id, period, P, 99_980, cap=None)  # earlier this month
    seed.commit()
    workload = _workload(threads=8, sizes=[1, 3, 1, 2], seed=11)  # 8 x 4 calls, 56 deltas
    attempted = sum(len(items) for _env, calls in workload for items in calls)
    assert attempted == 56

    results = _run_concurrently(tenant, workload, clock())

    accepted, failed = _split(results)
    assert failed == []
    assert len(accepted) == attempted
    uow = bootstrap.unit_of_work()
    counter = uow.usage.get(tenant.id, period)
    assert counter.consumed == 100_036
    assert counter.by_environment == {"production": 100_036, "sandbox": 0}
    # The write path only counts; overage is derived when usage is read.
    figures = usage_figures(uow, tenant.id, period=period, now=clock())
    assert (figures.overage_count, figures.remaining) == (36, 0)
    assert figures.overage_charges_usd == Decimal("0.432")  # 36 x $0.012, exact
    account = uow.credits.account(tenant.id)
    assert (account.credit_balance, account.reserved) == (0, 0)
    assert uow.credits.account(tenant.id).entry_count == 0
    assert list(uow.credits.entries(tenant.id, 10, None).items) == []
    _assert_stored_deltas_match(tenant, accepted, credits_each=0)


# --- referenceId: one acceptance per (customer, referenceId), however many race for it ----------


def test_racing_resubmissions_of_one_reference_store_it_once(tenant_factory, clock, writers):
    """8 threads send the same 5 referenced deltas (in different orders, as retrying clients
    would): each is stored and charged once; every other answer replays the first acceptance."""
    tenant = tenant_factory("Retry Co", billing_mode=BillingMode.CREDITS, plan="starter")
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 100, actor="test", now=clock())
    originals = [DeltaInput(customer_id=CUSTOMERS[i % 2], delta=Decimal(i + 1), reason=f"invoice {i}",
                            reference_id=f"inv-{i}") for i in range(5)]
    rng = random.Random(3)
    workload: Workload = [(P, [rng.sample(originals, len(originals))]) for _ in range(8)]

    results = _run_concurrently(tenant, workload, clock())

    assert all(s.outcome.status == "QUEUED" for s in results)
    by_reference: dict[str, set[str]] = {}
    for s in results:
        by_reference.setdefault(s.item.reference_id, set()).add(s.outcome.data["recordId"])
    assert all(len(records) == 1 for records in by_reference.values()), by_reference
    fresh = [s for s in results if not s.outcome.idempotent]
    assert sorted(s.item.reference_id for s in fresh) == sorted(i.reference_id for i in originals)
    uow = bootstrap.unit_of_work()
    account = credit_service.balances(uow, tenant.id)
    assert (account.credit_balance, account.reserved) == (100, 5)
    assert uow.usage.get(tenant.id, period_of(clock())).consumed == 5
    _assert_stored_deltas_match(tenant, fresh, credits_each=1)


# --- one process: writers of one customer take turns instead of racing in storage -----------------------------


@pytest.mark.parametrize("mode", [BillingMode.MONTHLY, BillingMode.CREDITS])
def test_writers_of_shared_customers_in_one_process_take_turns_without_lost_races(tenant_factory, clock, mode):
    """8 threads send single deltas to 2 shared customers: each delta commits in its first transaction (no
    condition fails, nothing is rolled back and re-read), and every sequence is gap-free."""
    tenant = tenant_factory(f"Turns {mode} Co", billing_mode=mode, plan="scale")
    if mode == BillingMode.CREDITS:
        credit_service.topup(bootstrap.unit_of_work(), tenant.id, 1000, actor="test", now=clock())
    shared = CUSTOMERS[:2]
    workload: Workload = [(P, [[DeltaInput(customer_id=shared[(thread + call) % 2], delta=Decimal(thread * 10 + call),
                                           reason=f"thread {thread} call {call}")] for call in range(6)])
                          for thread in range(8)]

    with AwsCalls.recording() as calls:
        results = _run_concurrently(tenant, workload, clock())

    accepted, failed = _split(results)
    assert failed == [] and len(accepted) == 48
    assert calls.operations.count("TransactWriteItems") == len(accepted)
    assert len(ingest.TURNS) == 0  # no turn outlives its writers
    _assert_stored_deltas_match(tenant, accepted, credits_each=1 if mode == BillingMode.CREDITS else 0,
                                customers=shared)
