"""The credit account and its ledger entries (``CREDITS#{tenant}``)."""

from __future__ import annotations

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import CreditAccountRecord, LedgerEntryRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item, query_page
from chalicelib.domain.credits import CreditAccount, EntryType, LedgerEntry
from chalicelib.services.ports import Page


def account_from(tenant_id: str, record: CreditAccountRecord | None) -> CreditAccount:
    if record is None:
        return CreditAccount(tenant_id=tenant_id)
    return CreditAccount(tenant_id=tenant_id, credit_balance=int(record.credit_balance or 0),
                         reserved=int(record.reserved or 0), entry_count=int(record.entry_count or 0))


def _entry_from(record: LedgerEntryRecord) -> LedgerEntry:
    return LedgerEntry(
        tenant_id=record.tenant_id,
        entry_id=record.entry_id,
        entry_type=EntryType(record.entry_type),
        amount=int(record.amount),
        description=record.description,
        balance_after=int(record.balance_after),
        created_at=record.created_at,
    )


class DynamoCreditRepository(Repository):
    def account(self, tenant_id: str) -> CreditAccount:
        record = get_item(CreditAccountRecord, keys.credits_pk(tenant_id), keys.ACCOUNT_SK)
        return account_from(tenant_id, record)

    def entries(self, tenant_id: str, limit: int, cursor: str | None) -> Page[LedgerEntry]:
        """Newest first."""
        pk = keys.credits_pk(tenant_id)
        return query_page(
            lambda **kw: LedgerEntryRecord.query(pk, LedgerEntryRecord.sk.startswith("E#"), consistent_read=True,
                                                 scan_index_forward=False, **kw),
            _entry_from, limit=limit, cursor=cursor, partition=("pk", pk), sort_prefix="E#",
        )

    def record(self, before: CreditAccount, after: CreditAccount, *entries: LedgerEntry) -> None:
        """Move the account from ``before`` to ``after`` (exactly: fails if it changed) and add the entries."""
        pk = keys.credits_pk(before.tenant_id)
        account = CreditAccountRecord(pk, keys.ACCOUNT_SK)
        if before.entry_count == 0:
            condition = CreditAccountRecord.pk.does_not_exist()
        else:
            condition = ((CreditAccountRecord.entry_count == before.entry_count)
                         & (CreditAccountRecord.credit_balance == before.credit_balance)
                         & (CreditAccountRecord.reserved == before.reserved))
        self._stage("update", account, condition=condition, actions=[
            CreditAccountRecord.tenant_id.set(before.tenant_id),
            CreditAccountRecord.credit_balance.set(after.credit_balance),
            CreditAccountRecord.reserved.set(after.reserved),
            CreditAccountRecord.available.set(after.available),
            CreditAccountRecord.entry_count.set(after.entry_count),
        ])
        for entry in entries:
            self._stage("save", LedgerEntryRecord(
                pk, keys.ledger_entry_sk(entry.entry_id),
                tenant_id=entry.tenant_id, entry_id=entry.entry_id, entry_type=str(entry.entry_type),
                amount=entry.amount, balance_after=entry.balance_after, description=entry.description,
                created_at=entry.created_at,
            ), condition=LedgerEntryRecord.pk.does_not_exist())
