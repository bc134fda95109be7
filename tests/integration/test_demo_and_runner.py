"""Demo seeding is idempotent; the in-process runner drives schedules and queues."""

from __future__ import annotations

import json

from chalice import Chalice

from chalicelib.cli import demo
from chalicelib.cli.resources import provision
from chalicelib.cli.runner import JobRunner, schedule_seconds
from chalicelib.domain.identity import Environment
from tests.conftest import TEST_STACK

SECRETS = {
    "apiKeys": {"sandbox": "pk_test_AAAAAAAAAAAAAAAA." + "s" * 43,
                "production": "pk_live_BBBBBBBBBBBBBBBB." + "p" * 43},
    "platformToken": "ptk_CCCCCCCCCCCCCCCC|" + "t" * 43,
}


def _counts(world) -> dict:
    uow = world.uow()
    return {
        "tenants": [uow.tenants.get(t) is not None for t in ("1", "2", "3", "4")],
        "users": len(uow.users.list("2")),
        "keys": len(uow.api_keys.list_all("2")),
        "customers": [len(uow.customers.list("2", env, 100, None).items) for env in Environment],
        "totals": [uow.customers.stats("2", env).customers for env in Environment],  # the summary agrees
        "token": uow.platform_tokens.get("ptk_CCCCCCCCCCCCCCCC") is not None,
        "paid": {"users": len(uow.users.list("4")), "keys": len(uow.api_keys.list_all("4")),
                 "customers": [len(uow.customers.list("4", env, 100, None).items) for env in Environment]},
    }


def test_demo_seed_creates_the_documented_data_once(world):
    first = demo.seed(SECRETS)
    after_first = _counts(world)
    assert first == {"tenantId": "2", "adminUserId": "usr_demo_admin"}
    assert after_first == {"tenants": [True, True, True, True], "users": 5, "keys": 2,
                           "customers": [3, 3], "totals": [3, 3], "token": True,
                           "paid": {"users": 5, "keys": 2, "customers": [0, 3]}}
    assert world.uow().tenants.get("3").plan == "free"
    paid = world.uow().tenants.get("4")
    assert (paid.company_name, str(paid.billing_mode), paid.plan) == ("Initech Pro", "monthly", "growth")
    demo.seed(SECRETS)
    assert _counts(world) == after_first


def test_provisioning_twice_changes_nothing(aws, boto_session):
    assert provision(boto_session, stack_name=TEST_STACK, region="us-east-1") == aws


def test_schedule_expressions_become_local_intervals():
    assert schedule_seconds("rate(5 minutes)") == 300
    assert schedule_seconds("rate(1 hour)") == 3600
    assert schedule_seconds("cron(0 0 1 * ? *)") == 3600


def test_runner_fires_schedules_and_delivers_queue_batches(aws, boto_session):
    app = Chalice(app_name="runner-test", configure_logs=False)
    seen: dict[str, list] = {"ticks": [], "bodies": []}

    @app.schedule("rate(1 day)")
    def nightly(event):
        seen["ticks"].append(event.to_dict()["detail-type"])

    @app.on_sqs_message(queue="tally-test-verify", batch_size=5)
    def verify(event):
        seen["bodies"].extend(json.loads(record.body)["n"] for record in event)

    sqs = boto_session.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="tally-test-verify")["QueueUrl"]
    for n in range(7):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))

    runner = JobRunner(app=app, sqs_client=sqs, local_interval=60)
    due: dict[str, float] = {}
    runner.run_schedules_once(due, now=0.0)
    runner.run_schedules_once(due, now=30.0)  # not due yet: local interval is 60 s
    runner.run_schedules_once(due, now=61.0)
    assert seen["ticks"] == ["Scheduled Event", "Scheduled Event"]

    handled = 0
    while (batch := runner.drain_queues_once()) > 0:
        handled += batch
    assert handled == 7 and sorted(seen["bodies"]) == list(range(7))
    assert int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"]) == 0


def test_a_failing_queue_handler_leaves_its_messages_for_redelivery(aws, boto_session):
    app = Chalice(app_name="runner-test", configure_logs=False)

    @app.on_sqs_message(queue="tally-test-verify")
    def broken(event):
        raise RuntimeError("boom")

    sqs = boto_session.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="tally-test-verify")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    runner = JobRunner(app=app, sqs_client=sqs)
    assert runner.drain_queues_once() == 0
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == 1
