"""Verifying accepted deltas: fingerprint, seal into a signed Merkle batch, settle.

One transaction per sealed batch holds everything the batch changes: the batch
record, the head of the chain it extends (one of the tenant environment's
``CHAINS``, moved from exactly the head that was read: seals on different chains
commit in parallel, see :func:`choose_chain`), every delta's status (each
conditioned on still awaiting verification, with exactly its hold) and the credit settlement — the
catalogue's actual cost, with the release of the rest of the holds (``CREDITS_VOLUME_RATE``) — ADDed to
the tenant's settlement item numbered like the chain, never the account, so a tenant's seals never queue
on it (nor meet an acceptance or a seal on another chain on any item). A crash
before the commit changes nothing; a rerun after it finds the deltas verified and skips them. So no
delta is lost, and none is sealed, settled, released or refunded twice. After its seals, a run posts
their settlements to the ledger (:func:`credits.post_settlements`: one account update folds every seal
since the last posting into a settlement and a release entry), before it applies their counts.

The queue path reads nothing back: ingest fingerprints each delta where it has the content and sends
that with the reference (:class:`SealCandidate`); the seal's conditions (still awaiting verification,
with exactly that hold) make a stale or repeated message harmless, and after a lost race the deltas
are read, the candidates rebuilt and the seal tried on another chain. References without a candidate
(the sweep, content with no fingerprint) are read.

Seals hold 90 deltas whatever their customers: the per-customer verified
counters go in a second transaction (:func:`apply_counts`) with the removal of a
small counts item the seal wrote, so they are applied exactly once; while that
item exists it is on the pending index, and the sweep posts and applies what a crash left.
The webhook events (``delta.verified``, as references to the verified deltas,
``verification.completed``, ``delta.failed``) ride in the seal's transaction as an
outbox item, so they exist exactly when the change does.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.batches import CHAINS, SealCandidate, SealedBatch
from chalicelib.domain.clock import iso_ms, period_of
from chalicelib.domain.credentials import time_ordered_id
from chalicelib.domain.deltas import CreditState, Delta, credit_state_after
from chalicelib.domain.errors import ConcurrentWriteError
from chalicelib.domain.fingerprints import canonical, fingerprint
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import MerkleTree, leaf_hash
from chalicelib.domain.webhooks import EventType, verified_reference
from chalicelib.services.credits import post_settlements, stage_refund, stage_settlement
from chalicelib.services.ports import OutboxRef, UnitOfWork
from chalicelib.services.retry import retry_on_conflict
from chalicelib.services.webhooks import stage_events

MAX_BATCH = 90  # deltas per sealed batch; the rest of its 100-item transaction: batch, head, counts item,
#                the settlement on a lane, outbox item
BATCH_PREFIX = "bat_"  # a pending-index entry with a batch id: that batch's counts are still to apply
MAX_ATTEMPTS = 10
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_LIMIT = 1_600  # refs per sweep run (all shards together): what 8 shards of 200 each gave before


Ref = tuple  # (tenantId, environment, recordId) or (tenantId, environment, recordId, candidate's wire form)


@dataclass
class VerifyReport:
    verified: list[SealCandidate] = field(default_factory=list)
    failed: list[Delta] = field(default_factory=list)
    batches: list[SealedBatch] = field(default_factory=list)
    skipped: int = 0  # already resolved (reruns, duplicate messages)
    counts_applied: int = 0  # sealed batches whose per-customer counts the sweep applied after a crash
    outbox: list[OutboxRef] = field(default_factory=list)  # committed webhook events, for the sender to fan out


def _settle(uow: UnitOfWork, tenant_id: str, leaves: list[SealCandidate], lane: int, settled_lanes: set[int],
            now: datetime) -> tuple[int, int, int | None]:
    """Stage the seal's settlement and release on ``lane`` (``credits.stage_settlement``: ADDs, no account
    update); returns (consumed, released, credit balance after: as of this seal, concurrent seals of the
    tenant not counted) for the ``verification.completed`` event and adds the lane to ``settled_lanes`` (what
    :func:`credits.post_settlements` then posts)."""
    billed = [d for d in leaves if d.reserved]
    reserved = sum(d.credits_reserved for d in billed)
    if not reserved:
        return 0, 0, None
    balance = uow.credits.position(tenant_id).credit_balance
    settled = stage_settlement(uow, tenant_id, reserved=reserved, deltas=len(billed), lane=lane)
    settled_lanes.add(lane)
    return settled.credits, settled.released, balance - settled.credits


def choose_chain(lost: int | None) -> int:
    """The chain a seal attempt extends, of the tenant environment's ``CHAINS``.

    One head admits one seal at a time, so concurrent sealers spread over the chains at random and commit in
    parallel. After a lost race (``lost``: the chain it was lost on) any other chain: that head has just
    moved and its winner's peers may still race for it, so the retry would risk a second collision there."""
    if lost is None or CHAINS == 1:
        return random.randrange(CHAINS)
    return (lost + random.randrange(1, CHAINS)) % CHAINS


@dataclass
class _Sealing:
    """What a tenant environment's seals in one run share: the lanes their settlements went on (posted after
    them) and the chain the last attempt lost a race on (the retry avoids it)."""

    settled_lanes: set[int] = field(default_factory=set)
    lost: int | None = None


def _seal_once(uow: UnitOfWork, signer: Any, tenant_id: str, environment: Environment,
               deltas: list[SealCandidate], now: datetime, outbox_refs: list[OutboxRef],
               sealing: _Sealing) -> SealedBatch:
    tree = MerkleTree([leaf_hash(bytes.fromhex(d.content_hash)) for d in deltas])
    batch = SealedBatch(  # its chain, its place on it (sequence, previous root) and signature come last
        batch_id=BATCH_PREFIX + time_ordered_id(int(now.timestamp() * 1000), 20), tenant_id=tenant_id,
        environment=str(environment), root=tree.root.hex(), tree_size=tree.size, sequence=0, previous_root=None,
        sealed_at=now, key_id=signer.key_id,
        record_ids=tuple(d.record_id for d in deltas), leaf_hashes=tuple(leaf.hex() for leaf in tree.levels[0]),
    )
    events = []
    for index, leaf in enumerate(deltas):
        uow.deltas.mark_verified(tenant_id, environment, leaf, leaf_index=index,
                                 proof=[p.hex() for p in tree.inclusion_proof(index)], batch=batch,
                                 credit_state=CreditState.SETTLED if leaf.reserved else None, now=now)
        events.append(verified_reference(leaf))
    uow.batches.stage_counts(batch, dict(Counter(d.customer_id for d in deltas)), now=now)
    # The chain now, its head last (below); its settlements on the item of the same number, so that seals on
    # different chains share no item (two transactions on one item conflict on DynamoDB, ADDs or not).
    chain = choose_chain(sealing.lost)
    consumed, released, remaining = _settle(uow, tenant_id, deltas, chain, sealing.settled_lanes, now)
    events.append((EventType.VERIFICATION_COMPLETED, {
        "batchId": batch.batch_id, "proofRoot": batch.root, "environment": str(environment),
        "itemCount": len(deltas), "recordIds": list(batch.record_ids), "creditsConsumed": consumed,
        "creditsReleased": released, "remainingBalance": remaining, "verifiedAt": iso_ms(now),
    }))
    outbox = stage_events(uow, tenant_id, environment, events, now=now)
    # The chain head is what concurrent sealers of this chain race for: read it last, so that a seal another
    # environment commits while this one is staged moves the head before it is read, not under this commit.
    head = uow.batches.head(tenant_id, environment, chain)
    batch = replace(batch, chain=chain, sequence=head.sequence + 1, previous_root=head.last_root)
    batch = replace(batch, signature=signer.sign(canonical(batch.statement())))
    uow.batches.seal(batch, head)
    try:
        uow.commit()
    except ConcurrentWriteError:
        sealing.lost = chain
        raise
    sealing.lost = None
    if outbox is not None:
        outbox_refs.append(uow.webhooks.outbox_ref(outbox))
    return batch


def _fail_once(uow: UnitOfWork, delta: Delta, error: str, now: datetime, outbox_refs: list[OutboxRef]) -> None:
    """Terminal failure: FAILED with the error, its usage unit released, its credits refunded, its amount
    taken out of the customer's running balance (a failed delta never counts)."""
    period = delta.period or period_of(delta.created_at)
    customer = uow.customers.get(delta.tenant_id, delta.environment, delta.customer_id)
    uow.deltas.mark_failed(replace(delta, credit_state=credit_state_after(delta, verified=False)), error=error,
                           now=now)
    uow.usage.add(delta.tenant_id, period, delta.environment, -1, cap=None)
    uow.customers.release_from_balance(delta.tenant_id, delta.environment, delta.customer_id, delta.delta,
                                       period=period, in_cycle=customer is not None and customer.cycle_period == period)
    uow.customers.count(delta.tenant_id, delta.environment, failed=1, balance=-delta.delta)
    if delta.credit_state == CreditState.RESERVED and delta.credits_reserved:
        stage_refund(uow, delta.tenant_id, delta.credits_reserved, f"Verification failed — {delta.record_id}",
                     now=now)
    outbox = stage_events(uow, delta.tenant_id, delta.environment, [(EventType.DELTA_FAILED, {
        "recordId": delta.record_id, "customerId": delta.customer_id, "delta": delta.delta, "error": error,
        "failedAt": iso_ms(now), "referenceId": delta.reference_id, "environment": str(delta.environment),
        "creditsRefunded": delta.credits_reserved if delta.credit_state == CreditState.RESERVED else 0,
    })], now=now)
    uow.commit()
    if outbox is not None:
        outbox_refs.append(uow.webhooks.outbox_ref(outbox))


def _retrying(uow: UnitOfWork, action: Callable[[list[Any]], Any], *, first: list[Any],
              reread: Callable[[], list[Any]]) -> Any:
    """Run ``action(pending)``, first on ``first`` (the conditions catch anything that changed since it was
    read or sent); after a lost race, on what ``reread`` finds still pending."""

    def attempt(n: int) -> Any:
        pending = reread() if n else first
        return action(pending) if pending else None

    return retry_on_conflict(uow, attempt, attempts=MAX_ATTEMPTS, cap=0.1,
                             message="Verification kept losing races; the sweep will retry.")


def _seal_groups(record_ids: list[str]) -> list[list[str]]:
    """Consecutive groups of ``MAX_BATCH`` deltas, however many customers they belong to (the per-customer
    counters are applied in a transaction of their own: :func:`apply_counts`)."""
    return [record_ids[start : start + MAX_BATCH] for start in range(0, len(record_ids), MAX_BATCH)]


def apply_counts(uow: UnitOfWork, tenant_id: str, environment: Environment, batch_id: str,
                 counts: dict[str, int] | None = None) -> bool:
    """Add a sealed batch's verified counts to its customers and the environment's totals, exactly once: in
    one transaction with the removal of the batch's counts item, conditioned on it still being there.
    ``counts``: as the seal just wrote them (else read). False when they were applied already."""

    def attempt(n: int) -> bool:
        current = counts if counts is not None and n == 0 else uow.batches.counts(tenant_id, environment, batch_id)
        if current is None:
            return False
        for customer_id, count in current.items():
            uow.customers.count_verified(tenant_id, environment, customer_id, count)
        uow.customers.count(tenant_id, environment, verified=sum(current.values()))
        uow.batches.clear_counts(tenant_id, environment, batch_id)
        uow.commit()
        return True

    return retry_on_conflict(uow, attempt, attempts=MAX_ATTEMPTS, cap=0.1,
                             message="A batch's counts kept losing races; the sweep will retry.")


def _awaiting(uow: UnitOfWork, tenant_id: str, environment: Environment, record_ids: list[str]) -> dict[str, Delta]:
    """The deltas of ``record_ids`` still awaiting verification, read again after a race, by record id."""
    return {d.record_id: d for d in uow.deltas.get_many(tenant_id, environment, record_ids)
            if d.awaiting_verification}


def _verify_group(uow: UnitOfWork, signer: Any, tenant_id: str, environment: Environment,
                  wanted: dict[str, SealCandidate | None], now: datetime, report: VerifyReport) -> None:
    """Seal the wanted deltas: by the candidates the queue sent, reading only those that came without."""
    candidates = {r: c for r, c in wanted.items() if c is not None}
    unknown = [r for r, c in wanted.items() if c is None]
    skipped: set[str] = set()
    for delta in uow.deltas.get_many(tenant_id, environment, unknown) if unknown else []:
        if not delta.awaiting_verification:
            skipped.add(delta.record_id)
            continue
        digest, error = fingerprint(delta)
        if digest is not None:
            candidates[delta.record_id] = SealCandidate.hashed(delta, digest)
            continue

        def fail(live: list[Delta], reason: str = error or "") -> Delta:
            _fail_once(uow, live[0], reason, now, report.outbox)
            return replace(live[0], error=reason)

        def reread_one(record_id: str = delta.record_id) -> list[Delta]:
            return list(_awaiting(uow, tenant_id, environment, [record_id]).values())

        failed = _retrying(uow, fail, first=[delta], reread=reread_one)
        if failed is not None:
            report.failed.append(failed)

    sealing = _Sealing()

    def seal(live: list[SealCandidate]) -> tuple[SealedBatch, list[SealCandidate]]:
        return _seal_once(uow, signer, tenant_id, environment, live, now, report.outbox, sealing), live

    outcomes: list[tuple[SealedBatch, list[SealCandidate]]] = []

    def finish() -> None:
        if sealing.settled_lanes:  # before the counts: a crash here leaves them on the pending index, and the
            post_settlements(uow, tenant_id, sealing.settled_lanes, now=now)  # sweep posts them
        for batch, sealed in outcomes:
            apply_counts(uow, tenant_id, environment, batch.batch_id, dict(Counter(d.customer_id for d in sealed)))
            report.batches.append(batch)
            report.verified += sealed

    try:
        for group in _seal_groups([r for r in wanted if r in candidates]):
            def reread(group: list[str] = group) -> list[SealCandidate]:
                live = _awaiting(uow, tenant_id, environment, group)
                skipped.update(r for r in group if r not in live)
                return [c for c in (SealCandidate.of(live[r]) for r in group if r in live) if c is not None]

            outcome = _retrying(uow, seal, first=[candidates[r] for r in group], reread=reread)
            if outcome is not None:
                outcomes.append(outcome)
    except Exception:  # a later group failed: the seals that committed are still posted and counted
        finish()
        raise
    finish()
    report.skipped += len(skipped)


def verify_records(uow: UnitOfWork, refs: Iterable[Ref], *, now: datetime, signer: Any) -> VerifyReport:
    """Verify the referenced deltas (``(tenantId, environment, recordId[, candidate])``); already resolved
    ones are skipped."""
    report = VerifyReport()
    groups: dict[tuple[str, Environment], dict[str, SealCandidate | None]] = defaultdict(dict)
    for ref in refs:
        tenant_id, environment, record_id = ref[0], Environment(ref[1]), ref[2]
        candidate = SealCandidate.from_wire(record_id, ref[3]) if len(ref) > 3 else None
        wanted = groups[(tenant_id, environment)]
        if wanted.get(record_id) is None:
            wanted[record_id] = candidate
    for (tenant_id, environment), wanted in groups.items():
        left = [r for r in wanted if r.startswith(BATCH_PREFIX)]  # counts a crash left (the sweep)
        if left:  # and maybe the settlements of those seals, not posted yet: every lane's, to be sure
            post_settlements(uow, tenant_id, set(range(CHAINS)), now=now)
        for batch_id in left:
            report.counts_applied += int(apply_counts(uow, tenant_id, environment, batch_id))
        deltas = {r: c for r, c in wanted.items() if not r.startswith(BATCH_PREFIX)}
        if deltas:
            _verify_group(uow, signer, tenant_id, environment, deltas, now, report)
    return report


def sweep(uow: UnitOfWork, *, now: datetime, signer: Any, limit: int = SWEEP_LIMIT) -> VerifyReport:
    """The backstop: verify whatever the queue missed (the sparse pending index, never a scan)."""
    refs = uow.deltas.pending(older_than=now - SWEEP_GRACE, limit=limit)
    return verify_records(uow, refs, now=now, signer=signer)
