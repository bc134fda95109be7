"""Customer-record benchmark (`make bench`): round trips at 10 and 10,000 customers, the activity
export's memory and a large checkpoint.

Storage is a stand-in that makes each page of deltas on request (moto answers an index
query by reading the whole table, which makes 50,000-delta runs take hours), so the figures
are the code's own: the export pages 1,000 deltas at a time into a spool, and the checkpoint
builds one Merkle tree over the month.

1. Export: Python's peak traced memory (tracemalloc) and the file size at 5,000 and 50,000
   deltas. Bounded memory means the peak stays flat while the file grows tenfold.
2. Checkpoint over 100,000 deltas of one month: seconds, and the pages a DynamoDB query
   would return (1 MB each, at the stored item size).

3. DynamoDB round trips (botocore hook, in-process moto) of the summary, a directory page
   (unfiltered, and filtered), and a customer detail, with 10 and with 10,000 customers in the
   tenant environment: they must be equal, or nearly (a filtered page reads at most 10 index pages).

Prints; asserts nothing.
"""

from __future__ import annotations

import hashlib
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import record  # noqa: E402
from chalicelib.adapters.signing import Signer  # noqa: E402
from chalicelib.domain.customers import Customer, CustomerSource  # noqa: E402
from chalicelib.domain.deltas import CreditState, Delta, DeltaStatus  # noqa: E402
from chalicelib.domain.identity import Environment  # noqa: E402

START = datetime(2026, 4, 1, tzinfo=UTC)
ITEM_BYTES = 700  # a verified delta item as stored (keys, content, proof references)


def delta(n: int) -> Delta:
    content_hash = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
    return Delta(tenant_id="2", environment=Environment.PRODUCTION, record_id=f"rec_{n:08d}",
                 receipt_id=f"rcp_{n:08d}", customer_id="cust_bench", sequence_number=n, delta=Decimal(1),
                 reason="bench", period="2026-04", created_at=START, status=DeltaStatus.VERIFIED,
                 credit_state=CreditState.NONE, content_hash=content_hash, batch_id="bat_bench",
                 proof_root=content_hash, leaf_index=0, verified_at=START)


@dataclass
class Deltas:
    """Makes deltas on request, as DynamoDB pages would arrive."""

    pages: int = 0

    def customer_range(self, tenant_id, environment, customer_id, first, last, *, newest_first=False):
        self.pages += 1
        return [delta(n) for n in range(first, last + 1)]

    def customer_period(self, tenant_id, environment, customer_id, period):
        return [delta(n) for n in range(1, COUNT[0] + 1)]


@dataclass
class Checkpoints:
    added: list = field(default_factory=list)

    def latest(self, *args):
        return None

    def add(self, checkpoint):
        self.added.append(checkpoint)


@dataclass
class Customers:
    def get(self, *args):
        return customer(COUNT[0])

    def mark_checkpointed(self, *args):
        pass


class Uow:
    def __init__(self) -> None:
        self.deltas, self.checkpoints, self.customers = Deltas(), Checkpoints(), Customers()

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


COUNT = [0]


def customer(count: int) -> Customer:
    return Customer(tenant_id="2", environment=Environment.PRODUCTION, customer_id="cust_bench",
                    display_name="cust_bench", source=CustomerSource.INTEGRATION, created_at=START,
                    updated_at=START, last_seq=count, delta_count=count, balance=Decimal(count))


def export(count: int) -> None:
    from chalicelib.api.customers import ACTIVITY_COLUMNS
    from chalicelib.services import exports

    uow = Uow()
    tracemalloc.start()
    began = time.perf_counter()
    with exports.customer_activity_csv(uow, customer(count), status=None, scope=None,
                                       columns=ACTIVITY_COLUMNS) as spooled:
        size, rows = spooled.size, spooled.rows
    seconds = time.perf_counter() - began
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"activity export of {rows:,} deltas: {size / 1e6:.1f} MB file, {uow.deltas.pages} pages, {seconds:.1f} s; "
          f"peak traced Python memory {peak / 1e6:.1f} MB")
    record("records", f"export of {rows:,} deltas: file", size / 1e6, "MB")
    record("records", f"export of {rows:,} deltas: seconds", seconds, "s")
    record("records", f"export of {rows:,} deltas: pages read", uow.deltas.pages, "pages")
    record("records", f"export of {rows:,} deltas: peak traced memory", peak / 1e6, "MB")


def checkpoint(count: int) -> None:
    from chalicelib.services import checkpoints

    COUNT[0] = count
    uow = Uow()
    scope = checkpoints.Scope("2", Environment.PRODUCTION, "cust_bench", "2026-04")
    began = time.perf_counter()
    made, _created = checkpoints.create(uow, scope, now=START, signer=Signer(b"\x01" * 32))
    pages = -(-count * ITEM_BYTES // 1_000_000)
    seconds = time.perf_counter() - began
    print(f"checkpoint over {made.tree_size:,} deltas of one month: {seconds:.1f} s in-process "
          f"(+ {pages} DynamoDB query pages of 1 MB to read them, and one write)")
    record("records", f"checkpoint over {made.tree_size:,} deltas", seconds, "s")
    record("records", f"checkpoint over {made.tree_size:,} deltas: query pages", pages, "pages")


def round_trips(sizes: tuple[int, ...] = (10, 10_000)) -> None:
    import tests.conftest  # noqa: F401, I001  - test environment, set before moto and the models import
    from moto import mock_aws

    requests = {
        "GET /dashboard/customers/summary": "/dashboard/customers/summary",
        "GET /dashboard/customers?include=directory (25)": "/dashboard/customers?include=directory&limit=25",
        "  ... &policy=OPEN (1 in 20 match)": "/dashboard/customers?include=directory&limit=25&policy=OPEN",
        "GET /dashboard/customers/{id} (20 deltas)": "/dashboard/customers/cust_00000?deltaLimit=20",
    }
    table: dict[str, list[int]] = {name: [] for name in requests}
    for size in sizes:
        with mock_aws():
            import boto3

            from chalicelib.adapters.dynamodb.connection import shared_connection
            from chalicelib.adapters.dynamodb.keys import CUSTOMER_SK, customer_list_pk, customer_pk
            from chalicelib.adapters.dynamodb.models import CustomerRecord
            from chalicelib.cli.resources import provision
            from chalicelib.domain.clock import utcnow
            from chalicelib.domain.customers import name_key
            from tests.contract import ContractClient
            from tests.factories import World

            provision(boto3.session.Session(), stack_name="tally-test", region="us-east-1")
            world = World(utcnow)
            tenant = world.tenant("Bench Inc")
            admin = world.auth(tenant, "admin")
            _key_id, api_key = world.api_key(tenant, "production")
            api = ContractClient()
            now = utcnow()
            with CustomerRecord.batch_write() as batch:
                for n in range(1, size):
                    cid = f"cust_{n:05d}"
                    batch.save(CustomerRecord(
                        customer_pk(tenant.id, "production", cid), CUSTOMER_SK,
                        list_pk=customer_list_pk(tenant.id, "production", cid), name_key=name_key(f"Customer {n}", cid),
                        tenant_id=tenant.id, environment="production", customer_id=cid,
                        display_name=f"Customer {n}", source="manual", created_at=now, updated_at=now,
                        policy="OPEN" if n % 20 == 0 else "TWO_TIER"))
            for _ in range(20):
                api.request("POST", "/api/v1/balance/delta", headers={"X-Api-Key": api_key},
                            json_body={"customerId": "cust_00000", "delta": 1, "reason": "bench"})
            calls = {"n": 0}

            def counted(calls: dict[str, int] = calls, **_: object) -> None:
                calls["n"] += 1

            events = shared_connection().client.meta.events
            events.register("before-call.dynamodb", counted)
            for name, path in requests.items():
                api.request("GET", path, headers=admin)  # warm: first-use writes stay out of the count
                calls["n"] = 0
                reply = api.request("GET", path, headers=admin)
                assert reply.status == 200, reply
                table[name].append(calls["n"])
            events.unregister("before-call.dynamodb", counted)
    print("DynamoDB round trips per request at " + " vs ".join(f"{s:,}" for s in sizes) + " customers:")
    for name, counts in table.items():
        print(f"  {name:50s} " + " vs ".join(str(c) for c in counts))
        for size, count in zip(sizes, counts, strict=True):
            record("records", f"round trips, {name.strip()} at {size:,} customers", count, "calls")


if __name__ == "__main__":
    round_trips()
    export(5_000)
    export(50_000)
    checkpoint(100_000)
