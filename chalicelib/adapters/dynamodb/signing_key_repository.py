"""Signing keys: the platform-wide registry of public keys, write-once."""

from __future__ import annotations

import base64

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.models import SigningKeyRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item
from chalicelib.domain.signing_keys import SigningKey


def _signing_key_from(record: SigningKeyRecord) -> SigningKey:
    return SigningKey(key_id=record.key_id, public_key=base64.b64decode(record.public_key),
                      first_seen_at=record.first_seen_at, algorithm=record.algorithm)


class DynamoSigningKeyRepository(Repository):
    def get(self, key_id: str) -> SigningKey | None:
        record = get_item(SigningKeyRecord, keys.SIGNING_KEYS_PK, keys.signing_key_sk(key_id))
        return _signing_key_from(record) if record else None

    def list(self) -> list[SigningKey]:
        """Every registered key: one Query of the registry partition (a handful of items), by key id."""
        query = tables.query(SigningKeyRecord, keys.SIGNING_KEYS_PK, consistent_read=True)
        return [_signing_key_from(r) for r in query]

    def add(self, key: SigningKey) -> None:
        """Write-once: ConflictError at commit when the id is already registered."""
        record = SigningKeyRecord(keys.SIGNING_KEYS_PK, keys.signing_key_sk(key.key_id), key_id=key.key_id,
                                  algorithm=key.algorithm, public_key=base64.b64encode(key.public_key).decode(),
                                  first_seen_at=key.first_seen_at)
        self._stage("save", record, condition=SigningKeyRecord.pk.does_not_exist())
