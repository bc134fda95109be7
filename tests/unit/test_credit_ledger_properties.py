"""Prepaid credits (seed 004, issue 12's escrowed holds) as properties: random topup/accept/seal/fail runs.

The model is in ``chalicelib/domain/credits.py``: acceptance *holds* credits on one of ``HOLD_LANES``
escrow lanes (conditional ADDs, no ledger entry, no conflict with other acceptances); the ledger's
writers — top-ups, verification seals (``stage_settlement``), failures (``stage_refund``) — first *post*
every hold not yet posted as one ``reservation`` entry, then their own moves, on one account update
conditioned on the entry count they read.

Every run goes through the services over a unit of work (``FakeCreditRepository``, and in the lockstep
and scripted tests ``DynamoCreditRepository`` under moto) and is checked against a reference model that
knows every accepted delta's hold individually and resolves each at most once (a seal settles the
catalogue's volume rate of what its holds reserved and releases the rest; a failure refunds its hold).
After EVERY step::

    creditBalance    = Σ topup - Σ settlement
    creditBalance    = pool + Σ lane.free + reserved                  (every credit is in one place)
    pool ≥ 0, every lane.free ≥ 0
    availableBalance = creditBalance - reserved ≥ 0                   (never overspent)
    reserved         = Σ lane.held_total - resolved = Σ the model's open holds   (each resolved at most once)
    posted reserved  = Σ posted reservations - resolved ≤ reserved   (the ledger trails the holds)
    unposted         = Σ holds committed since the last ledger writer read the position
    entry ids        = 1..n in commit order; each balanceAfter follows from replaying the entries before it
    last balanceAfter = the ledger's available = availableBalance + unposted

and after a ledger writer commits (with no hold racing it): unposted = 0 and the last balanceAfter is
the availableBalance; per seal: settlement + release = Σ what its holds reserved.

Races: a *stale* writer stages on a position read before another operation commits. A ledger writer
then conflicts (``ConcurrentWriteError``, nothing changes) exactly when that operation wrote the ledger
— holds never conflict with it; a hold conflicts exactly when its lane's or the pool's condition really
fails at commit. A drain of the lanes commits on its own and asks the caller to read again (as ingest
does). 1,000 threads holding against one exact balance accept exactly ``balance // cost``.
"""

from __future__ import annotations

import itertools
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
    """What ingest does with a hold: stage it, or consolidate the scattered lanes in a commit of their own and
    raise (a ConcurrentWriteError: read again and plan again)."""
    try:
        return credit_service.stage_hold(uow, position, amount, deltas, lane=lane)
    except credit_service.LanesScatteredError as scattered:
        credit_service.consolidate_lanes(uow, position.tenant_id, scattered.drain)
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


def hold_commits(plan: HoldPlan, amount: int, now: CreditPosition) -> bool:
    """Whether ``DynamoCreditRepository.hold``'s conditions pass against the position ``now``."""
    short = amount - plan.refill
    return (short <= 0 or now.free(plan.lane) >= short) and (not plan.refill or now.pool >= plan.refill)


def drained(position: CreditPosition, drain: dict[int, int]) -> CreditPosition:
    """``position`` after ``drain`` (lane → credits) moved back into the pool."""
    lanes = tuple(replace(lane, free=lane.free - drain.get(lane.index, 0)) for lane in position.lanes)
    return replace(position, pool=position.pool + sum(drain.values()), lanes=lanes)


def _plural(count: int) -> str:
    return "s" if count != 1 else ""


# --- the reference model ------------------------------------------------------------------------


class AlreadyResolved(AssertionError):
    """The model refuses to resolve a hold twice."""


@dataclass
class Hold:
    """One accepted delta's hold (its ``credits_reserved``)."""

    hid: int
    amount: int
    resolved_by: str | None = None


@dataclass(frozen=True)
class Expected:
    entry_id: str
    entry_type: EntryType
    amount: int  # signed, as listed
    balance_after: int
    description: str | None  # None: not compared


@dataclass
class Model:
    """What must be true, step by step: each hold individually, the cumulative counters the position
    keeps, and the posted ledger moved by the pure domain ``apply`` in commit order."""

    topups: int = 0
    settled: int = 0
    holds: dict[int, Hold] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=itertools.count)
    held_total: int = 0  # Σ every hold committed
    held_deltas: int = 0
    posted_total: int = 0  # Σ holds posted as reservation entries
    posted_deltas: int = 0
    resolved_total: int = 0  # Σ holds settled, released or refunded
    ledger: CreditAccount = field(default_factory=lambda: CreditAccount(tenant_id=TENANT))
    log: list[Expected] = field(default_factory=list)  # every entry, in commit order

    @property
    def balance(self) -> int:
        return self.topups - self.settled

    def open(self) -> list[Hold]:
        return [h for h in self.holds.values() if h.resolved_by is None]

    @property
    def reserved(self) -> int:
        return sum(h.amount for h in self.open())

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    def hold(self, deltas: int, cost: int) -> None:
        for _ in range(deltas):
            hold = Hold(next(self.ids), cost)
            self.holds[hold.hid] = hold
        self.held_total += deltas * cost
        self.held_deltas += deltas

    def mark(self) -> tuple[int, int]:
        """What a ledger writer reading the position now will post: the holds committed so far."""
        return self.held_total, self.held_deltas

    def post(self, mark: tuple[int, int], moves: list[Move]) -> list[Expected]:
        """A ledger writer that read at ``mark`` commits: the reservation posting (if any), then ``moves``."""
        held_total, held_deltas = mark
        assert held_total >= self.posted_total
        todo = list(moves)
        if held_total > self.posted_total:
            count = held_deltas - self.posted_deltas
            todo.insert(0, (EntryType.RESERVATION, held_total - self.posted_total,
                            f"Credits reserved for pending verifications — {count} delta{_plural(count)}"))
            self.posted_total, self.posted_deltas = held_total, held_deltas
        out = []
        for entry_type, amount, description in todo:
            self.ledger, signed = apply(self.ledger, entry_type, amount)
            out.append(Expected(entry_id_for(self.ledger.entry_count), entry_type, signed, self.ledger.available,
                                description))
        self.log.extend(out)
        return out

    def resolve(self, holds: list[Hold], how: str, charged: int) -> None:
        if any(h.resolved_by is not None for h in holds):
            raise AlreadyResolved(f"already resolved: {[h.hid for h in holds if h.resolved_by]}")
        assert len({h.hid for h in holds}) == len(holds)
        assert 0 <= charged <= sum(h.amount for h in holds)
        for hold in holds:
            hold.resolved_by = how
        self.resolved_total += sum(h.amount for h in holds)
        self.settled += charged


# --- the harness: the services, the model, every invariant ---------------------------------------


def matches(entries: list[LedgerEntry], expected: list[Expected]) -> None:
    assert len(entries) == len(expected), (entries, expected)
    for entry, want in zip(entries, expected, strict=True):
        assert entry.tenant_id == TENANT
        got = (entry.entry_id, entry.entry_type, entry.amount, entry.balance_after)
        assert got == (want.entry_id, want.entry_type, want.amount, want.balance_after), (entry, want)
        if want.description is not None:
            assert entry.description == want.description


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
        assert live == position.balances() == replace(model.ledger, reserved=model.reserved)
        assert [lane.index for lane in lanes] == sorted({lane.index for lane in lanes})
        assert all(0 <= lane.index < HOLD_LANES for lane in lanes)
        # every credit in one place, never overspent
        assert live.credit_balance == model.topups - model.settled
        assert position.pool >= 0 and all(lane.free >= 0 and lane.held_total >= 0 for lane in lanes)
        assert live.credit_balance == position.pool + lanes_free(position) + live.reserved
        assert live.available == live.credit_balance - live.reserved == model.available >= 0
        assert live.available == position.pool + lanes_free(position) == position.available
        # reserved = the open holds, each resolved at most once
        assert live.reserved == model.reserved == model.held_total - model.resolved_total
        assert held(position) == (model.held_total, model.held_deltas)
        assert (position.resolved, position.posted_deltas) == (model.resolved_total, model.posted_deltas)
        # the ledger trails the holds by exactly what was held since the last posting
        assert 0 <= position.ledger.reserved == model.posted_total - model.resolved_total <= live.reserved
        assert position.unposted == model.held_total - model.posted_total >= 0
        assert position.unposted_deltas == model.held_deltas - model.posted_deltas >= 0
        assert position.ledger == model.ledger
        # the entries: numbered in commit order, each balanceAfter exact, as the model expects
        entries = self.entries(uow)
        replay_ledger(entries, position.ledger)
        matches(entries, model.log)
        if entries:
            assert entries[-1].balance_after == position.ledger.available == live.available + position.unposted
        total = Counter()
        for entry in entries:
            total[entry.entry_type] += entry.amount
        assert total[EntryType.TOPUP] == model.topups and -total[EntryType.SETTLEMENT] == model.settled
        assert -total[EntryType.RESERVATION] == model.posted_total
        assert (-total[EntryType.SETTLEMENT] + total[EntryType.RELEASE] + total[EntryType.REFUND]
                == model.resolved_total)

    def assert_all_posted(self) -> None:
        """Right after a ledger writer committed (no hold raced it): nothing unposted, the ledger current."""
        uow = self.uow()
        position = uow.credits.position(TENANT)
        assert (position.unposted, position.unposted_deltas) == (0, 0)
        assert position.ledger == position.balances()
        assert self.entries(uow)[-1].balance_after == position.balances().available

    def assert_unchanged(self, before: tuple, call: Callable[[], object], error: type[Exception]) -> None:
        with pytest.raises(error):
            call()
        assert self.snapshot() == before

    # --- operations ---
    def topup(self, amount: int) -> None:
        mark = self.model.mark()
        after, entry = credit_service.topup(self.uow(), TENANT, amount, actor="user:test", now=self.tick())
        self.model.topups += amount
        expected = self.model.post(mark, [(EntryType.TOPUP, amount, TOPUP_TEXT)])
        matches([entry], expected[-1:])
        assert after == self.model.ledger
        self.assert_all_posted()

    def bad_topup(self, amount: int) -> None:
        self.assert_unchanged(self.snapshot(), lambda: credit_service.topup(
            self.uow(), TENANT, amount, actor="user:test", now=self.tick()), ValidationError)

    def accept(self, deltas: int, cost: int, lane: int) -> bool:
        """Ingest's hold for a chunk of ``deltas`` deltas at ``cost`` credits: read, plan, commit; after a drain
        of the lanes, read again and retry. Refused exactly when the model's available cannot pay."""
        amount = deltas * cost
        for attempt in range(2):
            uow = self.uow()
            position = uow.credits.position(TENANT)
            before = self.snapshot()
            try:
                plan = hold_or_consolidate(uow, position, amount, deltas, lane=lane)
            except InsufficientCreditsError:
                assert self.model.available < amount
                assert self.snapshot() == before
                self.stats["refused"] += 1
                return False
            except ConcurrentWriteError:  # the lanes were drained into the pool: read again and re-plan
                assert attempt == 0, "one drain leaves the pool able to pay"
                expected = plan_hold(position, amount, lane).drain
                assert expected and self.position() == drained(position, expected)
                assert lanes_free(self.position()) == 0
                self.check_invariants()
                self.stats["drains"] += 1
                continue
            assert self.model.available >= amount, "a hold beyond the available balance was staged"
            uow.commit()
            if self.fake:
                assert uow.committed == [2 if plan.refill else 1]  # the lane (+ the pool): no ledger entry
            self.model.hold(deltas, cost)
            assert self.position() == credit_service.after_hold(position, plan, amount, deltas)
            self.stats["refills" if plan.refill else "holds"] += 1
            return True
        raise AssertionError("unreachable")

    def choose(self, start: int, count: int, step: int) -> list[Hold]:
        waiting = self.model.open()
        return waiting[start % len(waiting)::step][:count] if waiting else []

    def seal_moves(self, holds: list[Hold]) -> tuple[int, int, list[Move]]:
        reserved = sum(h.amount for h in holds)
        actual = CREDITS_VOLUME_RATE.charge(reserved, len(holds))
        moves: list[Move] = [(EntryType.SETTLEMENT, actual, f"Verification batch settled — "
                                                            f"{len(holds)} delta{_plural(len(holds))}")]
        if reserved > actual:
            moves.append((EntryType.RELEASE, reserved - actual, None))
        return reserved, actual, moves

    def check_seal(self, holds: list[Hold], entries: list[LedgerEntry], reserved: int, actual: int) -> None:
        own = [e for e in entries if e.entry_type != EntryType.RESERVATION]
        assert -own[0].amount + sum(e.amount for e in own[1:]) == reserved  # settled + released = held
        assert own[0].entry_type == EntryType.SETTLEMENT and -own[0].amount == actual
        if len(holds) >= CREDITS_VOLUME_RATE.min_deltas and reserved >= 10:
            assert own[1].entry_type == EntryType.RELEASE and own[1].amount == reserved - actual > 0
        self.seals.append((len(holds), reserved, actual))
        self.stats["volume-rate seals" if reserved > actual else "seals"] += 1

    def seal(self, holds: list[Hold]) -> None:
        """Verification: the seal's posting, settlement and release, staged together and committed once."""
        reserved, actual, moves = self.seal_moves(holds)
        uow, mark = self.uow(), self.model.mark()
        after, entries = credit_service.stage_settlement(uow, TENANT, reserved=reserved, deltas=len(holds),
                                                         now=self.tick())
        uow.commit()
        if self.fake:
            assert uow.committed == [1 + len(entries)]  # one account update and its entries, one transaction
        expected = self.model.post(mark, moves)
        self.model.resolve(holds, "sealed", actual)
        matches(entries, expected)
        assert after == self.model.ledger
        self.check_seal(holds, entries, reserved, actual)
        self.assert_all_posted()

    def fail(self, hold: Hold) -> None:
        """Verification failed: the hold refunded to the pool (after posting the holds not yet posted)."""
        text = f"Verification failed — hold {hold.hid}"
        uow, mark = self.uow(), self.model.mark()
        after, entries = credit_service.stage_refund(uow, TENANT, hold.amount, text, now=self.tick())
        uow.commit()
        expected = self.model.post(mark, [(EntryType.REFUND, hold.amount, text)])
        self.model.resolve([hold], "refunded", 0)
        matches(entries, expected)
        assert after == self.model.ledger
        self.assert_all_posted()

    def over(self, kind: str, extra: int, deltas: int) -> None:
        """Resolving more than is held (a hold resolved twice, say) is refused before anything is staged."""
        amount = self.model.reserved + extra
        uow = self.uow()
        if kind == "seal":
            call = partial(credit_service.stage_settlement, uow, TENANT, reserved=amount, deltas=deltas, now=self.now)
        else:
            call = partial(credit_service.stage_refund, uow, TENANT, amount, "too much", now=self.now)
        before = self.snapshot()
        with pytest.raises(ValidationError) as refused:
            call()
        assert refused.value.code == "RESERVATION_EXCEEDED"
        uow.commit()  # nothing was staged
        assert self.snapshot() == before

    def stale_ledger_writer(self, writer: tuple, intervening: tuple) -> None:
        """Stage a ledger writer, let ``intervening`` run, then commit: a conflict (and nothing changed)
        exactly when the intervening operation wrote the ledger; otherwise it posts what it read."""
        name, *args = writer
        uow, mark, count = self.uow(), self.model.mark(), self.model.ledger.entry_count
        holds: list[Hold] = []
        if name == "topup":
            moves: list[Move] = [(EntryType.TOPUP, args[0], TOPUP_TEXT)]
            after, entries = credit_service.stage_moves(uow, uow.credits.position(TENANT), moves, now=self.tick(),
                                                        pool=args[0])
        elif name == "seal":
            holds = self.choose(*args)
            if not holds:
                return self.run(intervening)
            reserved, actual, moves = self.seal_moves(holds)
            after, entries = credit_service.stage_settlement(uow, TENANT, reserved=reserved, deltas=len(holds),
                                                             now=self.tick())
        else:  # fail
            if not self.model.open():
                return self.run(intervening)
            holds = [self.model.open()[args[0] % len(self.model.open())]]
            text = f"Verification failed — hold {holds[0].hid}"
            moves = [(EntryType.REFUND, holds[0].amount, text)]
            after, entries = credit_service.stage_refund(uow, TENANT, holds[0].amount, text, now=self.tick())
        self.run(intervening)  # another request commits (or not) between this read and this commit
        before = self.snapshot()
        if self.model.ledger.entry_count != count:
            self.assert_unchanged(before, uow.commit, ConcurrentWriteError)
            self.stats["stale writer conflicts"] += 1
            return None
        uow.commit()
        self.stats["stale writer commits"] += 1
        if name == "topup":
            self.model.topups += args[0]
        expected = self.model.post(mark, moves)
        if name == "seal":
            self.model.resolve(holds, "sealed", actual)
            self.check_seal(holds, entries, reserved, actual)
        elif name == "fail":
            self.model.resolve(holds, "refunded", 0)
        matches(entries, expected)
        assert after == self.model.ledger
        # what was held after its read is left for the next writer to post
        assert self.position().unposted == self.model.held_total - mark[0]
        return None

    def stale_hold(self, deltas: int, cost: int, lane: int, intervening: tuple) -> None:
        """Read, let ``intervening`` run, then plan and commit the hold on the stale read: it commits exactly
        when the lane's (and on a refill the pool's) condition holds now; after a conflict or a drain,
        ingest reads again and retries."""
        amount = deltas * cost
        uow = self.uow()
        stale, stale_available = uow.credits.position(TENANT), self.model.available
        self.run(intervening)
        current, before = self.position(), self.snapshot()
        if stale_available < amount:
            self.assert_unchanged(before, lambda: hold_or_consolidate(uow, stale, amount, deltas, lane=lane),
                                  InsufficientCreditsError)
            return
        plan = plan_hold(stale, amount, lane)
        if plan.drain:
            with pytest.raises(ConcurrentWriteError):
                hold_or_consolidate(uow, stale, amount, deltas, lane=lane)
            if all(current.free(index) >= credits for index, credits in plan.drain.items()):
                assert self.position() == drained(current, plan.drain)
                self.stats["stale drains"] += 1
            else:
                assert self.snapshot() == before
                self.stats["stale drain conflicts"] += 1
        else:
            assert hold_or_consolidate(uow, stale, amount, deltas, lane=lane) == plan
            if hold_commits(plan, amount, current):
                uow.commit()
                self.model.hold(deltas, cost)
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
            holds = self.choose(*args)
            if holds:
                self.seal(holds)
        elif name == "fail":
            if self.model.open():
                self.fail(self.model.open()[args[0] % len(self.model.open())])
        elif name == "over":
            self.over(*args)
        elif name == "stale":
            writer, intervening = args
            if writer[0] == "share":
                writer = self.share(writer)
            if writer[0] == "accept":
                self.stale_hold(*writer[1:], intervening)
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
TOPUP = st.tuples(st.just("topup"), st.one_of(st.integers(1, 300), st.integers(1, 3_000)))
ACCEPT = st.one_of(  # deltas, credits each, lane picked
    st.tuples(st.just("accept"), st.one_of(st.integers(1, 10), st.integers(1, 100)),
              st.sampled_from([1, 1, 2, 3, 7, 20]), LANE),
    st.tuples(st.just("accept"), st.integers(40, 100), st.just(1), LANE),  # a batch: seals earn the volume rate
)
SEAL = st.tuples(st.just("seal"), PICK, st.one_of(st.integers(1, 90), st.integers(40, 90)),
                 st.sampled_from([1, 1, 1, 2, 3]))  # first open hold, how many, every n-th
FAIL = st.tuples(st.just("fail"), PICK)
SHARE = st.tuples(st.just("share"), st.integers(30, 110), LANE)  # near exhaustion: drains, refusals
SCATTER = st.tuples(st.just("scatter"), st.integers(1, 3), st.sampled_from([1, 2, 3, 7]), LANE, st.integers(4, 16))
SAME_LANE = LANE.flatmap(lambda lane: st.tuples(  # two holds racing on one lane's escrow
    st.just("stale"), *[st.tuples(st.just("accept"), st.integers(1, 30), st.sampled_from([1, 2, 3]), st.just(lane))
                        for _ in range(2)]))
# one_of picks a branch uniformly: listing a branch twice doubles its weight
STEP = st.one_of(TOPUP, ACCEPT, ACCEPT, SHARE, SEAL, FAIL)
OPERATIONS = st.one_of(
    TOPUP, TOPUP,
    st.tuples(st.just("bad_topup"), st.sampled_from([0, -1, -500, MAX_TOPUP + 1])),
    ACCEPT, ACCEPT, SCATTER, SHARE,
    SEAL, SEAL,
    FAIL,
    st.tuples(st.just("over"), st.sampled_from(["seal", "fail"]), st.integers(1, 100), st.sampled_from([1, 50])),
    st.tuples(st.just("stale"), st.one_of(TOPUP, SEAL, FAIL), STEP),
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
    # the listing pages by cursor as well as in one page
    assert harness.entries(limit=7) == harness.entries()
    for what in harness.stats:  # --hypothesis-show-statistics: how often each path ran
        event(what)


# --- targeted examples ----------------------------------------------------------------------------


def test_seed_004_flow_hold_post_settle_release():
    """Top up 10,000; hold 800; settle 150, the excess 650 released (seed 004's "Understanding Credit Flow"):
    the hold is reserved live the moment it is accepted; the writer that settles posts it first."""
    harness = fake_harness()
    harness.run(("topup", 10_000))
    harness.run(("accept", 8, 100, 0))  # 8 deltas of 100 credits
    live = credit_service.balances(harness.uow(), TENANT)
    assert (live.credit_balance, live.reserved, live.available, live.entry_count) == (10_000, 800, 9_200, 1)
    uow, mark = harness.uow(), harness.model.mark()
    moves: list[Move] = [(EntryType.SETTLEMENT, 150, "settled"), (EntryType.RELEASE, 650, "released")]
    _after, entries = credit_service.stage_moves(uow, uow.credits.position(TENANT), moves, now=harness.tick(),
                                                 pool=650, resolved=800)
    uow.commit()
    harness.model.post(mark, moves)
    harness.model.resolve(harness.model.open(), "settled", 150)
    harness.check_invariants()
    harness.assert_all_posted()
    account = credit_service.balances(harness.uow(), TENANT)
    assert (account.credit_balance, account.reserved, account.available, account.entry_count) == (9_850, 0, 9_850, 4)
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in harness.entries()] == [
        (EntryType.TOPUP, 10_000, 10_000, TOPUP_TEXT),
        (EntryType.RESERVATION, -800, 9_200, "Credits reserved for pending verifications — 8 deltas"),
        (EntryType.SETTLEMENT, -150, 9_200, "settled"), (EntryType.RELEASE, 650, 9_850, "released")]
    assert entries[0].entry_type == EntryType.RESERVATION


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


def test_a_drain_consolidates_the_lanes_commits_alone_and_the_retry_holds():
    """Credits scattered so that neither a lane nor the pool can pay 15, but the total can: the lanes are
    drained into the pool in a transaction of their own, the caller reads again, and the hold commits."""
    harness = fake_harness()
    harness.run(("topup", 32))
    for lane in range(HOLD_LANES):
        harness.run(("accept", 1, 1, lane))  # lanes 0-7 refilled with ⌈pool/16⌉ = 2, lanes 8-15 with 1
    position = harness.position()
    assert (position.available, position.pool) == (16, 8)
    assert [lane.free for lane in position.lanes] == [1] * 8 + [0] * 8
    plan = plan_hold(position, 15, 0)
    assert plan.drain == dict.fromkeys(range(8), 1)
    uow = harness.uow()
    with pytest.raises(credit_service.LanesScatteredError) as scattered:
        credit_service.stage_hold(uow, position, 15, 1, lane=0)  # staging only: it never commits
    assert scattered.value.drain == plan.drain and uow.committed == [] and harness.position() == position
    with pytest.raises(ConcurrentWriteError):
        hold_or_consolidate(uow, position, 15, 1, lane=0)
    assert uow.committed == [8 + 1]  # the eight lanes and the pool, on their own
    assert harness.position() == drained(position, plan.drain)
    harness.check_invariants()
    assert harness.accept(1, 15, 0)  # the retry (ingest's next attempt) refills lane 0 from the pool
    assert harness.accept(1, 1, 5) and not harness.accept(1, 1, 5)
    assert harness.position().available == 0
    harness.check_invariants()


def test_a_stale_ledger_writer_conflicts_and_changes_nothing():
    """A ledger writer's account update is conditioned on the entry count it read: when another writer
    committed in between, it conflicts and nothing it staged (posting, moves, pool, entries) lands."""
    harness = fake_harness()
    harness.run(("topup", 100))
    harness.run(("accept", 30, 1, 4))
    slow = harness.uow()
    _after, staged = credit_service.stage_refund(slow, TENANT, 1, "slow refund", now=harness.tick())
    assert [e.entry_type for e in staged] == [EntryType.RESERVATION, EntryType.REFUND]
    harness.run(("topup", 5))  # another writer moves the ledger (and posts the 30 itself)
    before = harness.snapshot()
    harness.assert_unchanged(before, slow.commit, ConcurrentWriteError)
    harness.check_invariants()
    # a read of a ledger that has since moved from nothing at all conflicts too
    late = harness.uow()
    zero = CreditAccount(TENANT)
    late.credits.record(zero, CreditAccount(TENANT, 1, 0, 1), LedgerEntry(
        TENANT, entry_id_for(1), EntryType.TOPUP, 1, "late", 1, NOW), pool=1)
    harness.assert_unchanged(before, late.commit, ConcurrentWriteError)


def test_holds_never_conflict_with_a_ledger_writer_and_stay_unposted_for_the_next():
    """A hold committing between a writer's read and its commit does not make it conflict: the writer posts
    what it read, and the next writer posts the rest — every balanceAfter exact in commit order."""
    harness = fake_harness()
    harness.run(("topup", 1_000))
    harness.run(("accept", 10, 2, 1))
    harness.run(("stale", ("fail", 0), ("accept", 7, 3, 2)))
    assert harness.stats["stale writer commits"] == 1
    position = harness.position()
    assert (position.unposted, position.unposted_deltas) == (21, 7)
    assert [(e.entry_type, e.amount, e.balance_after) for e in harness.entries()] == [
        (EntryType.TOPUP, 1_000, 1_000), (EntryType.RESERVATION, -20, 980), (EntryType.REFUND, 2, 982)]
    harness.run(("topup", 1))
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in harness.entries()[-2:]] == [
        (EntryType.RESERVATION, -21, 961, "Credits reserved for pending verifications — 7 deltas"),
        (EntryType.TOPUP, 1, 962, TOPUP_TEXT)]


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
    harness.model.hold(1, 40)
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
    harness.model.hold(2, 3)
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
        harness.run(("topup", lane + 1))
    harness.run(("seal", 0, 90, 1))
    listed = harness.entries(limit=5)  # oldest first, paged by cursor
    assert len(listed) == 1 + 12 * 3 + 1 and {e.created_at for e in listed} == {frozen}
    replay_ledger(listed, harness.position().ledger)
    matches(listed, harness.model.log)


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
    race or a drain read again; refused when the read shows too little. ``raced`` counts the holds that
    committed on a read other commits had already overtaken."""
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
    harness.model.hold(accepted, cost)
    harness.check_invariants()
    harness.run(("topup", 1))  # the next writer posts every hold as one reservation entry
    assert [(e.entry_type, e.amount, e.description) for e in harness.entries()[1:]] == [
        (EntryType.RESERVATION, -accepted * cost, f"Credits reserved for pending verifications — {accepted} deltas"),
        (EntryType.TOPUP, 1, TOPUP_TEXT)]


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
    assert live.available == position.pool + lanes_free(position) >= 0
    assert position.pool >= 0 and all(lane.free >= 0 for lane in position.lanes)
    entries = harness.entries()
    replay_ledger(entries, position.ledger)
    assert Counter(e.entry_type for e in entries)[EntryType.TOPUP] == 1 + topups
    posted = -sum(e.amount for e in entries if e.entry_type == EntryType.RESERVATION)
    assert posted == accepted * cost - position.unposted == position.ledger.reserved
    assert entries[-1].balance_after == position.ledger.available == live.available + position.unposted


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
    ("seal", 0, 45, 1),  # posts 60 (55 deltas); 45 deltas held 50: settles 45, releases 5
    ("fail", 0),  # refunds 1
    ("stale", ("topup", 7), ("accept", 2, 1, 5)),  # a hold in between: the top-up commits, the hold unposted
    ("stale", ("seal", 0, 10, 1), ("fail", 1)),  # a ledger writer in between: the seal conflicts
    ("stale", ("accept", 3, 2, 3), ("seal", 0, 3, 1)),  # the pool still pays the stale refill: it commits
    ("accept", 1, 1, 9),
    ("stale", ("accept", 1, 40, 9), ("accept", 1, 40, 9)),  # lane 9 now short: conflict; the retry is refused
    ("over", "fail", 1, 1),
    ("over", "seal", 1, 50),
    ("bad_topup", 0),
    ("accept", 1, 5, 0),  # 5 available, pool 4: lane 5's 1 is drained back, then the hold refills lane 0
    ("topup", 160),
    ("scatter", 1, 1, 0, 4),  # lanes 0-3 refilled with ⌈pool/16⌉ each: 34 left spread over them
    ("stale", ("accept", 1, 140, 4), ("accept", 1, 1, 0)),  # the stale drain conflicts (lane 0 has less)
    ("topup", 1),  # posts everything
]


def test_fake_and_dynamodb_credit_repositories_behave_alike(new_uow):
    harness = Harness(new_uow, fake=isinstance(new_uow(), FakeUnitOfWork), page=3)
    assert credit_service.balances(harness.uow(), TENANT) == CreditAccount(tenant_id=TENANT)
    assert harness.position() == CreditPosition(ledger=CreditAccount(tenant_id=TENANT))
    for operation in SCRIPT:
        harness.run(operation)
    assert harness.stats == {"refills": 12, "holds": 1, "drains": 2, "refused": 1, "volume-rate seals": 1, "seals": 1,
                             "stale writer commits": 1, "stale writer conflicts": 1, "stale hold commits": 1,
                             "stale hold conflicts": 1, "stale drain conflicts": 1}
    assert harness.seals == [(45, 50, 45), (3, 3, 3)]
    position = harness.position()
    assert position.balances() == CreditAccount(TENANT, credit_balance=220, reserved=204, entry_count=13)
    assert (position.pool, lanes_free(position), position.unposted, position.resolved) == (16, 0, 0, 55)
    assert [(e.entry_type, e.amount, e.balance_after) for e in harness.entries()] == [
        (EntryType.TOPUP, 100, 100), (EntryType.RESERVATION, -60, 40), (EntryType.SETTLEMENT, -45, 40),
        (EntryType.RELEASE, 5, 45), (EntryType.REFUND, 1, 46), (EntryType.TOPUP, 7, 53),
        (EntryType.RESERVATION, -2, 51), (EntryType.REFUND, 1, 52), (EntryType.SETTLEMENT, -3, 52),
        (EntryType.RESERVATION, -52, 0), (EntryType.TOPUP, 160, 160), (EntryType.RESERVATION, -145, 15),
        (EntryType.TOPUP, 1, 16)]


def test_fake_and_dynamodb_commit_a_seals_posting_settlement_and_release_alike(new_uow):
    harness = Harness(new_uow, fake=isinstance(new_uow(), FakeUnitOfWork))
    harness.run(("topup", 100))
    harness.run(("accept", 60, 1, 2))
    uow = harness.uow()
    after, entries = credit_service.stage_settlement(uow, TENANT, reserved=60, deltas=60, now=NOW)
    uow.commit()  # one account update, three entries: DynamoDB allows one operation per item
    assert after == CreditAccount(TENANT, 46, 0, 4) == credit_service.balances(harness.uow(), TENANT)
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in entries] == [
        (EntryType.RESERVATION, -60, 40, "Credits reserved for pending verifications — 60 deltas"),
        (EntryType.SETTLEMENT, -54, 40, "Verification batch settled — 60 deltas"),
        (EntryType.RELEASE, 6, 46, "Volume rate: 6 of 60 reserved credits released — 60 deltas sealed together")]
    position = harness.position()
    assert (position.pool, lanes_free(position), position.resolved, position.posted_deltas) == (46, 0, 60, 60)
    assert harness.entries(limit=2)[1:] == entries


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


def test_the_worked_example_a_batch_of_100_sealed_as_90_and_10():
    """One customer's batch of 100 at 1 credit: held 100; the verifier seals 90 then 10 deltas. Seal 1 posts
    the 100, settles 81 and releases 9; seal 2 (below 40) settles 10. Spent 91 of the 100 held."""
    harness = fake_harness()
    harness.run(("topup", 1_000))
    harness.run(("accept", 100, 1, 11))
    waiting = harness.model.open()
    harness.seal(waiting[:90])
    harness.seal(waiting[90:])
    harness.check_invariants()
    assert harness.seals == [(90, 90, 81), (10, 10, 10)]
    account = credit_service.balances(harness.uow(), TENANT)
    assert (account.credit_balance, account.reserved, account.available, account.entry_count) == (909, 0, 909, 5)
    assert [(e.entry_type, e.amount, e.balance_after) for e in harness.entries()] == [
        (EntryType.TOPUP, 1_000, 1_000), (EntryType.RESERVATION, -100, 900), (EntryType.SETTLEMENT, -81, 900),
        (EntryType.RELEASE, 9, 909), (EntryType.SETTLEMENT, -10, 909)]
    assert harness.position().pool + lanes_free(harness.position()) == 909


def test_a_seal_on_a_stale_ledger_changes_nothing():
    """Posting, settlement and release are one account update: a lost race leaves none of them behind."""
    harness = fake_harness()
    harness.run(("topup", 100))
    harness.run(("accept", 50, 1, 6))
    harness.run(("stale", ("seal", 0, 50, 1), ("topup", 1)))
    assert harness.stats["stale writer conflicts"] == 1
    assert harness.position().balances() == CreditAccount(TENANT, 101, 50, 3)
    assert [e.entry_type for e in harness.entries()] == [EntryType.TOPUP, EntryType.RESERVATION, EntryType.TOPUP]


def test_the_harness_refuses_to_resolve_a_hold_twice():
    harness = fake_harness()
    harness.run(("topup", 10))
    harness.run(("accept", 2, 1, 0))
    hold = harness.model.open()[0]
    harness.run(("fail", 0))
    with pytest.raises(AlreadyResolved):
        harness.fail(hold)


def test_hold_lane_positions_are_read_back_by_index():
    """``after_hold`` (what ingest plans its next chunk on) equals the stored position, new lanes included."""
    position = CreditPosition(ledger=CreditAccount(TENANT, 10, 0, 1), pool=10, lanes=(HoldLane(4, free=0),))
    plan = plan_hold(position, 3, 9)
    assert plan == HoldPlan(9, refill=3)
    after = credit_service.after_hold(position, plan, 3, 2)
    assert after.lanes == (HoldLane(4), HoldLane(9, free=0, held_total=3, held_deltas=2)) and after.pool == 7
    assert after.available == 7 == after.pool + lanes_free(after)
