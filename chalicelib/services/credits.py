"""Prepaid credits: holds at acceptance, the ledger's postings, top-ups, balances and entries.

The model and its invariants are in ``domain/credits.py``. Acceptance stages a *hold* and a
verification seal its *settlement* (one lane each, ADDs: no conflict with one another nor with the
account). The ledger's writers — top-ups, the settlement poster, failures — stage *postings*: the
holds and settlements since the last posting, then their own moves, on one account update
conditioned on the entry count, so entries are numbered in commit order and each ``balanceAfter``
is exact.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.credits import (
    HOLD_LANES,
    CreditAccount,
    CreditPosition,
    EntryType,
    HoldLane,
    HoldPlan,
    LedgerEntry,
    Settled,
    apply,
    entry_id_for,
    plan_hold,
)
from chalicelib.domain.errors import ConcurrentWriteError, NotFoundError, PaymentRequiredError, ValidationError
from chalicelib.domain.plans import CREDITS_VOLUME_RATE
from chalicelib.services.ports import Page, UnitOfWork
from chalicelib.services.retry import retry_on_conflict

MAX_ATTEMPTS = 20

Move = tuple[EntryType, int, str]  # (entry type, amount > 0, description)


def _plural(count: int) -> str:
    return "s" if count != 1 else ""


def _postings(position: CreditPosition) -> list[Move]:
    """What happened since the last posting, in an order the ledger can always take: the holds first (each
    resolution follows its hold), then the seals' settlements and releases."""
    moves: list[Move] = []
    if position.unposted > 0:
        count = position.unposted_deltas
        moves.append((EntryType.RESERVATION, position.unposted,
                      f"Credits reserved for pending verifications — {count} delta{_plural(count)}"))
    settled = position.unposted_settled
    batches = "batch" if settled.seals == 1 else "batches"
    sealed = f"{settled.deltas} delta{_plural(settled.deltas)} in {settled.seals} {batches}"
    if settled.credits > 0:
        moves.append((EntryType.SETTLEMENT, settled.credits, f"Verification settled — {sealed}"))
    if settled.released > 0:
        moves.append((EntryType.RELEASE, settled.released,
                      f"Volume rate: {settled.released} of {settled.resolved} reserved credits released — {sealed}"))
    return moves


def stage_moves(uow: UnitOfWork, position: CreditPosition, moves: list[Move], *, now: datetime,
                pool: int = 0, resolved: int = 0) -> tuple[CreditAccount, list[LedgerEntry]]:
    """Stage a ledger writer's moves on ``uow``, after posting the holds and settlements not yet posted: one
    account update from exactly the ledger read in ``position``, a numbered immutable entry per move, each
    ``balanceAfter`` the ledger's available balance right after it. ``pool``/``resolved``: what the moves
    return to the pool and how much of the holds they resolve. ``position``: read as a snapshot
    (``position(tenant, snapshot=True)``)."""
    if not position.complete:
        raise ValueError("a ledger writer posts from a position read with its settlements")
    if position.torn:
        raise ConcurrentWriteError("The credit position was read mid-change; read it again.")
    posted = _postings(position)
    after, entries = position.ledger, []
    for number, (entry_type, amount, description) in enumerate(posted + moves):
        try:
            after, signed = apply(after, entry_type, amount)
        except (ValidationError, PaymentRequiredError) as exc:
            if number < len(posted):  # what happened can always be posted, in this order, from one snapshot:
                raise ConcurrentWriteError("The credit position was read mid-change; read it again.") from exc
            raise  # the writer's own move is refused (more refunded than is held, say)
        entries.append(LedgerEntry(
            tenant_id=position.tenant_id, entry_id=entry_id_for(after.entry_count), entry_type=entry_type,
            amount=signed, description=description, balance_after=after.available, created_at=now,
        ))
    if entries:
        settled = position.unposted_settled
        uow.credits.record(position.ledger, after, *entries, pool=pool + settled.released, resolved=resolved,
                           posted_deltas=position.unposted_deltas if position.unposted > 0 else 0,
                           posted_lanes={lane.index: lane.settled for lane in position.lanes}
                           if settled != Settled() else None)
    return after, entries


def post_settlements(uow: UnitOfWork, tenant_id: str, lanes: set[int], *, now: datetime) -> bool:
    """Post the seals' settlements into the ledger, until those on ``lanes`` that committed before this call
    are posted (by this call or by any other ledger writer: each posts everything it read). Returns whether
    this call wrote the ledger. A caller that stops short (a crash, a lost race too many) leaves them to the
    next posting; the balances count them from the seal on."""
    marks: dict[int, int] = {}

    def attempt(_n: int) -> bool:
        position = uow.credits.position(tenant_id, snapshot=True)
        if not marks:  # the seals on these lanes so far, this call's own among them
            marks.update({lane: position.settled_on(lane).seals for lane in lanes})
        if all(position.posted_on(lane).seals >= seals for lane, seals in marks.items()):
            return False
        stage_moves(uow, position, [], now=now)
        uow.commit()
        return True

    return retry_on_conflict(uow, attempt, attempts=MAX_ATTEMPTS, message="The credit account is busy; retry.")


def pick_lane() -> int:
    """A random lane: concurrent acceptances spread over all of them."""
    return random.randrange(HOLD_LANES)


class LanesScatteredError(ConcurrentWriteError):
    """The available balance pays the hold but neither one lane nor the pool can: the lanes named in
    ``drain`` must first be consolidated into the pool (:func:`consolidate_lanes`), then the hold planned
    again on a fresh read (rare: near exhaustion). A storage race for the retry helper: nothing was staged."""

    def __init__(self, drain: dict[int, int]) -> None:
        super().__init__("Credits were scattered over the lanes; consolidate them and plan the hold again.")
        self.drain = drain


def stage_hold(uow: UnitOfWork, position: CreditPosition, amount: int, deltas: int, *,
               lane: int | None = None) -> HoldPlan:
    """Stage the hold of ``amount`` credits for ``deltas`` accepted deltas. Raises InsufficientCreditsError
    when the available balance cannot pay, and :class:`LanesScatteredError` (staging nothing) when the
    credits must be consolidated first."""
    plan = plan_hold(position, amount, pick_lane() if lane is None else lane)
    if plan.drain is not None:
        raise LanesScatteredError(plan.drain)
    uow.credits.hold(position.tenant_id, plan, amount, deltas)
    return plan


def consolidate_lanes(uow: UnitOfWork, tenant_id: str, drain: dict[int, int], *, now: datetime) -> None:
    """Drain ``drain``'s lanes into the pool and, when seals' settlements are unposted (their releases wait
    for a posting before holds may use them), post everything; commit that alone (the caller stages nothing
    before it), so the next read can plan the hold from the pool. Each lane's move is conditioned on its free
    credits, a posting on the ledger as read: a lane spent or a ledger written meanwhile makes it a race
    (ConcurrentWriteError), and nothing moves."""
    uow.rollback()
    if uow.credits.position(tenant_id).unposted_settled != Settled():  # releases may wait: post them too
        # (the posting's account update carries the drained credits to the pool as well)
        uow.credits.drain(tenant_id, drain, to_pool=False)
        stage_moves(uow, uow.credits.position(tenant_id, snapshot=True), [], now=now, pool=sum(drain.values()))
    else:  # only holds are unposted: the drain alone, and the ledger's next writer posts them
        uow.credits.drain(tenant_id, drain)
    uow.commit()


def after_hold(position: CreditPosition, plan: HoldPlan, amount: int, deltas: int) -> CreditPosition:
    """The position as this process knows it after its own hold committed (the next chunk plans on it)."""
    lanes = {lane.index: lane for lane in position.lanes}
    lane = lanes.get(plan.lane, HoldLane(plan.lane))
    lanes[plan.lane] = replace(lane, free=lane.free + plan.refill - amount, held_total=lane.held_total + amount,
                               held_deltas=lane.held_deltas + deltas)
    return replace(position, pool=position.pool - plan.refill, lanes=tuple(lanes[i] for i in sorted(lanes)))


def stage_settlement(uow: UnitOfWork, tenant_id: str, *, reserved: int, deltas: int, lane: int) -> Settled:
    """A verification seal's credits, on ``lane`` by ADDs (no account update: seals never wait for one
    another): the catalogue's actual cost of what its ``deltas`` credit-billed deltas ``reserved`` is settled
    (``CREDITS_VOLUME_RATE``), the rest released — every credit they held, exactly once (the seal's delta
    updates are conditioned on the holds). :func:`post_settlements` writes the ledger's entries."""
    actual = CREDITS_VOLUME_RATE.charge(reserved, deltas)
    settled = Settled(credits=actual, released=reserved - actual, deltas=deltas, seals=1)
    uow.credits.settle(tenant_id, lane, settled)
    return settled


def stage_refund(uow: UnitOfWork, tenant_id: str, amount: int, description: str, *,
                 now: datetime) -> tuple[CreditAccount, list[LedgerEntry]]:
    """A failed delta's hold, refunded to the pool (after posting the holds not yet posted)."""
    return stage_moves(uow, uow.credits.position(tenant_id, snapshot=True), [(EntryType.REFUND, amount, description)],
                       now=now, pool=amount, resolved=amount)


def topup(uow: UnitOfWork, tenant_id: str, amount: int, *, actor: str, now: datetime,
          description: str | None = None) -> tuple[CreditAccount, LedgerEntry]:
    """Add ``amount`` credits (to the pool the lanes refill from), with its entry and audit, retried when
    another ledger writer moved the account first."""
    if uow.tenants.get(tenant_id) is None:
        raise NotFoundError("Tenant not found.")
    text = description or "Manual credit top-up"

    def attempt(_n: int) -> tuple[CreditAccount, LedgerEntry]:
        position = uow.credits.position(tenant_id, snapshot=True)
        after, entries = stage_moves(uow, position, [(EntryType.TOPUP, amount, text)], now=now, pool=amount)
        uow.audit.add(AuditEntry(
            tenant_id=tenant_id, actor=actor, action="credits.topup", target=f"tenant:{tenant_id}", at=now,
            details={"amount": amount, "description": text}))
        uow.commit()
        return after, entries[-1]

    return retry_on_conflict(uow, attempt, attempts=MAX_ATTEMPTS, message="The credit account is busy; retry.")


def balances(uow: UnitOfWork, tenant_id: str) -> CreditAccount:
    """Seed 004's balances, live: a delta's credits count as reserved from the moment it is accepted."""
    return uow.credits.position(tenant_id).balances()


def entries(uow: UnitOfWork, tenant_id: str, *, limit: int, cursor: str | None, page: int) -> Page[LedgerEntry]:
    """Newest first; ``total`` from the account's entry counter (no counting reads). Entries are numbered
    without gaps, so a bare ``page`` number is read directly; ``cursor`` resumes where a page ended."""
    return uow.credits.entries(tenant_id, limit, cursor, page=page)
