"""Idempotency keys: claims written at once, not staged (they guard the work that follows)."""

from __future__ import annotations

from datetime import datetime

from chalicelib import jsoncodec
from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import IdempotencyRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item, write_now
from chalicelib.domain.identity import Environment
from chalicelib.services.ports import IdempotencyEntry


def _idempotency_from(record: IdempotencyRecord) -> IdempotencyEntry:
    return IdempotencyEntry(
        state=record.state, request_hash=record.request_hash,
        status_code=int(record.status_code) if record.status_code is not None else None,
        response=jsoncodec.loads(record.response) if record.response else None, locked_until=record.locked_until,
        expires_at=record.expires_at,
    )


class DynamoIdempotencyRepository(Repository):
    """Writes here are immediate: the claim must land before the work it guards starts."""

    def get(self, tenant_id: str, environment: Environment, scope: str, key: str) -> IdempotencyEntry | None:
        record = get_item(IdempotencyRecord, keys.idempotency_pk(tenant_id, str(environment), scope, key),
                          keys.IDEMPOTENCY_SK)
        return _idempotency_from(record) if record else None

    def claim(self, tenant_id: str, environment: Environment, scope: str, key: str, *, request_hash: str,
              now: datetime, lock_seconds: int, keep_seconds: int) -> bool:
        """True when this request owns the key: it was free, expired, or its lock lapsed."""
        from datetime import timedelta

        from pynamodb.exceptions import PutError

        record = IdempotencyRecord(
            keys.idempotency_pk(tenant_id, str(environment), scope, key), keys.IDEMPOTENCY_SK,
            state="IN_PROGRESS", request_hash=request_hash, locked_until=now + timedelta(seconds=lock_seconds),
            expires_at=now + timedelta(seconds=keep_seconds), ttl=now + timedelta(seconds=keep_seconds),
        )
        condition = (IdempotencyRecord.pk.does_not_exist() | (IdempotencyRecord.expires_at < now)
                     | ((IdempotencyRecord.state == "IN_PROGRESS") & (IdempotencyRecord.locked_until < now)))
        try:
            write_now(record, "save", condition=condition)
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def complete(self, tenant_id: str, environment: Environment, scope: str, key: str, *, status_code: int,
                 response: dict) -> None:
        record = IdempotencyRecord(keys.idempotency_pk(tenant_id, str(environment), scope, key),
                                   keys.IDEMPOTENCY_SK)
        write_now(record, actions=[IdempotencyRecord.state.set("COMPLETED"),
                                   IdempotencyRecord.status_code.set(status_code),
                                   IdempotencyRecord.response.set(jsoncodec.dumps(response))])

    def release(self, tenant_id: str, environment: Environment, scope: str, key: str) -> None:
        """Forget a claim whose request failed, so the client may retry with the same key."""
        write_now(IdempotencyRecord(keys.idempotency_pk(tenant_id, str(environment), scope, key),
                                    keys.IDEMPOTENCY_SK), "delete")
