"""Checking a credit ledger from its entries alone (independently of ``domain.credits.apply``): shared by the
ingest and verifier crash tests, the concurrency test and the property tests."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.credits import EntryType, entry_id_for


def replay_ledger(entries: list[Any], account: Any) -> None:
    """Entry ids are 1..n in commit order and each balanceAfter follows from the previous entries; the
    account (the posted ledger's state) is where the replay ends."""
    assert [e.entry_id for e in entries] == [entry_id_for(n) for n in range(1, len(entries) + 1)]
    balance = reserved = 0
    for entry in entries:
        if entry.entry_type == EntryType.TOPUP:
            balance += entry.amount
        elif entry.entry_type == EntryType.RESERVATION:
            reserved -= entry.amount
        elif entry.entry_type == EntryType.SETTLEMENT:
            balance += entry.amount
            reserved += entry.amount
        else:  # release, refund
            reserved -= entry.amount
        assert reserved >= 0 and balance - reserved >= 0, entry
        assert entry.balance_after == balance - reserved, entry
    assert (account.credit_balance, account.reserved, account.entry_count) == (balance, reserved, len(entries))


def seal_moves(entries: list[Any]) -> list[tuple[int, int]]:
    """The ledger's (settled, released) per seal, in commit order: each settlement and the release after it."""
    moves: list[tuple[int, int]] = []
    for entry in entries:
        if entry.entry_type == EntryType.SETTLEMENT:
            moves.append((-entry.amount, 0))
        elif entry.entry_type == EntryType.RELEASE:
            settled, released = moves[-1]
            assert released == 0, "two releases after one settlement"
            moves[-1] = (settled, entry.amount)
    return moves
