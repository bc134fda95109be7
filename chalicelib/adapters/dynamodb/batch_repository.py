"""Sealed batches and the heads of each tenant environment's hash chains (``keys.CHAINS``)."""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.models import BatchCountsRecord, BatchRecord, ChainHeadRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item
from chalicelib.domain.batches import ChainHead, SealedBatch
from chalicelib.domain.clock import iso_us
from chalicelib.domain.identity import Environment


def _batch_from(record: BatchRecord) -> SealedBatch:
    return SealedBatch(
        batch_id=record.batch_id, tenant_id=record.tenant_id, environment=record.environment,
        root=record.root_hex, tree_size=int(record.tree_size), sequence=int(record.sequence),
        previous_root=record.previous_root, sealed_at=record.sealed_at, key_id=record.key_id,
        record_ids=tuple(record.record_ids), leaf_hashes=tuple(record.leaf_hashes), signature=record.signature,
        chain=int(record.chain or 0),
    )


class DynamoBatchRepository(Repository):
    def head(self, tenant_id: str, environment: Environment, chain: int = 0) -> ChainHead:
        record = get_item(ChainHeadRecord, keys.chain_pk(tenant_id, str(environment), chain), keys.HEAD_SK)
        if record is None:
            return ChainHead()
        return ChainHead(int(record.sequence), record.last_root, record.last_batch_id)

    def seal(self, batch: SealedBatch, head: ChainHead) -> None:
        """Stage the batch and move the head of its chain from exactly ``head`` (one sealer of that chain wins a
        race; sealers of other chains do not meet)."""
        self._stage("save", BatchRecord(
            keys.batch_pk(batch.tenant_id, batch.environment, batch.batch_id), keys.BATCH_SK,
            batch_id=batch.batch_id, tenant_id=batch.tenant_id, environment=batch.environment,
            root_hex=batch.root, tree_size=batch.tree_size, chain=batch.chain, sequence=batch.sequence,
            previous_root=batch.previous_root, sealed_at=batch.sealed_at, key_id=batch.key_id,
            signature=batch.signature, record_ids=list(batch.record_ids), leaf_hashes=list(batch.leaf_hashes),
        ), condition=BatchRecord.pk.does_not_exist())
        condition = (ChainHeadRecord.pk.does_not_exist() if head.sequence == 0
                     else ChainHeadRecord.sequence == head.sequence)
        self._stage("save", ChainHeadRecord(
            keys.chain_pk(batch.tenant_id, batch.environment, batch.chain), keys.HEAD_SK,
            sequence=batch.sequence, last_root=batch.root, last_batch_id=batch.batch_id,
        ), condition=condition)

    def stage_counts(self, batch: SealedBatch, counts: dict[str, int], *, now: datetime) -> None:
        """Stage the seal's per-customer verified counts as one small item, on the pending index until applied."""
        self._stage("save", BatchCountsRecord(
            keys.batch_pk(batch.tenant_id, batch.environment, batch.batch_id), keys.COUNTS_SK,
            tenant_id=batch.tenant_id, environment=batch.environment, record_id=batch.batch_id, counts=counts,
            pending_shard=keys.pending_shard(batch.batch_id), pending_since=iso_us(now),
        ), condition=BatchCountsRecord.pk.does_not_exist())

    def counts(self, tenant_id: str, environment: Environment, batch_id: str) -> dict[str, int] | None:
        """A batch's counts still to apply (None once applied)."""
        record = get_item(BatchCountsRecord, keys.batch_pk(tenant_id, str(environment), batch_id), keys.COUNTS_SK)
        return {c: int(n) for c, n in record.counts.items()} if record else None

    def clear_counts(self, tenant_id: str, environment: Environment, batch_id: str) -> None:
        """Stage the counts item's removal: only while it exists, so they are applied exactly once."""
        self._stage("delete", BatchCountsRecord(keys.batch_pk(tenant_id, str(environment), batch_id), keys.COUNTS_SK),
                    condition=BatchCountsRecord.pk.exists())

    def get(self, tenant_id: str, environment: Environment, batch_id: str) -> SealedBatch | None:
        record = get_item(BatchRecord, keys.batch_pk(tenant_id, str(environment), batch_id), keys.BATCH_SK)
        return _batch_from(record) if record else None

    def by_root(self, root: str) -> SealedBatch | None:
        """Public lookup by Merkle root (a GSI query; roots are unique in practice)."""
        for record in tables.query(BatchRecord, root, index=BatchRecord.root_index, limit=1):
            return _batch_from(record)
        return None
