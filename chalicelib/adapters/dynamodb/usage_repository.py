"""Usage counters per tenant and period, sharded (``keys.USAGE_SHARDS``): reads sum the shards in one
BatchGetItem; an acceptance adds to one shard, so no single item takes every delta of a busy tenant. The
free plan's cap is a condition on the capped shard, counting the other shards as read (domain: a capped
plan only ever writes the capped shard, so those shards hold what was accepted under an earlier paid plan)."""

from __future__ import annotations

import random
from typing import Any

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import UsageCounterRecord
from chalicelib.adapters.dynamodb.staging import Repository, batch_get
from chalicelib.domain.identity import Environment
from chalicelib.domain.usage import UsageCounter


def usage_keys(tenant_id: str, period: str) -> list[tuple[Any, str, str]]:
    return [(UsageCounterRecord, keys.usage_pk(tenant_id, shard), keys.usage_sk(period)) for shard in keys.USAGE_SHARDS]


def read_usage(tenant_id: str, period: str, found: dict[tuple[str, str, str], Any]) -> UsageCounter:
    """The counter from a BatchGetItem result that asked for :func:`usage_keys`; ``capped_shard`` apart."""
    table = UsageCounterRecord.Meta.table_name
    consumed, capped, released = 0, 0, 0
    by_env = {str(env): 0 for env in Environment}
    for shard in keys.USAGE_SHARDS:
        raw = found.get((table, keys.usage_pk(tenant_id, shard), keys.usage_sk(period)))
        if raw is None:
            continue
        record = UsageCounterRecord.from_raw_data(raw)
        consumed += int(record.consumed or 0)
        released += int(record.released or 0)
        if shard == keys.CAPPED_USAGE_SHARD:
            capped = int(record.consumed or 0)
        for env in Environment:
            by_env[str(env)] += int(getattr(record, f"consumed_{env}") or 0)
    return UsageCounter(tenant_id=tenant_id, period=period, consumed=consumed, by_environment=by_env,
                        released=released, capped_shard=capped)


class DynamoUsageRepository(Repository):
    def get(self, tenant_id: str, period: str) -> UsageCounter:
        return read_usage(tenant_id, period, batch_get(usage_keys(tenant_id, period)))

    def add(self, tenant_id: str, period: str, environment: Environment, count: int, *, cap: int | None,
            others: int = 0) -> None:
        """Count ``count`` accepted units (negative: release) on a random shard; with ``cap``, on the capped
        shard conditioned so that it plus ``others`` (the other shards' sum as read) stays ≤ cap, exactly."""
        shard = keys.CAPPED_USAGE_SHARD if cap is not None else random.choice(keys.USAGE_SHARDS)
        record = UsageCounterRecord(keys.usage_pk(tenant_id, shard), keys.usage_sk(period))
        per_env = getattr(UsageCounterRecord, f"consumed_{environment}")
        actions = [
            UsageCounterRecord.tenant_id.set(tenant_id),
            UsageCounterRecord.period.set(period),
            UsageCounterRecord.consumed.add(count),
            per_env.add(count),
        ]
        if count < 0:
            actions.append(UsageCounterRecord.released.add(-count))
        condition = None
        if cap is not None:
            limit = cap - count - others
            condition = (UsageCounterRecord.consumed <= limit) if limit < 0 else (
                UsageCounterRecord.consumed.does_not_exist() | (UsageCounterRecord.consumed <= limit))
        self._stage("update", record, condition=condition, actions=actions)
