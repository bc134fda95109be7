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
def few_list_shards(count: int = 4) -> Iterator[None]:
    """Customer-list shards cut to ``count`` for the crash and fault matrices: a listing's shard queries are
    one kind of call (a Query of one index shard), but every one is a point those matrices rerun the world
    at, so 32 only slowed them (the rollover crash matrix 5x) without a new kind of point."""
    from chalicelib.adapters.dynamodb import keys

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "CUSTOMER_LIST_SHARDS", range(count))
        yield
