"""Prepaid credits: balances, entries, top-ups and the settle/release/refund moves.

Every move commits the account change and its immutable ledger entry together,
conditioned on the account being exactly as read, so concurrent moves never
overspend and each entry's ``balanceAfter`` is exact.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.credits import CreditAccount, EntryType, LedgerEntry, apply, entry_id_for
from chalicelib.domain.errors import ConflictError, NotFoundError
from chalicelib.services.ports import Page, UnitOfWork

MAX_ATTEMPTS = 20


def stage_move(uow: UnitOfWork, before: CreditAccount, entry_type: EntryType, amount: int, description: str, *,
               now: datetime) -> tuple[CreditAccount, LedgerEntry]:
    """Stage one ledger movement on ``uow``: the exact account move and its numbered, immutable entry."""
    after, signed = apply(before, entry_type, amount)
    entry = LedgerEntry(
        tenant_id=before.tenant_id, entry_id=entry_id_for(after.entry_count), entry_type=entry_type,
        amount=signed, description=description, balance_after=after.available, created_at=now,
    )
    uow.credits.record(before, after, entry)
    return after, entry


def move_credits(
    uow: UnitOfWork, tenant_id: str, entry_type: EntryType, amount: int, description: str, *, now: datetime,
    audit: AuditEntry | None = None,
) -> tuple[CreditAccount, LedgerEntry]:
    """Apply one ledger movement, retrying when another writer moved the account first."""
    for _attempt in range(MAX_ATTEMPTS):
        after, entry = stage_move(uow, uow.credits.account(tenant_id), entry_type, amount, description, now=now)
        if audit is not None:
            uow.audit.add(audit)
        try:
            uow.commit()
        except ConflictError:
            uow.rollback()
            continue
        return after, entry
    raise ConflictError("The credit account is busy; retry the request.", code="CONCURRENT_WRITE")


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
    """Charge ``actual`` of ``reserved`` held credits; release the excess (seed 004's flow)."""
    entries = []
    if actual:
        entries.append(move_credits(uow, tenant_id, EntryType.SETTLEMENT, actual, description, now=now)[1])
    if reserved > actual:
        entries.append(move_credits(uow, tenant_id, EntryType.RELEASE, reserved - actual,
                                    "Excess reservation released", now=now)[1])
    return entries


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
