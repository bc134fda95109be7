"""Usage counters per tenant and period (the free plan's cap is a condition on them)."""

from __future__ import annotations

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import UsageCounterRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item
from chalicelib.domain.identity import Environment
from chalicelib.domain.usage import UsageCounter


class DynamoUsageRepository(Repository):
    def get(self, tenant_id: str, period: str) -> UsageCounter:
        record = get_item(UsageCounterRecord, keys.tenant_pk(tenant_id), keys.usage_sk(period))
        if record is None:
            return UsageCounter(tenant_id=tenant_id, period=period)
        return UsageCounter(
            tenant_id=tenant_id,
            period=period,
            consumed=int(record.consumed or 0),
            by_environment={str(env): int(getattr(record, f"consumed_{env}") or 0) for env in Environment},
        )

    def add(self, tenant_id: str, period: str, environment: Environment, count: int, *, cap: int | None) -> None:
        """Count ``count`` accepted units (negative: release); ``cap`` keeps consumed ≤ cap, exactly."""
        record = UsageCounterRecord(keys.tenant_pk(tenant_id), keys.usage_sk(period))
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
            condition = UsageCounterRecord.consumed.does_not_exist() | (UsageCounterRecord.consumed <= cap - count)
        self._stage("update", record, condition=condition, actions=actions)
