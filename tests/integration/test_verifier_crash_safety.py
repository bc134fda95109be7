"""Crash safety of the verifier: a crash at any DynamoDB call, then a rerun, ends exactly as no crash.

SPEC (verification): one TransactWriteItems per sealed batch holds the batch record,
the chain head move, every delta's status (conditioned on still awaiting
verification) and the credit settlement on a lane (posted to the ledger by the next
transaction, before the counts); a terminal failure (content RFC 8785
cannot canonicalise) is FAILED, released and refunded in one transaction. So a
crash anywhere must leave either nothing or whole transactions behind, and a
rerun (the queue redelivers) or the sweep must finish the work exactly once.

The world: a credits-billing tenant with 7 deltas across 3 customers and 1 delta
whose metadata holds 2**60 (beyond RFC 8785's ±2**53 integers, so it fails
terminally). The verifier gets the references as the queue carries them: the 7 with
the seal candidates ingest made (fingerprint and hold, so they are not read back),
the bad one bare. The baseline verifies them with no crash in a fresh moto world.
Then, for every DynamoDB call k the verifier makes (counted with botocore's
``before-call`` event on the shared connection's client), a fresh world with the
same arrangement crashes the verifier at call k — before the call reaches
DynamoDB, or after it has been applied — and recovers: either a rerun of
``verify_records`` followed by a sweep, or the sweep alone (the message was lost
with the crash). The final statuses, credit account, ledger, usage counter and
chains must equal the baseline; every verified delta's inclusion proof must check
against its signed batch.

A seal extends one of the environment's chains, picked at random: which one is no
part of the outcome (each chain must be whole and the batches on all of them count),
and the picks are seeded so that each case reruns alike.
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
from chalicelib.adapters.dynamodb.models import BatchRecord
from chalicelib.adapters.signing import verify_signature
from chalicelib.domain.clock import period_of
from chalicelib.domain.credits import EntryType, entry_id_for
from chalicelib.domain.deltas import CreditState, DeltaInput, DeltaStatus
from chalicelib.domain.fingerprints import canonical, content_hash, delta_content
from chalicelib.domain.identity import ApiKeyPrincipal, Environment
from chalicelib.domain.merkle import leaf_hash, root_of, verify_inclusion
from chalicelib.domain.tenants import BillingMode
from chalicelib.services import credits as credit_service
from chalicelib.services import ingest, verification
from tests.conftest import empty_world
from tests.dynamo_calls import CrashError, DynamoCalls
from tests.factories import World
from tests.helpers import seeded_chains, walk_chains
from tests.ledger import replay_ledger

P = Environment.PRODUCTION
START = datetime(2026, 4, 15, 12, 0, 0, tzinfo=UTC)  # the `clock` fixture's start
TOPUP = 20
BAD = 3  # index of the delta that fails terminally
INPUTS = [
    DeltaInput(customer_id="cust_a", delta=Decimal("10"), reason="order 1"),
    DeltaInput(customer_id="cust_b", delta=Decimal("-2.5"), reason="refund", reference_id="ref-b-1"),
    DeltaInput(customer_id="cust_c", delta=Decimal("7"), reason="order 2", metadata={"units": 3, "sku": "x"}),
    DeltaInput(customer_id="cust_b", delta=Decimal("1"), reason="too big", metadata={"units": 2**60}),
    DeltaInput(customer_id="cust_a", delta=Decimal("0.000001"), reason="rounding"),
    DeltaInput(customer_id="cust_c", delta=Decimal("-7"), reason="reversal"),
    DeltaInput(customer_id="cust_a", delta=Decimal("3"), reason="order 3"),
    DeltaInput(customer_id="cust_b", delta=Decimal("4"), reason="order 4"),
]
GOOD = len(INPUTS) - 1

# The DynamoDB calls of one verify_records run over INPUTS, in order. If the verifier
# changes, update this tuple (test_one_verification_run_makes_these_dynamodb_calls says so);
# the crash tests are parametrized over it.
EXPECTED_CALLS = (
    "BatchGetItem",        # load the one delta that came without a seal candidate (it has no fingerprint)
    "GetItem",             # terminal failure: the customer (is the delta in its current cycle?)
    "TransactGetItems",    #   the credit account, its escrow lanes and their settlements, as one snapshot
    "TransactWriteItems",  #   FAILED + usage released + customer and totals + the holds posted and the refund
    "BatchGetItem",        # seal: the credit position (for the event's remaining balance: no snapshot needed)
    "GetItem",             #   the head of the chain picked (read last: concurrent sealers race for it)
    "TransactWriteItems",  #   batch + head + 7 statuses (each conditioned: still pending, that hold) + counts item
    #                            + the settlement ADDed to a lane + outbox
    "TransactGetItems",    # posting: the credit position (the seal's settlement among it)
    "TransactWriteItems",  #   the account (conditioned on its entry count) + the settlement entry
    "TransactWriteItems",  # the seal's per-customer verified counts and totals, with the counts item's removal
)


@dataclass(frozen=True)
class Outcome:
    """Everything verification decides, independent of ids and timestamps."""

    deltas: tuple[tuple[str, str, int, str | None], ...]  # per input: status, credit state, reserved, error
    account: tuple[int, int, int, int]  # credit balance, reserved, available, entry count
    ledger: tuple[tuple[str, str, int, int], ...]  # oldest first: entry id, type, amount, balance after
    usage: tuple[int, tuple[tuple[str, int], ...], int]  # consumed, per environment, released
    sealed: int  # batches on all chains (their heads' sequences, summed)
    tree_sizes: tuple[int, ...]  # per batch, in sealing order
    customers: tuple  # the environment's totals, then per customer: counts, balance, cycle counters


# --- arrangement, verifier runs, observation -----------------------------------------------------


def arrange(world: World) -> tuple[str, list[str]]:
    """The tenant and its accepted deltas' record ids, in INPUTS order (their queue references: QUEUED)."""
    now = world.clock()
    assert now == START
    tenant = world.tenant("Crash Co", billing_mode=BillingMode.CREDITS, plan="starter")
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, TOPUP, actor="test", now=now)
    principal = ApiKeyPrincipal(tenant_id=tenant.id, environment=P, key_id="key_crash")
    outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, list(INPUTS), now=now)
    assert [o.status for o in outcomes] == ["QUEUED"] * len(INPUTS), outcomes
    refs = ingest.accepted_refs(principal, outcomes)
    assert [len(ref) for ref in refs] == [4 if i != BAD else 3 for i in range(len(INPUTS))]  # BAD: no fingerprint
    QUEUED[tenant.id] = refs
    return tenant.id, [o.data["recordId"] for o in outcomes]


QUEUED: dict[str, list[tuple]] = {}  # tenant id → the queue references ingest made for it


def verify(tenant_id: str, record_ids: list[str], now: datetime) -> verification.VerifyReport:
    """What the queue-triggered verifier does with the references ingest sent."""
    refs = [ref for ref in QUEUED[tenant_id] if ref[2] in record_ids]
    return verification.verify_records(bootstrap.unit_of_work(), refs, now=now, signer=bootstrap.signer())


def sweep(now: datetime) -> verification.VerifyReport:
    return verification.sweep(bootstrap.unit_of_work(), now=now, signer=bootstrap.signer())


def _batches(tenant_id: str) -> list[Any]:
    """Every batch record of the tenant (a scan: orphans would show up too), in sealing order."""
    uow = bootstrap.unit_of_work()
    ids = [r.batch_id for r in BatchRecord.scan(BatchRecord.sk == keys.BATCH_SK) if r.tenant_id == tenant_id]
    batches = [uow.batches.get(tenant_id, P, batch_id) for batch_id in ids]
    return sorted(batches, key=lambda b: (b.sealed_at, b.batch_id))


def observe(tenant_id: str, record_ids: list[str], *, settled: bool = True) -> Outcome:
    """The outcome, after checking it is internally consistent (proofs, chain, ledger, exactly once)."""
    uow = bootstrap.unit_of_work()
    deltas = [uow.deltas.get(tenant_id, P, record_id) for record_id in record_ids]
    assert all(d is not None for d in deltas)
    account = uow.credits.account(tenant_id)
    entries = list(reversed(uow.credits.entries(tenant_id, 100, None).items))
    replay_ledger(entries, account)
    types = Counter(e.entry_type for e in entries)
    assert types[EntryType.SETTLEMENT] <= 1 and types[EntryType.REFUND] <= 1, types  # never twice

    # Sealed batches: on each chain, a gap-free run of signed batches ending at its head; none off a chain.
    batches = _batches(tenant_id)
    chains = walk_chains(tenant_id, P)
    assert sorted(b.batch_id for run in chains.values() for b in run) == sorted(b.batch_id for b in batches)
    public_key = bootstrap.signer().public_key.raw
    for batch in batches:
        assert verify_signature(public_key, canonical(batch.statement()), batch.signature)
        assert batch.tree_size == len(batch.record_ids) == len(batch.leaf_hashes)
        assert batch.root == root_of([bytes.fromhex(h) for h in batch.leaf_hashes]).hex()

    # Every verified delta is in exactly one batch and its proof checks against that batch's root.
    by_id = {b.batch_id: b for b in batches}
    verified = [d for d in deltas if d.status == DeltaStatus.VERIFIED]
    sealed = Counter(record_id for b in batches for record_id in b.record_ids)
    assert sealed == Counter(d.record_id for d in verified), "a delta sealed twice, or sealed and not VERIFIED"
    assert sum(b.tree_size for b in batches) == len(verified)
    for delta in verified:
        batch = by_id[delta.batch_id]
        assert delta.proof_root == batch.root
        assert delta.content_hash == content_hash(delta_content(delta))
        leaf = leaf_hash(bytes.fromhex(delta.content_hash))
        assert batch.leaf_hashes[delta.leaf_index] == leaf.hex()
        assert batch.record_ids[delta.leaf_index] == delta.record_id
        assert verify_inclusion(leaf, delta.leaf_index, batch.tree_size, [bytes.fromhex(p) for p in delta.proof],
                                bytes.fromhex(batch.root))
        assert delta.credit_state == CreditState.SETTLED
    for delta in deltas:
        if delta.status == DeltaStatus.FAILED:
            assert delta.credit_state == CreditState.REFUNDED and delta.batch_id is None
        elif delta.status != DeltaStatus.VERIFIED:
            assert delta.credit_state == CreditState.RESERVED and delta.batch_id is None

    # Resolved deltas leave the sweep's pending index; unresolved ones stay on it.
    later = START + timedelta(days=1)
    pending = {r for _t, _e, r in uow.deltas.pending(older_than=later, limit=100)}
    counts_pending = {r for r in pending if r.startswith(verification.BATCH_PREFIX)}  # a seal's counts to apply
    assert pending - counts_pending == {d.record_id for d in deltas if d.awaiting_verification}
    if settled:
        assert not pending, "a delta was lost: still awaiting verification"

    usage = uow.usage.get(tenant_id, period_of(START))
    return Outcome(
        deltas=tuple((str(d.status), str(d.credit_state), d.credits_reserved, d.error) for d in deltas),
        account=(account.credit_balance, account.reserved, account.available, account.entry_count),
        ledger=tuple((e.entry_id, str(e.entry_type), e.amount, e.balance_after) for e in entries),
        usage=(usage.consumed, tuple(sorted(usage.by_environment.items())), usage.released),
        sealed=sum(len(run) for run in chains.values()),
        tree_sizes=tuple(b.tree_size for b in batches),
        customers=_customer_counters(uow, tenant_id, sorted({d.customer_id for d in deltas})),
    )


def _customer_counters(uow: Any, tenant_id: str, customer_ids: list[str]) -> tuple:
    """Totals and per-customer counters, checked against each other (the summary equals the rows)."""
    stats = uow.customers.stats(tenant_id, P)
    rows = [uow.customers.get(tenant_id, P, c) for c in customer_ids]
    assert stats.verified == sum(c.verified_count for c in rows) and stats.failed == sum(c.failed_count for c in rows)
    assert stats.deltas == sum(c.delta_count for c in rows) and stats.balance == sum(c.balance for c in rows)
    return (astuple(stats), *((c.customer_id, c.delta_count, c.verified_count, c.failed_count, str(c.balance),
                               c.cycle_count, str(c.cycle_net)) for c in rows))


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(moto_world: dict) -> tuple[Outcome, tuple[str, ...]]:
    """Verification with no crash, in an emptied moto world: (outcome, DynamoDB calls made)."""
    empty_world()
    bootstrap.reset()
    calls = DynamoCalls().attach()
    try:
        tenant_id, record_ids = arrange(World(lambda: START))
        signer = bootstrap.signer()  # read before counting (Secrets Manager, not DynamoDB)
        with calls.run(), seeded_chains():
            report = verification.verify_records(bootstrap.unit_of_work(), QUEUED[tenant_id], now=START,
                                                 signer=signer)
        operations = tuple(calls.operations)
        assert (len(report.verified), len(report.failed), len(report.batches)) == (GOOD, 1, 1)
        swept = sweep(START + verification.SWEEP_GRACE + timedelta(minutes=1))
        assert (swept.verified, swept.failed, swept.batches) == ([], [], [])
        outcome = observe(tenant_id, record_ids)
    finally:
        calls.detach()
    bootstrap.reset()
    return outcome, operations


@pytest.fixture
def dynamo_calls(aws: dict) -> Iterator[DynamoCalls]:
    calls = DynamoCalls().attach()
    yield calls
    calls.detach()


@pytest.fixture(autouse=True)
def seeded() -> Iterator[None]:
    """Each case picks chains as the baseline did (the outcome must not depend on them either way)."""
    with seeded_chains():
        yield


# --- tests -------------------------------------------------------------------------------------------


def test_one_verification_run_makes_these_dynamodb_calls(baseline):
    _outcome, operations = baseline
    assert operations == EXPECTED_CALLS


def test_the_baseline_settles_seven_and_refunds_the_one_rfc8785_refuses(baseline):
    outcome, _operations = baseline
    verified = (str(DeltaStatus.VERIFIED), str(CreditState.SETTLED), 1, None)
    assert [d for i, d in enumerate(outcome.deltas) if i != BAD] == [verified] * GOOD
    status, credit_state, reserved, error = outcome.deltas[BAD]
    assert (status, credit_state, reserved) == (str(DeltaStatus.FAILED), str(CreditState.REFUNDED), 1)
    assert error and "RFC 8785" in error
    n = len(INPUTS)
    assert outcome.ledger == (
        (entry_id_for(1), "topup", TOPUP, TOPUP),
        (entry_id_for(2), "reservation", -n, TOPUP - n),
        (entry_id_for(3), "refund", 1, TOPUP - n + 1),
        (entry_id_for(4), "settlement", -GOOD, TOPUP - n + 1),
    )
    assert outcome.account == (TOPUP - GOOD, 0, TOPUP - GOOD, 4)
    assert outcome.usage == (GOOD, (("production", GOOD), ("sandbox", 0)), 1)
    assert (outcome.sealed, outcome.tree_sizes) == (1, (GOOD,))
    assert outcome.customers == (
        (3, 0, 3, n, GOOD, 1, Decimal("14.500001")),  # customers, manual, integration, deltas, verified, failed
        ("cust_a", 3, 3, 0, "13.000001", 3, "13.000001"),  # deltas, verified, failed, balance, cycle count, net
        ("cust_b", 3, 2, 1, "1.5", 2, "1.5"),  # the failed 1 is out of the balance and the cycle
        ("cust_c", 2, 2, 0, "0", 2, "0"),
    )


CRASHES = [
    pytest.param(phase, k, recovery, id=f"{phase}-call-{k}-{operation}-then-{recovery}")
    for phase, (k, operation), recovery in itertools.product(
        ("before", "after"), enumerate(EXPECTED_CALLS, start=1), ("rerun", "sweep"))
]


@pytest.mark.parametrize(("phase", "k", "recovery"), CRASHES)
def test_a_crash_at_any_dynamodb_call_then_recovery_ends_exactly_as_without_a_crash(
        world, clock, dynamo_calls, baseline, phase, k, recovery):
    expected, operations = baseline
    tenant_id, record_ids = arrange(world)
    bootstrap.signer()  # cached before the crash run

    with dynamo_calls.run(crash_at=k, phase=phase), pytest.raises(CrashError):
        verify(tenant_id, record_ids, clock())
    assert tuple(dynamo_calls.operations) == operations[:k]  # the same run as the baseline, up to the crash

    # The crash left whole transactions only: those whose TransactWriteItems was applied.
    applied = operations[: k if phase == "after" else k - 1].count("TransactWriteItems")
    crashed = observe(tenant_id, record_ids, settled=False)
    # The holds are posted (the reservation entry) by the first ledger writer: here the refund's transaction.
    # The seal settles on a lane; its entry is the posting's (the next transaction).
    assert crashed.ledger == expected.ledger[: (1, 3, 3, 4, 4)[applied]]
    assert crashed.sealed == (1 if applied >= 2 else 0)
    bad_resolved = crashed.deltas[BAD] == expected.deltas[BAD]
    good_resolved = [d == expected.deltas[i] for i, d in enumerate(crashed.deltas) if i != BAD]
    assert (bad_resolved, good_resolved) == (applied >= 1, [applied >= 2] * GOOD)
    # the posted ledger moves with the posting; the balances count a settlement from its seal on
    assert (crashed.account == expected.account) == (applied >= 3)
    live = credit_service.balances(bootstrap.unit_of_work(), tenant_id)
    assert ((live.credit_balance, live.reserved, live.available) == expected.account[:3]) == (applied >= 2)
    assert (crashed.customers == expected.customers) == (applied == 4)  # the counts go in last

    # Recover: the queue redelivers (a rerun), then the sweep; or the sweep alone.
    if recovery == "rerun":
        clock.advance(seconds=5)
        verify(tenant_id, record_ids, clock())
    clock.advance(seconds=verification.SWEEP_GRACE.total_seconds() + 5)
    swept = sweep(clock())
    if applied in (2, 3):  # sealed, counts not applied: whatever recovers, the sweep posts and applies them
        assert (swept.verified, swept.failed, swept.batches, swept.counts_applied) == ([], [], [], 1)
    elif recovery == "rerun" or applied == 4:
        assert (swept.verified, swept.failed, swept.batches, swept.counts_applied) == ([], [], [], 0)
    else:  # the sweep alone finishes what the crash left pending
        assert (len(swept.verified), len(swept.failed), len(swept.batches)) == (GOOD, 1 - applied, 1)
    assert sweep(clock() + timedelta(minutes=5)).verified == []

    assert observe(tenant_id, record_ids) == expected
