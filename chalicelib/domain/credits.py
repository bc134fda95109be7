"""Prepaid credits (seed 004): a ledger of immutable entries over one account.

Credits move in two places: the *balance* (topups add, settlements spend) and
the *hold* (reservations hold, settlements/releases/refunds resolve holds)::

    creditBalance    = Σ topup - Σ settlement
    reserved         = Σ reservation - Σ settlement - Σ release - Σ refund
    availableBalance = creditBalance - reserved ≥ 0

Entry ``amount`` is signed as seed 004 shows it (reservation -800, settlement
-150, topup +10000, release/refund +n); ``balanceAfter`` is the available
balance after the entry — what the tenant can still spend.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    tenant_id: str
    credit_balance: int = 0
    reserved: int = 0
    entry_count: int = 0  # entries so far: the next entry is number entry_count + 1

    @property
    def available(self) -> int:
        return self.credit_balance - self.reserved


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
