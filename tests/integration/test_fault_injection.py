"""Fault injection (issue 13): throttling, ``TransactionConflict`` and timeouts at every DynamoDB, S3 and SQS call of
every write path are retried with backoff — nothing lost, nothing doubled — and when retries run out a client gets
503 with ``Retry-After``, never 500, while a background run leaves its work for the next one.

Faults are injected inside botocore's retry loop (``tests/dynamo_calls.py``), so what is tested is the product as
deployed: botocore's standard retry mode (4 attempts for DynamoDB, 3 for S3 and SQS, capped exponential backoff with
jitter) retries throttling and timeouts; the services' one conflict loop (``services/retry.py``) retries races and
``TransactionConflict`` (botocore never retries a cancelled transaction); whatever outlasts both reaches the edge as
``ServiceUnavailableError``. Sleeps are recorded, not slept.

The write paths (each arranged once; every case starts from a copy of its DynamoDB items):

* ingest: ``POST /api/v1/balance/delta/batch`` with an ``Idempotency-Key``, three deltas with ``referenceId`` from a
  credits tenant (the key, the snapshot, one transaction, the key's answer, the verifier's message);
* verifier: the SQS-triggered verifier on ingest's message (a terminal failure, then a seal and its counts; the
  webhook outbox announced on SQS);
* webhooks out: the sender on an outbox item (fan-out to two endpoints, leased and recorded attempts, signed POSTs);
* checkpoints: ``POST /api/v1/balance/checkpoint`` for a customer with verified deltas;
* packages: ``POST /dashboard/customers/{id}/verification-package`` (the checkpoint, the package on S3, its audit);
* close packages: ``POST /dashboard/customers/bulk/close-package-export`` (the checkpoint, the zip on S3, its audit);
* Stripe webhook: the ``stripe_webhook`` function on a signed ``invoice.payment_failed``;
* rollover: closing April for tests/functional/test_period_rollover.py's world (report, revert, checkpoints).

A baseline runs each path without faults and records its calls. Then, for each fault kind — throttling (the three
DynamoDB codes, S3's ``SlowDown``, SQS's ``RequestThrottled``), a transaction conflict (DynamoDB writes), a timeout
(``ConnectTimeoutError``, ``EndpointConnectionError``, ``ReadTimeoutError``: never applied) and a lost answer
(applied, then ``ReadTimeoutError``), the codes and exceptions taking turns call by call — each call (on a path of
more than ``MAX_CALLS`` calls, the first call of each call site — operation, resource and the product function
making it — and the last) is hit in a fresh copy of the world:

* transient (the call's first attempt fails): the answer is the baseline's, and so is the state — right away for a
  request, once the next runs (redelivery, sweeps) are done for a background path;
* persistent (every attempt of this operation on this resource fails, from that call on): a request answers 503
  with ``Retry-After`` (or its baseline answer, when the failing call was not needed for it) and a background run
  fails or leaves work; then the client sends the same request again (same ``Idempotency-Key``; Stripe
  redelivers; the next scheduled and queue-triggered runs come) and the state equals the baseline's.

Each case also checks the retry policy itself: a fault botocore retries is sent as often as the client's
configuration allows (4 attempts for DynamoDB, 3 for S3 and SQS) with backoff between attempts, never beyond its cap.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.retries.quota import RetryQuota

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb import keys, staging
from chalicelib.adapters.faults import unavailable
from chalicelib.adapters.stripe_config import StripeConfig
from chalicelib.adapters.webhook_http import SendResult
from chalicelib.api import ratelimit
from chalicelib.cli import motofixes
from chalicelib.domain.deltas import DeltaInput
from chalicelib.domain.errors import ServiceUnavailableError
from chalicelib.domain.identity import ApiKeyPrincipal, DashboardPrincipal, Environment, Role
from chalicelib.domain.tenants import BillingMode
from chalicelib.jobs import stripe_webhook as stripe_job
from chalicelib.jobs import verifier as verifier_job
from chalicelib.jobs import webhooks as webhooks_job
from chalicelib.services import credits as credit_service
from chalicelib.services import idempotency, ingest, retry, verification
from chalicelib.services import webhooks as webhook_service
from chalicelib.settings import get_settings
from tests.conftest import FrozenClock, empty_world
from tests.dynamo_calls import KINDS, THROTTLES, TIMEOUTS, AwsCalls, Call, CrashError, Fault, applicable
from tests.factories import World
from tests.fakes import FakeBillingProvider, RecordingSender
from tests.functional import test_period_rollover as rollover_world
from tests.functional.test_stripe_webhook import SECRET, invoice_event
from tests.helpers import few_list_shards, overriding, walk_chains
from tests.ledger import replay_ledger

P = Environment.PRODUCTION
START = datetime(2026, 4, 15, 12, 0, 0, tzinfo=UTC)
MAX_CALLS = 14  # a path with more calls is sampled: the first call of each call site, and the last
MODES = ("transient", "persistent")
ATTEMPTS = {"dynamodb": get_settings().dynamodb_max_attempts, "s3": get_settings().aws_max_attempts,
            "sqs": get_settings().aws_max_attempts}  # botocore's standard mode, as the clients are configured
MAX_BACKOFF = 20  # seconds: botocore's cap (the services' own races back off at most 0.1 s)
LATER = timedelta(minutes=10)  # past every lease, lock, grace and first webhook retry


# --- the world: arranged once per path, its DynamoDB items copied back for every case ----------------------------


class Snapshot:
    """Every DynamoDB item and index entry of moto's store (SQLite), to put back before each case; S3 objects
    and SQS messages are emptied (no path's arrangement leaves any it needs)."""

    def __init__(self) -> None:
        db = motofixes.store().db
        self.items = db.execute("SELECT * FROM items").fetchall()
        self.idx = db.execute("SELECT * FROM idx").fetchall()

    def restore(self) -> None:
        empty_world()
        store = motofixes.store()
        with store.lock:
            store.db.execute("BEGIN")
            store.db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", self.items)
            store.db.executemany("INSERT INTO idx VALUES (?, ?, ?, ?, ?, ?)", self.idx)
            store.db.execute("COMMIT")
        ratelimit.reset()


class Sleeps:
    """``time`` for botocore's endpoint and the services' retry loop: sleeps are recorded, not slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@dataclass
class Answer:
    """What the faulted action answered: an HTTP-like status, headers and body, or the exception a job raised."""

    status: int | None = None
    headers: dict[str, str] | None = None
    body: Any = None
    raised: BaseException | None = None


# --- the write paths ----------------------------------------------------------------------------------------------


class WritePath:
    """One write path: ``arrange`` (once), ``act`` (the faulted action), ``recover`` (the client's retry or the next
    runs, until done) and ``observe`` (its effects, independent of generated ids and timestamps)."""

    name = ""
    background = False  # a job: the next runs finish what a fault left (requests: the answer must be right)
    ok_status = 200
    ambiguous = False  # set for a case whose every answer of a write was lost: the request cannot know it applied

    def __init__(self, world: World) -> None:
        self.world = world
        self.clock = world.clock

    def arrange(self) -> None: ...

    def act(self) -> Answer: ...

    def recover(self) -> None: ...

    def observe(self) -> Any: ...

    def check_answer(self, answer: Answer, baseline: Answer) -> None:
        """A request's answer after a transient fault (or a persistent one it did not need): the baseline's."""
        assert answer.raised is None, answer.raised
        assert answer.status == baseline.status, answer


class Http(WritePath):
    """A path behind an HTTP route (checked against the OpenAPI document by the ContractClient)."""

    method, path = "POST", ""

    def __init__(self, world: World) -> None:
        super().__init__(world)
        from tests.contract import ContractClient

        self.api = ContractClient()
        self.headers: dict[str, str] = {}
        self.body: Any = None

    def act(self) -> Answer:
        reply = self.api.request(self.method, self.path, json_body=self.body, headers=self.headers)
        self.last = Answer(reply.status, reply.headers, reply.json)
        return self.last

    def recover(self) -> None:
        """A client that got no success sends the request again (a key still locked by the failed request: once
        its lock lapses)."""
        for _ in range(3):
            if self.last.body.get("success"):
                return
            answer = self.act()
            if answer.body.get("success"):
                return
            assert answer.status in (202, 503), answer  # the key's lock, or storage still failing
            self.clock.advance(seconds=idempotency.LOCK_SECONDS + 1)
        raise AssertionError(f"{self.name}: the client's retries did not converge: {answer}")


class Ingest(Http):
    name = "ingest"
    path = "/api/v1/balance/delta/batch"
    ok_status = 202
    DELTAS = (("cust_a", "1.5", "ref-1"), ("cust_new", "-2", "ref-2"), ("cust_a", "3", "ref-3"))

    def arrange(self) -> None:
        tenant = self.world.tenant("Ingest Co", billing_mode=BillingMode.CREDITS, plan="starter")
        credit_service.topup(bootstrap.unit_of_work(), tenant.id, 20, actor="test", now=self.clock())
        _key_id, key = self.world.api_key(tenant)
        principal = ApiKeyPrincipal(tenant_id=tenant.id, environment=P, key_id=_key_id)
        ingest.submit_deltas(bootstrap.unit_of_work(), principal, [DeltaInput(
            customer_id="cust_a", delta=Decimal(5), reason="before", reference_id="ref-0")], now=self.clock())
        self.tenant_id = tenant.id
        self.headers = {"X-Api-Key": key, "Idempotency-Key": "fault-batch-1"}
        self.body = {"deltas": [{"customerId": c, "delta": float(a), "reason": "fault", "referenceId": r}
                                for c, a, r in self.DELTAS]}

    def check_answer(self, answer: Answer, baseline: Answer) -> None:
        super().check_answer(answer, baseline)
        assert [r["status"] for r in answer.body["data"]["results"]] == ["QUEUED"] * len(self.DELTAS), answer

    def recover(self) -> None:
        """The client's retry with the same key; then its replay, and the verifier's sweep (a message lost with
        a fault is never a lost delta) settling every hold."""
        super().recover()
        replayed = self.api.request(self.method, self.path, json_body=self.body, headers=self.headers)
        assert replayed.status == 202 and replayed.headers.get("idempotent-replayed") == "true", replayed
        stored = {r.reference_id: r.record_id for r in _deltas(self.tenant_id)}
        assert {r["referenceId"]: r["recordId"] for r in replayed.data["results"]} == {
            ref: stored[ref] for _c, _a, ref in self.DELTAS}  # the key's answer names the stored deltas
        queued = _queued_records("verify")  # at least once each (a lost answer may send a message twice)
        assert queued <= set(stored.values())
        report = verification.sweep(bootstrap.unit_of_work(), now=self.clock() + LATER, signer=bootstrap.signer())
        assert report.failed == []

    def observe(self) -> Any:
        uow = bootstrap.unit_of_work()
        records = _deltas(self.tenant_id)
        assert len({r.reference_id for r in records}) == len(records), "a delta stored twice"
        position = uow.credits.position(self.tenant_id)
        entries = list(reversed(uow.credits.entries(self.tenant_id, 100, None).items))
        replay_ledger(entries, uow.credits.account(self.tenant_id))
        return (tuple(sorted((r.reference_id, r.customer_id, int(r.sequence_number), str(r.delta), r.status,
                              r.credit_state, int(r.credits_reserved)) for r in records)),
                uow.usage.get(self.tenant_id, "2026-04").consumed, position.reserved, position.unposted,
                tuple(_customer(uow, self.tenant_id, c) for c in ("cust_a", "cust_new")),
                astuple(uow.customers.stats(self.tenant_id, P)),
                tuple((str(e.entry_type), e.amount, e.balance_after) for e in entries))


class Verifier(WritePath):
    name = "verifier"
    background = True
    INPUTS = (("cust_a", "10", None), ("cust_b", "-2.5", None), ("cust_b", "1", {"units": 2**60}),  # fails
              ("cust_a", "4", None))

    def arrange(self) -> None:
        tenant = self.world.tenant("Verify Co", billing_mode=BillingMode.CREDITS, plan="starter")
        credit_service.topup(bootstrap.unit_of_work(), tenant.id, 20, actor="test", now=self.clock())
        principal = ApiKeyPrincipal(tenant_id=tenant.id, environment=P, key_id="key_fault")
        outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, [
            DeltaInput(customer_id=c, delta=Decimal(a), reason=f"order {i}", metadata=m)
            for i, (c, a, m) in enumerate(self.INPUTS)], now=self.clock())
        bootstrap.verification_queue().enqueue(ingest.accepted_refs(principal, outcomes))
        self.messages = _drain("verify")
        self.tenant_id = tenant.id

    def act(self) -> Answer:
        return _job(lambda: verifier_job.handle_queue([SimpleNamespace(body=b) for b in self.messages]))

    def recover(self) -> None:
        """The queue redelivers the message; the sweeps of the verifier and of the webhook sender come later."""
        self.act()
        self.clock.advance(seconds=LATER.total_seconds())
        verifier_job.handle_sweep(None)

    def observe(self) -> Any:
        uow = bootstrap.unit_of_work()
        deltas = sorted(_deltas(self.tenant_id), key=lambda r: int(r.sequence_number) * 10 + ord(r.customer_id[-1]))
        entries = list(reversed(uow.credits.entries(self.tenant_id, 100, None).items))
        replay_ledger(entries, uow.credits.account(self.tenant_id))
        assert uow.deltas.pending(older_than=self.clock() + LATER, limit=10) == []  # nothing left unverified
        sealed = sum(len(run) for run in walk_chains(self.tenant_id, P).values())  # on whichever chains
        outbox = [uow.webhooks.get_outbox(ref) for ref in uow.webhooks.stale_outbox(older_than=self.clock() + LATER,
                                                                                    limit=10)]
        announced = {tuple(ref) for body in _drain("webhooks") for ref in json.loads(body)["outbox"]}
        assert announced <= {uow.webhooks.outbox_ref(o) for o in outbox}  # at least once, for the sender
        return (tuple((r.customer_id, str(r.delta), r.status, r.credit_state) for r in deltas),
                tuple((str(e.entry_type), e.amount, e.balance_after) for e in entries), sealed,
                tuple(_customer(uow, self.tenant_id, c) for c in ("cust_a", "cust_b")),
                astuple(uow.customers.stats(self.tenant_id, P)),
                uow.usage.get(self.tenant_id, "2026-04").consumed,
                sorted(Counter(e.event_type for o in outbox for e in o.events).items()))


class WebhooksOut(WritePath):
    name = "webhooks-out"
    background = True
    URLS = ("https://hooks.example.com/a", "https://hooks.example.com/b")

    def arrange(self) -> None:
        tenant = self.world.tenant("Hooks Co", plan="starter")
        owner = DashboardPrincipal(tenant_id=tenant.id, user_id="usr_owner", role=Role.OWNER, environment=P,
                                   via="jwt")
        for url in self.URLS:
            webhook_service.create_endpoint(bootstrap.unit_of_work(), owner, url=url, events=None, description=None,
                                            now=self.clock(), allow_loopback=False)
        principal = ApiKeyPrincipal(tenant_id=tenant.id, environment=P, key_id="key_fault")
        outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, [
            DeltaInput(customer_id="cust_a", delta=Decimal(2), reason="hooked")], now=self.clock())
        report = verification.verify_records(bootstrap.unit_of_work(), [
            (tenant.id, P, o.data["recordId"]) for o in outcomes], now=self.clock(), signer=bootstrap.signer())
        self.message = json.dumps({"outbox": [list(ref) for ref in report.outbox]})
        self.tenant_id = tenant.id
        self.receiver = Receivers(self.clock, failing=self.URLS[1], until=self.clock() + LATER)

    def act(self) -> Answer:
        self.receiver.calls.clear()
        with overriding(webhook_sender=self.receiver):
            return _job(lambda: webhooks_job.handle_queue([SimpleNamespace(body=self.message)]))

    def recover(self) -> None:
        """The queue redelivers; the once-a-minute sweep attempts what a lost lease or record left due, and the
        second endpoint's retries."""
        with overriding(webhook_sender=self.receiver):
            webhooks_job.handle_queue([SimpleNamespace(body=self.message)])
            for _ in range(2):
                self.clock.advance(seconds=LATER.total_seconds())
                webhooks_job.handle_sweep(None)

    def observe(self) -> Any:
        uow = bootstrap.unit_of_work()
        deliveries = sorted(uow.webhooks.deliveries(self.tenant_id, P, 100, None).items,
                            key=lambda d: (d.event_type, d.url))
        received = Counter((url, json.loads(body)["id"]) for url, body, _headers in self.receiver.calls)
        assert set(received) == {(d.url, d.event_id) for d in deliveries}  # every delivery POSTed (at least once)
        assert uow.webhooks.stale_outbox(older_than=self.clock() + LATER, limit=10) == []
        assert uow.webhooks.due(now=self.clock() + LATER, limit=10) == []
        return tuple((d.event_type, d.url, str(d.status)) for d in deliveries)


class Receivers(RecordingSender):
    """The two endpoints: the second answers 503 until ``until`` (its deliveries are rescheduled: a delayed SQS
    message, then the sweep), and 200 from then on."""

    def __init__(self, clock: FrozenClock, *, failing: str, until: datetime) -> None:
        super().__init__()
        self.clock, self.failing, self.until = clock, failing, until

    def post(self, url: str, body: str, headers: dict) -> SendResult:
        self.calls.append((url, body, headers))
        status = 503 if url == self.failing and self.clock() < self.until else 200
        return SendResult(status, 7, None if status < 300 else f"HTTP {status}", "down")


class Checkpoints(Http):
    name = "checkpoints"
    path = "/api/v1/balance/checkpoint"
    ok_status = 201

    def arrange(self) -> None:
        tenant = self.world.tenant("Checkpoint Co", plan="starter")
        key_id, key = self.world.api_key(tenant)
        principal = ApiKeyPrincipal(tenant_id=tenant.id, environment=P, key_id=key_id)
        outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, [
            DeltaInput(customer_id="cust_a", delta=Decimal(n), reason=f"order {n}") for n in (1, 2, 3)],
            now=self.clock())
        verification.verify_records(bootstrap.unit_of_work(), [(tenant.id, P, o.data["recordId"]) for o in outcomes],
                                    now=self.clock(), signer=bootstrap.signer())
        self.tenant_id = tenant.id
        self.headers = {"X-Api-Key": key}
        self.body = {"customerId": "cust_a", "period": "2026-04"}

    def observe(self) -> Any:
        uow = bootstrap.unit_of_work()
        checkpoints = uow.checkpoints.list(self.tenant_id, P, "cust_a", "2026-04", 10, None).items
        return (tuple((c.sequence, c.tree_size, c.root, c.first_sequence, c.last_sequence) for c in checkpoints),
                _customer(uow, self.tenant_id, "cust_a"))


class Packages(Checkpoints):
    name = "packages"
    path = "/dashboard/customers/cust_a/verification-package"

    def arrange(self) -> None:
        super().arrange()
        tenant = bootstrap.unit_of_work().tenants.get(self.tenant_id)
        self.headers = self.world.auth(tenant, "admin")
        self.body = {"period": "2026-04", "sampleSize": 2}
        self.links: list[str] = []

    def act(self) -> Answer:
        answer = super().act()
        if answer.status == 201:
            self.links.append(answer.body["data"]["url"].rsplit("/", 1)[-1])
        return answer

    def observe(self) -> Any:
        """One package stored: the one whose link the client got, audited. A package's audit entry whose every
        answer was lost is the one thing a retry can add (no key identifies the request): an extra entry, never an
        unaudited package."""
        uow = bootstrap.unit_of_work()
        audited = {e.details["packageId"]: e for e in uow.audit.list(self.tenant_id, 100, None).items
                   if e.action == "verification_package.created"}
        [stored] = _objects("packages/")
        opened = self.api.get(f"/api/v1/verification-packages/{self.links[-1]}")
        assert opened.status == 200 and opened.data["packageId"] in audited
        assert len(audited) == 1 or (self.ambiguous and len(audited) == 2), (audited, stored)
        return super().observe(), opened.data["sampleSize"]


class ClosePackages(Checkpoints):
    name = "close-packages"
    path = "/dashboard/customers/bulk/close-package-export"
    ok_status = 303  # no Accept: application/zip, so the zip is answered by a link

    def arrange(self) -> None:
        super().arrange()
        tenant = bootstrap.unit_of_work().tenants.get(self.tenant_id)
        self.headers = self.world.auth(tenant, "admin")
        self.body = {"customerIds": ["cust_a"], "period": "2026-04"}

    def observe(self) -> Any:
        """One zip stored, the one whose link the client got, and its export audited. As for packages, an audit
        entry whose every answer was lost is the one thing a retry can add."""
        uow = bootstrap.unit_of_work()
        audited = [e for e in uow.audit.list(self.tenant_id, 100, None).items if e.action == "close_package.exported"]
        [stored] = _objects(f"exports/{self.tenant_id}/")
        assert self.last.body["data"]["url"].split("?", 1)[0].endswith(stored.split("/", 3)[-1])
        assert len(audited) == 1 or (self.ambiguous and len(audited) == 2), audited
        return super().observe(), audited[-1].details["customerCount"]


class StripeWebhook(WritePath):
    name = "stripe-webhook"

    def arrange(self) -> None:
        self.world.tenant("Tally Platform")
        tenant = self.world.tenant("Acme", plan="starter", stripe_customer_id="cus_acme")
        self.tenant_id = tenant.id
        self.payload = json.dumps(invoice_event("evt_fault", "payment_failed", invoice_id="in_fault",
                                                customer_id="cus_acme"))

    def act(self) -> Answer:
        import stripe

        header = stripe.WebhookSignature.generate_signature_header(self.payload, SECRET,
                                                                   timestamp=int(self.clock().timestamp()))
        reply = stripe_job.handle({
            "resource": "/stripe/webhook", "path": "/stripe/webhook", "httpMethod": "POST",
            "headers": {"Content-Type": "application/json", "Stripe-Signature": header},
            "requestContext": {"requestId": "req-fault"}, "body": self.payload, "isBase64Encoded": False})
        return Answer(reply["statusCode"], {k.lower(): v for k, v in reply["headers"].items()},
                      json.loads(reply["body"]))

    def recover(self) -> None:
        """Stripe delivers the event again (it retries any 5xx)."""
        for _ in range(3):
            if self.act().status == 200:
                return
        raise AssertionError("Stripe's redeliveries did not converge")

    def observe(self) -> Any:
        uow = bootstrap.unit_of_work()
        event = uow.stripe_events.get("evt_fault")
        tenant = uow.tenants.get(self.tenant_id)
        actions = sorted((e.actor, e.action) for e in uow.audit.list(self.tenant_id, 100, None).items)
        return ((event.state, event.outcome, event.tenant_id), tenant.has_unpaid_invoices_at, tenant.version,
                actions, uow.stripe_events.invoice_status("in_fault"))


class Rollover(WritePath):
    name = "rollover"
    background = True

    def arrange(self) -> None:
        self.arranged = rollover_world.arrange(self.world)
        self.subscriptions = dict(self.arranged.billing.subscriptions)

    def act(self) -> Answer:
        self.clock.current = rollover_world.RUN_AT
        self.billing = rollover_world.FakeBilling()
        self.billing.subscriptions = dict(self.subscriptions)
        self.arranged = replace(self.arranged, billing=self.billing)
        return _job(lambda: rollover_world.run(self.arranged))

    def recover(self) -> None:
        """The next invocations (every 15 minutes) carry on until the month is closed."""
        for _ in range(4):
            if rollover_world.run(self.arranged).done:
                return
        raise AssertionError("the rollover did not finish")

    def observe(self) -> Any:
        return rollover_world.observe(self.arranged)  # asserts every effect happened exactly once


PATHS: dict[str, type[WritePath]] = {p.name: p for p in (Ingest, Verifier, WebhooksOut, Checkpoints, Packages,
                                                          ClosePackages, StripeWebhook, Rollover)}


# --- helpers -------------------------------------------------------------------------------------------------------


def _job(run: Callable[[], Any]) -> Answer:
    """A Lambda run: whatever it raises goes back to its queue or schedule."""
    try:
        run()
    except CrashError:
        raise
    except Exception as exc:
        return Answer(raised=exc)
    return Answer()


def _deltas(tenant_id: str) -> list[Any]:
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.models import DeltaRecord

    return [r for customer in ("cust_a", "cust_b", "cust_new") for r in DeltaRecord.customer_seq_index.query(
        keys.customer_key(tenant_id, str(P), customer))]


def _customer(uow: Any, tenant_id: str, customer_id: str) -> tuple | None:
    row = uow.customers.get(tenant_id, P, customer_id)
    return None if row is None else (row.delta_count, str(row.balance), row.verified_count, row.cycle_count,
                                     row.checkpoint_period)


def _queue_url(queue: str) -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    return sqs, sqs.get_queue_url(QueueName=get_settings().table_name(queue))["QueueUrl"]


def _drain(queue: str) -> list[str]:
    sqs, url = _queue_url(queue)
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in messages]
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return bodies


def _queued_records(queue: str) -> set[str]:
    return {ref[2] for body in _drain(queue) for ref in json.loads(body)["records"]}


def _objects(prefix: str) -> list[str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=get_settings().bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def selected(calls: list[Call]) -> list[Call]:
    """Every call of a short path; on a long one the first call of each call site, and the last call."""
    if len(calls) <= MAX_CALLS:
        return calls
    firsts = {(c.endpoint, c.site): c for c in reversed(calls)}
    return sorted({*firsts.values(), calls[-1]}, key=lambda c: c.index)


# --- fixtures --------------------------------------------------------------------------------------------------------


@dataclass
class Baseline:
    path: WritePath
    snapshot: Snapshot
    start: datetime
    calls: list[Call]
    answer: Answer
    acted: Any  # the state the action left (a request's, before any retry)
    state: Any  # and once the retries and next runs are done


@dataclass
class Harness:
    calls: AwsCalls
    sleeps: Sleeps
    clock: FrozenClock


@pytest.fixture(scope="module", autouse=True)
def four_list_shards() -> Iterator[None]:
    """Each case reruns its path's listings; with 32 shards the rollover cases took twice as long (one call
    site here all the same: ``few_list_shards``)."""
    with few_list_shards():
        yield


@pytest.fixture(scope="module")
def harness(moto_world) -> Iterator[Harness]:
    """Faults armed on DynamoDB, S3 and SQS; every sleep recorded, not slept; Stripe's secret and a fake provider."""
    sleeps = Sleeps()
    calls = AwsCalls(services=("dynamodb", "s3", "sqs")).attach()
    # The sweeps walk every shard of their work list, one Query each (~5 ms in moto): the same code over 4
    # shards keeps hundreds of recoveries affordable.
    # botocore's retry quota (a bucket per client that stops retrying once many calls failed) would make the
    # attempts of a case depend on the cases before it: here every case retries as a fresh Lambda would.
    patched = [(botocore.endpoint, "time", botocore.endpoint.time), (retry, "time", retry.time),
               (staging, "time", staging.time), (RetryQuota, "acquire", RetryQuota.acquire),
               *((keys, name, getattr(keys, name)) for name in ("PENDING", "OUTBOX", "DUE"))]
    shards = {name: keys.Shards(getattr(keys, name).prefix, 4) for name in ("PENDING", "OUTBOX", "DUE")}
    for module, name, _original in patched:
        setattr(module, name, shards.get(name, sleeps))
    RetryQuota.acquire = lambda _quota, _amount: True
    clock = FrozenClock(START)
    try:
        with overriding(clock=clock, billing=FakeBillingProvider(),
                        stripe_config=StripeConfig(api_key="", webhook_secret=SECRET)):
            yield Harness(calls, sleeps, clock)
    finally:
        for module, name, original in patched:
            setattr(module, name, original)
        calls.detach()
        bootstrap.reset()


@pytest.fixture(scope="module")
def baselines(harness: Harness) -> Callable[[str], Baseline]:
    """Per path, on first use: arranged, snapshotted, then run once to warm every cache (clients, queue URLs, the
    signer) and once more, recorded, without faults."""
    calls, clock = harness.calls, harness.clock
    made: dict[str, Baseline] = {}

    def get(name: str) -> Baseline:
        if name not in made:
            empty_world()
            bootstrap.reset()
            clock.current = START
            path = PATHS[name](World(clock))
            path.arrange()
            snapshot, start = Snapshot(), clock()
            for record in (False, True):
                snapshot.restore()
                clock.current = start
                with calls.run() if record else nullcontext():
                    answer = path.act()
                recorded = list(calls.calls)
                acted = None if path.background else path.observe()  # a job's next runs may have work left
                path.recover()
                state = path.observe()
                path.recover()
                assert path.observe() == state, f"{name}: recovering twice changed the state"
            assert answer.raised is None and (path.background or answer.status == path.ok_status), answer
            made[name] = Baseline(path, snapshot, start, recorded, answer, acted, state)
        return made[name]

    return get


# --- the cases ---------------------------------------------------------------------------------------------------


def run_case(harness: Harness, baseline: Baseline, fault: Fault) -> None:
    calls, sleeps, clock = harness.calls, harness.sleeps, harness.clock
    path = baseline.path
    baseline.snapshot.restore()
    clock.current = baseline.start
    sleeps.slept.clear()
    path.ambiguous = fault.persistent and fault.kind == "lost-answer"
    with calls.run(fault=fault):
        answer = path.act()
    hit = calls.calls[fault.at - 1]
    assert hit.endpoint == baseline.calls[fault.at - 1].endpoint, "the run strayed from the baseline before the fault"
    attempts = [a for a in calls.attempts if a[0] == fault.at]
    assert attempts[0][2] == fault.kind, f"the fault never fired: {calls.attempts}"
    if fault.kind != "conflict":  # botocore's own retries: every attempt the configuration allows, then it gives up
        assert len(attempts) == (ATTEMPTS[hit.service] if fault.persistent else 2), attempts
    assert all(0 <= s <= MAX_BACKOFF for s in sleeps.slept), sleeps.slept
    if path.background:
        if answer.raised is not None:
            assert unavailable(answer.raised) is not None, f"a job failed for a bug: {answer.raised!r}"
        path.recover()
    elif fault.persistent and answer.status != baseline.answer.status:
        assert answer.status == 503, f"{answer.status}: {answer.body}"
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.body["error"]["code"] in ("SERVICE_UNAVAILABLE", "CONCURRENT_WRITE"), answer.body
        path.recover()
    else:
        path.check_answer(answer, baseline.answer)
        if not fault.persistent:
            assert path.observe() == baseline.acted  # right away: the retries absorbed the fault
        path.recover()
    assert path.observe() == baseline.state
    if not fault.persistent and not (path.background and fault.kind == "conflict"):  # a job may leave a race
        assert any(s > 0 for s in sleeps.slept), "retried without backoff"  # to its next run


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(PATHS))
def test_a_fault_at_any_call_is_retried_or_answered_503_and_nothing_is_lost_or_doubled(harness, baselines, name,
                                                                                        kind, mode):
    baseline = baselines(name)
    cases = [c for c in selected(baseline.calls) if applicable(kind, c)]
    failures = []
    for call in cases:
        fault = Fault(kind, call.index, persistent=mode == "persistent", variant=call.index + MODES.index(mode))
        try:
            run_case(harness, baseline, fault)
        except AssertionError as exc:
            failures.append(f"call {call.index} {call.service} {call.operation} {call.target} ({call.site}), "
                            f"{fault.describe(call.service)}: {exc}")
    assert not failures, f"{len(failures)} of {len(cases)} calls:\n" + "\n".join(failures)


# --- every route family answers 503 with Retry-After ------------------------------------------------------------


@pytest.fixture(scope="module")
def families(harness: Harness) -> dict[str, tuple[str, dict[str, str]]]:
    """One read of each route family (API key, dashboard, platform token, public), arranged in a fresh world."""
    from chalicelib.services import packages

    empty_world()
    bootstrap.reset()
    harness.clock.current = START
    world = World(harness.clock)
    tenant = world.tenant("Family Co")
    _key_id, key = world.api_key(tenant)
    token = world.platform_token("tenants:read")
    bootstrap.artifacts().put(packages._object_key("t" * 43), b"{}", content_type="application/json")
    return {
        "api-key": ("/api/v1/balance/customers", {"X-Api-Key": key}),
        "dashboard": ("/dashboard/tenant", world.auth(tenant, "admin")),
        "platform": ("/tenants", {"Authorization": f"Bearer {token}"}),
        "public": ("/api/v1/verification-packages/" + "t" * 43, {}),
    }


@pytest.mark.parametrize("family", ["api-key", "dashboard", "platform", "public"])
@pytest.mark.parametrize("kind", ["throttle", "timeout"])
def test_every_route_family_answers_503_with_retry_after_when_storage_stays_unavailable(harness, families, family,
                                                                                        kind):
    """The first AWS call each route makes (DynamoDB for the authenticated ones, S3 for the public package link)
    fails on every attempt: the answer is 503 in the family's envelope, with ``Retry-After``, never a 500; the
    ContractClient checks it against the OpenAPI document."""
    from tests.contract import ContractClient

    path, headers = families[family]
    ratelimit.reset()
    with harness.calls.run(fault=Fault(kind, 1, persistent=True)):
        reply = ContractClient().get(path, headers=headers)
    assert reply.status == 503, reply
    assert reply.headers["retry-after"] == "2"
    if family == "platform":
        assert reply.json == {"message": ServiceUnavailableError.default_message, "code": "service_unavailable"}
    else:
        assert reply.error == {"code": "SERVICE_UNAVAILABLE", "message": ServiceUnavailableError.default_message,
                               "retryAfterSeconds": 2}
    assert len(harness.calls.attempts) == ATTEMPTS[harness.calls.calls[0].service]  # botocore's, then the 503


def test_every_operation_documents_503_with_retry_after():
    from chalicelib.api.openapi import build_document

    document = build_document("http://testserver")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            unavailable_answer = operation["responses"].get("503")
            assert unavailable_answer is not None, (method, path)
            assert unavailable_answer["headers"]["Retry-After"]["required"] is True, (method, path)


@pytest.mark.parametrize("name", list(PATHS))
def test_every_throttling_code_and_every_timeout_is_injected_on_every_path(baselines, name):
    """The codes and exceptions take turns call by call (and mode by mode): each one is met on each path."""
    calls = selected(baselines(name).calls)
    for kind, variants in (("throttle", THROTTLES["dynamodb"]), ("timeout", [t.__name__ for t in TIMEOUTS])):
        for mode in MODES:
            met = {Fault(kind, c.index, variant=c.index + MODES.index(mode)).describe(c.service)
                   for c in calls if c.service == "dynamodb"}
            assert met == set(variants), (kind, mode, met)
