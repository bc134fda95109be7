"""API keys (a tenant environment's partition, found by public id through the key-id index)."""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.models import ApiKeyRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item, query_page, write_now
from chalicelib.domain.access import ApiKey, KeyStatus
from chalicelib.domain.identity import Environment
from chalicelib.services.ports import Page


def _key_from(record: ApiKeyRecord) -> ApiKey:
    return ApiKey(
        tenant_id=record.tenant_id,
        environment=Environment(record.environment),
        key_id=record.key_id,
        name=record.name,
        secret_hash=record.secret_hash,
        last4=record.last4,
        status=KeyStatus(record.status),
        created_at=record.created_at,
        created_by=record.created_by,
        rotated_at=record.rotated_at,
        revoked_at=record.revoked_at,
        last_used_at=record.last_used_at,
    )


def _key_record(key: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        keys.env_pk(key.tenant_id, key.environment),
        keys.api_key_sk(key.key_id),
        key_id=key.key_id,
        tenant_id=key.tenant_id,
        environment=str(key.environment),
        name=key.name,
        secret_hash=key.secret_hash,
        last4=key.last4,
        status=str(key.status),
        created_at=key.created_at,
        created_by=key.created_by,
        rotated_at=key.rotated_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


class DynamoApiKeyRepository(Repository):
    def get(self, tenant_id: str, environment: Environment, key_id: str) -> ApiKey | None:
        record = get_item(ApiKeyRecord, keys.env_pk(tenant_id, environment), keys.api_key_sk(key_id))
        return _key_from(record) if record else None

    def find(self, key_id: str) -> ApiKey | None:
        """Authentication lookup by public id (one GSI query; the id is globally unique)."""
        for record in tables.query(ApiKeyRecord, key_id, index=ApiKeyRecord.key_id_index, limit=1):
            return _key_from(record)
        return None

    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None) -> Page[ApiKey]:
        """Newest first (key ids start with their creation time)."""
        pk = keys.env_pk(tenant_id, environment)
        result = query_page(
            lambda **kw: tables.query(ApiKeyRecord, pk, consistent_read=True, scan_index_forward=False, **kw),
            _key_from,
            limit=limit, cursor=cursor, partition=("pk", pk),
        )
        result.total = tables.count(ApiKeyRecord, pk, consistent_read=True)
        return result

    def list_all(self, tenant_id: str) -> list[ApiKey]:
        found: list[ApiKey] = []
        for environment in Environment:
            query = tables.query(ApiKeyRecord, keys.env_pk(tenant_id, environment), consistent_read=True)
            found.extend(_key_from(r) for r in query)
        return found

    def add(self, key: ApiKey) -> None:
        self._stage("save", _key_record(key), condition=ApiKeyRecord.pk.does_not_exist())

    def save(self, key: ApiKey) -> None:
        self._stage("save", _key_record(key), condition=ApiKeyRecord.pk.exists())

    def touch(self, key: ApiKey, now: datetime) -> None:
        """Record use outside any transaction; losing a race here is harmless."""
        record = ApiKeyRecord(keys.env_pk(key.tenant_id, key.environment), keys.api_key_sk(key.key_id))
        write_now(record, actions=[ApiKeyRecord.last_used_at.set(now)], condition=ApiKeyRecord.pk.exists())
