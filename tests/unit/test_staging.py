"""Shared DynamoDB reads: BatchGetItem keys DynamoDB leaves unprocessed are asked again, after a backoff."""

from __future__ import annotations

import pytest

from chalicelib.adapters.dynamodb import keys, staging
from chalicelib.adapters.dynamodb.connection import shared_connection
from chalicelib.adapters.dynamodb.models import TenantRecord, UserRecord
from chalicelib.domain.errors import ServiceUnavailableError


def test_unprocessed_keys_are_asked_again_with_backoff(aws, world, monkeypatch):
    tenant = world.tenant("Acme Inc")
    user_id = world.user(tenant, "admin")
    connection = shared_connection()
    real = connection.dispatch
    calls: list[int] = []

    def throttled(operation: str, kwargs: dict) -> dict:
        """The first answer leaves the second key unprocessed, as a throttled BatchGetItem does."""
        calls.append(sum(len(t["Keys"]) for t in kwargs["RequestItems"].values()))
        if len(calls) > 1:
            return real(operation, kwargs)
        request = kwargs["RequestItems"]
        (table, spec), = request.items()
        first, rest = spec["Keys"][:1], spec["Keys"][1:]
        answer = real(operation, {"RequestItems": {table: {**spec, "Keys": first}}})
        answer["UnprocessedKeys"] = {table: {**spec, "Keys": rest}}
        return answer

    waits: list[float] = []
    monkeypatch.setattr(connection, "dispatch", throttled)
    monkeypatch.setattr(staging.time, "sleep", waits.append)
    pk = keys.tenant_pk(tenant.id)
    found = staging.batch_get([(TenantRecord, pk, keys.TENANT_SK), (UserRecord, pk, keys.user_sk(user_id))])
    assert {sk for (_t, _pk, sk) in found} == {keys.TENANT_SK, keys.user_sk(user_id)}
    assert calls == [2, 1] and len(waits) == 1 and 0 < waits[0] <= 1.0


def test_keys_still_unprocessed_after_every_attempt_are_a_503_to_retry(aws, world, monkeypatch):
    tenant = world.tenant("Acme Inc")
    connection = shared_connection()
    monkeypatch.setattr(connection, "dispatch",
                        lambda _op, kwargs: {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]})
    waits: list[float] = []
    monkeypatch.setattr(staging.time, "sleep", waits.append)
    with pytest.raises(ServiceUnavailableError, match="unprocessed"):  # DynamoDB throttled the read
        staging.batch_get([(TenantRecord, keys.tenant_pk(tenant.id), keys.TENANT_SK)])
    assert len(waits) == staging.BATCH_GET_ATTEMPTS - 1
    assert max(waits) <= 1.0


def test_the_backoff_grows_and_is_capped():
    assert 0.025 <= staging.unprocessed_backoff(1) <= 0.05  # 50 ms with jitter down to half
    assert all(staging.unprocessed_backoff(n) <= 1.0 for n in range(20))
    assert staging.unprocessed_backoff(10) >= 0.5
