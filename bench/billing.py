"""Billing benchmark (`make bench`), in-process against moto, printing figures (asserts nothing):

* the period rollover's DynamoDB calls per tenant with 10 and with 1,000 deltas in the closed month (same
  10 customers, verified), side by side — the count must not grow with the deltas;
* the Stripe webhook's DynamoDB calls per event, first delivery and replay, signed as Stripe signs them.

The billing provider is an in-memory stand-in."""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.conftest  # noqa: E402,F401,I001  - test environment, set before moto and the models import
from moto import mock_aws  # noqa: E402

from bench.report import record  # noqa: E402

PERIOD = "2026-04"
ACCEPTED_AT = datetime(2026, 4, 15, 12, tzinfo=UTC)
RUN_AT = datetime(2026, 5, 1, 0, 5, tzinfo=UTC)
CUSTOMERS = 10


class Provider:
    def __init__(self) -> None:
        self.reports = 0

    def report_overage(self, **_: object) -> None:
        self.reports += 1

    def invoice_overage(self, **_: object) -> None:
        self.reports += 1

    def get_subscription(self, subscription_id: str) -> object:
        raise AssertionError("no subscription in this benchmark")


def _rollover_calls(deltas: int, *, tenants: int = 1) -> tuple[Counter, float, Counter]:
    """(calls of a first run, its seconds, calls of a second run) for ``tenants`` tenants with ``deltas`` each."""
    from chalicelib import bootstrap
    from chalicelib.domain.deltas import DeltaInput
    from chalicelib.domain.identity import ApiKeyPrincipal, Environment
    from chalicelib.services import ingest, rollover, verification
    from tests.conftest import empty_world
    from tests.dynamo_calls import DynamoCalls
    from tests.factories import World

    empty_world()
    bootstrap.reset()
    world = World(lambda: ACCEPTED_AT)
    world.tenant("Platform")
    for n in range(tenants):
        tenant = world.tenant(f"Bench {n}", plan="pilot", stripe_customer_id=f"cus_bench_{n}")
        principal = ApiKeyPrincipal(tenant.id, Environment.PRODUCTION, "bench")
        inputs = [DeltaInput(customer_id=f"cust_{i % CUSTOMERS}", delta=Decimal(1), reason="bench")
                  for i in range(deltas)]
        for start in range(0, len(inputs), 100):
            outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, inputs[start : start + 100],
                                            now=ACCEPTED_AT)
            refs = [(tenant.id, Environment.PRODUCTION, o.data["recordId"]) for o in outcomes]
            verification.verify_records(bootstrap.unit_of_work(), refs, now=ACCEPTED_AT, signer=bootstrap.signer())
    calls = DynamoCalls().attach()
    try:
        runs = []
        for _ in range(2):
            with calls.run():
                started = time.perf_counter()
                rollover.run(bootstrap.unit_of_work, period=PERIOD, now=RUN_AT, provider=Provider(),
                             signer=bootstrap.signer, time_left=lambda: 1e9)
                runs.append((Counter(calls.operations), time.perf_counter() - started))
    finally:
        calls.detach()
    return runs[0][0], runs[0][1], runs[1][0]


def _webhook_calls() -> list[tuple[str, Counter, Counter]]:
    """(event, calls of its first delivery, calls of a replay) for each kind of event the handler meets."""
    import json

    import stripe

    from chalicelib import bootstrap
    from chalicelib.services import stripe_webhooks
    from tests.conftest import empty_world
    from tests.dynamo_calls import DynamoCalls
    from tests.factories import World
    from tests.fakes import FakeBillingProvider

    empty_world()
    bootstrap.reset()
    secret = "whsec_bench"
    world = World(lambda: RUN_AT)
    world.tenant("Platform")
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_bench")
    provider = FakeBillingProvider()
    sub = provider.subscribe(tenant.id, "starter", customer_id="cus_bench")
    events = {
        "checkout.session.completed": {"id": "cs_1", "object": "checkout.session", "mode": "subscription",
                                       "client_reference_id": tenant.id, "customer": "cus_bench",
                                       "subscription": sub.id},
        "customer.subscription.updated": {"id": sub.id, "object": "subscription", "customer": "cus_bench",
                                          "metadata": {"tenant_id": tenant.id}},
        "invoice.payment_failed": {"id": "in_1", "object": "invoice", "customer": "cus_bench", "parent": None},
        "invoice.paid": {"id": "in_1", "object": "invoice", "customer": "cus_bench", "parent": None},
        "customer.created (not handled)": {"id": "cus_x", "object": "customer"},
    }
    rows = []
    for n, (kind, obj) in enumerate(events.items()):
        payload = json.dumps({"id": f"evt_{n}", "object": "event", "type": kind.split(" ")[0],
                              "data": {"object": obj}}).encode()
        counts = []
        for _attempt in range(2):
            header = stripe.WebhookSignature.generate_signature_header(payload.decode(), secret,
                                                                       timestamp=int(RUN_AT.timestamp()))
            with DynamoCalls.recording() as calls:
                result = stripe_webhooks.handle(bootstrap.unit_of_work(), payload=payload, signature_header=header,
                                                now=RUN_AT, provider=provider, webhook_secret=secret)
            assert result.status == 200, result
            counts.append(Counter(calls.operations))
        rows.append((kind, counts[0], counts[1]))
    header = "t=1,v1=" + "0" * 64
    with DynamoCalls.recording() as calls:
        result = stripe_webhooks.handle(bootstrap.unit_of_work(), payload=b"{}", signature_header=header,
                                        now=RUN_AT, provider=provider, webhook_secret=secret)
    rows.append((f"bad signature ({result.status})", Counter(calls.operations), Counter()))
    return rows


def main() -> None:
    with mock_aws():
        import boto3

        from chalicelib.cli.resources import provision

        provision(boto3.session.Session(), stack_name="tally-test", region="us-east-1")
        bookkeeping, _seconds, _again = _rollover_calls(0, tenants=0)
        few, few_s, again = _rollover_calls(10)
        many, many_s, _again = _rollover_calls(1_000)
        webhook = _webhook_calls()
    kinds = sorted(set(few) | set(many) | set(bookkeeping))
    print(f"Period rollover, DynamoDB calls per tenant ({CUSTOMERS} customers with deltas in the month, each "
          f"checkpointed; the run's own bookkeeping, {sum(bookkeeping.values())} calls, subtracted):")
    print(f"  {'call':<20}{'10 deltas':>12}{'1,000 deltas':>14}")
    for kind in kinds:
        print(f"  {kind:<20}{few[kind] - bookkeeping[kind]:>12}{many[kind] - bookkeeping[kind]:>14}")
    total_few = sum(few.values()) - sum(bookkeeping.values())
    total_many = sum(many.values()) - sum(bookkeeping.values())
    print(f"  {'total':<20}{total_few:>12}{total_many:>14}")
    print(f"  first run in moto: {few_s * 1000:.0f} ms vs {many_s * 1000:.0f} ms; a second run (month closed): "
          f"{sum(again.values())} call(s) in all ({', '.join(sorted(again))})")
    record("billing", "rollover calls per tenant, 10 deltas", total_few, "calls")
    record("billing", "rollover calls per tenant, 1,000 deltas", total_many, "calls", goal=("<=", total_few))
    record("billing", "rollover first run, 10 deltas (moto)", few_s * 1000, "ms")
    record("billing", "rollover first run, 1,000 deltas (moto)", many_s * 1000, "ms")
    record("billing", "rollover second run (month closed)", sum(again.values()), "calls")


    print()
    print("Stripe webhook, DynamoDB calls per event (first delivery / a replay of it):")
    for kind, first, replay in webhook:
        detail = ", ".join(f"{op} {n}" for op, n in sorted(first.items())) or "none"
        print(f"  {kind:<34}{sum(first.values()):>3} / {sum(replay.values())}   ({detail})")
        record("billing", f"Stripe webhook calls, {kind}", sum(first.values()), "calls")
        record("billing", f"Stripe webhook calls, {kind}, replay", sum(replay.values()), "calls")


if __name__ == "__main__":
    main()
