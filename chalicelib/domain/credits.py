"""Prepaid credits (seed 004): escrowed holds at acceptance, an exact ledger posted by few writers.

Acceptance must not serialise on one account row, yet credit must never be overspent and every
ledger entry's ``balanceAfter`` must be exact. So the account is split the way TigerBeetle splits
pending from posted transfers, with the pending side escrowed over sharded sub-accounts:

* **Holds (pending transfers).** Each accepted credit-billed delta holds ``credits_reserved`` (on the
  delta: ``credit_state`` RESERVED, and the lane it drew from). The credits come from one of
  ``HOLD_LANES`` *lanes*, each holding an escrowed share of the available balance (``free``): the
  acceptance transaction subtracts from one lane's ``free`` conditioned on ``free >= amount`` — a
  commutative conditional ADD, not a compare-and-swap on a value read earlier — and adds the hold
  to the lane's cumulative ``held_total``. A lane short of escrow is refilled from the account's
  ``pool`` in the same transaction (conditional ADD, ``pool >= refill``); when neither a lane nor the
  pool can pay but the total can, the lanes are drained back into the pool first (rare: only near
  exhaustion).
* **Settlements (posted transfers, in aggregate).** A verification seal resolves its deltas' holds
  by ADDs only, on the lane numbered like its chain (``HoldLane.settled``; the adapter keeps them on
  items of their own, apart from the holds): the catalogue's actual cost is *settled* and the rest
  *released* (``Settled``: credits, released, deltas, seals — cumulative). The seal's transaction
  conditions each delta on still holding exactly that hold, so a hold is resolved exactly once;
  seals of one tenant never wait for each other (nor for the account). Released credits are
  not spendable until posted (they return to the pool then), so the ledger can always post
  the holds before the resolutions that follow them.
* **Posting (the ledger).** Entries are written only by the ledger's writers — top-ups, the
  settlement poster (after every verifier run), failures — each on one account update
  conditioned on the entry count it read, so entries are numbered in commit order and
  ``balanceAfter`` is exact in that order. A writer first *posts* what happened since the last
  posting: the holds as one ``reservation`` entry (``Credits reserved for pending verifications —
  N deltas``), the lanes' settlements as one ``settlement`` and one ``release`` entry, moving the
  released credits to the pool and recording each lane's posted totals on the account; then its
  own moves (a failure refunds its hold; a top-up adds to the pool). It posts from one snapshot of
  the account and every lane (a read torn across a posting is refused: :attr:`CreditPosition.torn`).
  Verification runs within seconds of acceptance; the sweep is the timeout that resolves a hold its
  message missed.

Invariants (checked by the property tests after every step)::

    creditBalance    = Σ topup - Σ settlement (posted or not)          (live: ledger - unposted settled)
    creditBalance    = pool + Σ lane.free + reserved + unposted released   (every credit in one place)
    reserved         = Σ lane.held_total - resolved - Σ lane settled/released   (open holds, live)
                     = Σ credits_reserved of deltas still RESERVED
    availableBalance = creditBalance - reserved ≥ 0                    (never overspent; what a hold
                       may use now is pool + Σ lane.free: the unposted releases wait for a posting)
    posted reserved  = Σ posted reservations - posted resolutions ≤ reserved + unposted resolutions
    balanceAfter     = the ledger's available balance (posted creditBalance - posted reserved) after
                       the entry; once everything is posted it equals availableBalance

Entry ``amount`` is signed as seed 004 shows it (reservation -800, settlement -150, topup +10000,
release/refund +n).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace
from datetime import datetime
from enum import StrEnum

from chalicelib.domain.errors import PaymentRequiredError, ValidationError

MAX_TOPUP = 1_000_000_000


class EntryType(StrEnum):
    TOPUP = "topup"
    RESERVATION = "reservation"
    SETTLEMENT = "settlement"
    RELEASE = "release"
    REFUND = "refund"


class InsufficientCreditsError(PaymentRequiredError):
    code = "INSUFFICIENT_CREDITS"
    default_message = "Insufficient credits for this operation."


@dataclass(frozen=True)
class CreditAccount:
    """The ledger's state (or, from :meth:`CreditPosition.balances`, the live balances seed 004 shows)."""

    tenant_id: str
    credit_balance: int = 0
    reserved: int = 0
    entry_count: int = 0  # entries so far: the next entry is number entry_count + 1

    @property
    def available(self) -> int:
        return self.credit_balance - self.reserved


HOLD_LANES = 16  # escrow lanes per tenant: acceptances spread their holds over this many items


@dataclass(frozen=True)
class Settled:
    """Seals' resolutions of holds, cumulative: credits settled (the actual cost), credits released,
    the deltas and the seals."""

    credits: int = 0
    released: int = 0
    deltas: int = 0
    seals: int = 0

    def __add__(self, other: Settled) -> Settled:
        return Settled(self.credits + other.credits, self.released + other.released, self.deltas + other.deltas,
                       self.seals + other.seals)

    def __sub__(self, other: Settled) -> Settled:
        return Settled(self.credits - other.credits, self.released - other.released, self.deltas - other.deltas,
                       self.seals - other.seals)

    @property
    def resolved(self) -> int:
        return self.credits + self.released


@dataclass(frozen=True)
class HoldLane:
    """One escrow sub-account: ``free`` credits it may still hold; cumulative holds drawn from it; the
    seals' resolutions added to it (any seal may add to any lane)."""

    index: int
    free: int = 0
    held_total: int = 0
    held_deltas: int = 0
    settled: Settled = Settled()


@dataclass(frozen=True)
class CreditPosition:
    """The whole account at one read: the posted ledger, the pool, the lanes and the resolved holds."""

    ledger: CreditAccount
    pool: int = 0
    resolved: int = 0  # cumulative credits of holds refunded (and settled or released before seals used lanes)
    posted_deltas: int = 0  # cumulative deltas whose holds were posted as reservation entries
    lanes: tuple[HoldLane, ...] = ()
    posted: tuple[tuple[int, Settled], ...] = ()  # each lane's seals' resolutions posted so far, by lane
    # False: read without the seals' settlements (acceptance's snapshot, 17 items instead of 49). Its available
    # balance is then a lower bound (what holds may use now, the unposted releases left out), enough to plan a
    # hold, not to refuse one, nor to post from.
    complete: bool = True

    @property
    def tenant_id(self) -> str:
        return self.ledger.tenant_id

    def posted_on(self, lane: int) -> Settled:
        return next((settled for index, settled in self.posted if index == lane), Settled())

    def settled_on(self, lane: int) -> Settled:
        return next((item.settled for item in self.lanes if item.index == lane), Settled())

    @property
    def settled(self) -> Settled:
        """All seals' resolutions so far, posted or not."""
        return sum((lane.settled for lane in self.lanes), Settled())

    @property
    def torn(self) -> bool:
        """A lane read older than the posting the account was read after: posting from this read would post
        that lane's settlements twice. Ledger writers read a snapshot; this keeps a torn read (a BatchGetItem
        reads its items one by one) from ever becoming a posting."""
        return any(min(astuple(lane.settled - self.posted_on(lane.index))) < 0 for lane in self.lanes) or any(
            lane not in {item.index for item in self.lanes} for lane, _settled in self.posted)

    @property
    def unposted_settled(self) -> Settled:
        """Seals' resolutions since the last posting: the next ledger writer posts them."""
        return self.settled - sum((settled for _lane, settled in self.posted), Settled())

    @property
    def reserved(self) -> int:
        """Open holds, live (posted or not)."""
        return sum(lane.held_total for lane in self.lanes) - self.resolved - self.settled.resolved

    @property
    def credit_balance(self) -> int:
        """Live: the posted balance less the settlements not yet posted."""
        return self.ledger.credit_balance - self.unposted_settled.credits

    @property
    def available(self) -> int:
        return self.credit_balance - self.reserved

    @property
    def spendable(self) -> int:
        """What a hold may use now: the pool and the lanes' free escrow (released credits join the pool when
        they are posted)."""
        return self.pool + sum(lane.free for lane in self.lanes)

    @property
    def unposted(self) -> int:
        """Credits held since the last posting: the next ledger writer posts them as a reservation."""
        posted_resolutions = self.resolved + (self.settled - self.unposted_settled).resolved
        return sum(lane.held_total for lane in self.lanes) - self.ledger.reserved - posted_resolutions

    @property
    def unposted_deltas(self) -> int:
        return sum(lane.held_deltas for lane in self.lanes) - self.posted_deltas

    def free(self, lane: int) -> int:
        return next((item.free for item in self.lanes if item.index == lane), 0)

    def balances(self) -> CreditAccount:
        """Seed 004's balances, live: a delta's credits are reserved the moment it is accepted, and spent the
        moment its seal commits."""
        return replace(self.ledger, credit_balance=self.credit_balance, reserved=self.reserved)


@dataclass(frozen=True)
class HoldPlan:
    """Where a hold of ``amount`` comes from: ``lane``, after ``refill`` credits move into it from the
    pool; or, when no lane nor the pool can pay, ``drain`` (lane → credits) back into the pool first."""

    lane: int
    refill: int = 0
    drain: dict[int, int] | None = None  # None: the hold can be staged; else consolidate first (may be empty)


def plan_hold(position: CreditPosition, amount: int, pick: int) -> HoldPlan:
    """Hold ``amount`` (> 0) from lane ``pick`` when it can pay, refilled from the pool when the pool can
    (a ``1/HOLD_LANES`` share of it at least, so refills are rare), else from any lane that can pay, else
    drain the lanes into the pool (``drain``, empty when the credits wait in unposted releases: the
    consolidation posts them). Raises :class:`InsufficientCreditsError` when the total cannot pay."""
    _positive(amount, "amount")
    if position.available < amount:
        raise InsufficientCreditsError(
            f"{amount} credits needed, {position.available} available.", available=position.available)
    if position.free(pick) >= amount:
        return HoldPlan(pick)
    need = amount - position.free(pick)
    if position.pool >= need:
        return HoldPlan(pick, refill=min(position.pool, max(need, -(-position.pool // HOLD_LANES))))
    rich = [lane.index for lane in position.lanes if lane.free >= amount]
    if rich:
        return HoldPlan(rich[pick % len(rich)])
    return HoldPlan(pick, drain={lane.index: lane.free for lane in position.lanes if lane.free > 0})


@dataclass(frozen=True)
class LedgerEntry:
    tenant_id: str
    entry_id: str
    entry_type: EntryType
    amount: int
    description: str
    balance_after: int
    created_at: datetime


def entry_id_for(number: int) -> str:
    """Entries are numbered in commit order (the account update that writes them is exact)."""
    return f"ent_{number:012d}"


def entry_number(entry_id: str) -> int:
    """The number :func:`entry_id_for` gave; ValueError for anything else."""
    if not entry_id.startswith("ent_") or len(entry_id) != 16 or not entry_id[4:].isdecimal():
        raise ValueError(f"not an entry id: {entry_id!r}")
    return int(entry_id[4:])


def _positive(amount: int, what: str) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationError(f"{what} must be a positive integer", field="amount")


def apply(account: CreditAccount, entry_type: EntryType, amount: int) -> tuple[CreditAccount, int]:
    """The account after one movement of ``amount`` (> 0) and the entry's signed amount.

    Raises when a hold or the balance would go negative: nothing is ever
    resolved twice, and available credit never drops below zero.
    """
    after, signed = _move(account, entry_type, amount)
    return replace(after, entry_count=account.entry_count + 1), signed


def _move(account: CreditAccount, entry_type: EntryType, amount: int) -> tuple[CreditAccount, int]:
    _positive(amount, "amount")
    if entry_type == EntryType.TOPUP:
        if amount > MAX_TOPUP:
            raise ValidationError(f"a top-up is at most {MAX_TOPUP:,} credits", field="amount")
        return replace(account, credit_balance=account.credit_balance + amount), amount
    if entry_type == EntryType.RESERVATION:
        if account.available < amount:
            raise InsufficientCreditsError(
                f"{amount} credits needed, {account.available} available.", available=account.available
            )
        return replace(account, reserved=account.reserved + amount), -amount
    if amount > account.reserved:
        raise ValidationError(f"only {account.reserved} credits are reserved", code="RESERVATION_EXCEEDED")
    if entry_type == EntryType.SETTLEMENT:
        spent = replace(account, credit_balance=account.credit_balance - amount, reserved=account.reserved - amount)
        return spent, -amount
    return replace(account, reserved=account.reserved - amount), amount  # release, refund
