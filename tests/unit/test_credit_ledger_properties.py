"""Prepaid credits (seed 004) as properties: random topup/reserve/settle/release/refund runs.

Every operation goes through two paths that must agree step for step:

* the pure domain move ``chalicelib.domain.credits.apply``;
* the services (``move_credits``, ``topup``, ``settle``, ``release``, ``refund``) over the
  in-memory unit of work with ``FakeCreditRepository`` (conditional account update plus an
  immutable entry, as ``DynamoCreditRepository`` does);

and both are checked against a reference model that knows each reservation individually
and resolves it at most once (settle — possibly partially, the excess released — or
release, or refund). Accepted deltas reserve per delta (one entry per acceptance, as ingest
does) and are resolved in verification seals (``stage_settlement``: the catalogue's volume
rate settles, the rest is released, on one account update) or refunded. After every step::

    creditBalance    = Σ topup + Σ settlement            (settlement amounts are negative)
    reserved         = Σ|reservation| - Σ|settlement| - Σ|release| - Σ|refund|
                     = Σ open reservations               (each resolved at most once)
    availableBalance = creditBalance - reserved ≥ 0
    balanceAfter     = the available balance right after that entry
    per seal:  settlement + release = Σ what its deltas reserved
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.credits import (
    MAX_TOPUP,
    CreditAccount,
    EntryType,
    InsufficientCreditsError,
    LedgerEntry,
    apply,
)
from chalicelib.domain.errors import ConflictError, ValidationError
from chalicelib.domain.plans import CREDITS_VOLUME_RATE, VolumeRate
from chalicelib.services import credits as credit_service
from chalicelib.services.ports import UnitOfWork
from tests.fakes import FakeCreditRepository, FakeStore, FakeUnitOfWork
from tests.unit.builders import NOW, seed_tenant, tenant

TENANT = "2"
RESOLUTIONS = (EntryType.SETTLEMENT, EntryType.RELEASE, EntryType.REFUND)


def credit_uow(store: FakeStore) -> FakeUnitOfWork:
    uow = FakeUnitOfWork(store)
    uow.credits = FakeCreditRepository(uow)
    return uow


def all_entries(uow: UnitOfWork, tenant_id: str = TENANT, limit: int = 7) -> list:
    """Every entry through the service's cursor paging (newest first), checking its total."""
    found, cursor = [], None
    while True:
        page = credit_service.entries(uow, tenant_id, limit=limit, cursor=cursor, page=1)
        assert page.total == uow.credits.account(tenant_id).entry_count
        assert len(page.items) <= limit
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


# --- the reference model ---------------------------------------------------------------------


class AlreadyResolved(Exception):
    """The harness refuses to resolve a reservation twice."""


@dataclass
class Reservation:
    rid: int
    amount: int
    resolved_by: str | None = None
    delta: bool = False  # one accepted delta's hold (resolved by a seal or a refund)


@dataclass
class Model:
    topups: int = 0
    settled: int = 0
    reservations: dict[int, Reservation] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=itertools.count)

    @property
    def balance(self) -> int:
        return self.topups - self.settled

    @property
    def reserved(self) -> int:
        return sum(r.amount for r in self.reservations.values() if r.resolved_by is None)

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    def open(self) -> list[Reservation]:
        return [r for r in self.reservations.values() if r.resolved_by is None]

    def closed(self) -> list[Reservation]:
        return [r for r in self.reservations.values() if r.resolved_by is not None]

    def reserve(self, amount: int, *, delta: bool = False) -> Reservation:
        reservation = Reservation(next(self.ids), amount, delta=delta)
        self.reservations[reservation.rid] = reservation
        return reservation

    def open_deltas(self) -> list[Reservation]:
        return [r for r in self.open() if r.delta]

    def resolve_seal(self, reservations: list[Reservation], charged: int) -> None:
        """A seal resolves each of its deltas' holds once; together they are charged ``charged``."""
        if any(r.resolved_by is not None for r in reservations):
            raise AlreadyResolved("a sealed delta was already resolved")
        assert len({r.rid for r in reservations}) == len(reservations)
        assert 0 <= charged <= sum(r.amount for r in reservations)
        for reservation in reservations:
            reservation.resolved_by = "sealed"
        self.settled += charged

    def resolve(self, reservation: Reservation, how: str, charged: int = 0) -> None:
        if reservation.resolved_by is not None:
            raise AlreadyResolved(f"reservation {reservation.rid} already {reservation.resolved_by}")
        assert 0 <= charged <= reservation.amount
        reservation.resolved_by = how
        self.settled += charged


# --- the harness: both paths, every invariant --------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.store = FakeStore()
        seed_tenant(FakeUnitOfWork(self.store), TENANT)
        self.model = Model()
        self.pure = CreditAccount(tenant_id=TENANT)
        self.pure_log: list[tuple[EntryType, int, int]] = []  # (type, signed amount, available after)
        self.returned: dict[str, object] = {}  # entry id → entry, as services returned them
        self.now = NOW
        self.rejected: list[str] = []
        self.seals: list[tuple[int, int, int]] = []  # (deltas, reserved, settled)

    def uow(self) -> FakeUnitOfWork:
        return credit_uow(self.store)

    def tick(self):
        self.now += timedelta(milliseconds=1)
        return self.now

    # pure path: one movement, or raise without changing anything
    def pure_move(self, entry_type: EntryType, amount: int) -> None:
        after, signed = apply(self.pure, entry_type, amount)
        self.pure = after
        self.pure_log.append((entry_type, signed, after.available))

    def service_state(self) -> tuple[CreditAccount, int]:
        uow = self.uow()
        return credit_service.balances(uow, TENANT), uow.credits.account(TENANT).entry_count

    def check_entries(self, entries: list, expected_types: list[EntryType]) -> None:
        """Entries a service call returned: the expected moves, each balanceAfter exact."""
        assert [e.entry_type for e in entries] == expected_types
        tail = self.pure_log[len(self.pure_log) - len(entries):]
        for entry, (entry_type, signed, available_after) in zip(entries, tail, strict=True):
            assert (entry.entry_type, entry.amount, entry.balance_after) == (entry_type, signed, available_after)
            assert entry.tenant_id == TENANT
            self.returned[entry.entry_id] = entry

    def expect_rejected(self, error: type[Exception], call, pure_type: EntryType, amount: int) -> None:
        """Both paths refuse, and neither the pure account nor the stored one changes."""
        before = self.service_state()
        pure_before = self.pure
        with pytest.raises(error):
            apply(self.pure, pure_type, amount)
        with pytest.raises(error):
            call()
        assert self.pure == pure_before
        assert self.service_state() == before
        self.rejected.append(pure_type)

    def check_invariants(self) -> None:
        model, pure = self.model, self.pure
        account, count = self.service_state()
        # the three views agree
        assert (pure.credit_balance, pure.reserved) == (model.balance, model.reserved)
        assert (account.credit_balance, account.reserved) == (model.balance, model.reserved)
        assert account.available == account.credit_balance - account.reserved == model.available >= 0
        # the ledger's totals
        entries = all_entries(self.uow())
        assert count == len(entries) == len(self.returned) == len(self.pure_log)
        assert {e.entry_id: e for e in entries} == self.returned
        total = {t: sum(e.amount for e in entries if e.entry_type == t) for t in EntryType}
        assert total[EntryType.TOPUP] >= 0 and total[EntryType.RESERVATION] <= 0
        assert total[EntryType.SETTLEMENT] <= 0 and total[EntryType.RELEASE] >= 0 and total[EntryType.REFUND] >= 0
        assert account.credit_balance == total[EntryType.TOPUP] + total[EntryType.SETTLEMENT]
        assert account.reserved == (-total[EntryType.RESERVATION] + total[EntryType.SETTLEMENT]
                                    - total[EntryType.RELEASE] - total[EntryType.REFUND])
        assert total[EntryType.TOPUP] == model.topups and -total[EntryType.SETTLEMENT] == model.settled
        # replaying the moves in commit order reproduces every balanceAfter
        replay = CreditAccount(tenant_id=TENANT)
        for entry_type, signed, available_after in self.pure_log:
            replay, again = apply(replay, entry_type, abs(signed))
            assert (again, replay.available) == (signed, available_after)
        assert replay == pure

    # --- operations ---
    def topup(self, amount: int) -> None:
        self.pure_move(EntryType.TOPUP, amount)
        _account, entry = credit_service.topup(self.uow(), TENANT, amount, actor="user:test", now=self.tick())
        self.model.topups += amount
        self.check_entries([entry], [EntryType.TOPUP])

    def bad_topup(self, amount: int) -> None:
        self.expect_rejected(ValidationError, lambda: credit_service.topup(
            self.uow(), TENANT, amount, actor="user:test", now=self.tick()), EntryType.TOPUP, amount)

    def reserve(self, amount: int) -> None:
        if amount > self.model.available:
            self.expect_rejected(InsufficientCreditsError, lambda: credit_service.move_credits(
                self.uow(), TENANT, EntryType.RESERVATION, amount, "hold", now=self.tick()),
                EntryType.RESERVATION, amount)
            return
        self.pure_move(EntryType.RESERVATION, amount)
        _account, entry = credit_service.move_credits(self.uow(), TENANT, EntryType.RESERVATION, amount,
                                                      "Credits reserved for pending verifications", now=self.tick())
        self.model.reserve(amount)
        self.check_entries([entry], [EntryType.RESERVATION])

    def settle(self, reservation: Reservation, actual: int) -> None:
        self.model.resolve(reservation, "settled", charged=actual)
        expected = []
        if actual:
            self.pure_move(EntryType.SETTLEMENT, actual)
            expected.append(EntryType.SETTLEMENT)
        if reservation.amount > actual:
            self.pure_move(EntryType.RELEASE, reservation.amount - actual)
            expected.append(EntryType.RELEASE)
        entries = credit_service.settle(self.uow(), TENANT, reservation.amount, actual, now=self.tick(),
                                        description=f"Verification settled — reservation {reservation.rid}")
        self.check_entries(entries, expected)

    def accept(self, count: int, per_delta: int) -> None:
        """Ingest: as many of ``count`` deltas as the available credits pay for, one reservation entry."""
        accepted = min(count, self.model.available // per_delta)
        if not accepted:
            self.expect_rejected(InsufficientCreditsError, lambda: credit_service.move_credits(
                self.uow(), TENANT, EntryType.RESERVATION, count * per_delta, "hold", now=self.tick()),
                EntryType.RESERVATION, count * per_delta)
            return
        self.pure_move(EntryType.RESERVATION, accepted * per_delta)
        _account, entry = credit_service.move_credits(
            self.uow(), TENANT, EntryType.RESERVATION, accepted * per_delta,
            f"Credits reserved for pending verifications — {accepted} deltas", now=self.tick())
        for _ in range(accepted):
            self.model.reserve(per_delta, delta=True)
        self.check_entries([entry], [EntryType.RESERVATION])

    def seal(self, sealed: list[Reservation]) -> None:
        """Verification: the seal's settlement and release, staged together and committed once."""
        reserved = sum(r.amount for r in sealed)
        actual = CREDITS_VOLUME_RATE.charge(reserved, len(sealed))
        self.model.resolve_seal(sealed, actual)
        self.pure_move(EntryType.SETTLEMENT, actual)
        expected = [EntryType.SETTLEMENT]
        if reserved > actual:
            self.pure_move(EntryType.RELEASE, reserved - actual)
            expected.append(EntryType.RELEASE)
        uow = self.uow()
        _after, entries = credit_service.stage_settlement(uow, TENANT, reserved=reserved, deltas=len(sealed),
                                                          now=self.tick())
        uow.commit()
        assert uow.committed == [1 + len(entries)]  # one account update and its entries, one transaction
        self.check_entries(entries, expected)
        settled, *released = entries
        assert -settled.amount + sum(e.amount for e in released) == reserved
        if len(sealed) >= CREDITS_VOLUME_RATE.min_deltas and reserved >= 10:
            assert released and released[0].amount == reserved - actual > 0
        self.seals.append((len(sealed), reserved, actual))

    def release(self, reservation: Reservation) -> None:
        self.model.resolve(reservation, "released")
        self.pure_move(EntryType.RELEASE, reservation.amount)
        entry = credit_service.release(self.uow(), TENANT, reservation.amount, now=self.tick(), description="release")
        self.check_entries([entry], [EntryType.RELEASE])

    def refund(self, reservation: Reservation) -> None:
        self.model.resolve(reservation, "refunded")
        self.pure_move(EntryType.REFUND, reservation.amount)
        entry = credit_service.refund(self.uow(), TENANT, reservation.amount, now=self.tick(),
                                      description="Verification failed")
        self.check_entries([entry], [EntryType.REFUND])

    def resolve_again(self, reservation: Reservation, how: EntryType) -> None:
        """A second resolution of one reservation: the model refuses before any credit moves;
        and if the hold it names is larger than what is still reserved, the domain refuses too."""
        before = self.service_state()
        resolve = {EntryType.SETTLEMENT: lambda: self.settle(reservation, reservation.amount),
                   EntryType.RELEASE: lambda: self.release(reservation),
                   EntryType.REFUND: lambda: self.refund(reservation)}[how]
        with pytest.raises(AlreadyResolved):
            resolve()
        assert self.service_state() == before
        if reservation.amount > self.model.reserved:
            self.expect_rejected(ValidationError, lambda: credit_service.move_credits(
                self.uow(), TENANT, how, reservation.amount, "again", now=self.tick()), how, reservation.amount)

    def over_resolve(self, how: EntryType, excess: int) -> None:
        amount = self.model.reserved + excess
        self.expect_rejected(ValidationError, lambda: credit_service.move_credits(
            self.uow(), TENANT, how, amount, "too much", now=self.tick()), how, amount)


PICK = st.integers(0, 1_000)  # which reservation, modulo how many qualify
TOPUP = st.tuples(st.just("topup"), st.integers(1, 5_000))
RESERVE = st.tuples(st.just("reserve"), st.one_of(st.integers(1, 400), st.integers(1, 20_000)))
SETTLE = st.tuples(st.just("settle"), PICK, st.one_of(st.integers(0, 100), st.sampled_from([0, 100])))
ACCEPT = st.tuples(st.just("accept"), st.integers(1, 100), st.sampled_from([1, 1, 2, 3]))  # deltas, credits each
SEAL = st.tuples(st.just("seal"), PICK, st.one_of(st.integers(1, 90), st.integers(35, 90)))  # first, how many
# one_of picks a branch uniformly: listing a branch twice doubles its weight
OPERATIONS = st.one_of(
    TOPUP, TOPUP,
    st.tuples(st.just("bad_topup"), st.sampled_from([0, -1, -500, MAX_TOPUP + 1])),
    RESERVE, RESERVE, RESERVE,
    SETTLE, SETTLE,
    st.tuples(st.just("release"), PICK),
    st.tuples(st.just("refund"), PICK),
    st.tuples(st.just("again"), PICK, st.sampled_from(RESOLUTIONS)),
    st.tuples(st.just("over"), st.sampled_from(RESOLUTIONS), st.integers(1, 1_000)),
    ACCEPT, ACCEPT,
    SEAL, SEAL,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.lists(OPERATIONS, min_size=10, max_size=60))
def test_random_ledger_runs_keep_every_invariant(opening, operations):
    harness = Harness()
    if opening:
        harness.topup(opening)
        harness.check_invariants()
    for operation in operations:
        name, *args = operation
        model = harness.model
        if name == "topup":
            harness.topup(args[0])
        elif name == "bad_topup":
            harness.bad_topup(args[0])
        elif name == "reserve":
            harness.reserve(args[0])
        elif name in ("settle", "release", "refund"):
            if not model.open():
                continue
            reservation = model.open()[args[0] % len(model.open())]
            if name == "settle":
                harness.settle(reservation, reservation.amount * args[1] // 100)  # 0..100 % charged
            else:
                getattr(harness, name)(reservation)
        elif name == "accept":
            harness.accept(args[0], args[1])
        elif name == "seal":
            waiting = model.open_deltas()
            if not waiting:
                continue
            start = args[0] % len(waiting)
            harness.seal(waiting[start:start + args[1]])
        elif name == "again":
            if not model.closed():
                continue
            harness.resolve_again(model.closed()[args[0] % len(model.closed())], args[1])
        else:
            harness.over_resolve(args[0], args[1])
        harness.check_invariants()


# --- targeted examples --------------------------------------------------------------------------


def test_seed_004_flow_reserve_settle_release():
    """Top up 10,000; reserve 800; settle 150, the excess 650 released (seed 004's "Understanding Credit Flow")."""
    harness = Harness()
    harness.topup(10_000)
    harness.reserve(800)
    reservation = harness.model.open()[0]
    harness.settle(reservation, 150)
    harness.check_invariants()
    account, count = harness.service_state()
    assert (account.credit_balance, account.reserved, account.available) == (9_850, 0, 9_850)
    assert count == 4
    amounts = sorted((e.entry_type, e.amount, e.balance_after) for e in harness.returned.values())
    assert amounts == sorted([(EntryType.TOPUP, 10_000, 10_000), (EntryType.RESERVATION, -800, 9_200),
                              (EntryType.SETTLEMENT, -150, 9_200), (EntryType.RELEASE, 650, 9_850)])


def test_exact_overdraw_boundary():
    harness = Harness()
    harness.topup(5)
    harness.reserve(5)  # exactly the available balance
    harness.reserve(1)  # one more: refused
    assert harness.rejected == [EntryType.RESERVATION]
    harness.check_invariants()
    assert harness.service_state()[0].available == 0


def test_a_stale_account_read_conflicts_and_changes_nothing():
    """``record(before, ...)`` is conditioned on the stored account still being ``before``."""
    harness = Harness()
    harness.topup(100)
    slow = harness.uow()
    stale = slow.credits.account(TENANT)
    harness.reserve(30)  # someone else moves the account in between
    after, signed = apply(stale, EntryType.RESERVATION, 100)
    slow.credits.record(stale, after, LedgerEntry(
        tenant_id=TENANT, entry_id="0000000stale", entry_type=EntryType.RESERVATION, amount=signed,
        description="stale", balance_after=after.available, created_at=NOW))
    before = harness.service_state()
    with pytest.raises(ConflictError):
        slow.commit()
    assert harness.service_state() == before
    harness.check_invariants()


def test_move_credits_retries_on_a_concurrent_move_and_reports_the_fresh_balance():
    """The first read is overtaken by another writer; the retry re-reads, so balanceAfter stays exact."""
    harness = Harness()
    harness.topup(100)

    class Overtaken(FakeCreditRepository):
        reads = 0

        def account(self, tenant_id):
            seen = super().account(tenant_id)
            Overtaken.reads += 1
            if Overtaken.reads == 1:  # another request reserves 40 right after our read
                harness.reserve(40)
            return seen

    uow = FakeUnitOfWork(harness.store)
    uow.credits = Overtaken(uow)
    _account, entry = credit_service.move_credits(uow, TENANT, EntryType.RESERVATION, 50, "hold", now=harness.tick())
    harness.pure_move(EntryType.RESERVATION, 50)  # committed after the overtaking reservation
    harness.model.reserve(50)
    assert Overtaken.reads == 2
    assert (entry.amount, entry.balance_after) == (-50, 10)
    harness.check_entries([entry], [EntryType.RESERVATION])
    harness.check_invariants()


def test_concurrent_reservations_never_overdraw():
    """Two requests read the same 60 available and each reserve 40: one wins, the other's retry is refused."""
    harness = Harness()
    harness.topup(60)
    first, second = harness.uow(), harness.uow()
    seen = [first.credits.account(TENANT), second.credits.account(TENANT)]
    for uow, before in zip((first, second), seen, strict=True):
        after, signed = apply(before, EntryType.RESERVATION, 40)
        uow.credits.record(before, after, LedgerEntry(
            tenant_id=TENANT, entry_id=f"0000000{id(uow)}", entry_type=EntryType.RESERVATION, amount=signed,
            description="hold", balance_after=after.available, created_at=NOW))
    first.commit()
    with pytest.raises(ConflictError):
        second.commit()
    with pytest.raises(InsufficientCreditsError):
        credit_service.move_credits(second, TENANT, EntryType.RESERVATION, 40, "hold", now=NOW)
    account = credit_service.balances(harness.uow(), TENANT)
    assert (account.credit_balance, account.reserved, account.available) == (60, 40, 20)
    assert harness.uow().credits.account(TENANT).entry_count == 2


def test_the_listing_newest_first_is_commit_order_even_within_one_millisecond():
    harness = Harness()
    harness.topup(1_000)
    for _ in range(30):
        harness.reserve(10)
    for reservation in harness.model.open():
        harness.settle(reservation, 4)  # settlement 4 then release 6: one call, one `now`
    listed = list(reversed(all_entries(harness.uow(), limit=100)))  # oldest first
    replay = CreditAccount(tenant_id=TENANT)
    for entry in listed:
        replay, _signed = apply(replay, entry.entry_type, abs(entry.amount))
        assert entry.balance_after == replay.available, entry


# --- the fake earns its trust: the same script against FakeCreditRepository and DynamoDB ---------


@pytest.fixture(params=["fake", "dynamodb"])
def new_uow(request):
    """Units of work sharing one store: the fake, or DynamoUnitOfWork under moto."""
    if request.param == "fake":
        store = FakeStore()
        return lambda: credit_uow(store)
    request.getfixturevalue("aws")
    from chalicelib.adapters.dynamodb.unit_of_work import DynamoUnitOfWork

    return DynamoUnitOfWork


def test_fake_and_dynamodb_credit_repositories_behave_alike(new_uow):
    seed = new_uow()
    seed.tenants.add(tenant(TENANT))
    seed.commit()
    assert credit_service.balances(new_uow(), TENANT) == CreditAccount(tenant_id=TENANT)
    assert new_uow().credits.account(TENANT).entry_count == 0

    script = [(EntryType.TOPUP, 100, (100, 0, 100)), (EntryType.RESERVATION, 30, (100, 30, 70)),
              (EntryType.SETTLEMENT, 10, (90, 20, 70)), (EntryType.RELEASE, 5, (90, 15, 75)),
              (EntryType.REFUND, 15, (90, 0, 90)), (EntryType.RESERVATION, 90, (90, 90, 0)),
              (EntryType.SETTLEMENT, 90, (0, 0, 0))]
    for step, (entry_type, amount, expected) in enumerate(script):
        account, entry = credit_service.move_credits(new_uow(), TENANT, entry_type, amount, f"step {step}",
                                                     now=NOW + timedelta(milliseconds=step))
        assert (account.credit_balance, account.reserved, account.available) == expected
        assert entry.balance_after == expected[2]
    assert credit_service.balances(new_uow(), TENANT) == CreditAccount(TENANT, 0, 0, len(script))

    # newest first, paged by cursor, total from the entry counter
    listed = all_entries(new_uow(), limit=3)
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in listed] == [
        (t, -a if t in (EntryType.RESERVATION, EntryType.SETTLEMENT) else a, exp[2], f"step {i}")
        for i, (t, a, exp) in reversed(list(enumerate(script)))]
    assert new_uow().credits.account(TENANT).entry_count == len(script)

    # the stored balances are 0/0 again: the next move still commits (the entry count orders it)
    account, _entry = credit_service.move_credits(new_uow(), TENANT, EntryType.TOPUP, 7, "again", now=NOW)
    assert account == CreditAccount(TENANT, 7, 0, len(script) + 1)

    # a stale read conflicts at commit and leaves everything as it was
    slow = new_uow()
    stale = slow.credits.account(TENANT)
    credit_service.move_credits(new_uow(), TENANT, EntryType.RESERVATION, 2, "fast", now=NOW)
    after, signed = apply(stale, EntryType.RESERVATION, 7)
    slow.credits.record(stale, after, LedgerEntry(TENANT, "0000000stale", EntryType.RESERVATION, signed, "stale",
                                                  after.available, NOW))
    with pytest.raises(ConflictError):
        slow.commit()
    assert credit_service.balances(new_uow(), TENANT) == CreditAccount(TENANT, 7, 2, len(script) + 2)
    assert new_uow().credits.account(TENANT).entry_count == len(script) + 2

    # a 0/0 read of an account that has since moved conflicts too
    zero = CreditAccount(TENANT)
    late = new_uow()
    late.credits.record(zero, CreditAccount(TENANT, 1, 0), LedgerEntry(
        TENANT, "0000000zero", EntryType.TOPUP, 1, "late", 1, NOW))
    with pytest.raises(ConflictError):
        late.commit()
    assert new_uow().credits.account(TENANT).entry_count == len(script) + 2


# --- the catalogue's volume rate: where the actual cost is below the reservation (release) -------


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3), st.integers(1, 200), st.integers(1, 100), st.integers(0, 100))
def test_a_seal_settles_at_most_what_it_reserved_and_releases_the_rest(per_delta, deltas, min_deltas, percent):
    rate = VolumeRate(min_deltas=min_deltas, percent=percent)
    reserved = per_delta * deltas
    charged = rate.charge(reserved, deltas)
    assert isinstance(charged, int) and 0 <= charged <= reserved
    if deltas < min_deltas:
        assert charged == reserved
    else:  # percent of the reservation, rounded up to a whole credit: the release is rounded down
        assert charged * 100 >= reserved * percent > (charged - 1) * 100
        assert reserved - charged == reserved * (100 - percent) // 100


def test_the_catalogue_rate_releases_a_tenth_of_large_seals():
    assert (CREDITS_VOLUME_RATE.min_deltas, CREDITS_VOLUME_RATE.percent) == (40, 90)
    assert [CREDITS_VOLUME_RATE.charge(n, n) for n in (1, 10, 39, 40, 46, 90, 100)] == [1, 10, 39, 36, 42, 81, 90]


def test_the_worked_example_a_batch_of_100_sealed_as_90_and_10():
    """One customer's batch of 100 at 1 credit: reserved 100; the verifier seals 90 then 10 deltas.
    Seal 1 settles 81 and releases 9; seal 2 (below 40) settles 10. Spent 91 of the 100 reserved."""
    harness = Harness()
    harness.topup(1_000)
    harness.accept(100, 1)
    waiting = harness.model.open_deltas()
    harness.seal(waiting[:90])
    harness.seal(waiting[90:])
    harness.check_invariants()
    assert harness.seals == [(90, 90, 81), (10, 10, 10)]
    account, count = harness.service_state()
    assert (account.credit_balance, account.reserved, account.available) == (909, 0, 909)
    listed = [(e.entry_type, e.amount, e.balance_after) for e in reversed(all_entries(harness.uow()))]
    assert listed == [(EntryType.TOPUP, 1_000, 1_000), (EntryType.RESERVATION, -100, 900),
                      (EntryType.SETTLEMENT, -81, 900), (EntryType.RELEASE, 9, 909),
                      (EntryType.SETTLEMENT, -10, 909)] and count == 5


def test_a_seal_conditioned_on_a_stale_account_changes_nothing():
    """Settlement and release are one account update: a lost race leaves neither behind."""
    harness = Harness()
    harness.topup(100)
    harness.accept(50, 1)
    slow = harness.uow()
    credit_service.stage_settlement(slow, TENANT, reserved=50, deltas=50, now=harness.tick())
    harness.topup(1)  # someone else moves the account in between
    before = harness.service_state()
    with pytest.raises(ConflictError):
        slow.commit()
    assert harness.service_state() == before
    harness.check_invariants()


def test_fake_and_dynamodb_commit_a_seals_settlement_and_release_alike(new_uow):
    seed = new_uow()
    seed.tenants.add(tenant(TENANT))
    seed.commit()
    credit_service.topup(new_uow(), TENANT, 100, actor="test", now=NOW)
    credit_service.move_credits(new_uow(), TENANT, EntryType.RESERVATION, 60, "hold", now=NOW)
    uow = new_uow()
    after, entries = credit_service.stage_settlement(uow, TENANT, reserved=60, deltas=60, now=NOW)
    uow.commit()  # one account update, two entries: DynamoDB allows one operation per item
    assert after == CreditAccount(TENANT, 46, 0, 4) == credit_service.balances(new_uow(), TENANT)
    assert [(e.entry_type, e.amount, e.balance_after) for e in entries] == [
        (EntryType.SETTLEMENT, -54, 40), (EntryType.RELEASE, 6, 46)]
    listed = all_entries(new_uow(), limit=3)
    assert [(e.entry_type, e.amount, e.balance_after, e.description) for e in listed[:2]] == [
        (EntryType.RELEASE, 6, 46, "Volume rate: 6 of 60 reserved credits released — 60 deltas sealed together"),
        (EntryType.SETTLEMENT, -54, 40, "Verification batch settled — 60 deltas")]
