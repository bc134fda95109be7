"""Prepaid credits (seed 004, escrowed holds and settlements) as properties: random topup/accept/seal/post/fail runs.

The model is in ``chalicelib/domain/credits.py``: acceptance *holds* credits on one of ``HOLD_LANES``
escrow lanes (conditional ADDs, no ledger entry, no conflict with other acceptances); a verification seal
*settles* its holds on one lane too (``stage_settlement``: ADDs of ``Settled(credits, released, deltas,
seals=1)``, no account update, no entry, no read — it never conflicts); the ledger's writers — top-ups,
the settlement poster (``post_settlements``), failures (``stage_refund``), the lanes' consolidation —
first *post* what happened since the last posting (the holds as one ``reservation`` entry, the lanes'
settlements as one ``settlement`` and one ``release`` entry, the released credits into the pool), then
their own moves, on one account update conditioned on the entry count they read.

Every run goes through the services over a unit of work (``FakeCreditRepository``, and in the lockstep
and scripted tests ``DynamoCreditRepository`` under moto) and is checked against a reference model that
knows every accepted delta's hold and every seal individually and resolves each hold at most once (a
seal settles the catalogue's volume rate of what its holds reserved and releases the rest; a failure
refunds its hold), each lane's cumulative ``Settled`` and what a ledger writer reading now posts (the
holds and the settlements committed so far). After EVERY step::

    creditBalance     = Σ topup - Σ settled (posted or not)    (live: the ledger's less the unposted settled)
    creditBalance     = pool + Σ lane.free + reserved + unposted released   (every credit in one place)
    pool ≥ 0, every lane.free ≥ 0
    availableBalance  = creditBalance - reserved ≥ 0                        (never overspent)
    spendable         = pool + Σ lane.free = availableBalance - unposted released   (what a hold may use)
    reserved          = Σ lane.held_total - refunded - Σ lane settled+released = Σ the model's open holds
    lane.settled      = Σ the seals committed on that lane; posted = each lane as the last posting read it
    unposted          = Σ holds and Σ settlements committed since the last ledger writer read the position
    entry ids         = 1..n in commit order; each balanceAfter follows from replaying the entries before it
    last balanceAfter = the ledger's available = availableBalance + unposted holds - unposted released

after a posting with nothing racing it: unposted holds 0, unposted settled ``Settled()``, the ledger equal
to the live balances; per seal: settled + released = Σ what its holds reserved.

Races: a *stale* writer stages on a position read before another operation commits. A ledger writer
(top-up, posting, failure) then conflicts (``ConcurrentWriteError``, nothing changes) exactly when that
operation wrote the ledger — holds and seals never conflict with it; the retried top-up posts at the new
read, the retried posting finds its seals posted and writes nothing. A seal never conflicts. A hold
conflicts exactly when its lane's or the pool's condition really fails at commit. When only a
consolidation can pay a hold (the lanes scattered, or the credits waiting in unposted releases) it drains
the lanes and posts in a commit of its own and the caller reads again (as ingest does). 1,000 threads
holding against one exact balance accept exactly ``balance // cost``; concurrent seals and posters post
every seal exactly once.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chalicelib.domain.credits import (
    HOLD_LANES,
    MAX_TOPUP,
    CreditAccount,
    CreditPosition,
    EntryType,
    HoldLane,
    HoldPlan,
    InsufficientCreditsError,
    LedgerEntry,
    Settled,
    apply,
    entry_id_for,
    plan_hold,
)
from chalicelib.domain.errors import ConcurrentWriteError, ValidationError
from chalicelib.domain.plans import CREDITS_VOLUME_RATE, VolumeRate
from chalicelib.services import credits as credit_service
from chalicelib.services.ports import UnitOfWork
from tests.fakes import FakeCreditRepository, FakeStore, FakeUnitOfWork
from tests.ledger import replay_ledger as shared_replay
from tests.unit.builders import NOW, tenant

TENANT = "2"
TOPUP_TEXT = "Manual credit top-up"

Move = tuple[EntryType, int, str | None]  # expected move: type, amount > 0, description (None: not compared)


def hold_or_consolidate(uow, position, amount: int, deltas: int, *, lane: int | None = None):
    """What ingest does with a hold: stage it, or consolidate (drain the scattered lanes, post the releases)
    in a commit of its own and raise (a ConcurrentWriteError: read again and plan again)."""
    try:
        return credit_service.stage_hold(uow, position, amount, deltas, lane=lane)
    except credit_service.LanesScatteredError as scattered:
        credit_service.consolidate_lanes(uow, position.tenant_id, scattered.drain, now=NOW)
        raise


def credit_uow(store: FakeStore) -> FakeUnitOfWork:
    uow = FakeUnitOfWork(store)
    uow.credits = FakeCreditRepository(uow)
    return uow


def all_entries(uow: UnitOfWork, tenant_id: str = TENANT, limit: int = 7) -> list[LedgerEntry]:
    """Every entry through the service's cursor paging (newest first), checking its total."""
    found: list[LedgerEntry] = []
    cursor = None
    while True:
        page = credit_service.entries(uow, tenant_id, limit=limit, cursor=cursor, page=1)
        assert page.total == uow.credits.account(tenant_id).entry_count
        assert len(page.items) <= limit
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def replay_ledger(entries: list[LedgerEntry], ledger: CreditAccount) -> None:
    """Every entry is this tenant's and signed as seed 004 shows it; then the shared replay
    (``tests/ledger.py``): ids 1..n in commit order, each balanceAfter from the entries before it."""
    for entry in entries:
        assert entry.tenant_id == TENANT
        if entry.entry_type in (EntryType.TOPUP, EntryType.RELEASE, EntryType.REFUND):
            assert entry.amount > 0
        else:  # reservation, settlement
            assert entry.amount < 0
    shared_replay(entries, ledger)


def lanes_free(position: CreditPosition) -> int:
    return sum(lane.free for lane in position.lanes)


def held(position: CreditPosition) -> tuple[int, int]:
    return sum(lane.held_total for lane in position.lanes), sum(lane.held_deltas for lane in position.lanes)


def covers(more: Settled, less: Settled) -> bool:
    """Every counter of ``more`` at least ``less``'s (lanes' settlements only grow)."""
    return all(a >= b for a, b in zip((more.credits, more.released, more.deltas, more.seals),
                                      (less.credits, less.released, less.deltas, less.seals), strict=True))


def hold_commits(plan: HoldPlan, amount: int, now: CreditPosition) -> bool:
    """Whether ``DynamoCreditRepository.hold``'s conditions pass against the position ``now``."""
    short = amount - plan.refill
    return (short <= 0 or now.free(plan.lane) >= short) and (not plan.refill or now.pool >= plan.refill)


def drained(position: CreditPosition, drain: dict[int, int]) -> CreditPosition:
    """``position`` after ``drain`` (lane → credits) moved back into the pool."""
    lanes = tuple(replace(lane, free=lane.free - drain.get(lane.index, 0)) for lane in position.lanes)
    return replace(position, pool=position.pool + sum(drain.values()), lanes=lanes)


def sealed_on(position: CreditPosition, lane: int, settled: Settled) -> CreditPosition:
    """``position`` after a seal's ``settled`` was added to ``lane`` (created if it did not exist)."""
    lanes = {item.index: item for item in position.lanes}
    item = lanes.get(lane, HoldLane(lane))
    lanes[lane] = replace(item, settled=item.settled + settled)
    return replace(position, lanes=tuple(lanes[i] for i in sorted(lanes)))


def posted_position(read: CreditPosition, ledger: CreditAccount, *, pool: int = 0, resolved: int = 0) -> CreditPosition:
    """``read`` after a ledger writer that read it committed (nothing racing): ``ledger`` written, the holds
    and the lanes' settlements as read posted, the released credits (and ``pool``) in the pool."""
    unposted = read.unposted_settled
    return replace(
        read, ledger=ledger, pool=read.pool + unposted.released + pool, resolved=read.resolved + resolved,
        posted_deltas=read.posted_deltas + (read.unposted_deltas if read.unposted > 0 else 0),
        posted=tuple((lane.index, lane.settled) for lane in read.lanes) if unposted != Settled() else read.posted)


def _plural(count: int) -> str:
    return "s" if count != 1 else ""


def sealed_text(settled: Settled) -> str:
    batches = "batch" if settled.seals == 1 else "batches"
    return f"{settled.deltas} delta{_plural(settled.deltas)} in {settled.seals} {batches}"


def reservation_text(deltas: int) -> str:
    return f"Credits reserved for pending verifications — {deltas} delta{_plural(deltas)}"


def settlement_text(settled: Settled) -> str:
    return f"Verification settled — {sealed_text(settled)}"


def release_text(settled: Settled) -> str:
    return (f"Volume rate: {settled.released} of {settled.resolved} reserved credits released — "
            f"{sealed_text(settled)}")


SEALED = re.compile(r"— (\d+) deltas? in (\d+) batch(?:es)?$")


def sealed_counts(description: str) -> tuple[int, int]:
    """(deltas, seals) a settlement or release entry names."""
    found = SEALED.search(description)
    assert found, description
    return int(found[1]), int(found[2])


# --- the reference model ------------------------------------------------------------------------


class AlreadyResolved(AssertionError):
    """The model refuses to resolve a hold twice."""


@dataclass
class Hold:
    """One accepted delta's hold (its ``credits_reserved``)."""

    hid: int
    amount: int
    resolved_by: str | None = None
    claimed: bool = False  # a stale writer staged its resolution: no other step may pick it meanwhile


@dataclass(frozen=True)
class Seal:
    lane: int
    holds: tuple[int, ...]  # hold ids
    reserved: int
    settled: Settled


@dataclass(frozen=True)
class Mark:
    """What a ledger writer reading the position now will post: the holds committed so far and every lane's
    seals (the lanes that exist, as the posting records them)."""

    held_total: int
    held_deltas: int
    lanes: tuple[tuple[int, Settled], ...]


@dataclass(frozen=True)
class Expected:
    entry_id: str
    entry_type: EntryType
    amount: int  # signed, as listed
    balance_after: int
    description: str | None  # None: not compared


@dataclass
class Model:
    """What must be true, step by step: each hold and each seal individually, the cumulative counters the
    position keeps, and the posted ledger moved by the pure domain ``apply`` in commit order."""

    topups: int = 0
    holds: dict[int, Hold] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=itertools.count)
    held_total: int = 0  # Σ every hold committed
    held_deltas: int = 0
    posted_total: int = 0  # Σ holds posted as reservation entries
    posted_deltas: int = 0
    refunded: int = 0  # Σ holds refunded
    lanes: dict[int, Settled] = field(default_factory=dict)  # every lane that exists: its seals so far
    posted: dict[int, Settled] = field(default_factory=dict)  # each lane's seals the last posting posted
    seals: list[Seal] = field(default_factory=list)
    ledger: CreditAccount = field(default_factory=lambda: CreditAccount(tenant_id=TENANT))
    log: list[Expected] = field(default_factory=list)  # every entry, in commit order

    @property
    def settled(self) -> Settled:
        return sum(self.lanes.values(), Settled())

    @property
    def unposted_settled(self) -> Settled:
        return self.settled - sum(self.posted.values(), Settled())

    @property
    def balance(self) -> int:
        return self.topups - self.settled.credits

    def open(self) -> list[Hold]:
        return [h for h in self.holds.values() if h.resolved_by is None]

    def pickable(self) -> list[Hold]:
        return [h for h in self.open() if not h.claimed]

    @property
    def reserved(self) -> int:
        return sum(h.amount for h in self.open())

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    @property
    def spendable(self) -> int:
        """What a hold may use now: the released credits wait for a posting."""
        return self.available - self.unposted_settled.released

    @property
    def unposted(self) -> int:
        return self.held_total - self.posted_total

    def hold(self, deltas: int, cost: int, lane: int) -> None:
        for _ in range(deltas):
            hold = Hold(next(self.ids), cost)
            self.holds[hold.hid] = hold
        self.held_total += deltas * cost
        self.held_deltas += deltas
        self.lanes.setdefault(lane, Settled())

    def resolve(self, holds: list[Hold], how: str) -> None:
        if any(h.resolved_by is not None for h in holds):
            raise AlreadyResolved(f"already resolved: {[h.hid for h in holds if h.resolved_by]}")
        assert len({h.hid for h in holds}) == len(holds)
        for hold in holds:
            hold.resolved_by = how

    def seal(self, holds: list[Hold], lane: int, settled: Settled) -> None:
        """A seal on ``lane``: its holds resolved once, ``settled`` added to the lane."""
        reserved = sum(h.amount for h in holds)
        assert settled.resolved == reserved and settled.deltas == len(holds) and settled.seals == 1
        assert 0 <= settled.credits <= reserved and settled.released >= 0
        self.resolve(holds, "sealed")
        self.lanes[lane] = self.lanes.get(lane, Settled()) + settled
        self.seals.append(Seal(lane, tuple(h.hid for h in holds), reserved, settled))

    def refund(self, hold: Hold) -> None:
        self.resolve([hold], "refunded")
        self.refunded += hold.amount

    def mark(self) -> Mark:
        """What a ledger writer reading the position now will post: the holds and the seals committed so far."""
        return Mark(self.held_total, self.held_deltas, tuple(sorted(self.lanes.items())))

    def pending(self, lanes: set[int]) -> bool:
        """Whether ``post_settlements`` on ``lanes`` finds seals to post."""
        return any(self.posted.get(lane, Settled()).seals < self.lanes.get(lane, Settled()).seals for lane in lanes)

    def post(self, mark: Mark, moves: list[Move]) -> list[Expected]:
        """A ledger writer that read at ``mark`` commits: the reservation (if any), the settlement and the
        release of the seals posted since the last posting (each if not zero), then ``moves``."""
        assert mark.held_total >= self.posted_total
        todo: list[Move] = []
        if mark.held_total > self.posted_total:
            todo.append((EntryType.RESERVATION, mark.held_total - self.posted_total,
                         reservation_text(mark.held_deltas - self.posted_deltas)))
            self.posted_total, self.posted_deltas = mark.held_total, mark.held_deltas
        read = dict(mark.lanes)
        assert all(covers(read.get(lane, Settled()), settled) for lane, settled in self.posted.items())
        unposted = sum(read.values(), Settled()) - sum(self.posted.values(), Settled())
        if unposted.credits:
            todo.append((EntryType.SETTLEMENT, unposted.credits, settlement_text(unposted)))
        if unposted.released:
            todo.append((EntryType.RELEASE, unposted.released, release_text(unposted)))
        if unposted != Settled():
            self.posted = read
        out = []
        for entry_type, amount, description in todo + list(moves):
            self.ledger, signed = apply(self.ledger, entry_type, amount)
            out.append(Expected(entry_id_for(self.ledger.entry_count), entry_type, signed, self.ledger.available,
                                description))
        self.log.extend(out)
        return out


# --- the harness: the services, the model, every invariant ---------------------------------------


def matches(entries: list[LedgerEntry], expected: list[Expected]) -> None:
    assert len(entries) == len(expected), (entries, expected)
    for entry, want in zip(entries, expected, strict=True):
        assert entry.tenant_id == TENANT
        got = (entry.entry_id, entry.entry_type, entry.amount, entry.balance_after)
        assert got == (want.entry_id, want.entry_type, want.amount, want.balance_after), (entry, want)
        if want.description is not None:
            assert entry.description == want.description, (entry, want)


@dataclass
class Interleaved:
    """What happened when a stale writer's first commit let another operation run first."""

    ran: bool = False
    conflicted: bool = False
    wrote_ledger: bool = False  # the intervening operation moved the ledger
    mark: Mark | None = None  # the model's mark right after it


class Harness:
    """One tenant's credits, driven through the services on units of work from ``new_uow`` (each step a
    new one, like a request), checked against :class:`Model` after every step."""

    def __init__(self, new_uow: Callable[[], Any], *, fake: bool, page: int = 100) -> None:
        self.new_uow, self.fake, self.page = new_uow, fake, page
        seed = new_uow()
        seed.tenants.add(tenant(TENANT))
        seed.commit()
        self.model = Model()
        self.now = NOW
        self.seals: list[tuple[int, int, int]] = []  # (deltas, reserved, settled)
        self.stats: Counter[str] = Counter()

    def uow(self) -> Any:
        return self.new_uow()

    def tick(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def position(self) -> CreditPosition:
        return self.uow().credits.position(TENANT)

    def entries(self, uow: Any = None, limit: int | None = None) -> list[LedgerEntry]:
        """Oldest first, through the service's listing."""
        return list(reversed(all_entries(uow or self.uow(), limit=limit or self.page)))

    def snapshot(self) -> tuple[CreditPosition, list[tuple]]:
        """Everything stored for the tenant's credits: the position and every entry."""
        uow = self.uow()
        return uow.credits.position(TENANT), [
            (e.entry_id, e.entry_type, e.amount, e.balance_after, e.description, e.created_at)
            for e in self.entries(uow)]

    # --- invariants ---
    def check_invariants(self) -> None:
        model, uow = self.model, self.uow()
        position = uow.credits.position(TENANT)
        live = credit_service.balances(uow, TENANT)
        lanes = position.lanes
        assert live == position.balances() == CreditAccount(TENANT, model.balance, model.reserved,
                                                            model.ledger.entry_count)
        assert [lane.index for lane in lanes] == sorted(model.lanes)  # every lane a hold or a seal used
        assert all(0 <= lane.index < HOLD_LANES for lane in lanes)
        # the seals, lane by lane, and what the last posting read of them
        assert {lane.index: lane.settled for lane in lanes} == model.lanes
        assert position.settled == model.settled and position.unposted_settled == model.unposted_settled
        assert position.posted == tuple(sorted(model.posted.items()))
        assert all(covers(position.settled_on(lane), settled) for lane, settled in position.posted)
        assert all(position.posted_on(lane.index) == model.posted.get(lane.index, Settled()) for lane in lanes)
        # the model's own books: every hold resolved at most once, by one seal or one refund
        sealed = [hid for seal in model.seals for hid in seal.holds]
        assert len(sealed) == len(set(sealed)) == model.settled.deltas and len(model.seals) == model.settled.seals
        assert sum(model.holds[hid].amount for hid in sealed) == model.settled.resolved
        assert all(model.holds[hid].resolved_by == "sealed" for hid in sealed)
        assert sum(h.amount for h in model.holds.values() if h.resolved_by == "refunded") == model.refunded
        assert all(seal.settled.resolved == seal.reserved for seal in model.seals)
        # every credit in one place, never overspent
        unposted_released = model.unposted_settled.released
        assert live.credit_balance == model.topups - model.settled.credits
        assert position.pool >= 0 and all(lane.free >= 0 and lane.held_total >= 0 for lane in lanes)
        assert live.credit_balance == position.pool + lanes_free(position) + live.reserved + unposted_released
        assert live.available == live.credit_balance - live.reserved == position.available == model.available >= 0
        assert position.spendable == position.pool + lanes_free(position) == live.available - unposted_released
        assert position.spendable == model.spendable >= 0
        # reserved = the open holds
        assert live.reserved == position.reserved == model.reserved
        assert model.reserved == model.held_total - model.refunded - model.settled.resolved
        assert held(position) == (model.held_total, model.held_deltas)
        assert (position.resolved, position.posted_deltas) == (model.refunded, model.posted_deltas)
        # the ledger trails the holds and the seals by exactly what happened since the last posting
        posted = model.settled - model.unposted_settled
        assert 0 <= position.ledger.reserved == model.posted_total - model.refunded - posted.resolved
        assert position.ledger.reserved <= live.reserved + model.unposted_settled.resolved
        assert position.ledger.credit_balance == model.topups - posted.credits
        assert position.unposted == model.unposted >= 0
        assert position.unposted_deltas == model.held_deltas - model.posted_deltas >= 0
        assert position.ledger == model.ledger
        # the entries: numbered in commit order, each balanceAfter exact, as the model expects
        entries = self.entries(uow)
        replay_ledger(entries, position.ledger)
        matches(entries, model.log)
        if entries:
            assert entries[-1].balance_after == position.ledger.available
        assert position.ledger.available == live.available + position.unposted - unposted_released
        total = Counter()
        for entry in entries:
            total[entry.entry_type] += entry.amount
        assert total[EntryType.TOPUP] == model.topups and -total[EntryType.RESERVATION] == model.posted_total
        assert (-total[EntryType.SETTLEMENT], total[EntryType.RELEASE]) == (posted.credits, posted.released)
        assert total[EntryType.REFUND] == model.refunded
        for kind in (EntryType.SETTLEMENT, EntryType.RELEASE):  # each seal's deltas posted once, in one batch
            named = [sealed_counts(e.description) for e in entries if e.entry_type == kind]
            assert sum(deltas for deltas, _seals in named) <= posted.deltas
            assert sum(seals for _deltas, seals in named) <= posted.seals

    def assert_all_posted(self) -> None:
        """Right after a ledger writer committed (nothing raced it): nothing unposted, the ledger current."""
        uow = self.uow()
        position = uow.credits.position(TENANT)
        assert (position.unposted, position.unposted_deltas, position.unposted_settled) == (0, 0, Settled())
        assert position.ledger == position.balances()
        assert position.spendable == position.available
        assert self.entries(uow)[-1].balance_after == position.balances().available

    def assert_unchanged(self, before: tuple, call: Callable[[], object], error: type[Exception]) -> None:
        with pytest.raises(error):
            call()
        assert self.snapshot() == before

    def interleave(self, uow: Any, intervening: tuple) -> Interleaved:
        """Make ``uow``'s first commit run ``intervening`` first (between the stale writer's read and its
        commit), and check that a conflict changes nothing; later commits (the service's retries) go through."""
        state = Interleaved()
        commit = uow.commit

        def first_commit_late() -> None:
            if state.ran:
                return commit()
            state.ran = True
            count = self.model.ledger.entry_count
            self.run(intervening)
            state.wrote_ledger, state.mark = self.model.ledger.entry_count != count, self.model.mark()
            before = self.snapshot()
            try:
                return commit()
            except ConcurrentWriteError:
                state.conflicted = True
                assert self.snapshot() == before  # nothing it staged landed
                raise

        uow.commit = first_commit_late
        return state

    # --- operations ---
    def topup(self, amount: int) -> None:
        read, mark = self.position(), self.model.mark()
        after, entry = credit_service.topup(self.uow(), TENANT, amount, actor="user:test", now=self.tick())
        self.model.topups += amount
        expected = self.model.post(mark, [(EntryType.TOPUP, amount, TOPUP_TEXT)])
        matches([entry], expected[-1:])
        assert after == self.model.ledger
        assert self.position() == posted_position(read, after, pool=amount)
        self.assert_all_posted()

    def bad_topup(self, amount: int) -> None:
        self.assert_unchanged(self.snapshot(), lambda: credit_service.topup(
            self.uow(), TENANT, amount, actor="user:test", now=self.tick()), ValidationError)

    def consolidated(self, uow: Any, read: CreditPosition, drain: dict[int, int], mark: Mark) -> None:
        """``consolidate_lanes`` committed on its own: ``drain``'s lanes into the pool, and, when settlements
        were unposted (releases may wait for a posting), posted everything it read (``read``: the position
        right before it); else the holds stay for the ledger's next writer. Returns whether it posted."""
        posts = read.unposted_settled != Settled()
        expected = self.model.post(mark, []) if posts else []
        writes = len(drain) + len(expected) + (1 if drain or expected else 0)  # lanes, account, entries
        if self.fake:
            assert uow.committed == ([writes] if writes else [])
        after = posted_position(drained(read, drain), self.model.ledger) if posts else drained(read, drain)
        assert self.position() == after
        self.stats["drains" if drain else "release postings"] += 1
        return posts

    def accept(self, deltas: int, cost: int, lane: int) -> bool:
        """Ingest's hold for a chunk of ``deltas`` deltas at ``cost`` credits: read, plan, commit; after a
        consolidation, read again and retry. Refused exactly when the model's available cannot pay."""
        amount = deltas * cost
        for attempt in range(2):
            uow = self.uow()
            position, mark = uow.credits.position(TENANT), self.model.mark()
            before = self.snapshot()
            try:
                plan = hold_or_consolidate(uow, position, amount, deltas, lane=lane)
            except InsufficientCreditsError:
                assert self.model.available < amount
                assert self.snapshot() == before
                self.stats["refused"] += 1
                return False
            except ConcurrentWriteError:  # consolidated: read again and re-plan
                assert attempt == 0, "one consolidation leaves the pool able to pay"
                drain = plan_hold(position, amount, lane).drain
                assert drain == {item.index: item.free for item in position.lanes if item.free > 0}
                assert drain or self.model.spendable < amount <= self.model.available  # it waits in releases
                if self.consolidated(uow, position, drain, mark):
                    self.assert_all_posted()
                assert lanes_free(self.position()) == 0 and self.position().pool == self.model.spendable
                self.check_invariants()
                continue
            assert self.model.available >= amount, "a hold beyond the available balance was staged"
            assert plan_hold(position, amount, lane).drain is None
            uow.commit()
            if self.fake:
                assert uow.committed == [2 if plan.refill else 1]  # the lane (+ the pool): no ledger entry
            self.model.hold(deltas, cost, plan.lane)
            assert self.position() == credit_service.after_hold(position, plan, amount, deltas)
            self.stats["refills" if plan.refill else "holds"] += 1
            return True
        raise AssertionError("unreachable")

    def choose(self, start: int, count: int, step: int) -> list[Hold]:
        waiting = self.model.pickable()
        return waiting[start % len(waiting)::step][:count] if waiting else []

    def check_seal(self, holds: list[Hold], settled: Settled) -> int:
        reserved = sum(h.amount for h in holds)
        actual = CREDITS_VOLUME_RATE.charge(reserved, len(holds))
        assert settled == Settled(credits=actual, released=reserved - actual, deltas=len(holds), seals=1)
        assert settled.credits + settled.released == reserved  # every credit held, settled or released
        if len(holds) >= CREDITS_VOLUME_RATE.min_deltas and reserved >= 10:
            assert settled.released > 0
        self.seals.append((len(holds), reserved, actual))
        self.stats["volume-rate seals" if settled.released else "seals"] += 1
        return reserved

    def stage_seal(self, uow: Any, holds: list[Hold], lane: int) -> Settled:
        reserved = sum(h.amount for h in holds)
        return credit_service.stage_settlement(uow, TENANT, reserved=reserved, deltas=len(holds), lane=lane)

    def seal(self, holds: list[Hold], lane: int) -> None:
        """Verification: the seal's settlement and release ADDed to ``lane`` — one write, no entry, no read of
        the account — and the live balances move at once: spent the actual cost, the holds no longer reserved.
        The released credits are available but not spendable until a posting."""
        uow, read = self.uow(), self.position()
        settled = self.stage_seal(uow, holds, lane)
        uow.commit()
        if self.fake:
            assert uow.committed == [1]  # the lane alone
        reserved = self.check_seal(holds, settled)
        self.model.seal(holds, lane, settled)
        position = self.position()
        assert position == sealed_on(read, lane, settled)
        was, now = read.balances(), position.balances()
        assert (now.credit_balance, now.reserved, now.available, now.entry_count) == (
            was.credit_balance - settled.credits, was.reserved - reserved, was.available + settled.released,
            was.entry_count)
        assert position.ledger == read.ledger and position.spendable == read.spendable

    def post(self, lanes: tuple[int, ...]) -> None:
        """The settlement poster (after a verifier run): posts everything when a seal on ``lanes`` is unposted,
        else writes nothing."""
        uow, read, mark, before = self.uow(), self.position(), self.model.mark(), self.snapshot()
        pending = self.model.pending(set(lanes))
        wrote = credit_service.post_settlements(uow, TENANT, set(lanes), now=self.tick())
        assert wrote == pending
        if not wrote:
            assert self.snapshot() == before
            if self.fake:
                assert uow.committed == []
            self.stats["nothing to post"] += 1
            return
        expected = self.model.post(mark, [])
        assert [e.entry_type for e in expected if e.entry_type != EntryType.RESERVATION] in (
            [EntryType.SETTLEMENT], [EntryType.SETTLEMENT, EntryType.RELEASE])
        if self.fake:
            assert uow.committed == [1 + len(expected)]  # one account update and its entries
        assert self.position() == posted_position(read, self.model.ledger)
        self.assert_all_posted()
        self.stats["postings"] += 1

    def fail(self, hold: Hold) -> None:
        """Verification failed: the hold refunded to the pool (after posting everything not yet posted)."""
        text = f"Verification failed — hold {hold.hid}"
        uow, read, mark = self.uow(), self.position(), self.model.mark()
        after, entries = credit_service.stage_refund(uow, TENANT, hold.amount, text, now=self.tick())
        uow.commit()
        if self.fake:
            assert uow.committed == [1 + len(entries)]
        expected = self.model.post(mark, [(EntryType.REFUND, hold.amount, text)])
        self.model.refund(hold)
        matches(entries, expected)
        assert after == self.model.ledger
        assert self.position() == posted_position(read, after, pool=hold.amount, resolved=hold.amount)
        self.assert_all_posted()

    def over(self, extra: int) -> None:
        """Refunding more than is held (a hold resolved twice, say) is refused before anything is staged."""
        amount = self.model.reserved + extra
        uow, before = self.uow(), self.snapshot()
        with pytest.raises(ValidationError) as refused:
            credit_service.stage_refund(uow, TENANT, amount, "too much", now=self.now)
        assert refused.value.code == "RESERVATION_EXCEEDED"
        uow.commit()  # nothing was staged
        assert self.snapshot() == before

    def stale_ledger_writer(self, writer: tuple, intervening: tuple) -> None:
        """A ledger writer reads, ``intervening`` commits (or not), then it commits: a conflict (and nothing
        changed) exactly when the intervening operation wrote the ledger; otherwise it posts what it read,
        and what committed after its read is left for the next writer."""
        name, *args = writer
        uow, read, mark = self.uow(), self.position(), self.model.mark()
        if name == "topup":
            state = self.interleave(uow, intervening)
            after, entry = credit_service.topup(uow, TENANT, args[0], actor="user:test", now=self.tick())
            assert state.ran and state.conflicted == state.wrote_ledger
            self.model.topups += args[0]
            expected = self.model.post(state.mark if state.conflicted else mark,  # the retry read again
                                       [(EntryType.TOPUP, args[0], TOPUP_TEXT)])
            matches([entry], expected[-1:])
            assert after == self.model.ledger
        elif name == "post":
            lanes, pending = set(args[0]), self.model.pending(set(args[0]))
            state = self.interleave(uow, intervening)
            wrote = credit_service.post_settlements(uow, TENANT, lanes, now=self.tick())
            if not state.ran:  # nothing to post on its lanes at its read: no commit at all
                assert not pending and not wrote
                self.stats["stale posting without seals"] += 1
                return self.run(intervening)
            assert pending and state.conflicted == state.wrote_ledger
            assert wrote == (not state.conflicted)  # the retry finds its seals posted by the intervening writer
            if wrote:
                self.model.post(mark, [])
        else:  # fail
            waiting = self.model.pickable()
            if not waiting:
                return self.run(intervening)
            hold = waiting[args[0] % len(waiting)]
            text = f"Verification failed — hold {hold.hid}"
            hold.claimed = True  # its delta's condition keeps any other resolution out
            after, entries = credit_service.stage_refund(uow, TENANT, hold.amount, text, now=self.tick())
            count = self.model.ledger.entry_count
            self.run(intervening)
            hold.claimed = False
            state = Interleaved(ran=True, wrote_ledger=self.model.ledger.entry_count != count)
            if state.wrote_ledger:
                self.assert_unchanged(self.snapshot(), uow.commit, ConcurrentWriteError)
                state.conflicted = True
            else:
                uow.commit()
                expected = self.model.post(mark, [(EntryType.REFUND, hold.amount, text)])
                self.model.refund(hold)
                matches(entries, expected)
                assert after == self.model.ledger
        self.stats["stale writer conflicts" if state.conflicted else "stale writer commits"] += 1
        if not state.conflicted:  # what was held or sealed after its read is left for the next writer
            position = self.position()
            assert position.unposted == self.model.held_total - mark.held_total
            assert position.unposted_settled == self.model.settled - sum(dict(mark.lanes).values(), Settled())
            assert dict(position.posted) == dict(mark.lanes) or read.unposted_settled == Settled()
        return None

    def stale_seal(self, start: int, count: int, step: int, lane: int, intervening: tuple) -> None:
        """A seal staged, ``intervening`` committed, then the seal: it never conflicts (ADDs, no account)."""
        holds = self.choose(start, count, step)
        if not holds:
            return self.run(intervening)
        for hold in holds:
            hold.claimed = True
        uow = self.uow()
        settled = self.stage_seal(uow, holds, lane)
        self.run(intervening)
        for hold in holds:
            hold.claimed = False
        before = self.position()
        uow.commit()
        if self.fake:
            assert uow.committed == [1]
        self.check_seal(holds, settled)
        self.model.seal(holds, lane, settled)
        assert self.position() == sealed_on(before, lane, settled)
        self.stats["stale seal commits"] += 1
        return None

    def stale_hold(self, deltas: int, cost: int, lane: int, intervening: tuple) -> None:
        """Read, let ``intervening`` run, then plan and commit the hold on the stale read: it commits exactly
        when the lane's (and on a refill the pool's) condition holds now; a consolidation planned on the stale
        read drains exactly when the lanes still have those credits, and posts what it reads then. After a
        conflict or a consolidation, ingest reads again and retries."""
        amount = deltas * cost
        uow = self.uow()
        stale, stale_available = uow.credits.position(TENANT), self.model.available
        self.run(intervening)
        current, before, mark = self.position(), self.snapshot(), self.model.mark()
        if stale_available < amount:
            self.assert_unchanged(before, lambda: hold_or_consolidate(uow, stale, amount, deltas, lane=lane),
                                  InsufficientCreditsError)
            return
        plan = plan_hold(stale, amount, lane)
        if plan.drain is not None:
            with pytest.raises(ConcurrentWriteError):
                hold_or_consolidate(uow, stale, amount, deltas, lane=lane)
            if all(current.free(index) >= credits for index, credits in plan.drain.items()):
                self.consolidated(uow, current, plan.drain, mark)
                self.stats["stale consolidations"] += 1
            else:
                assert self.snapshot() == before
                self.stats["stale drain conflicts"] += 1
        else:
            assert hold_or_consolidate(uow, stale, amount, deltas, lane=lane) == plan
            if hold_commits(plan, amount, current):
                uow.commit()
                self.model.hold(deltas, cost, plan.lane)
                assert self.position() == credit_service.after_hold(current, plan, amount, deltas)
                self.stats["stale hold commits"] += 1
                return
            self.assert_unchanged(before, uow.commit, ConcurrentWriteError)
            self.stats["stale hold conflicts"] += 1
        self.check_invariants()
        self.accept(deltas, cost, lane)  # ingest reads again and retries

    # --- one step ---
    def share(self, operation: tuple) -> tuple:
        """``("share", percent, lane)``: one delta holding ``percent`` % of what is available now (at least 1)."""
        _name, percent, lane = operation
        return "accept", 1, max(1, self.model.available * percent // 100), lane

    def run(self, operation: tuple) -> None:
        if operation[0] == "share":
            operation = self.share(operation)
        name, *args = operation
        if name == "topup":
            self.topup(args[0])
        elif name == "bad_topup":
            self.bad_topup(args[0])
        elif name == "accept":
            self.accept(*args)
        elif name == "scatter":  # small holds on many lanes: the credits end up spread thin (then drains)
            deltas, cost, first, lanes = args
            for lane in range(first, first + lanes):
                self.run(("accept", deltas, cost, lane % HOLD_LANES))
        elif name == "seal":
            start, count, step, lane = args
            holds = self.choose(start, count, step)
            if holds:
                self.seal(holds, lane)
        elif name == "verify":  # a verifier run: a seal, then the posting of its lane
            start, count, step, lane = args
            holds = self.choose(start, count, step)
            if holds:
                self.seal(holds, lane)
                self.check_invariants()
                self.post((lane,))
        elif name == "spend_releases":  # seal, then hold all that is available: the release must be posted first
            start, count, lane, other = args
            holds = self.choose(start, count, 1)
            if holds:
                self.seal(holds, lane)
                self.check_invariants()
            if self.model.available:
                self.accept(1, self.model.available, other)
        elif name == "post":
            self.post(args[0])
        elif name == "fail":
            waiting = self.model.pickable()
            if waiting:
                self.fail(waiting[args[0] % len(waiting)])
        elif name == "over":
            self.over(*args)
        elif name == "stale":
            writer, intervening = args
            if writer[0] == "share":
                writer = self.share(writer)
            if writer[0] == "accept":
                self.stale_hold(*writer[1:], intervening)
            elif writer[0] == "seal":
                self.stale_seal(*writer[1:], intervening)
            else:
                self.stale_ledger_writer(writer, intervening)
        else:
            raise AssertionError(name)
        self.check_invariants()


def fake_harness() -> Harness:
    store = FakeStore()
    return Harness(lambda: credit_uow(store), fake=True)


# --- random runs ----------------------------------------------------------------------------------

PICK = st.integers(0, 1_000)  # which open hold, modulo how many there are
LANE = st.integers(0, HOLD_LANES - 1)
SEAL_LANE = st.one_of(st.integers(0, 3), LANE)  # seals gather on a few lanes, so postings find them there
TOPUP = st.tuples(st.just("topup"), st.one_of(st.integers(1, 300), st.integers(1, 3_000)))
ACCEPT = st.one_of(  # deltas, credits each, lane picked
    st.tuples(st.just("accept"), st.one_of(st.integers(1, 10), st.integers(1, 100)),
              st.sampled_from([1, 1, 2, 3, 7, 20]), LANE),
    st.tuples(st.just("accept"), st.integers(40, 100), st.just(1), LANE),  # a batch: seals earn the volume rate
    st.tuples(st.just("accept"), st.integers(40, 100), st.just(1), LANE),
)
SEAL = st.tuples(st.just("seal"), PICK, st.one_of(st.integers(1, 90), st.integers(40, 90)),
                 st.sampled_from([1, 1, 1, 2, 3]), SEAL_LANE)  # first open hold, how many, every n-th, lane
VERIFY = st.tuples(st.just("verify"), PICK, st.one_of(st.integers(1, 90), st.integers(40, 90)),  # seal, then post
                   st.sampled_from([1, 1, 2]), LANE)
POST = st.tuples(st.just("post"), st.one_of(st.lists(st.integers(0, 3), max_size=3, unique=True).map(tuple),
                                            st.just(tuple(range(HOLD_LANES)))))
SPEND_RELEASES = st.tuples(st.just("spend_releases"), PICK, st.integers(40, 90), LANE, LANE)
FAIL = st.tuples(st.just("fail"), PICK)
SHARE = st.tuples(st.just("share"), st.one_of(st.integers(30, 110), st.integers(97, 100)), LANE)  # near exhaustion
SCATTER = st.tuples(st.just("scatter"), st.integers(1, 3), st.sampled_from([1, 2, 3, 7]), LANE, st.integers(4, 16))
SAME_LANE = LANE.flatmap(lambda lane: st.tuples(  # two holds racing on one lane's escrow
    st.just("stale"), *[st.tuples(st.just("accept"), st.integers(1, 30), st.sampled_from([1, 2, 3]), st.just(lane))
                        for _ in range(2)]))
# one_of picks a branch uniformly: listing a branch twice doubles its weight
STEP = st.one_of(TOPUP, ACCEPT, ACCEPT, SHARE, SEAL, SEAL, VERIFY, POST, FAIL)
OPERATIONS = st.one_of(
    TOPUP, TOPUP,
    st.tuples(st.just("bad_topup"), st.sampled_from([0, -1, -500, MAX_TOPUP + 1])),
    ACCEPT, ACCEPT, SCATTER, SHARE, SHARE,
    SEAL, SEAL, SEAL, VERIFY, VERIFY, POST, POST, SPEND_RELEASES,
    FAIL,
    st.tuples(st.just("over"), st.integers(1, 100)),
    st.tuples(st.just("stale"), st.one_of(TOPUP, POST, FAIL), STEP),
    st.tuples(st.just("stale"), SEAL, STEP),
    st.tuples(st.just("stale"), st.one_of(ACCEPT, SHARE), STEP), SAME_LANE,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2_000), st.lists(OPERATIONS, min_size=5, max_size=80))
def test_random_credit_runs_keep_every_invariant(opening, operations):
    harness = fake_harness()
    harness.check_invariants()
    if opening:
        harness.run(("topup", opening))
    for operation in operations:
        harness.run(operation)
    harness.run(("topup", 1))  # the next ledger writer posts everything
    # the listing pages by cursor as well as in one page
    assert harness.entries(limit=7) == harness.entries()
    for what in harness.stats:  # --hypothesis-show-statistics: how often each path ran
        event(what)


# --- targeted examples ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedCharge:
    """A volume rate charging ``credits`` whatever was held (seed 004's example settles 150 of 800)."""

    credits: int

    def charge(self, reserved: int, deltas: int) -> int:
        return self.credits


def test_seed_004_flow_hold_seal_post(monkeypatch):
    """Top up 10,000; hold 800; a seal settles 150 and releases the excess 650 (seed 004's "Understanding
    Credit Flow"): the hold is reserved live the moment it is accepted, the seal spends at once (one lane
    write, no entry), and the posting after it writes the reservation, the settlement and the release."""
    monkeypatch.setattr(credit_service, "CREDITS_VOLUME_RATE", FixedCharge(150))
    harness = fake_harness()
    harness.run(("topup", 10_000))
    harness.run(("accept", 8, 100, 0))  # 8 deltas of 100 credits
    live = credit_service.balances(harness.uow(), TENANT)
    assert (live.credit_balance, live.reserved, live.available, live.entry_count) == (10_000, 800, 9_200, 1)
    uow, holds = harness.uow(), harness.model.open()
    settled = credit_service.stage_settlement(uow, TENANT, reserved=800, deltas=8, lane=3)
    assert settled == Settled(credits=150, released=650, deltas=8, seals=1)
    uow.commit()
    assert uow.committed == [1]  # lane 3 alone
    harness.model.seal(holds, 3, settled)
    harness.check_invariants()
    live = credit_service.balances(harness.uow(), TENANT)
    assert (live.credit_balance, live.reserved, live.available, live.entry_count) == (9_850, 0, 9_850, 1)
    assert harness.position().spendable == 9_200  # the 650 released wait for the posting
    mark, poster = harness.model.mark(), harness.uow()
    assert credit_service.post_settlements(poster, TENANT, {3}, now=harness.tick())
    assert poster.committed == [1 + 3]  # the account update and three entries
    harness.model.post(mark, [])
    harness.check_invariants()
    harness.assert_all_posted()
    account = credit_service.balances(harness.uow(), TENANT)
    assert (account.credit_balance, account.reserved, account.available, account.entry_count) == (9_850, 0, 9_850, 4)
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in harness.entries()] == [
        (EntryType.TOPUP, 10_000, 10_000, TOPUP_TEXT),
        (EntryType.RESERVATION, -800, 9_200, "Credits reserved for pending verifications — 8 deltas"),
        (EntryType.SETTLEMENT, -150, 9_200, "Verification settled — 8 deltas in 1 batch"),
        (EntryType.RELEASE, 650, 9_850, "Volume rate: 650 of 800 reserved credits released — 8 deltas in 1 batch")]
    assert harness.position().pool == harness.position().spendable == 9_850
    assert not credit_service.post_settlements(harness.uow(), TENANT, {3}, now=harness.tick())  # nothing left


def test_the_worked_example_a_batch_of_100_sealed_as_90_and_10():
    """One customer's batch of 100 at 1 credit: held 100; the verifier seals 90 then 10 deltas, posting after
    each run. Posting 1 writes the 100 held, the 81 settled and the 9 released; posting 2 the 10 settled.
    Spent 91 of the 100 held."""
    harness = fake_harness()
    harness.run(("topup", 1_000))
    harness.run(("accept", 100, 1, 11))
    waiting = harness.model.open()
    harness.seal(waiting[:90], 1)
    harness.run(("post", (1,)))
    harness.seal(waiting[90:], 2)
    harness.run(("post", (2,)))
    assert harness.seals == [(90, 90, 81), (10, 10, 10)]
    account = credit_service.balances(harness.uow(), TENANT)
    assert (account.credit_balance, account.reserved, account.available, account.entry_count) == (909, 0, 909, 5)
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in harness.entries()[1:]] == [
        (EntryType.RESERVATION, -100, 900, "Credits reserved for pending verifications — 100 deltas"),
        (EntryType.SETTLEMENT, -81, 900, "Verification settled — 90 deltas in 1 batch"),
        (EntryType.RELEASE, 9, 909, "Volume rate: 9 of 90 reserved credits released — 90 deltas in 1 batch"),
        (EntryType.SETTLEMENT, -10, 909, "Verification settled — 10 deltas in 1 batch")]
    assert harness.position().pool + lanes_free(harness.position()) == 909


def test_many_seals_on_several_lanes_are_posted_as_one_settlement_and_one_release():
    harness = fake_harness()
    harness.run(("topup", 1_000))
    harness.run(("accept", 300, 1, 0))
    harness.run(("accept", 20, 2, 1))
    waiting = harness.model.open()
    for holds, lane in ((waiting[:50], 2), (waiting[50:95], 5), (waiting[95:100], 5), (waiting[100:190], 9),
                        (waiting[300:310], 2)):
        harness.seal(holds, lane)
        harness.check_invariants()
    assert harness.seals == [(50, 50, 45), (45, 45, 41), (5, 5, 5), (90, 90, 81), (10, 20, 20)]
    live = credit_service.balances(harness.uow(), TENANT)
    assert (live.credit_balance, live.reserved, live.available, live.entry_count) == (808, 130, 678, 1)
    assert harness.position().unposted_settled == Settled(credits=192, released=18, deltas=200, seals=5)
    harness.run(("post", (5,)))  # any of the lanes: the posting posts every lane's seals
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in harness.entries()[1:]] == [
        (EntryType.RESERVATION, -340, 660, "Credits reserved for pending verifications — 320 deltas"),
        (EntryType.SETTLEMENT, -192, 660, "Verification settled — 200 deltas in 5 batches"),
        (EntryType.RELEASE, 18, 678, "Volume rate: 18 of 210 reserved credits released — 200 deltas in 5 batches")]
    assert sum(actual for _deltas, _reserved, actual in harness.seals) == 192
    assert sum(reserved - actual for _deltas, reserved, actual in harness.seals) == 18
    position = harness.position()
    assert position.posted == ((0, Settled()), (1, Settled()), (2, Settled(65, 5, 60, 2)), (5, Settled(46, 4, 50, 2)),
                               (9, Settled(81, 9, 90, 1)))
    for lanes in ((2,), (9,), (0, 1), tuple(range(HOLD_LANES))):  # every seal is posted: nothing more to write
        harness.run(("post", lanes))
    assert harness.stats["nothing to post"] == 4 and len(harness.entries()) == 4


def test_two_concurrent_posters_one_conflicts_and_its_retry_finds_its_seals_posted():
    harness = fake_harness()
    harness.run(("topup", 500))
    harness.run(("accept", 100, 1, 0))
    waiting = harness.model.open()
    harness.seal(waiting[:60], 1)
    harness.seal(waiting[60:], 2)
    first, second, mark = harness.uow(), harness.uow(), harness.model.mark()
    commit, outcome = first.commit, {}

    def other_poster_commits_first() -> None:  # between the first poster's read and its commit
        if not outcome:
            outcome["second"] = credit_service.post_settlements(second, TENANT, {2}, now=harness.tick())
            outcome["commits"] = 0
        outcome["commits"] += 1
        commit()

    first.commit = other_poster_commits_first
    wrote = credit_service.post_settlements(first, TENANT, {1}, now=harness.tick())
    assert outcome == {"second": True, "commits": 1}  # the first conflicted once; its retry staged nothing
    assert wrote is False and first.committed == [] and second.committed == [1 + 3]
    harness.model.post(mark, [])
    harness.check_invariants()
    harness.assert_all_posted()
    assert [(e.entry_type, e.amount, e.description) for e in harness.entries()[1:]] == [
        (EntryType.RESERVATION, -100, "Credits reserved for pending verifications — 100 deltas"),
        (EntryType.SETTLEMENT, -90, "Verification settled — 100 deltas in 2 batches"),
        (EntryType.RELEASE, 10, "Volume rate: 10 of 100 reserved credits released — 100 deltas in 2 batches")]
    # the same race through the harness: a stale posting conflicts exactly when the other wrote the ledger
    harness.run(("accept", 50, 1, 3))
    harness.seal(harness.model.open()[:45], 3)
    harness.run(("stale", ("post", (3,)), ("post", (3,))))
    assert harness.stats["stale writer conflicts"] == 1 and harness.stats["postings"] == 1


def test_a_hold_waiting_for_unposted_releases_is_consolidated_posted_and_retried():
    """Near exhaustion the available balance can pay a hold that no lane nor the pool can, because credits
    wait in unposted releases: ``plan_hold`` asks for a consolidation (``drain == {}``: no lane has free
    credits), ``consolidate_lanes`` posts the releases into the pool in a commit of its own, and the retry
    refills a lane from the pool."""
    harness = fake_harness()
    harness.run(("topup", 100))
    harness.run(("accept", 60, 1, 2))  # lane 2 refilled with 60 and spent: pool 40
    harness.seal(harness.model.open(), 5)  # 60 deltas: 54 settled, 6 released (unposted)
    position = harness.position()
    live = position.balances()
    assert (live.credit_balance, live.reserved, live.available) == (46, 0, 46)
    assert (position.spendable, position.pool, lanes_free(position)) == (40, 40, 0)
    plan = plan_hold(position, 45, 0)
    assert plan.drain == {}  # not None: the hold cannot be staged before the releases are posted
    uow = harness.uow()
    with pytest.raises(credit_service.LanesScatteredError) as scattered:
        credit_service.stage_hold(uow, position, 45, 1, lane=0)  # staging only: nothing staged
    assert scattered.value.drain == {} and uow.committed == [] and harness.position() == position
    mark = harness.model.mark()
    with pytest.raises(ConcurrentWriteError):
        hold_or_consolidate(uow, position, 45, 1, lane=0)
    assert uow.committed == [1 + 3]  # the account and the posting's three entries, on their own
    harness.model.post(mark, [])
    harness.check_invariants()
    harness.assert_all_posted()
    assert harness.position() == posted_position(position, harness.model.ledger)
    assert (harness.position().pool, harness.position().spendable) == (46, 46)
    assert [(e.entry_type, e.amount, e.balance_after) for e in harness.entries()] == [
        (EntryType.TOPUP, 100, 100), (EntryType.RESERVATION, -60, 40), (EntryType.SETTLEMENT, -54, 40),
        (EntryType.RELEASE, 6, 46)]
    assert harness.accept(1, 45, 0)  # the retry (ingest's next attempt) refills lane 0 from the pool
    assert harness.stats["refills"] == 2 and harness.position().available == 1
    # and through the harness (ingest's loop): one consolidation, then the hold
    harness.run(("topup", 100))
    harness.run(("accept", 40, 1, 4))
    harness.seal(harness.model.open()[-40:], 7)  # 36 settled, 4 released
    assert (harness.position().spendable, harness.position().available) == (61, 65)
    assert harness.accept(1, 63, 9)
    assert harness.stats["release postings"] == 1 and harness.position().available == 2
    harness.check_invariants()


def test_a_drain_consolidates_the_lanes_commits_alone_and_the_retry_holds():
    """Credits scattered so that neither a lane nor the pool can pay 15, but the total can: the lanes are
    drained into the pool in a transaction of their own (no settlement waits, so nothing is posted), the
    caller reads again, and the hold commits."""
    harness = fake_harness()
    harness.run(("topup", 32))
    for lane in range(HOLD_LANES):
        harness.run(("accept", 1, 1, lane))  # lanes 0-7 refilled with ⌈pool/16⌉ = 2, lanes 8-15 with 1
    position = harness.position()
    assert (position.available, position.pool, position.unposted) == (16, 8, 16)
    assert [lane.free for lane in position.lanes] == [1] * 8 + [0] * 8
    plan = plan_hold(position, 15, 0)
    assert plan.drain == dict.fromkeys(range(8), 1)
    uow = harness.uow()
    with pytest.raises(credit_service.LanesScatteredError) as scattered:
        credit_service.stage_hold(uow, position, 15, 1, lane=0)  # staging only: it never commits
    assert scattered.value.drain == plan.drain and uow.committed == [] and harness.position() == position
    mark = harness.model.mark()
    with pytest.raises(ConcurrentWriteError):
        hold_or_consolidate(uow, position, 15, 1, lane=0)
    assert uow.committed == [8 + 1]  # the eight lanes, the pool: no settlement to post, the holds stay unposted
    assert harness.model.mark() == mark
    assert harness.position() == drained(position, plan.drain)
    harness.check_invariants()
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in harness.entries()] == [
        (EntryType.TOPUP, 32, 32, TOPUP_TEXT)]  # the 16 holds wait for the ledger's next writer
    assert harness.accept(1, 15, 0)  # the retry (ingest's next attempt) refills lane 0 from the pool
    assert harness.accept(1, 1, 5) and not harness.accept(1, 1, 5)
    assert harness.position().available == 0
    harness.check_invariants()


def test_exact_overdraw_boundary():
    harness = fake_harness()
    harness.run(("topup", 5))
    assert harness.accept(5, 1, 3)  # exactly the available balance
    assert not harness.accept(1, 1, 3)  # one more: refused, on any lane
    assert not harness.accept(1, 1, 9)
    harness.check_invariants()
    position = harness.position()
    assert (position.available, position.pool, lanes_free(position), position.reserved) == (0, 0, 0, 5)
    harness.run(("topup", 1))  # a credit more: one more delta is accepted, and no more
    assert harness.accept(1, 1, 9) and not harness.accept(1, 1, 3)
    assert harness.stats["refused"] == 3
    harness.check_invariants()


def test_a_stale_ledger_writer_conflicts_and_changes_nothing():
    """A ledger writer's account update is conditioned on the entry count it read: when another writer
    committed in between, it conflicts and nothing it staged (posting, moves, pool, entries) lands."""
    harness = fake_harness()
    harness.run(("topup", 100))
    harness.run(("accept", 30, 1, 4))
    harness.seal(harness.model.open()[:10], 1)  # 10 settled, nothing released
    slow = harness.uow()
    _after, staged = credit_service.stage_refund(slow, TENANT, 1, "slow refund", now=harness.tick())
    assert [e.entry_type for e in staged] == [EntryType.RESERVATION, EntryType.SETTLEMENT, EntryType.REFUND]
    harness.run(("topup", 5))  # another writer moves the ledger (and posts the 30 held and the 10 settled)
    before = harness.snapshot()
    harness.assert_unchanged(before, slow.commit, ConcurrentWriteError)
    harness.check_invariants()
    # a read of a ledger that has since moved from nothing at all conflicts too
    late = harness.uow()
    zero = CreditAccount(TENANT)
    late.credits.record(zero, CreditAccount(TENANT, 1, 0, 1), LedgerEntry(
        TENANT, entry_id_for(1), EntryType.TOPUP, 1, "late", 1, NOW), pool=1)
    harness.assert_unchanged(before, late.commit, ConcurrentWriteError)


def test_holds_and_seals_never_conflict_with_a_ledger_writer_and_stay_unposted_for_the_next():
    """A hold or a seal committing between a writer's read and its commit does not make it conflict: the
    writer posts what it read, and the next writer posts the rest — every balanceAfter exact in commit order."""
    harness = fake_harness()
    harness.run(("topup", 1_000))
    harness.run(("accept", 10, 2, 1))
    harness.run(("stale", ("fail", 0), ("accept", 7, 3, 2)))
    position = harness.position()
    assert (position.unposted, position.unposted_deltas) == (21, 7)
    assert [(e.entry_type, e.amount, e.balance_after) for e in harness.entries()] == [
        (EntryType.TOPUP, 1_000, 1_000), (EntryType.RESERVATION, -20, 980), (EntryType.REFUND, 2, 982)]
    harness.run(("stale", ("topup", 1), ("seal", 0, 3, 1, 4)))  # a seal in between: the top-up commits
    assert harness.stats["stale writer commits"] == 2 and harness.seals == [(3, 6, 6)]
    assert harness.position().unposted_settled == Settled(6, 0, 3, 1)
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in harness.entries()[-2:]] == [
        (EntryType.RESERVATION, -21, 961, "Credits reserved for pending verifications — 7 deltas"),
        (EntryType.TOPUP, 1, 962, TOPUP_TEXT)]
    harness.run(("stale", ("post", (4,)), ("accept", 1, 1, 3)))  # a hold in between: the posting commits
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in harness.entries()[-1:]] == [
        (EntryType.SETTLEMENT, -6, 962, "Verification settled — 3 deltas in 1 batch")]
    assert harness.position().unposted == 1
    assert harness.stats["stale writer commits"] == 3 and harness.stats["stale writer conflicts"] == 0


def test_a_stale_seal_never_conflicts_and_the_next_posting_posts_it():
    harness = fake_harness()
    harness.run(("topup", 100))
    harness.run(("accept", 50, 1, 6))
    harness.run(("stale", ("seal", 0, 50, 1, 6), ("topup", 1)))  # the top-up posts the 50 held, then the seal
    harness.run(("stale", ("seal", 0, 50, 1, 6), ("fail", 0)))  # no hold left to seal: the failure finds none
    assert harness.stats["stale seal commits"] == 1 and harness.seals == [(50, 50, 45)]
    assert harness.position().balances() == CreditAccount(TENANT, 56, 0, 3)
    harness.run(("post", (6,)))
    assert [(e.entry_type, e.amount, e.balance_after) for e in harness.entries()] == [
        (EntryType.TOPUP, 100, 100), (EntryType.RESERVATION, -50, 50), (EntryType.TOPUP, 1, 51),
        (EntryType.SETTLEMENT, -45, 51), (EntryType.RELEASE, 5, 56)]


def test_the_harness_refuses_to_resolve_a_hold_twice():
    harness = fake_harness()
    harness.run(("topup", 10))
    harness.run(("accept", 2, 1, 0))
    first, second = harness.model.open()
    harness.run(("fail", 0))
    with pytest.raises(AlreadyResolved):
        harness.fail(first)
    harness.seal([second], 3)
    with pytest.raises(AlreadyResolved):
        harness.model.seal([second], 3, Settled(1, 0, 1, 1))


def test_refunding_more_than_is_held_is_refused_before_anything_is_staged():
    harness = fake_harness()
    harness.run(("topup", 100))
    harness.run(("accept", 10, 1, 0))
    harness.seal(harness.model.open()[:4], 2)
    harness.run(("over", 1))  # 6 held: a refund of 7 (after posting the 10 held and the 4 settled)
    harness.run(("post", (2,)))
    harness.run(("over", 50))


def test_concurrent_holds_never_overdraw():
    """Two requests read the same 60 available and each hold 40: the second's pool condition fails, and its
    retry is refused. On a lane that already has the escrow, two holds commute and both commit."""
    harness = fake_harness()
    harness.run(("topup", 60))
    first, second = harness.uow(), harness.uow()
    seen = first.credits.position(TENANT)
    assert second.credits.position(TENANT) == seen
    plans = [hold_or_consolidate(uow, seen, 40, 1, lane=lane) for uow, lane in ((first, 0), (second, 1))]
    assert [plan.refill for plan in plans] == [40, 40]
    first.commit()
    before = harness.snapshot()
    harness.assert_unchanged(before, second.commit, ConcurrentWriteError)
    harness.model.hold(1, 40, 0)
    assert not harness.accept(1, 40, 1)
    live = credit_service.balances(harness.uow(), TENANT)
    assert (live.credit_balance, live.reserved, live.available) == (60, 40, 20)
    harness.check_invariants()

    harness.run(("topup", 100))  # pool 120
    assert harness.accept(1, 1, 7)  # lane 7 is refilled with ⌈120/16⌉ = 8 and holds 1
    assert harness.position().free(7) == 7
    one, two = harness.uow(), harness.uow()
    seen = one.credits.position(TENANT)
    for uow in (one, two):
        assert hold_or_consolidate(uow, seen, 3, 1, lane=7) == HoldPlan(7)  # from the escrow alone
    one.commit()
    two.commit()  # both fit in the lane's escrow: conditional ADDs, no conflict
    harness.model.hold(2, 3, 7)
    assert harness.position().free(7) == 1
    harness.check_invariants()
    three = harness.uow()
    assert hold_or_consolidate(three, seen, 3, 1, lane=7) == HoldPlan(7)  # a third on the same read
    harness.assert_unchanged(harness.snapshot(), three.commit, ConcurrentWriteError)  # the escrow is short


def test_the_listing_newest_first_is_commit_order_even_within_one_millisecond():
    harness = fake_harness()
    harness.run(("topup", 1_000))
    frozen = harness.now
    harness.tick = lambda: frozen  # every writer at the same instant
    for lane in range(12):
        harness.run(("accept", 3, 2, lane))
        harness.run(("fail", lane))
        harness.run(("seal", 0, 1, 1, lane))
        harness.run(("topup", lane + 1))
    harness.run(("seal", 0, 90, 1, 0))
    harness.run(("post", tuple(range(HOLD_LANES))))
    listed = harness.entries(limit=5)  # oldest first, paged by cursor
    assert len(listed) == 1 + 12 * 4 + 1 and {e.created_at for e in listed} == {frozen}
    replay_ledger(listed, harness.position().ledger)
    matches(listed, harness.model.log)


def test_a_read_whose_lanes_trail_the_posting_its_account_shows_is_a_race():
    """A BatchGetItem is no snapshot: a lane may be read before a posting and the account after it (a lane
    left unprocessed and asked again, say). A ledger writer on such a read must not write: its lanes are
    behind what the account says is posted, so it would record the lanes' posted settlements as less than
    they are (and the next posting would post those seals again). It is a race: read again."""
    harness = fake_harness()
    harness.run(("topup", 100))
    harness.run(("accept", 10, 1, 0))
    lanes_before = harness.position().lanes
    harness.seal(harness.model.open(), 3)  # 10 settled on lane 3
    harness.run(("post", (3,)))  # lane 3's seal posted
    mixed = replace(harness.position(), lanes=lanes_before)  # the account after the posting, the lanes before
    assert mixed.unposted_settled == Settled(-10, 0, -10, -1)
    uow, mark = harness.uow(), harness.model.mark()
    real, reads = uow.credits.position, [mixed]
    uow.credits.position = lambda tenant_id, **kw: reads.pop() if reads else real(tenant_id, **kw)
    after, _entry = credit_service.topup(uow, TENANT, 5, actor="user:test", now=harness.tick())
    harness.model.topups += 5
    harness.model.post(mark, [(EntryType.TOPUP, 5, TOPUP_TEXT)])
    assert after == harness.model.ledger
    harness.check_invariants()  # lane 3's posted settlement still recorded
    assert not credit_service.post_settlements(harness.uow(), TENANT, {3}, now=harness.tick())
    harness.run(("topup", 1))


def test_hold_lane_positions_are_read_back_by_index():
    """``after_hold`` (what ingest plans its next chunk on) equals the stored position, new lanes included."""
    position = CreditPosition(ledger=CreditAccount(TENANT, 10, 0, 1), pool=10, lanes=(HoldLane(4, free=0),))
    plan = plan_hold(position, 3, 9)
    assert plan == HoldPlan(9, refill=3)
    after = credit_service.after_hold(position, plan, 3, 2)
    assert after.lanes == (HoldLane(4), HoldLane(9, free=0, held_total=3, held_deltas=2)) and after.pool == 7
    assert after.available == 7 == after.pool + lanes_free(after) == after.spendable


# --- many threads, one balance ---------------------------------------------------------------------

_COMMIT = threading.Lock()


class _AtomicCommitUnitOfWork(FakeUnitOfWork):
    """``FakeUnitOfWork.commit`` checks every condition and then applies every write, with no lock: two
    threads could both pass their checks before either applies (a lost update DynamoDB's transactions
    never allow). So the threads' commits are serialised here; reads stay unlocked, so a read may see
    another commit half applied (the lane moved, the pool not yet), as a BatchGetItem may."""

    commits = 0  # successful commits so far, every thread together
    seen_at_commit = -1  # how many other commits had landed when this one's commit began

    def commit(self) -> None:
        with _COMMIT:
            self.seen_at_commit = _AtomicCommitUnitOfWork.commits
            super().commit()
            _AtomicCommitUnitOfWork.commits += 1


def _thread_uow(store: FakeStore) -> FakeUnitOfWork:
    uow = _AtomicCommitUnitOfWork(store)
    uow.credits = FakeCreditRepository(uow)
    return uow


def _hold_until_done(store: FakeStore, cost: int, start: threading.Barrier, outcomes: list[tuple[str, int]],
                     raced: list[int]) -> None:
    """One request's hold of ``cost`` credits as ingest retries it: read, plan (random lane), commit; on a
    race or a consolidation read again; refused when the read shows too little. ``raced`` counts the holds
    that committed on a read other commits had already overtaken."""
    uow = _thread_uow(store)
    start.wait()
    for tries in range(1, 2_001):
        seen = _AtomicCommitUnitOfWork.commits
        position = uow.credits.position(TENANT)
        time.sleep(0.0002)  # let other threads read and commit between this read and this commit
        try:
            hold_or_consolidate(uow, position, cost, 1)
            uow.commit()
        except InsufficientCreditsError:
            outcomes.append(("refused", tries))
            return
        except ConcurrentWriteError:
            uow.rollback()
            continue
        outcomes.append(("accepted", tries))
        if uow.seen_at_commit != seen:
            raced.append(1)
        return
    outcomes.append(("gave up", tries))


def _run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


def absorb_holds(harness: Harness, cost: int) -> None:
    """Teach the model what the threads committed: holds of one delta at ``cost`` on the stored lanes, and the
    reservations the consolidations among them posted, in commit order."""
    model = harness.model
    for lane in harness.position().lanes:
        model.hold(lane.held_deltas, cost, lane.index)
    for entry in harness.entries()[len(model.log):]:
        assert entry.entry_type == EntryType.RESERVATION, entry
        posted = -entry.amount
        model.post(replace(model.mark(), held_total=model.posted_total + posted,
                           held_deltas=model.posted_deltas + posted // cost), [])


ATTEMPTS = 1_000


@pytest.mark.parametrize(("balance", "cost"), [(1_000, 3), (700, 1)])
def test_a_thousand_concurrent_holds_accept_exactly_what_the_balance_pays(balance, cost):
    store = FakeStore()
    harness = Harness(lambda: credit_uow(store), fake=True)
    harness.run(("topup", balance))
    start, outcomes, raced = threading.Barrier(ATTEMPTS, timeout=60), [], []
    _run_threads([lambda: _hold_until_done(store, cost, start, outcomes, raced) for _ in range(ATTEMPTS)])

    results = Counter(outcome for outcome, _tries in outcomes)
    accepted = balance // cost
    assert results == {"accepted": accepted, "refused": ATTEMPTS - accepted}, results
    assert len(raced) > accepted // 4, "the holds hardly raced: the test would prove little"
    position = harness.position()
    live = position.balances()
    assert held(position) == (accepted * cost, accepted)
    assert (live.credit_balance, live.reserved, live.available) == (balance, accepted * cost, balance % cost)
    assert position.pool >= 0 and all(lane.free >= 0 for lane in position.lanes)
    assert position.pool + lanes_free(position) == balance % cost  # overspent: 0
    absorb_holds(harness, cost)
    harness.check_invariants()
    harness.run(("topup", 1))  # the next writer posts every hold not posted yet as one reservation entry
    entries = harness.entries()[1:]
    assert entries[-1].entry_type == EntryType.TOPUP and entries[-1].amount == 1
    assert {e.entry_type for e in entries[:-1]} == {EntryType.RESERVATION}
    assert -sum(e.amount for e in entries[:-1]) == accepted * cost
    assert sum(int(e.description.rsplit("— ", 1)[1].split()[0]) for e in entries[:-1]) == accepted


def test_concurrent_holds_and_top_ups_keep_the_ledger_exact():
    """Holds racing top-ups (ledger writers posting whatever holds they read, retried on a conflict among
    themselves): every credit stays in one place and the ledger replays exactly."""
    store = FakeStore()
    harness = Harness(lambda: credit_uow(store), fake=True)
    harness.run(("topup", 200))
    holders, topups, cost = 300, 10, 2
    start, outcomes, raced = threading.Barrier(holders + topups, timeout=60), [], []

    def top_up() -> None:
        uow = _thread_uow(store)
        start.wait()
        credit_service.topup(uow, TENANT, 50, actor="user:test", now=NOW)

    _run_threads([lambda: _hold_until_done(store, cost, start, outcomes, raced) for _ in range(holders)]
                 + [top_up] * topups)
    results = Counter(outcome for outcome, _tries in outcomes)
    accepted = results["accepted"]
    assert results["accepted"] + results["refused"] == holders and 100 <= accepted <= 350
    position = harness.position()
    live = position.balances()
    assert held(position) == (accepted * cost, accepted)
    assert (live.credit_balance, live.reserved) == (200 + 50 * topups, accepted * cost)
    assert live.available == position.pool + lanes_free(position) == position.spendable >= 0
    assert position.pool >= 0 and all(lane.free >= 0 for lane in position.lanes)
    entries = harness.entries()
    replay_ledger(entries, position.ledger)
    assert Counter(e.entry_type for e in entries)[EntryType.TOPUP] == 1 + topups
    posted = -sum(e.amount for e in entries if e.entry_type == EntryType.RESERVATION)
    assert posted == accepted * cost - position.unposted == position.ledger.reserved
    assert entries[-1].balance_after == position.ledger.available == live.available + position.unposted


def test_concurrent_seals_and_posters_post_every_seal_exactly_once():
    """Verifier runs sealing on a few lanes (ADDs: they never wait for one another), each posting its lanes
    afterwards, racing top-ups: every poster returns with its seals posted, every seal is posted exactly once
    (the settlement and release entries name each seal's deltas once), and the ledger replays exactly."""
    store = FakeStore()
    harness = Harness(lambda: credit_uow(store), fake=True)
    sealers, per, topups = 40, 45, 5
    harness.run(("topup", 5_000))
    harness.run(("accept", sealers * per, 1, 0))
    holds = harness.model.open()
    start, done = threading.Barrier(sealers + topups, timeout=60), []

    def seal_and_post(chunk: list[Hold], lane: int) -> None:
        uow = _thread_uow(store)
        start.wait()
        settled = credit_service.stage_settlement(uow, TENANT, reserved=len(chunk), deltas=len(chunk), lane=lane)
        uow.commit()
        assert uow.committed == [1]
        seals = uow.credits.position(TENANT).settled_on(lane).seals
        wrote = credit_service.post_settlements(uow, TENANT, {lane}, now=NOW)
        assert uow.credits.position(TENANT).posted_on(lane).seals >= seals  # its seal posted, by it or another
        done.append((lane, settled, wrote))

    def top_up() -> None:
        uow = _thread_uow(store)
        start.wait()
        credit_service.topup(uow, TENANT, 10, actor="user:test", now=NOW)
        done.append(("topup", None, True))

    _run_threads([partial(seal_and_post, holds[n * per:(n + 1) * per], n % 4) for n in range(sealers)]
                 + [top_up] * topups)
    sealed = [(lane, settled, wrote) for lane, settled, wrote in done if lane != "topup"]
    assert len(sealed) == sealers and len(done) == sealers + topups
    assert {settled for _lane, settled, _wrote in sealed} == {Settled(41, 4, 45, 1)}  # 90% of 45, rounded up
    position = harness.position()
    assert (position.unposted, position.unposted_settled) == (0, Settled())
    assert position.settled == Settled(41 * sealers, 4 * sealers, per * sealers, sealers)
    assert position.balances() == position.ledger  # everything posted
    assert (position.ledger.credit_balance, position.ledger.reserved) == (5_000 + 10 * topups - 41 * sealers, 0)
    assert position.pool + lanes_free(position) == position.available == position.spendable
    entries = harness.entries()
    replay_ledger(entries, position.ledger)
    settlements = [e for e in entries if e.entry_type == EntryType.SETTLEMENT]
    releases = [e for e in entries if e.entry_type == EntryType.RELEASE]
    assert (-sum(e.amount for e in settlements), sum(e.amount for e in releases)) == (41 * sealers, 4 * sealers)
    for kind in (settlements, releases):  # each seal in exactly one posting
        named = [sealed_counts(e.description) for e in kind]
        assert (sum(d for d, _s in named), sum(s for _d, s in named)) == (per * sealers, sealers)
    assert len(settlements) == len(releases) <= sum(wrote for _lane, _settled, wrote in done)
    assert sum(wrote for _lane, _settled, wrote in sealed) >= 1


# --- the fake earns its trust: the same runs against FakeCreditRepository and DynamoDB --------------


@pytest.fixture(params=["fake", "dynamodb"])
def new_uow(request):
    """Units of work sharing one store: the fake (with its credit repository), or DynamoUnitOfWork under moto."""
    if request.param == "fake":
        store = FakeStore()
        return lambda: credit_uow(store)
    request.getfixturevalue("aws")
    from chalicelib.adapters.dynamodb.unit_of_work import DynamoUnitOfWork

    return DynamoUnitOfWork


SCRIPT = [  # (the comments: what happens, by the plan_hold rules)
    ("topup", 100),  # pool 100
    ("accept", 10, 1, 0),  # lane 0 refilled with 10 from the pool
    ("accept", 5, 2, 0),  # again (lane 0's escrow is spent)
    ("accept", 40, 1, 3),  # pool 40
    ("seal", 0, 45, 1, 6),  # 45 deltas held 50: 45 settled, 5 released on lane 6 (no entry)
    ("post", (6,)),  # posts the 60 held (55 deltas), the 45 settled and the 5 released (into the pool)
    ("fail", 0),  # refunds 1
    ("stale", ("topup", 7), ("accept", 2, 1, 5)),  # a hold in between: the top-up commits, the hold unposted
    ("stale", ("post", (6,)), ("seal", 0, 3, 1, 6)),  # nothing to post at its read: no write at all
    ("stale", ("fail", 1), ("post", (6,))),  # a posting in between: the failure conflicts
    ("stale", ("post", (1, 6)), ("seal", 0, 2, 1, 1)),  # the 2nd seal unposted: nothing to post on 1 and 6
    ("stale", ("post", (1,)), ("fail", 0)),  # a ledger writer in between: conflict, its seal already posted
    ("stale", ("accept", 3, 2, 3), ("seal", 0, 3, 1, 2)),  # the pool still pays the stale refill: it commits
    ("accept", 1, 1, 9),
    ("stale", ("accept", 1, 40, 9), ("accept", 1, 40, 9)),  # lane 9 now short: conflict; the retry is refused
    ("over", 1),
    ("bad_topup", 0),
    ("accept", 1, 5, 0),  # near exhaustion: the lanes' free credits drained back (the holds stay unposted)
    ("topup", 160),
    ("accept", 41, 1, 11),
    ("seal", 0, 41, 1, 12),  # 41 deltas held 87: 79 settled, 8 released — available, not spendable yet
    ("share", 100, 13),  # all of it: a consolidation with nothing to drain posts the release, then the hold
    ("topup", 60),
    ("scatter", 1, 1, 0, 4),  # lanes 0-3 refilled with ⌈pool/16⌉ each: spread over them
    ("stale", ("accept", 1, 50, 4), ("accept", 1, 1, 0)),  # the stale drain conflicts (lane 0 has less)
    ("topup", 60),
    ("scatter", 1, 1, 5, 4),
    ("stale", ("topup", 1), ("share", 100, 9)),  # a drain in between (no settlement to post): the top-up commits
    ("stale", ("seal", 0, 2, 1, 4), ("topup", 3)),  # a seal never conflicts
    ("stale", ("post", (4,)), ("seal", 0, 1, 1, 4)),  # a seal in between: the posting commits, that one unposted
    ("stale", ("fail", 0), ("seal", 0, 1, 1, 5)),  # likewise the failure
    ("topup", 1),  # posts everything
]


def test_fake_and_dynamodb_credit_repositories_behave_alike(new_uow):
    harness = Harness(new_uow, fake=isinstance(new_uow(), FakeUnitOfWork), page=3)
    assert credit_service.balances(harness.uow(), TENANT) == CreditAccount(tenant_id=TENANT)
    assert harness.position() == CreditPosition(ledger=CreditAccount(tenant_id=TENANT))
    for operation in SCRIPT:
        harness.run(operation)
    assert harness.stats == {
        "refills": 19, "holds": 1, "drains": 3, "release postings": 1, "refused": 1, "volume-rate seals": 2,
        "seals": 6, "postings": 2, "stale writer commits": 4, "stale writer conflicts": 2,
        "stale posting without seals": 2, "stale seal commits": 1, "stale hold commits": 1,
        "stale hold conflicts": 1, "stale drain conflicts": 1}
    assert harness.seals == [(45, 50, 45), (3, 3, 3), (2, 2, 2), (3, 3, 3), (41, 87, 79), (2, 2, 2), (1, 1, 1),
                             (1, 1, 1)]
    position = harness.position()
    assert position.balances() == position.ledger == CreditAccount(TENANT, 256, 250, 30)
    assert (position.pool, lanes_free(position), position.unposted, position.resolved) == (6, 0, 0, 3)
    assert (position.settled, position.unposted_settled) == (Settled(136, 13, 98, 8), Settled())
    topup, reservation, settlement, release, refund = (EntryType.TOPUP, EntryType.RESERVATION, EntryType.SETTLEMENT,
                                                       EntryType.RELEASE, EntryType.REFUND)
    assert [(e.entry_type, e.amount, e.balance_after) for e in harness.entries()] == [
        (topup, 100, 100), (reservation, -60, 40), (settlement, -45, 40), (release, 5, 45), (refund, 1, 46),
        (topup, 7, 53), (reservation, -2, 51), (settlement, -3, 51), (settlement, -2, 51), (refund, 1, 52),
        (reservation, -47, 5), (settlement, -3, 5), (reservation, -5, 0), (topup, 160, 160),
        (reservation, -41, 119), (settlement, -79, 119), (release, 8, 127), (reservation, -127, 0),
        (topup, 60, 60), (reservation, -55, 5), (topup, 60, 65), (reservation, -4, 61), (topup, 1, 62),
        (reservation, -61, 1), (topup, 3, 4), (settlement, -2, 4), (settlement, -1, 4), (refund, 1, 5),
        (settlement, -1, 5), (topup, 1, 6)]


def test_fake_and_dynamodb_commit_a_seal_and_its_posting_alike(new_uow):
    harness = Harness(new_uow, fake=isinstance(new_uow(), FakeUnitOfWork))
    harness.run(("topup", 100))
    harness.run(("accept", 60, 1, 2))
    uow = harness.uow()
    settled = credit_service.stage_settlement(uow, TENANT, reserved=60, deltas=60, lane=7)
    uow.commit()  # one lane update, ADDs only
    assert settled == Settled(credits=54, released=6, deltas=60, seals=1)
    assert credit_service.balances(harness.uow(), TENANT) == CreditAccount(TENANT, 46, 0, 1)
    harness.model.seal(harness.model.open(), 7, settled)
    harness.check_invariants()
    mark = harness.model.mark()
    assert credit_service.post_settlements(harness.uow(), TENANT, {7}, now=NOW)  # one account update, 3 entries
    harness.model.post(mark, [])
    harness.check_invariants()
    entries = harness.entries()[1:]
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in entries] == [
        (EntryType.RESERVATION, -60, 40, "Credits reserved for pending verifications — 60 deltas"),
        (EntryType.SETTLEMENT, -54, 40, "Verification settled — 60 deltas in 1 batch"),
        (EntryType.RELEASE, 6, 46, "Volume rate: 6 of 60 reserved credits released — 60 deltas in 1 batch")]
    position = harness.position()
    assert (position.pool, lanes_free(position), position.resolved, position.posted_deltas) == (46, 0, 0, 60)
    assert position.posted == ((2, Settled()), (7, settled))
    assert harness.entries(limit=2)[1:] == entries
    assert not credit_service.post_settlements(harness.uow(), TENANT, {7}, now=NOW)


def _lockstep_harnesses() -> tuple[Harness, Harness]:
    from chalicelib import bootstrap
    from chalicelib.adapters.dynamodb.unit_of_work import DynamoUnitOfWork
    from tests.conftest import empty_world

    empty_world()
    bootstrap.reset()
    store = FakeStore()
    return Harness(lambda: credit_uow(store), fake=True), Harness(DynamoUnitOfWork, fake=False)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2_000), st.lists(OPERATIONS, min_size=5, max_size=15))
def test_random_runs_store_the_same_in_the_fake_and_in_dynamodb(aws, opening, operations):
    """The same random run, step by step, on both repositories: each checked against the model, and what they
    store (position and entries) identical after every step."""
    fake, dynamo = _lockstep_harnesses()
    for operation in [("topup", opening)] * bool(opening) + operations:
        fake.run(operation)
        dynamo.run(operation)
        assert fake.snapshot() == dynamo.snapshot()
    assert fake.stats == dynamo.stats
    for what in dynamo.stats:
        event(what)


# --- the catalogue's volume rate: where the actual cost is below what was held (release) --------------


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3), st.integers(1, 200), st.integers(1, 100), st.integers(0, 100))
def test_a_seal_settles_at_most_what_it_held_and_releases_the_rest(per_delta, deltas, min_deltas, percent):
    rate = VolumeRate(min_deltas=min_deltas, percent=percent)
    reserved = per_delta * deltas
    charged = rate.charge(reserved, deltas)
    assert isinstance(charged, int) and 0 <= charged <= reserved
    if deltas < min_deltas:
        assert charged == reserved
    else:  # percent of what was held, rounded up to a whole credit: the release is rounded down
        assert charged * 100 >= reserved * percent > (charged - 1) * 100
        assert reserved - charged == reserved * (100 - percent) // 100


def test_the_catalogue_rate_releases_a_tenth_of_large_seals():
    assert (CREDITS_VOLUME_RATE.min_deltas, CREDITS_VOLUME_RATE.percent) == (40, 90)
    assert [CREDITS_VOLUME_RATE.charge(n, n) for n in (1, 10, 39, 40, 46, 90, 100)] == [1, 10, 39, 36, 42, 81, 90]
