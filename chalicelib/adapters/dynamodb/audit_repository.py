"""The audit log (the tenant's partition, newest first)."""

from __future__ import annotations

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.models import AuditRecord
from chalicelib.adapters.dynamodb.staging import Repository, query_page
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import iso_us
from chalicelib.services.ports import Page


def _audit_from(record: AuditRecord) -> AuditEntry:
    return AuditEntry(
        tenant_id=record.tenant_id,
        entry_id=record.entry_id,
        actor=record.actor,
        action=record.action,
        target=record.target,
        environment=record.environment,
        at=record.at,
        details=dict(record.details or {}),
    )


class DynamoAuditRepository(Repository):
    def add(self, entry: AuditEntry) -> None:
        record = AuditRecord(
            keys.tenant_pk(entry.tenant_id),
            keys.audit_sk(iso_us(entry.at), entry.entry_id),
            entry_id=entry.entry_id,
            tenant_id=entry.tenant_id,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            environment=entry.environment,
            at=entry.at,
            details=entry.details,
        )
        self._stage("save", record, condition=AuditRecord.pk.does_not_exist())

    def list(self, tenant_id: str, limit: int, cursor: str | None) -> Page[AuditEntry]:
        pk = keys.tenant_pk(tenant_id)
        return query_page(
            lambda **kw: tables.query(AuditRecord, pk, scan_index_forward=False, **kw), _audit_from,
            limit=limit, cursor=cursor, partition=("pk", pk),
        )
