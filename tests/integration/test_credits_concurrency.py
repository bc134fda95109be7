"""Exact credits under real concurrency: 1,040 acceptance attempts race for 400 credits, then every hold is
resolved exactly once.

SPEC "Billing" (credits) and domain/credits.py: an accepted delta holds its credits at acceptance, on one of
16 escrow lanes, by conditional ADDs (a lane's ``free``, refilled from the account's ``pool``, the lanes
drained back into the pool near exhaustion); the ledger's few writers post the holds and the verifier's
seals settle them at the volume rate and release the rest. So credit is never overspent however many
acceptances race, and no hold is lost or resolved twice.

The race: 16 threads (half production, half sandbox: credits are per tenant) each send 32 requests — single
deltas and batches of 2 to 5, over 8 customers per environment — through the real ingest service on moto,
all released at once: 1,040 deltas at 1 credit each (plan "scale") for 400 credits. moto applies each
DynamoDB request atomically, as DynamoDB does, and nothing more (chalicelib/cli/motofixes.py): the
read → plan → conditional-write races are fully exposed. A delta answered ``CONCURRENT_WRITE`` (ingest gave
up after its own 40 attempts: rare) is counted and sent again by the test, as a client would; it must not
change the outcome.

Proven after the race: exactly 400 deltas accepted and every other one refused with INSUFFICIENT_CREDITS;
no overspend (available ≥ 0, every lane and the pool ≥ 0, ``creditBalance == pool + Σ free + reserved``);
the lanes hold exactly the holds the stored deltas name; per customer, sequence numbers gap-free 1..k and
the stored deltas exactly the accepted ones. Then verification (``verify_records`` in four calls, then a
sweep that finds nothing) resolves every hold exactly once: every accepted delta VERIFIED and SETTLED, no
credit reserved, settlements + releases == 400, each seal's settlement + release == what its deltas held,
the ledger replays exactly and its last balanceAfter is the available balance.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import DeltaRecord
from chalicelib.domain.clock import period_of
from chalicelib.domain.credits import EntryType
from chalicelib.domain.deltas import CreditState, DeltaInput, DeltaStatus
from chalicelib.domain.identity import ApiKeyPrincipal, Environment
from chalicelib.domain.plans import CREDITS_VOLUME_RATE, plan_for
from chalicelib.domain.tenants import BillingMode
from chalicelib.services import credits as credit_service
from chalicelib.services import ingest, verification
from tests.ledger import replay_ledger, seal_moves

P, S = Environment.PRODUCTION, Environment.SANDBOX
PLAN = "scale"
CREDITS = 400
THREADS = 16
CUSTOMERS = [f"cust_{n}" for n in range(8)]
# Each thread's requests (1: a single emit; 2-5: a small batch), rotated per thread so the threads' batches
# do not line up: 32 requests, 65 deltas a thread.
SIZES = (1, 2, 1, 3, 1, 1, 5, 2, 1, 4, 1, 1, 3, 2, 1, 5, 1, 2, 1, 1, 4, 1, 3, 1, 2, 1, 5, 1, 1, 2, 3, 2)
ATTEMPTED = THREADS * sum(SIZES)
VERIFY_CALLS = 4


@dataclass
class Final:
    """One attempted delta's last answer (after the test's own retries of CONCURRENT_WRITE)."""

    environment: Environment
    item: DeltaInput
    outcome: ingest.Outcome


def _requests(thread: int, rng: random.Random) -> list[list[DeltaInput]]:
    sizes = SIZES[thread % len(SIZES):] + SIZES[: thread % len(SIZES)]
    requests = []
    for number, size in enumerate(sizes):
        requests.append([
            DeltaInput(customer_id=rng.choice(CUSTOMERS), delta=Decimal(rng.randint(-500, 2_000)) / 100,
                       reason=f"thread {thread} request {number} item {i}")
            for i in range(size)])
    return requests


def _race(tenant_id: str, now: Any) -> tuple[list[Final], int]:
    """Every thread sends its requests in order, all threads released at once; a CONCURRENT_WRITE answer is
    sent again (those deltas only). Returns every attempted delta's final answer and how many retries."""
    start = threading.Barrier(THREADS)
    retries = Counter()

    def worker(thread: int) -> list[Final]:
        environment = (P, S)[thread % 2]
        principal = ApiKeyPrincipal(tenant_id=tenant_id, environment=environment, key_id=f"key_{environment}")
        pending = _requests(thread, random.Random(thread))
        start.wait(timeout=30)
        finals = []
        while pending:
            items = pending.pop(0)
            outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, list(items), now=now)
            assert [o.index for o in outcomes] == list(range(len(items)))
            again = []
            for item, outcome in zip(items, outcomes, strict=True):
                if outcome.error is not None and outcome.error.code == "CONCURRENT_WRITE":
                    again.append(item)
                else:
                    finals.append(Final(environment, item, outcome))
            if again:
                retries[thread] += len(again)
                assert retries[thread] < 200, "CONCURRENT_WRITE without end"
                pending.insert(0, again)
        return finals

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(worker, thread) for thread in range(THREADS)]
        finals = [final for future in futures for final in future.result(timeout=300)]
    return finals, sum(retries.values())


def _stored(tenant_id: str, environment: Environment, customer_id: str) -> list[Any]:
    return list(DeltaRecord.customer_seq_index.query(keys.customer_key(tenant_id, str(environment), customer_id)))


def _assert_stored_deltas_are_the_accepted(tenant_id: str, accepted: list[Final]) -> dict[str, Any]:
    """Per customer: sequence numbers exactly 1..k, the row's counters agree, and the stored deltas are
    exactly the accepted ones (a refused delta left nothing behind). The stored records by record id."""
    uow = bootstrap.unit_of_work()
    by_record = {final.outcome.data["recordId"]: final for final in accepted}
    assert len(by_record) == len(accepted), "record ids must be unique"
    stored: dict[str, Any] = {}
    for environment in (P, S):
        existing = 0
        for customer_id in CUSTOMERS:
            rows = _stored(tenant_id, environment, customer_id)
            k = len(rows)
            assert [int(row.sequence_number) for row in rows] == list(range(1, k + 1)), f"{environment}/{customer_id}"
            customer = uow.customers.get(tenant_id, environment, customer_id)
            if k == 0:
                assert customer is None
                continue
            existing += 1
            assert (customer.delta_count, customer.cycle_count) == (k, k), customer_id
            assert customer.balance == sum((row.delta for row in rows), Decimal(0)), customer_id
            for row in rows:
                final = by_record[row.record_id]
                assert final.environment == environment
                assert final.outcome.data["sequenceNumber"] == int(row.sequence_number)
                assert (row.customer_id, row.delta, row.reason) == (
                    final.item.customer_id, final.item.delta, final.item.reason)
                assert (row.status, row.credit_state, int(row.credits_reserved)) == (
                    str(DeltaStatus.QUEUED), str(CreditState.RESERVED), 1)
                stored[row.record_id] = row
        stats = uow.customers.stats(tenant_id, environment)
        mine = [final for final in accepted if final.environment == environment]
        assert (stats.customers, stats.integration, stats.deltas) == (existing, existing, len(mine))
        assert stats.balance == sum((final.item.delta for final in mine), Decimal(0))
    assert set(stored) == set(by_record)
    return stored


def test_a_thousand_racing_acceptances_spend_exactly_the_credits_and_every_hold_resolves_once(world, clock):
    assert plan_for(PLAN).credits_per_delta == 1
    assert ATTEMPTED == 1_040
    tenant = world.tenant("Race Co", billing_mode=BillingMode.CREDITS, plan=PLAN)
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, CREDITS, actor="test", now=clock())

    finals, retried = _race(tenant.id, clock())

    # --- exactly 400 accepted, every other refused for credits, after the client's retries --------------
    assert len(finals) == ATTEMPTED
    accepted = [f for f in finals if f.outcome.status == "QUEUED"]
    refused = [f for f in finals if f.outcome.status != "QUEUED"]
    assert len(accepted) == CREDITS, f"{len(accepted)} accepted ({retried} CONCURRENT_WRITE retried)"
    assert Counter(f.outcome.error.code for f in refused) == {"INSUFFICIENT_CREDITS": ATTEMPTED - CREDITS}
    assert not any(f.outcome.idempotent for f in accepted)
    per_env = Counter(str(f.environment) for f in accepted)
    assert per_env[str(P)] > 0 and per_env[str(S)] > 0, per_env  # both environments drew on one account

    # --- no overspend: every credit in exactly one place, nothing negative --------------------------------
    uow = bootstrap.unit_of_work()
    position = uow.credits.position(tenant.id)
    live = credit_service.balances(uow, tenant.id)
    assert (live.credit_balance, live.reserved, live.available) == (CREDITS, CREDITS, 0)
    assert position.pool >= 0 and all(lane.free >= 0 for lane in position.lanes)
    assert position.pool + sum(lane.free for lane in position.lanes) + position.reserved == live.credit_balance
    assert (position.unposted, position.unposted_deltas) == (CREDITS, CREDITS)  # posted by the first seal
    usage = uow.usage.get(tenant.id, period_of(clock()))
    assert usage.consumed == CREDITS
    assert usage.by_environment == {str(P): per_env[str(P)], str(S): per_env[str(S)]}

    stored = _assert_stored_deltas_are_the_accepted(tenant.id, accepted)
    # The lanes hold exactly the holds the stored deltas name.
    held = Counter(int(record.credit_lane) for record in stored.values())
    assert {lane.index: lane.held_total for lane in position.lanes if lane.held_total} == dict(held)
    assert {lane.index: lane.held_deltas for lane in position.lanes if lane.held_deltas} == dict(held)
    assert len(held) > 1, "the holds did not spread over the lanes"

    # --- verify everything: in a few calls, then the sweep --------------------------------------------
    refs = [(tenant.id, f.environment, f.outcome.data["recordId"]) for f in accepted]
    random.Random(5).shuffle(refs)  # the queue delivers in no particular order, both environments mixed
    clock.advance(seconds=2)
    batches, verified = [], 0
    share = -(-len(refs) // VERIFY_CALLS)
    for start in range(0, len(refs), share):
        report = verification.verify_records(bootstrap.unit_of_work(), refs[start : start + share], now=clock(),
                                             signer=bootstrap.signer())
        assert (report.failed, report.skipped) == ([], 0)
        batches += report.batches  # in sealing order: the order of their ledger entries
        verified += len(report.verified)
    assert verified == CREDITS
    swept = verification.sweep(bootstrap.unit_of_work(), now=clock() + verification.SWEEP_GRACE + timedelta(minutes=1),
                               signer=bootstrap.signer())
    assert (swept.verified, swept.failed, swept.batches, swept.counts_applied) == ([], [], [], 0)

    # --- every hold resolved exactly once ----------------------------------------------------------------
    uow = bootstrap.unit_of_work()
    by_env: dict[Environment, list[str]] = defaultdict(list)
    for _tenant, environment, record_id in refs:
        by_env[environment].append(record_id)
    deltas = {d.record_id: d for env, ids in by_env.items() for d in uow.deltas.get_many(tenant.id, env, ids)}
    assert len(deltas) == CREDITS
    assert Counter((d.status, d.credit_state) for d in deltas.values()) == {
        (DeltaStatus.VERIFIED, CreditState.SETTLED): CREDITS}
    sealed = Counter(record_id for batch in batches for record_id in batch.record_ids)
    assert sealed == Counter(set(deltas)), "a delta sealed twice, or not at all"

    position = uow.credits.position(tenant.id)
    live = credit_service.balances(uow, tenant.id)
    account = uow.credits.account(tenant.id)
    assert (position.reserved, position.unposted, position.unposted_deltas, live.reserved) == (0, 0, 0, 0)
    entries = list(reversed(uow.credits.entries(tenant.id, 1000, None).items))
    replay_ledger(entries, account)
    kinds = Counter(e.entry_type for e in entries)
    assert (kinds[EntryType.TOPUP], kinds[EntryType.RESERVATION], kinds[EntryType.REFUND]) == (1, 1, 0)
    assert [(e.entry_type, e.amount) for e in entries[:2]] == [(EntryType.TOPUP, CREDITS),
                                                               (EntryType.RESERVATION, -CREDITS)]
    moves = seal_moves(entries)
    assert sum(settled + released for settled, released in moves) == CREDITS
    assert len(moves) == len(batches)
    for batch, (settled, released) in zip(batches, moves, strict=True):
        held_by_seal = sum(deltas[record_id].credits_reserved for record_id in batch.record_ids)
        assert settled + released == held_by_seal == batch.tree_size
        assert settled == CREDITS_VOLUME_RATE.charge(held_by_seal, batch.tree_size)
    spent = sum(settled for settled, _released in moves)
    assert (account.credit_balance, live.available) == (CREDITS - spent, CREDITS - spent)
    assert entries[-1].balance_after == live.available
    assert position.pool + sum(lane.free for lane in position.lanes) == live.credit_balance
    assert position.pool >= 0 and all(lane.free >= 0 for lane in position.lanes)
    for environment in (P, S):
        stats = uow.customers.stats(tenant.id, environment)
        assert (stats.deltas, stats.verified, stats.failed) == (per_env[str(environment)],) * 2 + (0,)
        for customer_id in CUSTOMERS:
            customer = uow.customers.get(tenant.id, environment, customer_id)
            assert customer is None or customer.verified_count == customer.delta_count, customer_id
