"""Accepting deltas: the Balance API write path.

Acceptance is atomic per transaction: the delta items, each customer's next
gap-free sequence numbers (created on first sight) and cycle counters, one shard
of the period's usage counter, one shard of the environment's customer totals
and — under credits billing — the hold on one escrow lane (domain/credits.py)
commit together or not at all. No item every delta of a tenant writes is in the
transaction (paid and credits plans); the free plan's capped shard is, as its
cap must be exact. A batch is read in one snapshot and written in as few
transactions as DynamoDB's 100-item limit allows; if a condition fails because
someone else wrote first, the remainder is re-read and re-planned. Within one process, writers of the
same customer take turns (:data:`TURNS`) rather than race for its next sequence number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.batches import SealCandidate
from chalicelib.domain.billing import EVERYTHING, BillingReads, acceptance_capacity, billing_reads
from chalicelib.domain.clock import period_of
from chalicelib.domain.credentials import random_id, time_ordered_id
from chalicelib.domain.deltas import CreditState, Delta, DeltaInput, DeltaStatus
from chalicelib.domain.errors import (
    ConcurrentWriteError,
    InvalidApiKeyError,
    PaymentRequiredError,
    TallyError,
)
from chalicelib.domain.identity import ApiKeyPrincipal
from chalicelib.domain.plans import plan_for
from chalicelib.domain.tenants import BillingMode
from chalicelib.log import get_logger
from chalicelib.services.credits import LanesScatteredError, after_hold, consolidate_lanes, stage_hold
from chalicelib.services.idempotency import Answer, run_idempotent
from chalicelib.services.ports import IngestSnapshot, UnitOfWork
from chalicelib.services.retry import Turns, best_effort, retry_on_conflict

log = get_logger("tally.ingest")
MAX_TRANSACTION_ITEMS = 100
MAX_ATTEMPTS = 40
#: Per (tenant, environment, customer): the process's writers of one customer wait for each other around the
#: read-plan-write loop instead of racing for its next gap-free sequence number (:class:`Turns`).
TURNS = Turns()


@dataclass
class Outcome:
    """One submitted delta's fate: QUEUED (new or replayed) or FAILED with an error."""

    index: int
    status: str
    data: dict[str, Any] | None = None
    error: TallyError | None = None
    idempotent: bool = False
    candidate: SealCandidate | None = None  # a newly accepted delta's fingerprint and hold, for the verifier


def accepted_view(delta: Delta) -> dict[str, Any]:
    """The 202 answer for an accepted delta (SDK `emit`)."""
    view = {
        "recordId": delta.record_id,
        "receiptId": delta.receipt_id,
        "status": str(DeltaStatus.QUEUED),
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "sequenceNumber": delta.sequence_number,
    }
    if delta.reference_id is not None:
        view["referenceId"] = delta.reference_id
    return view


def _candidate(delta: Delta) -> SealCandidate | None:
    """The delta's seal candidate for the verifier. It only saves the verifier a read, and the delta is
    already committed: whatever goes wrong here leaves the verifier to read the delta back."""
    try:
        return SealCandidate.of(delta)
    except Exception:
        log.warning("no seal candidate for an accepted delta", exc_info=True, extra={"recordId": delta.record_id})
        return None


def cycle_move(stored: str | None, period: str) -> str:
    """How a delta of ``period`` moves the customer's month counters: ``add`` to this month's, ``restart``
    them for a new month, or ``keep`` them when they already belong to a later month (a request whose
    clock read the last instant of the old month committing after one of the new month)."""
    if stored == period:
        return "add"
    return "restart" if stored is None or stored < period else "keep"


def _chunks(items: list[tuple[int, DeltaInput]], fixed: int) -> list[list[tuple[int, DeltaInput]]]:
    """Split so each transaction holds ≤ 100 items: deltas, guards, one update per customer, fixed rows."""
    chunks: list[list[tuple[int, DeltaInput]]] = []
    current: list[tuple[int, DeltaInput]] = []
    customers: set[str] = set()
    size = fixed
    for index, item in items:
        cost = 1 + (1 if item.reference_id else 0) + (0 if item.customer_id in customers else 1)
        if current and size + cost > MAX_TRANSACTION_ITEMS:
            chunks.append(current)
            current, customers, size = [], set(), fixed
            cost = 1 + (1 if item.reference_id else 0) + 1
        current.append((index, item))
        customers.add(item.customer_id)
        size += cost
    if current:
        chunks.append(current)
    return chunks


class _Attempt:
    """One read-plan-write pass over the still-pending deltas."""

    def __init__(self, uow: UnitOfWork, principal: ApiKeyPrincipal, snapshot: IngestSnapshot, now: datetime) -> None:
        self.uow, self.principal, self.snap, self.now = uow, principal, snapshot, now
        tenant = snapshot.tenant
        if tenant is None or tenant.is_deleted:
            raise InvalidApiKeyError("Invalid or missing API key.")
        self.tenant = tenant
        self.plan = plan_for(tenant.plan)
        self.credits_mode = tenant.billing_mode == BillingMode.CREDITS
        self.period = period_of(now)
        self.last_seq = {cid: state.last_seq for cid, state in snapshot.customers.items()}
        self.cycle = {cid: state.cycle_period for cid, state in snapshot.customers.items()}
        self.position = snapshot.credits

    def commit_chunk(self, chunk: list[tuple[int, DeltaInput]]) -> list[tuple[int, Delta]]:
        """Stage and commit one transaction; raises ConcurrentWriteError if another writer got there first."""
        uow, now, principal = self.uow, self.now, self.principal
        per_customer: dict[str, list[tuple[int, DeltaInput]]] = defaultdict(list)
        for index, item in chunk:
            per_customer[item.customer_id].append((index, item))
        cost = self.plan.credits_per_delta if self.credits_mode else 0
        stamp = int(now.timestamp() * 1000)
        position, lane = self.position, None
        if cost:  # the hold first: a consolidation of the lanes (rare) commits on its own, with nothing staged
            try:
                plan = stage_hold(uow, self.position, cost * len(chunk), len(chunk))
            except LanesScatteredError as scattered:
                consolidate_lanes(uow, principal.tenant_id, scattered.drain, now=now)
                raise  # a ConcurrentWriteError: the attempt reads again and plans the hold from the pool
            position, lane = after_hold(self.position, plan, cost * len(chunk), len(chunk)), plan.lane
        made: list[tuple[int, Delta]] = []
        next_seq: dict[str, int] = {}
        created = 0
        for customer_id, items in per_customer.items():
            state = self.snap.customers.get(customer_id)
            is_new = self.last_seq.get(customer_id) is None and not (state and state.exists)
            created += int(is_new)
            start = self.last_seq.get(customer_id) or 0
            for offset, (index, item) in enumerate(items, start=1):
                delta = Delta(
                    tenant_id=principal.tenant_id, environment=principal.environment,
                    record_id="rec_" + time_ordered_id(stamp, 20), receipt_id="rcpt_" + random_id("", 20),
                    customer_id=customer_id, sequence_number=start + offset, delta=item.delta,
                    reason=item.reason, period=self.period, created_at=now, reference_id=item.reference_id,
                    metadata=item.metadata, adjusts=item.adjusts, credits_reserved=cost,
                    credit_state=CreditState.RESERVED if cost else CreditState.NONE, credit_lane=lane,
                )
                uow.deltas.add(delta)
                if item.reference_id:
                    uow.deltas.add_reference_guard(delta, accepted_view(delta), now)
                made.append((index, delta))
            uow.deltas.advance_customer(
                principal.tenant_id, principal.environment, customer_id,
                expected_last_seq=self.last_seq.get(customer_id), count=len(items),
                balance_change=sum((item.delta for _i, item in items), Decimal(0)), now=now,
                is_new=is_new, period=self.period, cycle=cycle_move(self.cycle.get(customer_id), self.period),
            )
            next_seq[customer_id] = start + len(items)
        uow.customers.count(principal.tenant_id, principal.environment, customers=created, integration=created,
                            deltas=len(chunk), balance=sum((item.delta for _i, item in chunk), Decimal(0)))
        capped = self.plan.hard_cap and not self.credits_mode
        uow.usage.add(principal.tenant_id, self.period, principal.environment, len(chunk),
                      cap=self.plan.monthly_allotment if capped else None, others=self.snap.usage_others)
        uow.commit()
        self.last_seq.update(next_seq)
        self.cycle.update({c: max(self.cycle.get(c) or self.period, self.period) for c in next_seq})
        self.position = position
        return made


#: What each tenant's acceptance read last time, by tenant id: a hint only, checked against the tenant row
#: the snapshot reads with it (a wrong guess costs one more BatchGetItem, never a wrong answer).
_READS: dict[str, BillingReads] = {}
READS_REMEMBERED = 10_000


def forget_billing_reads() -> None:
    """Drop the hints (a test that reuses tenant ids on fresh storage)."""
    _READS.clear()


def _snapshot(uow: UnitOfWork, principal: ApiKeyPrincipal, customer_ids: list[str],
              references: list[tuple[str, str]], period: str) -> IngestSnapshot:
    """The snapshot, reading the usage shards and credit keys only for tenants whose billing needs them
    (16 usage shards, a credit account and 16 lanes: every single submit of a paid monthly tenant would
    otherwise read them all, and each is an item every submit of the tenant reads). A wrong guess reads
    only what it left out, and the tenant read with the snapshot decides."""
    guess = _READS.get(principal.tenant_id, EVERYTHING)
    snap = uow.deltas.snapshot(principal.tenant_id, principal.environment, customer_ids, references, period,
                               usage=guess.usage, credits=guess.credits)
    if snap.tenant is None:
        return snap
    needed = billing_reads(snap.tenant, plan_for(snap.tenant.plan))
    if len(_READS) >= READS_REMEMBERED:
        _READS.clear()
    _READS[principal.tenant_id] = needed
    if guess.covers(needed):
        return snap
    return uow.deltas.add_billing_state(snap, principal.tenant_id, period, usage=needed.usage and not guess.usage,
                                        credits=needed.credits and not guess.credits)


def submit_deltas(
    uow: UnitOfWork, principal: ApiKeyPrincipal, inputs: list[DeltaInput | TallyError], *, now: datetime
) -> list[Outcome]:
    """Accept what billing allows, in order; invalid inputs arrive as errors and fail in place."""
    outcomes: dict[int, Outcome] = {
        i: Outcome(i, "FAILED", error=item) for i, item in enumerate(inputs) if isinstance(item, TallyError)
    }
    pending = [(i, item) for i, item in enumerate(inputs) if isinstance(item, DeltaInput)]
    duplicates: dict[int, int] = {}  # index → index of the first delta with the same (customer, referenceId)

    def attempt(_n: int) -> None:
        """One read-plan-write pass over the deltas still pending; on a race, what committed stays done."""
        nonlocal pending, duplicates
        customer_ids = list(dict.fromkeys(item.customer_id for _i, item in pending))
        references = list(dict.fromkeys((item.customer_id, item.reference_id) for _i, item in pending
                                        if item.reference_id))
        snap = _snapshot(uow, principal, customer_ids, references, period_of(now))
        run = _Attempt(uow, principal, snap, now)

        fresh: list[tuple[int, DeltaInput]] = []
        first_of: dict[tuple[str, str], int] = {}
        for index, item in pending:
            key = (item.customer_id, item.reference_id or "")
            if item.reference_id and key in snap.guards:
                outcomes[index] = Outcome(index, "QUEUED", data=snap.guards[key], idempotent=True)
            elif item.reference_id and key in first_of:
                duplicates[index] = first_of[key]
            else:
                if item.reference_id:
                    first_of[key] = index
                fresh.append((index, item))

        capacity = acceptance_capacity(run.tenant, run.plan, consumed=snap.usage_consumed or 0, credits=run.position)
        if capacity.limit is not None and capacity.limit < len(fresh) and run.position and not run.position.complete:
            # the snapshot leaves out the seals' settlements (its available balance leaves out the releases not
            # yet posted): refuse only on the whole position, whose hold plan posts them first
            run.position = uow.credits.position(principal.tenant_id)
            capacity = acceptance_capacity(run.tenant, run.plan, consumed=snap.usage_consumed or 0,
                                           credits=run.position)
        allowed = fresh if capacity.limit is None else fresh[: capacity.limit]
        refused = fresh[len(allowed):]
        fixed = 2 + (2 if run.credits_mode else 0)  # usage shard, totals shard (+ the lane, the pool on a refill)
        try:
            for chunk in _chunks(allowed, fixed):
                for index, delta in run.commit_chunk(chunk):
                    outcomes[index] = Outcome(index, "QUEUED", data=accepted_view(delta),
                                              candidate=_candidate(delta))
        except ConcurrentWriteError:
            pending = [(i, item) for i, item in pending if i not in outcomes]
            duplicates = {i: first for i, first in duplicates.items() if i not in outcomes}
            raise
        for index, _item in refused:
            outcomes[index] = Outcome(index, "FAILED",
                                      error=PaymentRequiredError(capacity.message, code=capacity.code))
        pending = []

    if pending:
        customers = [(principal.tenant_id, str(principal.environment), item.customer_id) for _i, item in pending]
        try:
            with TURNS.taken(customers):
                retry_on_conflict(uow, attempt, attempts=MAX_ATTEMPTS, message="busy")
        except ConcurrentWriteError:  # still contended after every attempt: those deltas fail, the rest stand
            for index, _item in pending:
                outcomes[index] = Outcome(index, "FAILED", error=ConcurrentWriteError(
                    "Too many concurrent writes for this customer; retry the request."))
    for index, first in duplicates.items():
        original = outcomes[first]
        outcomes[index] = Outcome(index, original.status, data=original.data, error=original.error,
                                  idempotent=original.status == "QUEUED")
    return [outcomes[i] for i in range(len(inputs))]


def result_view(outcome: Outcome) -> dict[str, Any]:
    """One item of a batch answer: ``{index, status: QUEUED, …accepted view, idempotent?}`` or
    ``{index, status: FAILED, error, code}``."""
    if outcome.status == "QUEUED":
        item = {"index": outcome.index, "status": "QUEUED", **(outcome.data or {})}
        if outcome.idempotent:
            item["idempotent"] = True
        return item
    error = outcome.error
    return {"index": outcome.index, "status": "FAILED", "error": error.message if error else "failed",
            "code": error.code if error else "ERROR"}


def batch_refusal(outcomes: list[Outcome]) -> PaymentRequiredError | None:
    """Seed 003's 402 for a batch: when no item is accepted (none new, none replayed) and billing refused
    at least one, the batch as a whole is refused — nothing was stored, so a retry after an upgrade or a
    top-up runs anew. Any accepted item (even a replay) keeps the per-item 202: its answer is success."""
    if any(o.status == "QUEUED" for o in outcomes):
        return None
    refused = [o.error for o in outcomes if isinstance(o.error, PaymentRequiredError)]
    if not refused:
        return None
    first = refused[0]
    return PaymentRequiredError(first.message, code=first.code, totalQueued=0, totalFailed=len(outcomes),
                                results=[result_view(o) for o in outcomes])


def submit_batch(
    uow: UnitOfWork, principal: ApiKeyPrincipal, inputs: list[DeltaInput | TallyError], *, now: datetime
) -> list[Outcome]:
    """``POST /api/v1/balance/delta/batch``: per-item outcomes, or :func:`batch_refusal`'s 402 raised. When
    nothing was accepted and writes stayed contended through every retry, the batch as a whole is a 503 to
    retry (``CONCURRENT_WRITE``, ``Retry-After``): nothing of it was stored."""
    outcomes = submit_deltas(uow, principal, inputs, now=now)
    if not any(o.status == "QUEUED" for o in outcomes):
        busy = next((o.error for o in outcomes if isinstance(o.error, ConcurrentWriteError)), None)
        if busy is not None:
            raise busy
    refusal = batch_refusal(outcomes)
    if refusal is not None:
        raise refusal
    return outcomes


def accepted_refs(principal: ApiKeyPrincipal, outcomes: list[Outcome]) -> list[tuple[Any, ...]]:
    """Verification queue references for the deltas this request newly accepted, each with its seal
    candidate when it has one (the fingerprint is taken here, where the content is in hand, so the
    verifier need not read the delta back)."""
    return [(principal.tenant_id, str(principal.environment), o.data["recordId"])
            + ((o.candidate.wire(),) if o.candidate else ())
            for o in outcomes if o.status == "QUEUED" and not o.idempotent and o.data]


def enqueue(queue: Any, refs: list[tuple[Any, ...]]) -> None:
    """Hand accepted deltas to the verifier; if SQS is unreachable the sweep finds them (never lost)."""
    if refs:
        best_effort(lambda: queue.enqueue(refs), log, "verification enqueue failed; the sweep will pick these up",
                    records=len(refs))


def submit_delta_request(uow: UnitOfWork, principal: ApiKeyPrincipal, item: DeltaInput, *, now: datetime,
                         idempotency_key: str | None, scope: str, request_hash: str, queue: Any,
                         answer: Callable[[Outcome], Answer]) -> Answer:
    """``POST /api/v1/balance/delta``: once per ``Idempotency-Key`` (:func:`run_idempotent`), accept one delta
    (its error raised), hand it to the verifier through ``queue`` and answer with ``answer(outcome)``."""

    def run() -> Answer:
        outcome = submit_deltas(uow, principal, [item], now=now)[0]
        if outcome.error is not None:
            raise outcome.error
        enqueue(queue, accepted_refs(principal, [outcome]))
        return answer(outcome)

    return run_idempotent(uow, principal, key=idempotency_key, scope=scope, request_hash=request_hash, now=now,
                          run=run)


def submit_batch_request(uow: UnitOfWork, principal: ApiKeyPrincipal, inputs: list[DeltaInput | TallyError], *,
                         now: datetime, idempotency_key: str | None, scope: str, request_hash: str, queue: Any,
                         answer: Callable[[list[Outcome]], Answer]) -> Answer:
    """``POST /api/v1/balance/delta/batch``: once per ``Idempotency-Key``, :func:`submit_batch`, the accepted
    deltas handed to the verifier through ``queue``, answered with ``answer(outcomes)``."""

    def run() -> Answer:
        outcomes = submit_batch(uow, principal, inputs, now=now)
        enqueue(queue, accepted_refs(principal, outcomes))
        return answer(outcomes)

    return run_idempotent(uow, principal, key=idempotency_key, scope=scope, request_hash=request_hash, now=now,
                          run=run)
