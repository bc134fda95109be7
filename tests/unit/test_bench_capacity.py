"""The capacity and contention benches (`make bench`) keep working as the key layout changes: tiny runs on the
test's moto world (the ``aws`` fixture, so nothing leaks into other tests), a ceiling for every scenario, a
loud failure on a key no rule classifies, and no delta lost or accepted twice by concurrent writers."""

from __future__ import annotations

import io

import pytest

from bench import capacity, contention


def test_capacity_prints_a_ceiling_for_every_scenario(aws) -> None:
    out = io.StringIO()

    results = capacity.main(single_calls=4, customers=2, batch=3, provisioned=True, out=out)

    assert len(results) == 10  # 5 scenarios x 2 billing modes
    assert {r.mode.split()[0] for r in results} == {"monthly", "credits"}
    for result in results:
        assert result.accepted > 0
        assert result.total_units > 0
        assert result.tenant_ceiling is not None and result.tenant_ceiling.deltas_per_second > 0
        assert result.platform_ceiling is not None and result.platform_ceiling.deltas_per_second > 0
    text = out.getvalue()
    assert text.count("per tenant ceiling: ") == 10
    assert text.count("platform ceiling: ") == 10
    assert text.count("per customer ceiling: ") == 10
    assert "pending-index shard" in text
    assert "credit" in text  # the credits mode's account / lanes were written and classified
    # The verifier's serial bound (one seal at a time per chain, CHAINS chains), from the chain heads' writes.
    serial = [capacity.serial_verification(r) for r in results]
    assert [s is not None for s in serial] == [False, False, False, False, True] * 2
    for per_seal, fast, slow in filter(None, serial):  # 13 deltas verified, in one seal
        assert per_seal == 13 and capacity.CHAINS == 32
        assert (fast, slow) == (32 * 13 / capacity.SEAL_SECONDS[0], 32 * 13 / capacity.SEAL_SECONDS[1])
    assert text.count("verification, serial per tenant environment") == 2


def test_an_unclassified_key_fails_loudly_naming_table_and_key() -> None:
    with pytest.raises(capacity.UnclassifiedKeyError, match=r"'deltas'.*'X#made-up'"):
        capacity.classify_item("deltas", "X#made-up", "NOPE")
    with pytest.raises(capacity.UnclassifiedKeyError, match=r"'usage'.*'LANE#9'"):
        capacity.classify_partition("usage", "LANE#9")
    with pytest.raises(capacity.UnclassifiedKeyError, match=r"pending-index.*'Q#1'"):
        capacity.classify_index("deltas", "pending-index", "Q#1")


def test_sharded_keys_are_shards_of_one_class() -> None:
    assert capacity.classify_index("deltas", "pending-index", "P#3") == ("pending-index shard", "platform")
    assert capacity.classify_partition("webhooks", "OUTBOX#2") == ("outbox shard", "platform")
    assert capacity.classify_item("customers", "T#2#E#production", "C#cust_1") == ("customer row", "customer")
    assert capacity.classify_item("ledger", "T#2#CREDITS", "ACCOUNT") == ("credit account", "tenant")
    assert capacity.classify_item("ledger", "T#2#CREDITS#E#5", "E#ent_000000000005") == ("ledger entry", "delta")
    assert capacity.classify_partition("ledger", "T#2#CREDITS#E#5") == ("ledger entries shard", "tenant")


def test_contention_loses_no_delta_and_counts_attempts(aws) -> None:
    out = io.StringIO()

    report = contention.main(deltas=6, writers=(1, 2), shared=True, rounds=1, time_cap=15.0, provisioned=True,
                             out=out)

    assert report.ok, out.getvalue()
    assert {(r.mode, r.writers, r.customers) for r in report.runs} == {
        (mode, writers, customers) for mode in ("monthly", "credits")
        for writers, customers in ((1, "own"), (2, "own"), (2, "shared"))}
    for run in report.runs:
        assert run.asked == run.accepted == 6
        assert run.attempts_per_delta >= 1
    assert "attempts/delta" in out.getvalue()


def test_every_key_keys_py_builds_is_classified() -> None:
    """Each key shape of chalicelib/adapters/dynamodb/keys.py, written where the repositories write it, has a
    class: a changed shape shows here before a bench run fails on it."""
    from chalicelib.adapters.dynamodb import keys

    t, e, c = "2", "production", "cust_1"
    items = [
        ("tenants", keys.tenant_pk(t), keys.TENANT_SK), ("tenants", keys.tenant_pk(t), keys.user_sk("u")),
        ("tenants", keys.tenant_pk(t), keys.session_sk("s")),
        ("tenants", keys.tenant_pk(t), keys.platform_token_sk("p")),
        ("tenants", keys.rate_window_pk(t, "p"), keys.rate_window_sk("202601011200")),
        ("tenants", keys.TENANT_COUNTER_PK, keys.COUNTER_SK),
        ("tenants", keys.SIGNING_KEYS_PK, keys.signing_key_sk("k")),
        ("api-keys", keys.env_pk(t, e), keys.api_key_sk("key")),
        ("audit", keys.tenant_pk(t), keys.audit_sk("2026-01-01T00:00:00.000000Z", "aud_1")),
        ("customers", keys.env_pk(t, e), keys.STATS_SK),
        ("ledger", keys.credits_pk(t), keys.ACCOUNT_SK), ("ledger", keys.credits_pk(t), keys.ledger_entry_sk("e1")),
        ("usage", keys.tenant_pk(t), keys.usage_sk("2026-01")),
        ("deltas", keys.delta_pk(t, e, "rec_1"), keys.DELTA_SK),
        ("deltas", keys.reference_guard_pk(t, e, c, "ref-1"), keys.GUARD_SK),
        ("deltas", keys.batch_pk(t, e, "bat_1"), keys.BATCH_SK), ("deltas", keys.chain_pk(t, e), keys.HEAD_SK),
        ("deltas", keys.checkpoints_pk(t, e, c), keys.checkpoint_sk("2026-01", 1)),
        ("idempotency", keys.idempotency_pk(t, e, "delta", "k"), keys.IDEMPOTENCY_SK),
        ("webhooks", keys.webhooks_pk(t, e), keys.endpoint_sk("ep_1")),
        ("webhooks", keys.webhooks_pk(t, e), keys.delivery_sk("evt_1", "ep_1")),
        ("webhooks", keys.outbox_pk("obx_1"), keys.outbox_sk("2026-01-01T00:00:00.000000Z", "obx_1")),
        ("billing", keys.stripe_event_pk("evt_1"), keys.STRIPE_EVENT_SK),
        ("billing", keys.invoice_pk("in_1"), keys.INVOICE_SK),
        ("billing", keys.tenant_pk(t), keys.period_close_sk("2026-01")),
        ("billing", keys.ROLLOVER_RUN_PK, keys.period_close_sk("2026-01")),
        ("billing", keys.localstripe_pk("cus_1"), keys.LOCALSTRIPE_SK),
        ("billing", keys.localstripe_tenant_pk(t), keys.LOCALSTRIPE_SK),
        ("billing", keys.localstripe_usage_pk("cus_1"), keys.localstripe_usage_sk(1, "id")),
        ("billing", keys.localstripe_idempotency_pk("k"), keys.LOCALSTRIPE_SK),
        ("billing", keys.localstripe_meter_event_pk("m"), keys.LOCALSTRIPE_SK),
        ("billing", keys.LOCALSTRIPE_UNDELIVERED_PK, keys.localstripe_undelivered_sk(1, 1, "evt_1")),
    ]
    if hasattr(keys, "customer_pk"):  # a customer's row in a partition of its own
        items.append(("customers", keys.customer_pk(t, e, c), keys.CUSTOMER_SK))
    else:
        items.append(("customers", keys.env_pk(t, e), keys.customer_sk(c)))
    if hasattr(keys, "stats_pk"):  # sharded environment totals
        items += [("customers", keys.stats_pk(t, e, shard), keys.STATS_SK) for shard in keys.STATS_SHARDS]
    if hasattr(keys, "usage_pk"):  # sharded usage counters
        items += [("usage", keys.usage_pk(t, shard), keys.usage_sk("2026-01")) for shard in keys.USAGE_SHARDS]
    if hasattr(keys, "credit_lane_pk"):  # credit escrow lanes
        items += [("ledger", keys.credit_lane_pk(t, lane), keys.LANE_SK) for lane in keys.CREDIT_LANES]
    if hasattr(keys, "CHAINS"):  # several hash chains per tenant environment: each head its own item and partition
        items += [("deltas", keys.chain_pk(t, e, chain), keys.HEAD_SK) for chain in keys.CHAINS]
        heads = [keys.chain_pk(t, e, chain) for chain in keys.CHAINS]
        assert {capacity.classify_item("deltas", pk, keys.HEAD_SK) for pk in heads} == {("chain head", "tenant-env")}
        assert {capacity.classify_partition("deltas", pk) for pk in heads} == {("chain head", "tenant-env")}
    for table, pk, sk in items:
        capacity.classify_item(table, pk, sk)
        capacity.classify_partition(table, pk)
    indexes = [
        ("tenants", "directory-index", keys.DIRECTORY_PK), ("tenants", "block-index", keys.BLOCK_PK),
        ("tenants", "stripe-customer-index", "cus_1"), ("api-keys", "key-id-index", "key_1"),
        ("deltas", "customer-seq-index", keys.customer_key(t, e, c)),
        ("deltas", "pending-index", keys.pending_shard("rec_1")), ("deltas", "root-index", "ab" * 32),
        ("deltas", "checkpoint-period-index", keys.checkpoint_period_key(t, e, "2026-01")),
        ("webhooks", "endpoint-index", keys.endpoint_key(t, e, "ep_1")),
        ("webhooks", "due-index", keys.due_shard("evt_1", "ep_1")),
    ]
    if hasattr(keys, "customer_list_pk"):  # the customer indexes' own partition
        indexes += [("customers", index, pk) for index in ("customer-name-index", "customer-id-index")
                    for pk in keys.customer_list_pks(t, e)]
    else:
        indexes.append(("customers", "directory-index", keys.env_pk(t, e)))
    for table, index, value in indexes:
        capacity.classify_index(table, index, value)


def test_every_index_in_the_template_has_a_rule() -> None:
    """A global secondary index added to infra/resources.json needs a class for its partitions."""
    import json
    from pathlib import Path

    template = json.loads((Path(__file__).resolve().parents[2] / "infra" / "resources.json").read_text())
    ruled = {(table, index) for table, index, *_rest in capacity.INDEX_CLASSES}
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        table = resource["Properties"]["TableName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for index in resource["Properties"].get("GlobalSecondaryIndexes", []):
            assert (table, index["IndexName"]) in ruled, f"no INDEX_CLASSES rule for {table}/{index['IndexName']}"
