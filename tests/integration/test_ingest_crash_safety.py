"""Crash safety of acceptance: a crash at any DynamoDB call of ingest, then the client's retry, ends exactly
as no crash — every delta stored, counted and held exactly once.

SPEC "The delta lifecycle": acceptance is one atomic step (the delta stored, the customer's next gap-free
sequence number, the usage counter, the environment's totals and — under credits billing — the credit hold)
"all or nothing". A batch too big for one TransactWriteItems (100 items) is written in several
(``ingest._chunks``), each whole; a referenced delta's guard rides in its delta's transaction, so a client
that lost the answer retries the same request and gets the stored deltas replayed, never stored twice.

The request: 130 deltas, each with a ``referenceId``, over 6 customers (one of them named only in the last
transaction), from a credits-billing tenant and from a monthly paid-plan tenant. The baseline submits it
with no crash in an emptied moto world and records the DynamoDB calls: the snapshot read (two BatchGetItem
calls: it asks for more than 100 keys) and three transactions (asserted below). Then, for every call k, in
a fresh world with the same arrangement, the request crashes at call k — before the call reaches
DynamoDB, or after it has been applied and its answer lost (counted and crashed with botocore's events,
``tests/dynamo_calls.py``) — and:

* the crashed state is whole transactions only: exactly the deltas of the committed chunks exist, with
  their guards, sequence numbers, customer rows, usage, totals and holds; nothing of the others;
* the client retries the same request: the committed deltas are replayed (same record ids and sequence
  numbers), the others stored, and the state equals the baseline's: each delta once, per-customer sequence
  numbers gap-free 1..n in request order, usage == stored deltas, the customers' counters and the totals,
  and under credits the live holds (reserved == stored deltas x cost, ``creditBalance == pool + Σ free +
  reserved``, none of it posted yet);
* verifying every stored delta (then a sweep, which finds nothing) resolves every hold exactly once: no
  credit still reserved, a ledger that replays exactly and equals the baseline's entry for entry.

A crash with no retry at the last transaction is followed by verification too: what committed settles on
its own, exactly.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import DeltaRecord
from chalicelib.domain.clock import period_of
from chalicelib.domain.credits import EntryType, entry_id_for
from chalicelib.domain.deltas import CreditState, DeltaInput, DeltaStatus
from chalicelib.domain.identity import ApiKeyPrincipal, Environment
from chalicelib.domain.plans import CREDITS_VOLUME_RATE
from chalicelib.domain.tenants import BillingMode
from chalicelib.services import credits as credit_service
from chalicelib.services import ingest, verification
from tests.conftest import empty_world
from tests.dynamo_calls import CrashError, DynamoCalls
from tests.factories import World
from tests.ledger import replay_ledger, seal_moves

P = Environment.PRODUCTION
START = datetime(2026, 4, 15, 12, 0, 0, tzinfo=UTC)  # the `clock` fixture's start
TOPUP = 500
COST = 1  # credits per delta on plan "starter"
N = 130
LATE = 120  # from this index on, the deltas name a customer the earlier transactions never saw
CUSTOMERS = ["cust_a", "cust_b", "cust_c", "cust_d", "cust_e"]


def _input(i: int) -> DeltaInput:
    customer = "cust_late" if i >= LATE else CUSTOMERS[(i * 3 + i // 7) % len(CUSTOMERS)]
    amount = Decimal(i + 1) / 100 * (-1 if i % 6 == 5 else 1)  # distinct exact amounts, some negative
    return DeltaInput(customer_id=customer, delta=amount, reason=f"order {i}", reference_id=f"ref-{i:03d}",
                      metadata={"line": i} if i % 10 == 0 else None)


INPUTS = [_input(i) for i in range(N)]
INDEX_OF = {(item.customer_id, item.reference_id): i for i, item in enumerate(INPUTS)}
ALL_CUSTOMERS = sorted({item.customer_id for item in INPUTS})

MODES = ("credits", "monthly")
# How ingest splits INPUTS into transactions (≤ 100 items: per delta the delta and its guard, one update
# per customer, the usage and totals shards, and under credits the lane and the pool for a refill).
CHUNKS = {"credits": (45, 45, 40), "monthly": (46, 46, 38)}
# The DynamoDB calls of one submit_deltas over INPUTS, in order. If ingest changes, update this (the first
# test says so); the crash tests are parametrized over it.
EXPECTED_CALLS = {
    mode: (
        "BatchGetItem",        # the snapshot's first 100 keys: tenant, usage shards, credit account and lanes,
        #                        customers, the first guards
        "BatchGetItem",        # the snapshot's other keys: the rest of the 130 guards
        "TransactWriteItems",  # chunk 1: deltas + guards + customers + usage shard + totals shard (+ the hold)
        "TransactWriteItems",  # chunk 2
        "TransactWriteItems",  # chunk 3 (creates cust_late)
    )
    for mode in MODES
}
SEALS = (verification.MAX_BATCH, N - verification.MAX_BATCH)  # 90 + 40, each earning the volume rate


@dataclass(frozen=True)
class Accepted:
    """What acceptance decided, independent of ids and timestamps."""

    deltas: tuple  # per input: (customer, sequence number, amount, status, credit state, reserved) or None
    usage: tuple[int, tuple[tuple[str, int], ...], int]  # consumed, per environment, released
    customers: tuple  # the environment's totals, then per customer: its counters (or None: never created)
    credits: tuple  # credit balance, live reserved, available, unposted, unposted deltas, ledger entry types


@dataclass(frozen=True)
class Verified:
    """What verification then decided."""

    deltas: tuple[tuple[str, str], ...]  # per input: status, credit state
    account: tuple[int, int, int, int]  # credit balance, reserved, available, entry count
    ledger: tuple[tuple[str, str, int, int], ...]  # oldest first: entry id, type, amount, balance after
    customers: tuple
    tree_sizes: tuple[int, ...]  # per seal, in sealing order


@dataclass(frozen=True)
class Baseline:
    operations: tuple[str, ...]
    accepted: Accepted
    verified: Verified


# --- arrangement, requests, observation ----------------------------------------------------------


def arrange(world: World, mode: str) -> ApiKeyPrincipal:
    now = world.clock()
    assert now == START
    if mode == "credits":
        tenant = world.tenant("Crash Credits Co", billing_mode=BillingMode.CREDITS, plan="starter")
        credit_service.topup(bootstrap.unit_of_work(), tenant.id, TOPUP, actor="test", now=now)
    else:
        tenant = world.tenant("Crash Monthly Co", billing_mode=BillingMode.MONTHLY, plan="starter")
    return ApiKeyPrincipal(tenant_id=tenant.id, environment=P, key_id="key_crash")


def submit(principal: ApiKeyPrincipal, now: datetime) -> list[ingest.Outcome]:
    return ingest.submit_deltas(bootstrap.unit_of_work(), principal, list(INPUTS), now=now)


def committed_count(mode: str, transactions: int) -> int:
    """How many of INPUTS the first ``transactions`` chunks hold (chunks follow the request order)."""
    return sum(CHUNKS[mode][:transactions])


def stored_deltas(tenant_id: str) -> list[Any]:
    """Every delta item of the tenant (each customer's partition of the sequence index: a duplicate would show
    up), in INPUTS order, after checking each is one of INPUTS, stored once, as sent."""
    records = [record for customer_id in ALL_CUSTOMERS for record in DeltaRecord.customer_seq_index.query(
        keys.customer_key(tenant_id, str(P), customer_id))]
    by_index = Counter(INDEX_OF[(r.customer_id, r.reference_id)] for r in records)
    assert all(count == 1 for count in by_index.values()), f"stored twice: {by_index.most_common(3)}"
    records.sort(key=lambda r: INDEX_OF[(r.customer_id, r.reference_id)])
    for record in records:
        item = INPUTS[INDEX_OF[(record.customer_id, record.reference_id)]]
        assert (record.delta, record.reason, record.metadata) == (item.delta, item.reason, item.metadata)
        assert (record.tenant_id, record.environment) == (tenant_id, str(P))
    return records


def observe_accepted(principal: ApiKeyPrincipal, mode: str) -> tuple[Accepted, dict[int, str]]:
    """The accepted state and the stored record ids by input index, after checking the state is whole:
    guards, sequence numbers, customer rows, usage, totals and holds all agree with the stored deltas."""
    tenant_id = principal.tenant_id
    uow = bootstrap.unit_of_work()
    records = stored_deltas(tenant_id)
    index = {INDEX_OF[(r.customer_id, r.reference_id)]: r for r in records}
    n = len(records)

    # Each stored delta has its guard (answering with that delta), and no guard exists without its delta.
    references = [(item.customer_id, item.reference_id or "") for item in INPUTS]
    guards = uow.deltas.snapshot(tenant_id, P, ALL_CUSTOMERS, references, period_of(START)).guards
    assert {INDEX_OF[key] for key in guards} == set(index)
    for key, answer in guards.items():
        record = index[INDEX_OF[key]]
        assert (answer["recordId"], answer["sequenceNumber"]) == (record.record_id, int(record.sequence_number))

    # Per customer: sequence numbers 1..k in request order, the row agrees.
    rows = {}
    for customer_id in ALL_CUSTOMERS:
        mine = [r for r in records if r.customer_id == customer_id]
        k = len(mine)
        assert [int(r.sequence_number) for r in mine] == list(range(1, k + 1)), customer_id
        row = uow.customers.get(tenant_id, P, customer_id)
        rows[customer_id] = row
        if k == 0:
            assert row is None, f"{customer_id} created without its deltas"
            continue
        assert row is not None
        assert (row.delta_count, row.cycle_count) == (k, k), customer_id
        assert row.balance == row.cycle_net == sum((r.delta for r in mine), Decimal(0)), customer_id
    stats = uow.customers.stats(tenant_id, P)
    existing = [row for row in rows.values() if row is not None]
    assert (stats.customers, stats.integration, stats.manual) == (len(existing), len(existing), 0)
    assert stats.deltas == n == sum(row.delta_count for row in existing)
    assert stats.balance == sum((row.balance for row in existing), Decimal(0))

    usage = uow.usage.get(tenant_id, period_of(START))
    assert (usage.consumed, usage.by_environment.get(str(P), 0)) == (n, n)

    # Credits: every stored delta holds COST on the lane it names; the lanes hold exactly those holds.
    position = uow.credits.position(tenant_id)
    balances = credit_service.balances(uow, tenant_id)
    entries = list(reversed(uow.credits.entries(tenant_id, 100, None).items))
    cost = COST if mode == "credits" else 0
    assert all(int(r.credits_reserved) == cost for r in records)
    assert all(r.status == str(DeltaStatus.QUEUED) for r in records)
    assert all(r.credit_state == str(CreditState.RESERVED if cost else CreditState.NONE) for r in records)
    held = Counter()
    for record in records:
        if cost:
            held[int(record.credit_lane)] += int(record.credits_reserved)
    assert {lane.index: lane.held_total for lane in position.lanes if lane.held_total} == dict(held)
    assert sum(lane.held_deltas for lane in position.lanes) == (n if cost else 0)
    assert balances.reserved == position.reserved == n * cost
    assert position.pool >= 0 and all(lane.free >= 0 for lane in position.lanes)
    assert position.pool + sum(lane.free for lane in position.lanes) + position.reserved == balances.credit_balance
    assert (position.unposted, position.unposted_deltas) == (n * cost, n if cost else 0)  # nothing posted yet
    assert position.ledger.reserved == 0

    accepted = Accepted(
        deltas=tuple(
            (r.customer_id, int(r.sequence_number), str(r.delta), r.status, r.credit_state, int(r.credits_reserved))
            if (r := index.get(i)) else None for i in range(N)),
        usage=(usage.consumed, tuple(sorted(usage.by_environment.items())), usage.released),
        customers=(astuple(stats), *((c, None) if rows[c] is None else (
            c, rows[c].delta_count, str(rows[c].balance), rows[c].cycle_count, str(rows[c].cycle_net),
            rows[c].verified_count) for c in ALL_CUSTOMERS)),
        credits=(balances.credit_balance, balances.reserved, balances.available, position.unposted,
                 position.unposted_deltas, tuple(str(e.entry_type) for e in entries)),
    )
    return accepted, {i: r.record_id for i, r in index.items()}


def verify_all(principal: ApiKeyPrincipal, mode: str, record_ids: dict[int, str], now: datetime) -> Verified:
    """Verify every stored delta (request order), then sweep (nothing left for it), and observe."""
    tenant_id = principal.tenant_id
    refs = [(tenant_id, P, record_ids[i]) for i in sorted(record_ids)]
    report = verification.verify_records(bootstrap.unit_of_work(), refs, now=now, signer=bootstrap.signer())
    assert (len(report.verified), report.failed, report.skipped) == (len(refs), [], 0)
    swept = verification.sweep(bootstrap.unit_of_work(), now=now + verification.SWEEP_GRACE + timedelta(minutes=1),
                               signer=bootstrap.signer())
    assert (swept.verified, swept.failed, swept.batches, swept.counts_applied) == ([], [], [], 0)

    uow = bootstrap.unit_of_work()
    deltas = uow.deltas.get_many(tenant_id, P, [record_ids[i] for i in sorted(record_ids)])
    assert len(deltas) == len(record_ids)
    settled = CreditState.SETTLED if mode == "credits" else CreditState.NONE
    assert all((d.status, d.credit_state) == (DeltaStatus.VERIFIED, settled) for d in deltas)
    account = uow.credits.account(tenant_id)
    entries = list(reversed(uow.credits.entries(tenant_id, 100, None).items))
    replay_ledger(entries, account)
    position = uow.credits.position(tenant_id)
    live = credit_service.balances(uow, tenant_id)
    assert (position.reserved, position.unposted, live.reserved) == (0, 0, 0), "a hold left unresolved"
    assert position.pool + sum(lane.free for lane in position.lanes) == live.credit_balance == account.credit_balance
    if entries:
        assert entries[-1].balance_after == live.available  # every hold posted: the ledger is the live balance
    kinds = Counter(e.entry_type for e in entries)
    assert kinds[EntryType.RESERVATION] <= 1 and kinds[EntryType.REFUND] == 0, kinds
    # Each seal settled its catalogue cost and released the rest of what its deltas held; the run posted the
    # seals' settlements together (one settlement entry and its release).
    moves = seal_moves(entries)
    if mode == "credits":
        charges = [CREDITS_VOLUME_RATE.charge(b.tree_size * COST, b.tree_size) for b in report.batches]
        assert moves == [(sum(charges), sum(b.tree_size * COST for b in report.batches) - sum(charges))]
        assert all(lane.settled == position.posted_on(lane.index) for lane in position.lanes)
        assert sum(lane.settled.seals for lane in position.lanes) == len(report.batches)
    else:
        assert moves == []

    stats = uow.customers.stats(tenant_id, P)
    rows = [uow.customers.get(tenant_id, P, c) for c in ALL_CUSTOMERS]
    assert stats.verified == len(deltas) == sum(row.verified_count for row in rows if row is not None)
    for row in (row for row in rows if row is not None):
        assert row.verified_count == row.delta_count, row.customer_id
    return Verified(
        deltas=tuple((str(d.status), str(d.credit_state)) for d in deltas),
        account=(account.credit_balance, account.reserved, account.available, account.entry_count),
        ledger=tuple((e.entry_id, str(e.entry_type), e.amount, e.balance_after) for e in entries),
        customers=(astuple(stats), *((r.customer_id, r.delta_count, r.verified_count, str(r.balance))
                                     for r in rows if r is not None)),
        tree_sizes=tuple(b.tree_size for b in report.batches),
    )


def assert_answers(outcomes: list[ingest.Outcome], record_ids: dict[int, str], replayed: int) -> None:
    """Every delta QUEUED with the stored record; the first ``replayed`` (committed before) as replays."""
    assert [o.status for o in outcomes] == ["QUEUED"] * N, [o.error for o in outcomes if o.error][:3]
    assert [o.data["recordId"] for o in outcomes] == [record_ids[i] for i in range(N)]
    assert [o.idempotent for o in outcomes] == [i < replayed for i in range(N)]


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baselines(moto_world: dict) -> dict[str, Baseline]:
    """Per mode: the request with no crash, in an emptied moto world (calls made, accepted, verified)."""
    found = {}
    calls = DynamoCalls().attach()
    try:
        for mode in MODES:
            empty_world()
            bootstrap.reset()
            principal = arrange(World(lambda: START), mode)
            bootstrap.signer()  # read before counting (Secrets Manager, not DynamoDB)
            with calls.run():
                outcomes = submit(principal, START)
            operations = tuple(calls.operations)
            accepted, record_ids = observe_accepted(principal, mode)
            assert_answers(outcomes, record_ids, replayed=0)
            found[mode] = Baseline(operations, accepted, verify_all(principal, mode, record_ids, START))
    finally:
        calls.detach()
    bootstrap.reset()
    return found


@pytest.fixture
def dynamo_calls(aws: dict) -> Iterator[DynamoCalls]:
    calls = DynamoCalls().attach()
    yield calls
    calls.detach()


# --- tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_one_request_makes_these_dynamodb_calls_in_these_chunks(baselines, mode):
    assert baselines[mode].operations == EXPECTED_CALLS[mode]
    fixed = 2 + (2 if mode == "credits" else 0)
    assert tuple(len(chunk) for chunk in ingest._chunks(list(enumerate(INPUTS)), fixed)) == CHUNKS[mode]
    assert EXPECTED_CALLS[mode].count("TransactWriteItems") == len(CHUNKS[mode])


@pytest.mark.parametrize("mode", MODES)
def test_the_baseline_stores_holds_and_settles_each_delta_once(baselines, mode):
    accepted, verified = baselines[mode].accepted, baselines[mode].verified
    assert None not in accepted.deltas
    assert accepted.usage == (N, (("production", N), ("sandbox", 0)), 0)
    total = sum((item.delta for item in INPUTS), Decimal(0))
    assert accepted.customers[0] == (len(ALL_CUSTOMERS), 0, len(ALL_CUSTOMERS), N, 0, 0, total)
    assert accepted.customers[ALL_CUSTOMERS.index("cust_late") + 1] == (
        "cust_late", N - LATE, str(sum((i.delta for i in INPUTS[LATE:]), Decimal(0))), N - LATE,
        str(sum((i.delta for i in INPUTS[LATE:]), Decimal(0))), 0)
    assert verified.tree_sizes == SEALS
    assert verified.deltas == ((str(DeltaStatus.VERIFIED), str(
        CreditState.SETTLED if mode == "credits" else CreditState.NONE)),) * N
    if mode == "monthly":
        assert accepted.credits == (0, 0, 0, 0, 0, ())
        assert (verified.account, verified.ledger) == ((0, 0, 0, 0), ())
        return
    assert accepted.credits == (TOPUP, N, TOPUP - N, N, N, ("topup",))
    big, small = SEALS  # both ≥ 40: each settles 90 % (rounded up) and releases the rest
    assert verified.ledger == (
        (entry_id_for(1), "topup", TOPUP, TOPUP),
        (entry_id_for(2), "reservation", -N, TOPUP - N),  # posted with the seals' settlements
        (entry_id_for(3), "settlement", -81 - 36, TOPUP - N),  # both seals' (81 of 90, 36 of 40), posted together
        (entry_id_for(4), "release", big - 81 + small - 36, TOPUP - 81 - 36),
    )
    assert verified.account == (TOPUP - 81 - 36, 0, TOPUP - 81 - 36, 4)


CRASHES = [
    pytest.param(mode, phase, k, id=f"{mode}-{phase}-call-{k}-{operation}")
    for mode, phase in itertools.product(MODES, ("before", "after"))
    for k, operation in enumerate(EXPECTED_CALLS[mode], start=1)
]


@pytest.mark.parametrize(("mode", "phase", "k"), CRASHES)
def test_a_crash_at_any_dynamodb_call_then_the_clients_retry_ends_exactly_as_without_a_crash(
        world, clock, dynamo_calls, baselines, mode, phase, k):
    expected = baselines[mode]
    principal = arrange(world, mode)
    bootstrap.signer()

    with dynamo_calls.run(crash_at=k, phase=phase), pytest.raises(CrashError):
        submit(principal, clock())
    assert tuple(dynamo_calls.operations) == expected.operations[:k]  # the same run as the baseline, up to k

    # Whole transactions only: exactly the deltas of the chunks whose TransactWriteItems was applied.
    applied = expected.operations[: k if phase == "after" else k - 1].count("TransactWriteItems")
    committed = committed_count(mode, applied)
    crashed, _ids = observe_accepted(principal, mode)
    assert crashed.deltas == tuple(d if i < committed else None for i, d in enumerate(expected.accepted.deltas))
    assert crashed.usage[0] == committed

    # The client never got an answer: it sends the same request again.
    clock.advance(seconds=5)
    outcomes = submit(principal, clock())
    accepted, record_ids = observe_accepted(principal, mode)
    assert_answers(outcomes, record_ids, replayed=committed)
    assert accepted == expected.accepted

    clock.advance(seconds=5)
    assert verify_all(principal, mode, record_ids, clock()) == expected.verified


@pytest.mark.parametrize("phase", ["before", "after"])
@pytest.mark.parametrize("mode", MODES)
def test_a_crash_at_the_last_transaction_without_a_retry_leaves_whole_chunks_that_settle_exactly(
        world, clock, dynamo_calls, baselines, mode, phase):
    """No retry: the committed chunks stand whole (their deltas, guards, counters and holds), the last one
    is absent entirely, and verifying what is there resolves exactly its holds."""
    expected = baselines[mode]
    principal = arrange(world, mode)
    bootstrap.signer()
    k = len(EXPECTED_CALLS[mode])  # the last TransactWriteItems
    assert EXPECTED_CALLS[mode][k - 1] == "TransactWriteItems"

    with dynamo_calls.run(crash_at=k, phase=phase), pytest.raises(CrashError):
        submit(principal, clock())

    committed = N if phase == "after" else committed_count(mode, len(CHUNKS[mode]) - 1)
    crashed, record_ids = observe_accepted(principal, mode)
    assert crashed.deltas == tuple(d if i < committed else None for i, d in enumerate(expected.accepted.deltas))
    assert crashed.usage == (committed, (("production", committed), ("sandbox", 0)), 0)
    assert crashed.customers[0][3] == committed  # the totals' delta count
    late = crashed.customers[ALL_CUSTOMERS.index("cust_late") + 1]
    assert (late == ("cust_late", None)) == (phase == "before")  # only the last chunk creates cust_late
    if mode == "credits":
        assert crashed.credits == (TOPUP, committed, TOPUP - committed, committed, committed, ("topup",))
    else:
        assert crashed.credits == (0, 0, 0, 0, 0, ())
    if phase == "after":
        assert crashed == expected.accepted

    clock.advance(seconds=5)
    verified = verify_all(principal, mode, record_ids, clock())
    if phase == "after":
        assert verified == expected.verified
        return
    big = verification.MAX_BATCH
    assert verified.tree_sizes == ((big,) if committed == big else (big, committed - big))
    if mode == "credits":
        charge = 81  # 90 % of 90
        assert [(t, a) for _id, t, a, _b in verified.ledger] == [
            ("topup", TOPUP), ("reservation", -committed), ("settlement", -charge), ("release", committed - charge)]
        assert verified.account == (TOPUP - charge, 0, TOPUP - charge, 4)
