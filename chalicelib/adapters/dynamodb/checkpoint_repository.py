"""Customer checkpoints (per customer, and by period through the period index)."""

from __future__ import annotations

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.models import CheckpointRecord
from chalicelib.adapters.dynamodb.staging import Repository, query_page
from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.identity import Environment
from chalicelib.services.ports import Page


def _checkpoint_from(record: CheckpointRecord) -> Checkpoint:
    return Checkpoint(
        checkpoint_id=record.checkpoint_id, tenant_id=record.tenant_id, environment=record.environment,
        customer_id=record.customer_id, period=record.period, sequence=int(record.sequence),
        root=record.checkpoint_root, tree_size=int(record.tree_size),
        first_sequence=int(record.first_sequence) if record.first_sequence is not None else None,
        last_sequence=int(record.last_sequence) if record.last_sequence is not None else None,
        net_change=record.net_change, previous_root=record.previous_root,
        previous_tree_size=int(record.previous_tree_size) if record.previous_tree_size is not None else None,
        consistency_proof=tuple(record.consistency_proof or ()), created_at=record.created_at,
        key_id=record.key_id, signature=record.signature,
    )


class DynamoCheckpointRepository(Repository):
    def latest(self, tenant_id: str, environment: Environment, customer_id: str, period: str) -> Checkpoint | None:
        pk = keys.checkpoints_pk(tenant_id, str(environment), customer_id)
        for record in tables.query(CheckpointRecord, pk, CheckpointRecord.sk.startswith(f"{period}#"),
                                   consistent_read=True, scan_index_forward=False, limit=1):
            return _checkpoint_from(record)
        return None

    def list(self, tenant_id: str, environment: Environment, customer_id: str, period: str | None, limit: int,
             cursor: str | None) -> Page[Checkpoint]:
        """Newest first; ``period`` narrows with a key condition."""
        pk = keys.checkpoints_pk(tenant_id, str(environment), customer_id)
        prefix = f"{period}#" if period else None
        condition = CheckpointRecord.sk.startswith(prefix) if prefix else None
        return query_page(
            lambda **kw: tables.query(CheckpointRecord, pk, condition, consistent_read=True, scan_index_forward=False,
                                       **kw),
            _checkpoint_from, limit=limit, cursor=cursor, partition=("pk", pk), sort_prefix=prefix,
        )

    def list_period(self, tenant_id: str, environment: Environment, period: str, limit: int,
                    cursor: str | None) -> Page[Checkpoint]:
        """Every customer's checkpoints of a period, by customer id then sequence (the period index)."""
        key = keys.checkpoint_period_key(tenant_id, str(environment), period)
        return query_page(
            lambda **kw: tables.query(CheckpointRecord, key, index=CheckpointRecord.period_index, **kw),
            _checkpoint_from, limit=limit, cursor=cursor, partition=("period_key", key),
            key_names=("pk", "sk", "period_key", "period_sort"),
        )

    def add(self, checkpoint: Checkpoint) -> None:
        """Conditioned on the sequence being free: of two concurrent creators, one wins."""
        self._stage("save", CheckpointRecord(
            keys.checkpoints_pk(checkpoint.tenant_id, checkpoint.environment, checkpoint.customer_id),
            keys.checkpoint_sk(checkpoint.period, checkpoint.sequence),
            period_key=keys.checkpoint_period_key(checkpoint.tenant_id, checkpoint.environment, checkpoint.period),
            period_sort=keys.checkpoint_period_sort(checkpoint.customer_id, checkpoint.sequence),
            checkpoint_id=checkpoint.checkpoint_id, tenant_id=checkpoint.tenant_id,
            environment=checkpoint.environment, customer_id=checkpoint.customer_id, period=checkpoint.period,
            sequence=checkpoint.sequence, checkpoint_root=checkpoint.root, tree_size=checkpoint.tree_size,
            first_sequence=checkpoint.first_sequence, last_sequence=checkpoint.last_sequence,
            net_change=checkpoint.net_change, previous_root=checkpoint.previous_root,
            previous_tree_size=checkpoint.previous_tree_size, consistency_proof=list(checkpoint.consistency_proof),
            created_at=checkpoint.created_at, key_id=checkpoint.key_id, signature=checkpoint.signature,
        ), condition=CheckpointRecord.pk.does_not_exist())
