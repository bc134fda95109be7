"""Ingest benchmark (`make bench`): round trips and throughput of the Balance API write path.

Runs in-process against moto, through the real HTTP routing (chalice.test.Client),
and reports throughput as a ratio to baselines measured in the same process, so
the figures hold on a busy machine. Prints; asserts nothing.

Two baselines: a bare PynamoDB ``put_item`` loop (what the issue asks for), and
raw PynamoDB transactions of the same shape as an accepted delta (a delta put,
customer/usage/account updates, a ledger entry). moto deep-copies each touched
table once per transaction item, so against moto any transaction is far slower
than a put; the second ratio isolates what Tally itself adds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.conftest  # noqa: E402,F401,I001  - test environment, set before moto and the models import
from moto import mock_aws  # noqa: E402


def main(single: int = 100, batches: int = 3) -> None:
    with mock_aws():
        import boto3
        from chalice.test import Client
        from pynamodb.transactions import TransactWrite

        from app import app
        from chalicelib import bootstrap
        from chalicelib.adapters.dynamodb import keys, tables
        from chalicelib.adapters.dynamodb.connection import shared_connection
        from chalicelib.adapters.dynamodb.models import (
            CreditAccountRecord,
            CustomerRecord,
            DeltaRecord,
            LedgerEntryRecord,
            UsageCounterRecord,
        )
        from chalicelib.cli.resources import provision
        from chalicelib.domain.clock import utcnow
        from chalicelib.services import credits
        from tests.factories import World

        provision(boto3.session.Session(), stack_name="tally-test", region="us-east-1")
        world = World(utcnow)
        world.tenant("Platform")
        tenant = world.tenant("Bench Inc", billing_mode="credits", plan="scale")
        credits.topup(bootstrap.unit_of_work(), tenant.id, 1_000_000, actor="bench", now=utcnow())
        _key_id, api_key = world.api_key(tenant, "production")
        client = Client(app)
        headers = {"X-Api-Key": api_key, "Content-Type": "application/json"}
        calls: dict[str, int] = {}
        shared_connection().client.meta.events.register(
            "before-call.dynamodb", lambda model, **_: calls.__setitem__(model.name, calls.get(model.name, 0) + 1))

        def post(path: str, body: dict) -> dict:
            reply = client.http.post(path, headers=headers, body=json.dumps(body).encode())
            assert reply.status_code == 202, reply.body
            return json.loads(reply.body)

        def delta(i: int, customer: str) -> dict:
            return {"customerId": customer, "delta": 1.5, "reason": f"usage {i}"}

        post("/api/v1/balance/delta", delta(0, "warm"))  # warm-up (first-use key touch)
        calls.clear()
        post("/api/v1/balance/delta", delta(1, "cust_one"))
        single_calls = dict(calls)
        calls.clear()
        post("/api/v1/balance/delta/batch", {"deltas": [delta(i, f"cust_{i % 100}") for i in range(100)]})
        batch_distinct = dict(calls)
        calls.clear()
        post("/api/v1/balance/delta/batch", {"deltas": [delta(i, "cust_same") for i in range(100)]})
        batch_same = dict(calls)

        def raw_delta(tag: str, i: int) -> DeltaRecord:
            return DeltaRecord(keys.delta_pk(tenant.id, "production", f"rec_{tag}_{i}"), keys.DELTA_SK,
                               tenant_id=tenant.id, environment="production", record_id=f"rec_{tag}_{i}",
                               receipt_id="r", customer_id="c", customer_key="k", seq_key=keys.seq_key(i),
                               sequence_number=i + 1, delta=1, reason="x", period="2026-11", status="QUEUED",
                               credit_state="none", created_at=utcnow(), updated_at=utcnow())

        # Baselines first, then Tally, all at similar table sizes.
        started = time.perf_counter()
        for i in range(single):
            tables.put(raw_delta("put", i))
        baseline = single / (time.perf_counter() - started)

        started = time.perf_counter()
        for i in range(single):
            with TransactWrite(connection=shared_connection()) as tx:
                tx.save(raw_delta("tx", i))
                tx.save(CustomerRecord(keys.customer_pk(tenant.id, "production", f"raw{i % 20}"), keys.CUSTOMER_SK,
                                       tenant_id=tenant.id, environment="production", customer_id="c",
                                       display_name="c", source="integration", created_at=utcnow(),
                                       updated_at=utcnow()))
                tx.save(UsageCounterRecord(keys.tenant_pk("raw"), keys.usage_sk("2026-11"), consumed=i))
                tx.save(CreditAccountRecord(keys.credits_pk("raw"), keys.ACCOUNT_SK, tenant_id="raw"))
                tx.save(LedgerEntryRecord(keys.credits_pk("raw"), keys.ledger_entry_sk(f"e{i}"), tenant_id="raw",
                                          entry_id=f"e{i}", entry_type="reservation", amount=-1, balance_after=0,
                                          description="x", created_at=utcnow()))
        tx_baseline = single / (time.perf_counter() - started)

        started = time.perf_counter()
        for i in range(single):
            post("/api/v1/balance/delta", delta(i, f"cust_s{i % 20}"))
        single_rate = single / (time.perf_counter() - started)

        started = time.perf_counter()
        for b in range(batches):
            post("/api/v1/balance/delta/batch", {"deltas": [delta(i, f"cust_b{(b * 100 + i) % 50}")
                                                            for i in range(100)]})
        batch_rate = batches * 100 / (time.perf_counter() - started)

    def fmt(counts: dict[str, int]) -> str:
        return f"{sum(counts.values())} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"

    print("DynamoDB round trips:")
    print(f"  one submit (POST /delta):                  {fmt(single_calls)}")
    print(f"  batch of 100, 100 distinct customers:      {fmt(batch_distinct)}")
    print(f"  batch of 100, one customer:                {fmt(batch_same)}")
    print(f"bare PynamoDB put_item loop:                 {baseline:8.1f} items/s      (1.00x)")
    print(f"raw 5-item transactions (same shape):        {tx_baseline:8.1f} tx/s         "
          f"({tx_baseline / baseline:.2f}x of put)")
    print(f"single submits over in-process HTTP:         {single_rate:8.1f} deltas/s     "
          f"({single_rate / baseline:.3f}x of put, {single_rate / tx_baseline:.2f}x of raw tx)")
    print(f"batches of 100 over in-process HTTP:         {batch_rate:8.1f} deltas/s     "
          f"({batch_rate / baseline:.3f}x of put, {batch_rate / tx_baseline:.2f}x of raw tx)")

    from bench.report import record

    for name, counts in (("one submit", single_calls), ("batch of 100, 100 customers", batch_distinct),
                         ("batch of 100, one customer", batch_same)):
        record("ingest", f"round trips, {name}", sum(counts.values()), "calls")
    record("ingest", "bare put_item loop", baseline, "items/s")
    record("ingest", "raw 5-item transactions", tx_baseline, "tx/s")
    record("ingest", "raw transactions / put", tx_baseline / baseline, "x")
    record("ingest", "single submits", single_rate, "deltas/s")
    record("ingest", "single submits / put", single_rate / baseline, "x")
    record("ingest", "single submits / raw tx", single_rate / tx_baseline, "x")
    record("ingest", "batches of 100", batch_rate, "deltas/s")
    record("ingest", "batches of 100 / put", batch_rate / baseline, "x")
    record("ingest", "batches of 100 / raw tx", batch_rate / tx_baseline, "x")


if __name__ == "__main__":
    main()
