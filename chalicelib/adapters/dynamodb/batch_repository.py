"""Sealed batches and the hash chain's head per tenant environment."""

from __future__ import annotations

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import BatchRecord, ChainHeadRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item
from chalicelib.domain.batches import ChainHead, SealedBatch
from chalicelib.domain.identity import Environment


def _batch_from(record: BatchRecord) -> SealedBatch:
    return SealedBatch(
        batch_id=record.batch_id, tenant_id=record.tenant_id, environment=record.environment,
        root=record.root_hex, tree_size=int(record.tree_size), sequence=int(record.sequence),
        previous_root=record.previous_root, sealed_at=record.sealed_at, key_id=record.key_id,
        record_ids=tuple(record.record_ids), leaf_hashes=tuple(record.leaf_hashes), signature=record.signature,
    )


class DynamoBatchRepository(Repository):
    def head(self, tenant_id: str, environment: Environment) -> ChainHead:
        record = get_item(ChainHeadRecord, keys.chain_pk(tenant_id, str(environment)), keys.HEAD_SK)
        if record is None:
            return ChainHead()
        return ChainHead(int(record.sequence), record.last_root, record.last_batch_id)

    def seal(self, batch: SealedBatch, head: ChainHead) -> None:
        """Stage the batch and move the chain head from exactly ``head`` (one sealer wins a race)."""
        self._stage("save", BatchRecord(
            keys.batch_pk(batch.tenant_id, batch.environment, batch.batch_id), keys.BATCH_SK,
            batch_id=batch.batch_id, tenant_id=batch.tenant_id, environment=batch.environment,
            root_hex=batch.root, tree_size=batch.tree_size, sequence=batch.sequence,
            previous_root=batch.previous_root, sealed_at=batch.sealed_at, key_id=batch.key_id,
            signature=batch.signature, record_ids=list(batch.record_ids), leaf_hashes=list(batch.leaf_hashes),
        ), condition=BatchRecord.pk.does_not_exist())
        condition = (ChainHeadRecord.pk.does_not_exist() if head.sequence == 0
                     else ChainHeadRecord.sequence == head.sequence)
        self._stage("save", ChainHeadRecord(
            keys.chain_pk(batch.tenant_id, batch.environment), keys.HEAD_SK,
            sequence=batch.sequence, last_root=batch.root, last_batch_id=batch.batch_id,
        ), condition=condition)

    def get(self, tenant_id: str, environment: Environment, batch_id: str) -> SealedBatch | None:
        record = get_item(BatchRecord, keys.batch_pk(tenant_id, str(environment), batch_id), keys.BATCH_SK)
        return _batch_from(record) if record else None

    def by_root(self, root: str) -> SealedBatch | None:
        """Public lookup by Merkle root (a GSI query; roots are unique in practice)."""
        for record in BatchRecord.root_index.query(root, limit=1):
            return _batch_from(record)
        return None
