"""Prepaid credits: balances, entries, top-ups and the settle/release/refund moves.

Every move commits the account change and its immutable ledger entry together
(a settlement and the release of its excess: one account update, two entries),
conditioned on the account being exactly as read, so concurrent moves never
overspend and each entry's ``balanceAfter`` is exact.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.credits import CreditAccount, EntryType, LedgerEntry, apply, entry_id_for
from chalicelib.domain.errors import ConcurrentWriteError, ConflictError, NotFoundError
from chalicelib.domain.plans import CREDITS_VOLUME_RATE
from chalicelib.services.ports import Page, UnitOfWork

MAX_ATTEMPTS = 20
RELEASE_DESCRIPTION = "Excess reservation released"


Move = tuple[EntryType, int, str]  # (entry type, amount > 0, description)


def stage_moves(uow: UnitOfWork, before: CreditAccount, moves: list[Move], *,
                now: datetime) -> tuple[CreditAccount, list[LedgerEntry]]:
    """Stage movements applied in order on ``uow``: one exact account update and a numbered, immutable
    entry per movement, each ``balanceAfter`` the available balance right after it."""
    after, entries = before, []
    for entry_type, amount, description in moves:
        after, signed = apply(after, entry_type, amount)
        entries.append(LedgerEntry(
            tenant_id=before.tenant_id, entry_id=entry_id_for(after.entry_count), entry_type=entry_type,
            amount=signed, description=description, balance_after=after.available, created_at=now,
        ))
    if entries:
        uow.credits.record(before, after, *entries)
    return after, entries


def stage_move(uow: UnitOfWork, before: CreditAccount, entry_type: EntryType, amount: int, description: str, *,
               now: datetime) -> tuple[CreditAccount, LedgerEntry]:
    """Stage one ledger movement on ``uow``: the exact account move and its numbered, immutable entry."""
    after, entries = stage_moves(uow, before, [(entry_type, amount, description)], now=now)
    return after, entries[0]


def stage_settlement(uow: UnitOfWork, tenant_id: str, *, reserved: int, deltas: int,
                     now: datetime) -> tuple[CreditAccount, list[LedgerEntry]]:
    """A verification seal's credits, staged on one account update: settle the catalogue's actual cost of
    what its ``deltas`` credit-billed deltas ``reserved`` (``CREDITS_VOLUME_RATE``) and release the rest, so
    every credit they reserved is settled or released here, exactly once."""
    actual = CREDITS_VOLUME_RATE.charge(reserved, deltas)
    plural = "s" if deltas != 1 else ""
    moves: list[Move] = [(EntryType.SETTLEMENT, actual, f"Verification batch settled — {deltas} delta{plural}")]
    if reserved > actual:
        moves.append((EntryType.RELEASE, reserved - actual,
                      f"Volume rate: {reserved - actual} of {reserved} reserved credits released — "
                      f"{deltas} deltas sealed together"))
    return stage_moves(uow, uow.credits.account(tenant_id), moves, now=now)


def commit_moves(uow: UnitOfWork, tenant_id: str, moves: list[Move], *, now: datetime,
                 audit: AuditEntry | None = None) -> tuple[CreditAccount, list[LedgerEntry]]:
    """Apply movements in one transaction, retrying when another writer moved the account first."""
    for _attempt in range(MAX_ATTEMPTS):
        after, entries = stage_moves(uow, uow.credits.account(tenant_id), moves, now=now)
        if audit is not None:
            uow.audit.add(audit)
        try:
            uow.commit()
        except ConcurrentWriteError:
            uow.rollback()
            continue
        return after, entries
    raise ConflictError("The credit account is busy; retry the request.", code="CONCURRENT_WRITE")


def move_credits(
    uow: UnitOfWork, tenant_id: str, entry_type: EntryType, amount: int, description: str, *, now: datetime,
    audit: AuditEntry | None = None,
) -> tuple[CreditAccount, LedgerEntry]:
    """Apply one ledger movement, retrying when another writer moved the account first."""
    after, entries = commit_moves(uow, tenant_id, [(entry_type, amount, description)], now=now, audit=audit)
    return after, entries[0]


def topup(uow: UnitOfWork, tenant_id: str, amount: int, *, actor: str, now: datetime,
          description: str | None = None) -> tuple[CreditAccount, LedgerEntry]:
    if uow.tenants.get(tenant_id) is None:
        raise NotFoundError("Tenant not found.")
    text = description or "Manual credit top-up"
    return move_credits(uow, tenant_id, EntryType.TOPUP, amount, text, now=now, audit=AuditEntry(
        tenant_id=tenant_id, actor=actor, action="credits.topup", target=f"tenant:{tenant_id}", at=now,
        details={"amount": amount, "description": text}))


def settle(uow: UnitOfWork, tenant_id: str, reserved: int, actual: int, *, now: datetime,
           description: str) -> list[LedgerEntry]:
    """Charge ``actual`` of ``reserved`` held credits and release the excess (seed 004's flow), together:
    the hold is resolved whole or not at all."""
    moves: list[Move] = []
    if actual:
        moves.append((EntryType.SETTLEMENT, actual, description))
    if reserved > actual:
        moves.append((EntryType.RELEASE, reserved - actual, RELEASE_DESCRIPTION))
    return commit_moves(uow, tenant_id, moves, now=now)[1] if moves else []


def release(uow: UnitOfWork, tenant_id: str, amount: int, *, now: datetime, description: str) -> LedgerEntry:
    return move_credits(uow, tenant_id, EntryType.RELEASE, amount, description, now=now)[1]


def refund(uow: UnitOfWork, tenant_id: str, amount: int, *, now: datetime, description: str) -> LedgerEntry:
    return move_credits(uow, tenant_id, EntryType.REFUND, amount, description, now=now)[1]


def balances(uow: UnitOfWork, tenant_id: str) -> CreditAccount:
    return uow.credits.account(tenant_id)


def entries(uow: UnitOfWork, tenant_id: str, *, limit: int, cursor: str | None, page: int) -> Page[LedgerEntry]:
    """Newest first; ``total`` from the account's entry counter (no counting reads).

    A bare ``page`` number walks forward page by page; ``cursor`` resumes in one query.
    """
    result = uow.credits.entries(tenant_id, limit, cursor)
    while cursor is None and result.extra["page"] < page:
        if not result.next_cursor:
            result = Page(items=[], next_cursor=None, extra={"page": page})
            break
        result = uow.credits.entries(tenant_id, limit, result.next_cursor)
    result.total = uow.credits.account(tenant_id).entry_count
    return result
