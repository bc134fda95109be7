"""Dashboard sessions (the tenant's partition, deleted by TTL after they expire)."""

from __future__ import annotations

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import SessionRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item
from chalicelib.domain.access import Session


def _session_from(record: SessionRecord) -> Session:
    return Session(
        tenant_id=record.tenant_id,
        session_id=record.session_id,
        user_id=record.user_id,
        role=record.role,
        secret_hash=record.secret_hash,
        created_at=record.created_at,
        expires_at=record.expires_at,
        meta=dict(record.meta or {}),
    )


class DynamoSessionRepository(Repository):
    def get(self, tenant_id: str, session_id: str) -> Session | None:
        record = get_item(SessionRecord, keys.tenant_pk(tenant_id), keys.session_sk(session_id))
        return _session_from(record) if record else None

    def add(self, session: Session) -> None:
        record = SessionRecord(
            keys.tenant_pk(session.tenant_id),
            keys.session_sk(session.session_id),
            tenant_id=session.tenant_id,
            session_id=session.session_id,
            user_id=session.user_id,
            role=session.role,
            secret_hash=session.secret_hash,
            created_at=session.created_at,
            expires_at=session.expires_at,
            meta=session.meta,
            ttl=session.expires_at,
        )
        self._stage("save", record, condition=SessionRecord.pk.does_not_exist())

    def delete(self, tenant_id: str, session_id: str) -> None:
        self._stage("delete", SessionRecord(keys.tenant_pk(tenant_id), keys.session_sk(session_id)))
