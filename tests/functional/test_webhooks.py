"""Outgoing webhooks over the API: endpoints, events from verification and customers, signed deliveries,
retries with backoff, delivery history, manual retry. The receiver is an in-memory sender (no network);
the worker runs from the real webhook queue (moto) and the sweep from the due index."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from pacspace_sdk import Webhooks

from chalicelib import bootstrap
from chalicelib.domain.clock import parse_iso
from chalicelib.domain.errors import ConflictError
from chalicelib.domain.identity import Environment
from chalicelib.jobs import webhooks as webhook_jobs
from chalicelib.services import credits as credit_service
from chalicelib.services import verification
from chalicelib.services import webhooks as webhook_service
from chalicelib.settings import get_settings
from tests.helpers import run_queue

HOOKS = "/dashboard/webhooks"
DELTA = "/api/v1/balance/delta"
URL = "https://hooks.example.com/tally"
FAR = 10**9  # the SDK checks timestamps against the wall clock; these tests run on a frozen one


@pytest.fixture
def acme(world, clock):
    world.tenant("Platform")
    tenant = world.tenant("Acme", billing_mode="credits", plan="starter")
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 100, actor="test", now=clock())
    return tenant


@pytest.fixture
def owner(world, acme):
    return world.auth(acme, "owner")


@pytest.fixture
def key(world, acme):
    return {"X-Api-Key": world.api_key(acme, "production")[1]}


def register(api, auth, url=URL, **body) -> dict:
    reply = api.post(HOOKS, headers=auth, json_body={"url": url, **body})
    assert reply.status == 201, reply
    return reply.data


def failed_first_attempt(api, owner, receiver, customer_id: str, statuses: list[int] | None = None) -> dict:
    """An endpoint for ``customer.created`` (returned), a manual customer, and the sender's first attempt answered
    with ``statuses`` (default one 500): the delivery is pending a retry."""
    endpoint = register(api, owner, events=["customer.created"])
    receiver.statuses = statuses or [500]
    api.post("/dashboard/customers", headers=owner, json_body={"displayName": "A", "customerId": customer_id})
    drain_queue()
    return endpoint


def drain_queue() -> int:
    """Run the webhook sender Lambda on whatever the webhook queue holds (as Lambda's poller would)."""
    return run_queue("webhooks", webhook_jobs.handle_queue)


def verify(tenant, record_ids, clock) -> verification.VerifyReport:
    """The verifier Lambda's work, then its hand-off to the webhook queue."""
    refs = [(tenant.id, Environment.PRODUCTION, r) for r in record_ids]
    report = verification.verify_records(bootstrap.unit_of_work(), refs, now=clock(), signer=bootstrap.signer())
    webhook_service.announce(bootstrap.webhook_queue(), report.outbox)
    return report


def submit(api, key, customer="cust_a", amount=1) -> str:
    reply = api.post(DELTA, headers=key, json_body={"customerId": customer, "delta": amount, "reason": "r"})
    assert reply.status == 202, reply
    return reply.data["recordId"]


def sweep(clock):
    return webhook_service.sweep(bootstrap.unit_of_work(), clock=clock, sender=bootstrap.webhook_sender(),
                                 base=timedelta(seconds=get_settings().webhook_retry_base_seconds))


# --- endpoints -------------------------------------------------------------------------------------


def test_register_shows_the_secret_once_and_lists_without_it(api, owner):
    created = register(api, owner, events=["delta.verified"], description="billing")
    assert created["secret"].startswith("whsec_") and created["secretHint"].endswith(created["secret"][-4:])
    assert (created["events"], created["status"], created["environment"]) == (
        ["delta.verified"], "active", "production")
    listed = api.get(HOOKS, headers=owner).data
    assert [e["id"] for e in listed["items"]] == [created["id"]] and "secret" not in listed["items"][0]
    assert listed["events"] == ["delta.verified", "delta.failed", "verification.completed", "customer.created",
                                "tenant.dashboard_blocked", "tenant.dashboard_unblocked"]
    one = api.get(f"{HOOKS}/{created['id']}", headers=owner).data
    assert "secret" not in one and one["url"] == URL


def test_endpoints_are_scoped_to_the_environment_header(api, owner):
    created = register(api, owner)
    sandbox = {**owner, "X-Environment": "sandbox"}
    assert api.get(HOOKS, headers=sandbox).data["items"] == []
    assert api.get(f"{HOOKS}/{created['id']}", headers=sandbox).status == 404


@pytest.mark.parametrize("body, field", [
    ({"url": "http://hooks.example.com/x"}, "url"),
    ({"url": "https://10.1.2.3/x"}, "url"),
    ({"url": "https://169.254.169.254/latest/meta-data"}, "url"),
    ({"url": URL, "events": ["delta.created"]}, "events"),
    ({"url": URL, "events": "delta.verified"}, "events"),
    ({"url": URL, "description": "x" * 201}, "description"),
    ({}, "url"),
])
def test_bad_registrations_are_400(api, owner, body, field):
    reply = api.post(HOOKS, headers=owner, json_body=body)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == field


def test_loopback_http_is_accepted_outside_production(api, owner):
    assert register(api, owner, url="http://127.0.0.1:9999/hook")["url"] == "http://127.0.0.1:9999/hook"


def test_an_environment_holds_at_most_twenty_endpoints(api, owner):
    for n in range(20):
        register(api, owner, url=f"{URL}/{n}")
    reply = api.post(HOOKS, headers=owner, json_body={"url": URL})
    assert reply.status == 400 and reply.error["code"] == "WEBHOOK_LIMIT_REACHED"


def test_viewers_read_but_only_admins_change(api, world, acme, owner):
    created = register(api, owner)
    viewer = world.auth(acme, "viewer")
    assert api.get(HOOKS, headers=viewer).status == 200
    for method, path in (("post", HOOKS), ("delete", f"{HOOKS}/{created['id']}"),
                         ("post", f"{HOOKS}/{created['id']}/test")):
        reply = getattr(api, method)(path, headers=viewer, json_body={"url": URL} if path == HOOKS else None)
        assert reply.status == 403, (method, path)


def test_other_tenants_cannot_see_or_delete_an_endpoint(api, world, owner):
    created = register(api, owner)
    other = world.auth(world.tenant("Globex"), "owner")
    for method in ("get", "delete"):
        assert getattr(api, method)(f"{HOOKS}/{created['id']}", headers=other).status == 404
    assert api.get(f"{HOOKS}/{created['id']}/deliveries", headers=other).status == 404


def test_delete_disables_keeps_history_and_writes_audit(api, owner, receiver, clock):
    created = register(api, owner)
    assert api.post(f"{HOOKS}/{created['id']}/test", headers=owner).status == 202
    drain_queue()
    deleted = api.delete(f"{HOOKS}/{created['id']}", headers=owner)
    assert deleted.status == 200 and deleted.data["status"] == "disabled"
    assert api.get(f"{HOOKS}/{created['id']}", headers=owner).status == 404
    assert api.get(HOOKS, headers=owner).data["items"] == []
    history = api.get(f"{HOOKS}/{created['id']}/deliveries", headers=owner).data["items"]
    assert [d["event"] for d in history] == ["webhook.test"]
    actions = [e["action"] for e in api.get("/dashboard/audit", headers=owner).data["items"]]
    assert {"webhook.created", "webhook.test_sent", "webhook.deleted"} <= set(actions)


def test_no_auth_is_401(api):
    assert api.get(HOOKS).status == 401
    assert api.get("/api/v1/balance/webhooks").status == 401


# --- events and signed deliveries --------------------------------------------------------------------


def test_verification_sends_signed_delta_verified_and_verification_completed(api, owner, key, acme, receiver,
                                                                               clock):
    secret = register(api, owner)["secret"]
    ids = [submit(api, key, "cust_a", 2), submit(api, key, "cust_b", -1)]
    report = verify(acme, ids, clock)
    assert receiver.calls == []  # the verifier never calls out: it hands the outbox to the queue
    assert drain_queue() == 1
    assert len(receiver.calls) == 3
    for url, body, headers in receiver.calls:
        payload = Webhooks(secret).verify_from_headers(headers, body, tolerance=FAR)
        assert url == URL and headers["X-Webhook-Event"] == payload["event"]
        assert headers["X-Event-ID"] == payload["id"] and payload["tenantId"] == acme.id
    verified = {e["data"]["recordId"]: e["data"] for e in receiver.events("delta.verified")}
    assert set(verified) == set(ids)
    batch = report.batches[0]
    first = verified[ids[0]]
    assert (first["customerId"], first["delta"], first["proofRoot"], first["batchId"]) == (
        "cust_a", 2, batch.root, batch.batch_id)
    assert first["usage"] == {"plan": "starter", "periodId": "2026-04", "includedDeltas": 100000,
                              "consumedDeltas": 2, "remainingDeltas": 99998, "overageRate": "$0.012/delta"}
    [completed] = receiver.events("verification.completed")
    assert completed["data"]["creditsConsumed"] == 2 and completed["data"]["remainingBalance"] == 98
    assert completed["data"]["itemCount"] == 2


def test_subscriptions_filter_events_and_sandbox_endpoints_hear_only_sandbox(api, owner, key, acme, receiver,
                                                                             clock):
    register(api, owner, events=["verification.completed"])
    register(api, {**owner, "X-Environment": "sandbox"}, url=f"{URL}/sandbox")
    verify(acme, [submit(api, key)], clock)
    drain_queue()
    assert [(url, e["event"]) for (url, _b, _h), e in zip(receiver.calls, receiver.events(), strict=True)] == [
        (URL, "verification.completed")]


def test_a_terminal_failure_sends_delta_failed(api, owner, key, acme, receiver, clock):
    register(api, owner, events=["delta.failed"])
    record_id = submit(api, key)
    uow = bootstrap.unit_of_work()
    delta = uow.deltas.get(acme.id, Environment.PRODUCTION, record_id)
    outbox: list = []
    verification._fail_once(uow, delta, "Content cannot be canonicalised (RFC 8785): test", clock(), outbox)
    webhook_service.announce(bootstrap.webhook_queue(), outbox)
    drain_queue()
    [event] = receiver.events()
    assert event["event"] == "delta.failed"
    assert event["data"]["recordId"] == record_id and event["data"]["error"].startswith("Content cannot")
    assert event["data"]["creditsRefunded"] == 1


def test_customer_created_is_audited_and_sent(api, owner, receiver):
    secret = register(api, owner)["secret"]
    reply = api.post("/dashboard/customers", headers=owner,
                     json_body={"displayName": "Acme Corp", "customerId": "cust_acme", "eventCadence": "PER_EVENT",
                                "sharingStateHint": "INHERIT", "unitLabel": "records"})
    assert reply.status == 201 and reply.data["source"] == "manual"
    drain_queue()
    [(_url, body, headers)] = receiver.calls
    event = Webhooks(secret).verify_from_headers(headers, body, tolerance=FAR)
    assert event["event"] == "customer.created" and event["data"]["customerId"] == "cust_acme"
    assert event["data"]["displayName"] == "Acme Corp"
    audit = api.get("/dashboard/audit", headers=owner).data["items"]
    assert [(e["action"], e["target"]) for e in audit if e["action"] == "customer.created"] == [
        ("customer.created", "customer:cust_acme")]


def test_a_lost_queue_message_is_fanned_out_by_the_sweep(api, owner, key, acme, receiver, clock):
    register(api, owner)
    ids = [submit(api, key)]
    report = verification.verify_records(bootstrap.unit_of_work(), [(acme.id, Environment.PRODUCTION, ids[0])],
                                         now=clock(), signer=bootstrap.signer())
    assert report.outbox  # never announced: as if SQS had lost the message
    assert sweep(clock).delivered == []  # too fresh: the sweep leaves it to the queue for a while
    clock.advance(minutes=1)
    assert len(sweep(clock).delivered) == 2
    assert len(sweep(clock).delivered) == 0  # the outbox is gone, the deliveries are done


def test_fan_out_runs_once_even_when_repeated(api, owner, key, acme, receiver, clock):
    for n in range(3):
        register(api, owner, url=f"{URL}/{n}")
    report = verification.verify_records(
        bootstrap.unit_of_work(), [(acme.id, Environment.PRODUCTION, submit(api, key, f"c{n}")) for n in range(40)],
        now=clock(), signer=bootstrap.signer())
    [ref] = report.outbox
    made = webhook_service.fan_out(bootstrap.unit_of_work(), ref, now=clock())  # 41 events x 3 = 123: 2 chunks
    assert len(made) == len(set(made)) == 123
    assert webhook_service.fan_out(bootstrap.unit_of_work(), ref, now=clock()) == []


def test_fan_out_resumes_after_a_crash_between_chunks(api, owner, key, acme, receiver, clock, monkeypatch):
    for n in range(3):
        register(api, owner, url=f"{URL}/{n}")
    report = verification.verify_records(
        bootstrap.unit_of_work(), [(acme.id, Environment.PRODUCTION, submit(api, key, f"c{n}")) for n in range(40)],
        now=clock(), signer=bootstrap.signer())
    [ref] = report.outbox
    uow = bootstrap.unit_of_work()
    real_commit = uow.commit
    commits = []

    def crash_after_first_chunk():
        real_commit()
        commits.append(1)
        raise RuntimeError("Lambda died")

    monkeypatch.setattr(uow, "commit", crash_after_first_chunk)
    with pytest.raises(RuntimeError):
        webhook_service.fan_out(uow, ref, now=clock())
    rest = webhook_service.fan_out(bootstrap.unit_of_work(), ref, now=clock())
    assert len(commits) == 1 and len(rest) == 123 - 98
    page = bootstrap.unit_of_work().webhooks.deliveries(acme.id, Environment.PRODUCTION, 100, None)
    total = len(page.items) + len(bootstrap.unit_of_work().webhooks.deliveries(
        acme.id, Environment.PRODUCTION, 100, page.next_cursor).items)
    assert total == 123


# --- retries ----------------------------------------------------------------------------------------


def test_a_receiver_failing_twice_then_succeeding_gets_one_success_in_three_attempts(api, owner, key, receiver,
                                                                                    clock):
    secret = register(api, owner, events=["customer.created"])["secret"]
    receiver.statuses = [500, 503]
    api.post("/dashboard/customers", headers=owner, json_body={"displayName": "A", "customerId": "cust_r"})
    drain_queue()
    assert len(receiver.calls) == 1
    clock.advance(seconds=9)
    assert sweep(clock).delivered == [] and len(receiver.calls) == 1  # not due before 10 s
    clock.advance(seconds=1)
    assert sweep(clock).rescheduled and len(receiver.calls) == 2
    clock.advance(seconds=49)
    sweep(clock)
    assert len(receiver.calls) == 2  # the second retry waits 50 s
    clock.advance(seconds=1)
    assert len(sweep(clock).delivered) == 1 and len(receiver.calls) == 3
    clock.advance(hours=1)
    sweep(clock)
    assert len(receiver.calls) == 3  # delivered: never sent again
    timestamps = set()
    for _u, body, headers in receiver.calls:
        Webhooks(secret).verify_from_headers(headers, body, tolerance=FAR)
        timestamps.add(headers["X-PacSpace-Timestamp"])
    assert len(timestamps) == 3  # each attempt is signed at its own time
    [delivery] = api.get("/api/v1/balance/webhooks", headers=key).data["items"]
    assert (delivery["status"], delivery["attemptCount"]) == ("DELIVERED", 3)
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 503, 200]


def test_attempts_stop_after_the_limit_and_a_manual_retry_delivers(api, owner, key, receiver, clock):
    failed_first_attempt(api, owner, receiver, "cust_f", statuses=[500] * 50)
    due = []
    while (pending := api.get("/api/v1/balance/webhooks?status=PENDING", headers=key).data["items"]):
        due.append(pending[0]["nextAttemptAt"])
        clock.current = parse_iso(pending[0]["nextAttemptAt"])  # the sweep runs right on time
        sweep(clock)
    gaps = [int((parse_iso(b) - parse_iso(a)).total_seconds()) for a, b in itertools.pairwise(due)]
    assert gaps == [50, 250, 1250, 6250, 21600, 21600]  # backoff: x5 from 10 s, capped at 6 h
    [delivery] = api.get("/api/v1/balance/webhooks?status=FAILED", headers=key).data["items"]
    assert delivery["attemptCount"] == 8 and delivery["nextAttemptAt"] is None
    receiver.statuses = []
    retried = api.post(f"/api/v1/balance/webhooks/{delivery['eventId']}/retry", headers=key)
    assert retried.status == 202 and retried.data["status"] == "PENDING"
    drain_queue()
    [done] = api.get("/api/v1/balance/webhooks?status=DELIVERED", headers=key).data["items"]
    assert done["eventId"] == delivery["eventId"] and done["attemptCount"] == 9
    assert api.get("/api/v1/balance/webhooks?status=FAILED", headers=key).data["items"] == []


def test_an_unreachable_receiver_is_recorded_as_an_error(api, owner, key, clock):
    register(api, owner, url="http://127.0.0.1:9/nothing-listens-here", events=["customer.created"])
    api.post("/dashboard/customers", headers=owner, json_body={"displayName": "A", "customerId": "cust_u"})
    drain_queue()  # the real HTTP sender, against a closed loopback port
    [delivery] = api.get("/api/v1/balance/webhooks", headers=key).data["items"]
    assert delivery["status"] == "PENDING" and delivery["lastStatusCode"] is None
    assert "refused" in delivery["lastError"].lower()


def test_deliveries_to_a_deleted_endpoint_fail_without_a_request(api, owner, key, receiver, clock):
    created = failed_first_attempt(api, owner, receiver, "cust_d")
    api.delete(f"{HOOKS}/{created['id']}", headers=owner)
    clock.advance(minutes=1)
    sweep(clock)
    assert len(receiver.calls) == 1
    [delivery] = api.get("/api/v1/balance/webhooks", headers=key).data["items"]
    assert delivery["status"] == "FAILED" and delivery["lastError"] == "The endpoint was deleted."


# --- Balance API: listing and retry -----------------------------------------------------------------


def test_deliveries_list_newest_first_with_paging_offset_and_status(api, owner, key, receiver, clock):
    register(api, owner, events=["customer.created"])
    for n in range(5):
        clock.advance(seconds=1)
        api.post("/dashboard/customers", headers=owner, json_body={"displayName": "A", "customerId": f"cust_{n}"})
    drain_queue()
    items = api.get("/api/v1/balance/webhooks", headers=key).data["items"]
    customers = [e["data"]["customerId"] for e in receiver.events()]
    assert len(items) == 5 and sorted(customers) == [f"cust_{n}" for n in range(5)]
    assert [i["createdAt"] for i in items] == sorted((i["createdAt"] for i in items), reverse=True)
    first = api.get("/api/v1/balance/webhooks?limit=2", headers=key).data
    second = api.get(f"/api/v1/balance/webhooks?limit=2&cursor={first['nextCursor']}", headers=key).data
    assert [i["eventId"] for i in first["items"] + second["items"]] == [i["eventId"] for i in items[:4]]
    offset = api.get("/api/v1/balance/webhooks?limit=2&offset=2", headers=key).data["items"]
    assert [i["eventId"] for i in offset] == [i["eventId"] for i in items[2:4]]
    assert api.get("/api/v1/balance/webhooks?offset=10", headers=key).data["items"] == []
    assert api.get("/api/v1/balance/webhooks?status=PENDING", headers=key).data["items"] == []


@pytest.mark.parametrize("query", ["status=DONE", "limit=0", "limit=101", "offset=-1", "offset=1001",
                                   "cursor=nonsense"])
def test_bad_delivery_queries_are_400(api, key, query):
    reply = api.get(f"/api/v1/balance/webhooks?{query}", headers=key)
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR"


def test_deliveries_are_scoped_to_the_key_environment_and_tenant(api, world, acme, owner, key, receiver):
    register(api, owner, events=["customer.created"])
    api.post("/dashboard/customers", headers=owner, json_body={"displayName": "A", "customerId": "cust_s"})
    drain_queue()
    [delivery] = api.get("/api/v1/balance/webhooks", headers=key).data["items"]
    sandbox = {"X-Api-Key": world.api_key(acme, "sandbox")[1]}
    other = {"X-Api-Key": world.api_key(world.tenant("Globex"), "production")[1]}
    for headers in (sandbox, other):
        assert api.get("/api/v1/balance/webhooks", headers=headers).data["items"] == []
        reply = api.post(f"/api/v1/balance/webhooks/{delivery['eventId']}/retry", headers=headers)
        assert reply.status == 404 and reply.error["code"] == "NOT_FOUND"


def test_retrying_an_unknown_event_is_404(api, key):
    reply = api.post("/api/v1/balance/webhooks/evt_unknown/retry", headers=key)
    assert reply.status == 404


def test_retry_while_an_attempt_is_in_flight_is_409(api, acme, owner, key, receiver, clock):
    failed_first_attempt(api, owner, receiver, "cust_l")
    clock.advance(seconds=10)
    [item] = api.get("/api/v1/balance/webhooks", headers=key).data["items"]
    ref = (acme.id, "production", item["eventId"], item["endpointId"])
    lease = clock() + timedelta(minutes=5)
    assert bootstrap.unit_of_work().webhooks.claim(ref, now=clock(), lease_until=lease)  # a sender holds it
    assert bootstrap.unit_of_work().webhooks.claim(ref, now=clock(), lease_until=lease) is None  # one at a time
    reply = api.post(f"/api/v1/balance/webhooks/{item['eventId']}/retry", headers=key)
    assert reply.status == 409 and reply.error["code"] == "DELIVERY_IN_PROGRESS"


def test_a_retry_that_meets_a_transaction_conflict_reads_again_and_succeeds(api, acme, owner, key, receiver, clock):
    """A transaction conflict on the retry's commit is a storage race, not an attempt in flight: read again."""
    from tests.dynamo_calls import AwsCalls, Fault

    failed_first_attempt(api, owner, receiver, "cust_c")
    [item] = api.get("/api/v1/balance/webhooks", headers=key).data["items"]
    path = f"/api/v1/balance/webhooks/{item['eventId']}/retry"
    with AwsCalls.recording() as baseline:
        assert api.post(path, headers=key).status == 202
    commit = baseline.operations.index("TransactWriteItems") + 1
    calls = AwsCalls().attach()
    try:
        with calls.run(fault=Fault("conflict", commit)):
            reply = api.post(path, headers=key)
    finally:
        calls.detach()
    assert reply.status == 202, reply
    assert calls.operations.count("TransactWriteItems") == 2 and calls.operations.count("Query") >= 2


def test_account_deletion_disables_webhooks(api, world, acme, owner, receiver):
    register(api, owner)
    reply = api.delete("/dashboard/tenant", headers=owner, json_body={"confirmation": "Acme"})
    assert reply.status == 200, reply
    endpoints = bootstrap.unit_of_work().webhooks.endpoints(acme.id, Environment.PRODUCTION)
    assert [e.status for e in endpoints] == ["disabled"]


def test_a_sender_crash_on_one_delivery_costs_that_attempt_only(api, owner, key, receiver, clock):
    register(api, owner, events=["customer.created"])
    register(api, owner, url=f"{URL}/broken", events=["customer.created"])
    real_post = receiver.post

    def post(url, body, headers):
        if url.endswith("/broken"):
            raise RuntimeError("sender bug")
        return real_post(url, body, headers)

    receiver.post = post
    api.post("/dashboard/customers", headers=owner, json_body={"displayName": "A", "customerId": "cust_x"})
    drain_queue()
    items = {i["url"]: i for i in api.get("/api/v1/balance/webhooks", headers=key).data["items"]}
    assert items[URL]["status"] == "DELIVERED"
    broken = items[f"{URL}/broken"]
    assert (broken["status"], broken["attemptCount"]) == ("PENDING", 1)
    assert broken["lastError"] == "RuntimeError: sender bug"


def test_an_in_flight_delivery_leaves_the_due_index_until_its_lease_ends(api, acme, owner, key, receiver, clock):
    failed_first_attempt(api, owner, receiver, "cust_i")
    clock.advance(seconds=10)
    uow = bootstrap.unit_of_work()
    [ref] = uow.webhooks.due(now=clock(), limit=10)
    assert uow.webhooks.claim(ref, now=clock(), lease_until=clock() + webhook_service.SENDER_LEASE)
    assert uow.webhooks.due(now=clock(), limit=10) == []  # a sender holds it: the sweep does not see it
    clock.advance(minutes=5, seconds=1)
    assert uow.webhooks.due(now=clock(), limit=10) == [ref]  # the sender died: it is due again
    assert len(sweep(clock).delivered) == 1


def test_a_manual_retry_never_overwrites_an_attempt_recorded_after_it_read(api, acme, owner, key, receiver, clock):
    failed_first_attempt(api, owner, receiver, "cust_m")
    [item] = api.get("/api/v1/balance/webhooks", headers=key).data["items"]
    ref = (acme.id, "production", item["eventId"], item["endpointId"])
    uow = bootstrap.unit_of_work()
    stale = uow.webhooks.get_delivery(ref)  # what a retry request read ...
    clock.advance(seconds=10)
    assert len(sweep(clock).delivered) == 1  # ... before a sender delivered it
    uow.webhooks.record_attempt(stale.retried(clock()), lease_until=None)
    with pytest.raises(ConflictError):
        uow.commit()
    assert uow.webhooks.get_delivery(ref).status == "DELIVERED"
