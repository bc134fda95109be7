"""The missing-payment-blocks job (SPEC "Scheduled jobs", seed 002): each block whose limit date has passed
is recorded exactly once — ``dashboard_blocked_at``, an audit entry and a ``tenant.dashboard_blocked`` event
in one transaction — and clearing the flag lifts it and records that the same way. The platform API flags
and clears; the job runs as the scheduled Lambda would; webhooks go through the real queue and sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import bootstrap
from chalicelib.jobs import scheduled
from chalicelib.jobs import webhooks as webhook_jobs
from chalicelib.services import payment_blocks
from tests.dynamo_calls import DynamoCalls
from tests.helpers import run_queue

ALL = ("tenants:read", "tenants:write", "cross-tenant")
URL = "https://hooks.example.com/tally"
JOB = "job:missing-payment-blocks"


@pytest.fixture
def bearer(world):
    world.tenant("Platform")  # id 1: the operator
    return {"Authorization": f"Bearer {world.platform_token(*ALL)}"}


@pytest.fixture
def acme(world, bearer):
    return world.tenant("Acme Inc", stripe_customer_id="cus_acme")


@pytest.fixture
def hooks(api, world, acme):
    """A production and a sandbox endpoint, both subscribed to every event."""
    for environment in ("production", "sandbox"):
        reply = api.post("/dashboard/webhooks", headers=world.auth(acme, "owner", environment),
                         json_body={"url": f"{URL}/{environment}"})
        assert reply.status == 201, reply
        assert "tenant.dashboard_blocked" in reply.data["events"]


def mp(tenant_id: str) -> str:
    return f"/tenants/{tenant_id}/missing-payments"


def deliver(clock) -> None:
    """The webhook Lambdas: the queue (what the job announced), then the sweep (stale outbox items)."""
    run_queue("webhooks", webhook_jobs.handle_queue)
    clock.advance(seconds=31)
    webhook_jobs.handle_sweep(None)


def audit(tenant_id: str, action: str) -> list:
    entries = bootstrap.unit_of_work().audit.list(tenant_id, 100, None).items
    return [e for e in entries if e.action == action]


def test_the_job_records_a_passed_block_once(api, world, bearer, acme, hooks, receiver):
    assert api.post(mp(acme.id), headers=bearer).status == 200
    world.clock.advance(days=14, seconds=1)

    first = scheduled.missing_payment_blocks()
    second = scheduled.missing_payment_blocks()
    deliver(world.clock)

    assert first == {"blocked": [acme.id], "skipped": 0} and second == {"blocked": [], "skipped": 0}
    tenant = bootstrap.unit_of_work().tenants.get(acme.id)
    assert tenant.dashboard_blocked_at == world.clock() - timedelta(seconds=31)
    [entry] = audit(acme.id, "tenant.dashboard_blocked")
    assert (entry.actor, entry.target) == (JOB, f"tenant:{acme.id}")
    [(url, event)] = receiver.deliveries("tenant.dashboard_blocked")  # production only: the account's events
    assert url == f"{URL}/production" and event["tenantId"] == acme.id
    assert event["data"] == {"tenantId": acme.id, "dashboardBlocked": True,
                             "dashboardBlockedAt": "2026-04-29T12:00:01.000Z",
                             "hasUnpaidInvoicesAt": "2026-04-15T12:00:00.000Z",
                             "missingPaymentLimitDate": "2026-04-29T12:00:00.000Z"}


def test_nothing_is_recorded_before_the_limit_date(api, world, bearer, acme, hooks, receiver):
    api.post(mp(acme.id), headers=bearer)
    world.clock.advance(days=14)  # exactly the limit date: not past it
    assert scheduled.missing_payment_blocks()["blocked"] == []
    assert api.post(mp(acme.id), headers=bearer).json["data"]["dashboard_blocked"] is False
    world.clock.advance(seconds=1)
    assert scheduled.missing_payment_blocks()["blocked"] == [acme.id]


def test_the_block_holds_the_instant_the_date_passes_before_the_job_runs(api, world, bearer, acme):
    api.post(mp(acme.id), headers=bearer)
    world.clock.advance(days=14, seconds=1)
    reply = api.get("/dashboard/tenant", headers=world.auth(acme, "admin"))
    assert reply.status == 402 and reply.error["code"] == "DASHBOARD_BLOCKED"
    assert bootstrap.unit_of_work().tenants.get(acme.id).dashboard_blocked_at is None


def test_clearing_lifts_a_recorded_block_and_records_it(api, world, bearer, acme, hooks, receiver):
    api.post(mp(acme.id), headers=bearer)
    world.clock.advance(days=15)
    scheduled.missing_payment_blocks()
    world.clock.advance(hours=2)

    cleared = api.delete(mp(acme.id), headers=bearer)
    deliver(world.clock)

    assert cleared.status == 200 and cleared.json["data"]["dashboard_blocked"] is False
    assert api.get("/dashboard/tenant", headers=world.auth(acme, "admin")).status == 200
    assert bootstrap.unit_of_work().tenants.get(acme.id).dashboard_blocked_at is None
    [entry] = audit(acme.id, "tenant.dashboard_unblocked")
    assert entry.actor.startswith("platform_token:")  # whoever cleared the flag
    assert entry.details == {"dashboardBlockedAt": "2026-04-30T12:00:00.000Z"}
    [(url, event)] = receiver.deliveries("tenant.dashboard_unblocked")
    assert url == f"{URL}/production"
    assert event["data"] == {"tenantId": acme.id, "dashboardBlocked": False,
                             "dashboardBlockedAt": "2026-04-30T12:00:00.000Z",
                             "unblockedAt": "2026-04-30T14:00:00.000Z"}
    assert len(receiver.events("tenant.dashboard_blocked")) == 1
    assert scheduled.missing_payment_blocks()["blocked"] == []  # nothing left on the index


def test_clearing_a_block_never_recorded_records_no_unblock(api, world, bearer, acme, hooks, receiver):
    api.post(mp(acme.id), headers=bearer)
    world.clock.advance(days=15)  # blocked (computed), the job has not run
    api.delete(mp(acme.id), headers=bearer)
    deliver(world.clock)
    assert audit(acme.id, "tenant.dashboard_unblocked") == [] and receiver.calls == []
    assert len(audit(acme.id, "tenant.missing_payments.cleared")) == 1


def test_a_new_flag_after_clearing_is_blocked_and_recorded_again(api, world, bearer, acme, hooks, receiver):
    for _round in range(2):
        api.post(mp(acme.id), headers=bearer)
        world.clock.advance(days=15)
        assert scheduled.missing_payment_blocks()["blocked"] == [acme.id]
        api.delete(mp(acme.id), headers=bearer)
        world.clock.advance(days=1)
    deliver(world.clock)
    assert len(receiver.events("tenant.dashboard_blocked")) == 2
    assert len(receiver.events("tenant.dashboard_unblocked")) == 2
    assert len(audit(acme.id, "tenant.dashboard_blocked")) == 2


def test_only_due_flagged_tenants_are_read_with_one_key_query(api, world, bearer, acme):
    others = [world.tenant(f"Other {n}", stripe_customer_id=f"cus_{n}") for n in range(3)]
    api.post(mp(acme.id), headers=bearer)
    world.clock.advance(days=10)
    api.post(mp(others[0].id), headers=bearer)  # flagged later: not due yet
    world.clock.advance(days=5)
    with DynamoCalls.recording() as calls:
        report = payment_blocks.record_due_blocks(bootstrap.unit_of_work, now=world.clock())
    assert report.blocked == [acme.id]
    # The index query, the tenant re-read by id, one transaction (tenant + audit + outbox).
    assert calls.operations == ["Query", "GetItem", "TransactWriteItems"]


def test_a_block_recorded_by_a_concurrent_run_is_not_recorded_again(api, world, bearer, acme):
    """Two runs read the same tenant; the tenant save is optimistic, so the second one's commit fails and
    it records nothing."""
    api.post(mp(acme.id), headers=bearer)
    world.clock.advance(days=15)
    now = world.clock()
    first, second = bootstrap.unit_of_work(), bootstrap.unit_of_work()
    tenant_a, tenant_b = first.tenants.get(acme.id), second.tenants.get(acme.id)
    assert payment_blocks.stage_record_block(first, tenant_a, now=now) is not None
    assert payment_blocks.stage_record_block(second, tenant_b, now=now) is not None
    first.commit()
    with pytest.raises(Exception):  # noqa: B017 - ConflictError from the version condition
        second.commit()
    assert len(audit(acme.id, "tenant.dashboard_blocked")) == 1


def test_the_scheduled_lambda_runs_the_job(api, world, bearer, acme):
    from chalice.test import Client

    import app

    api.post(mp(acme.id), headers=bearer)
    world.clock.advance(days=15)
    with Client(app.app) as client:
        client.lambda_.invoke("missing_payment_blocks", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    assert bootstrap.unit_of_work().tenants.get(acme.id).dashboard_blocked_at == world.clock()
