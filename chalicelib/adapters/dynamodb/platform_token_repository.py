"""Platform tokens and their rate windows (owned by the platform tenant)."""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import UpdateError

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.models import PlatformTokenRecord, RateWindowRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item, write_now
from chalicelib.domain.access import PlatformToken


def _token_from(record: PlatformTokenRecord) -> PlatformToken:
    return PlatformToken(
        token_id=record.token_id,
        name=record.name,
        abilities=frozenset(record.abilities or []),
        secret_hash=record.secret_hash,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
        last_used_at=record.last_used_at,
    )


def _token_record(token: PlatformToken) -> PlatformTokenRecord:
    from chalicelib.domain.identity import PLATFORM_TENANT_ID

    return PlatformTokenRecord(
        keys.tenant_pk(PLATFORM_TENANT_ID),
        keys.platform_token_sk(token.token_id),
        token_id=token.token_id,
        name=token.name,
        abilities=sorted(token.abilities),
        secret_hash=token.secret_hash,
        created_at=token.created_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
    )


class DynamoPlatformTokenRepository(Repository):
    def get(self, token_id: str) -> PlatformToken | None:
        from chalicelib.domain.identity import PLATFORM_TENANT_ID

        record = get_item(
            PlatformTokenRecord, keys.tenant_pk(PLATFORM_TENANT_ID), keys.platform_token_sk(token_id)
        )
        return _token_from(record) if record else None

    def add(self, token: PlatformToken) -> None:
        self._stage("save", _token_record(token), condition=PlatformTokenRecord.pk.does_not_exist())

    def save(self, token: PlatformToken) -> None:
        self._stage("save", _token_record(token), condition=PlatformTokenRecord.pk.exists())

    def touch(self, token: PlatformToken, now: datetime) -> None:
        record = _token_record(token)
        write_now(record, actions=[PlatformTokenRecord.last_used_at.set(now)],
                  condition=PlatformTokenRecord.pk.exists())

    def list(self) -> list[PlatformToken]:
        """Every token, by id: one Query of the platform tenant's ``PTOKEN#`` items (an operator's handful)."""
        from chalicelib.domain.identity import PLATFORM_TENANT_ID

        return [_token_from(r) for r in tables.query(
            PlatformTokenRecord, keys.tenant_pk(PLATFORM_TENANT_ID),
            PlatformTokenRecord.sk.startswith(keys.platform_token_sk("")), consistent_read=True)]

    def count_request(self, token_id: str, window_id: str, *, limit: int, expires_at: datetime) -> int | None:
        """One conditional ADD on the window's item (created by the first request, deleted by TTL)."""
        from chalicelib.domain.identity import PLATFORM_TENANT_ID

        record = RateWindowRecord(keys.rate_window_pk(PLATFORM_TENANT_ID, token_id), keys.rate_window_sk(window_id))
        try:
            write_now(record, actions=[RateWindowRecord.hits.add(1), RateWindowRecord.ttl.set(expires_at)],
                      condition=RateWindowRecord.hits.does_not_exist() | (RateWindowRecord.hits < limit))
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return int(record.hits)
