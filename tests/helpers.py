"""Small helpers for arranging test state: direct storage, bootstrap overrides, deltas through the API
and the verifier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from chalicelib import bootstrap
from chalicelib.domain.customers import Customer, CustomerSource
from chalicelib.domain.identity import Environment
from chalicelib.settings import get_settings


def add_customer(tenant_id: str, customer_id: str, environment: Environment = Environment.PRODUCTION) -> None:
    uow = bootstrap.unit_of_work()
    now = bootstrap.now()
    uow.customers.add(Customer(tenant_id=tenant_id, environment=environment, customer_id=customer_id,
                               display_name=customer_id, source=CustomerSource.INTEGRATION,
                               created_at=now, updated_at=now))
    uow.commit()


@contextmanager
def overriding(**factories: Any) -> Iterator[None]:
    """``bootstrap.override(**factories)`` for the ``with`` block; each one is back to its default after it
    (``override(name=None)``), however the block ends."""
    bootstrap.override(**factories)
    try:
        yield
    finally:
        bootstrap.override(**dict.fromkeys(factories))


def platform_operator(world):
    """The platform operator's own tenant (Publica.la, Stripe customer cus_platform): created first, so its
    id is "1"."""
    tenant = world.tenant("Publica.la", stripe_customer_id="cus_platform")
    assert tenant.id == "1"
    return tenant


def run_queue(queue: str, handle_queue: Callable[[list], Any]) -> int:
    """Run a queue's Lambda (``handle_queue``) on whatever the queue (``"verify"``, ``"webhooks"``) holds, as
    Lambda's SQS poller would: batches of up to 10 records, each batch deleted once handled. How many
    messages were handled."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=get_settings().table_name(queue))["QueueUrl"]
    handled = 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        handle_queue([SimpleNamespace(body=m["Body"]) for m in messages])
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        handled += len(messages)
    return handled


DELTA = "/api/v1/balance/delta"


def submit(api, key: dict, customer: str = "cust_a", amount: float = 1) -> str:
    """Accept one delta through the API; its record id."""
    reply = api.post(DELTA, headers=key, json_body={"customerId": customer, "delta": amount, "reason": "r"})
    assert reply.status == 202, reply
    return reply.data["recordId"]


def verify(tenant, record_ids: list[str], clock, environment: Environment = Environment.PRODUCTION):
    """The verifier Lambda's work on these deltas (without its webhook hand-off)."""
    from chalicelib.services import verification

    refs = [(tenant.id, environment, r) for r in record_ids]
    return verification.verify_records(bootstrap.unit_of_work(), refs, now=clock(), signer=bootstrap.signer())


@contextmanager
def one_chain(chain: int = 0) -> Iterator[None]:
    """Every seal on ``chain`` (the verifier picks one at random): for tests of what one chain shows, such as a
    batch chained onto the one before it, rather than of how chains are picked."""
    from chalicelib.services import verification

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verification, "choose_chain", lambda _lost: chain)
        yield


@contextmanager
def seeded_chains(seed: int = 0) -> Iterator[None]:
    """The verifier's random chain picks from ``random.Random(seed)``: a run that must repeat itself (a crash
    matrix against its baseline) picks the same chains every time."""
    import random

    from chalicelib.services import verification

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verification, "random", random.Random(seed))
        yield


def walk_chains(tenant_id: str, environment: Environment = Environment.PRODUCTION) -> dict[int, list[Any]]:
    """The batches of each of the tenant environment's chains that has any, oldest first, walked through the
    batch repository from the chain's head back along ``previous_root``. Asserts each chain is whole: every
    batch names the chain, sequences run 1..n, each ``previous_root`` is the root of the batch before it."""
    from chalicelib.adapters.dynamodb import keys

    uow = bootstrap.unit_of_work()
    chains: dict[int, list[Any]] = {}
    for chain in keys.CHAINS:
        head = uow.batches.head(tenant_id, environment, chain)
        if head.sequence == 0:
            assert head.last_root is None
            continue
        batch = uow.batches.get(tenant_id, environment, head.last_batch_id)
        assert batch is not None and batch.root == head.last_root
        walked = [batch]
        while batch.previous_root is not None and len(walked) <= head.sequence:
            batch = uow.batches.by_root(batch.previous_root)
            assert batch is not None, f"chain {chain}: a previous root names no batch"
            walked.append(batch)
        walked.reverse()
        assert {(b.tenant_id, b.environment, b.chain) for b in walked} == {(tenant_id, str(environment), chain)}
        assert [b.sequence for b in walked] == list(range(1, head.sequence + 1)), f"chain {chain}"
        assert walked[0].previous_root is None
        chains[chain] = walked
    return chains


@contextmanager
def few_list_shards(count: int = 4) -> Iterator[None]:
    """Customer-list shards cut to ``count`` for the crash and fault matrices: a listing's shard queries are
    one kind of call (a Query of one index shard), but every one is a point those matrices rerun the world
    at, so 32 only slowed them (the rollover crash matrix 5x) without a new kind of point."""
    from chalicelib.adapters.dynamodb import keys

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "CUSTOMER_LIST_SHARDS", range(count))
        yield
