"""Seed 003 end to end, as a user meets it: the real local stack (`tally dev up`), the public SDK, curl,
the local Stripe stand-in's pages and its `tally dev stripe` commands, and the scheduled jobs run by
`tally jobs run`. Every Stripe event in this flow travels the real path: signed by the stand-in,
POSTed to `/stripe/webhook`, verified and applied by the webhook Lambda.

A free tenant hits the 402 → subscribes (Checkout) → starter is active and the same write is accepted →
changes to growth → opens the portal → cancels → the period ends → free again; a failed payment flags it,
paying clears the flag; the period rollover, run twice, closes the previous month once.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from pacspace_sdk import InsufficientCreditsError, PacSpace

from tests.integration.localstack import Stack, call, local_stack, tally

PLAN = "/dashboard/billing/plan"


def curl(*args: str) -> tuple[int, str]:
    """curl as the seeds write it; returns (status, body)."""
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True,
                          timeout=60, check=True)
    body, _sep, status = done.stdout.rpartition("\n")
    return int(status), body


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "tally-billing-home")


@pytest.fixture(scope="module")
def hooli(stack):
    """A new free tenant, its owner's token and a production API key."""
    tenant = json.loads(tally(stack, "tenants", "create", "--name", "Hooli", "--owner-email", "owner@hooli.test",
                              "--json"))
    tenant_id = tenant["id"]
    token = tally(stack, "dev", "token", "--tenant", tenant_id, "--role", "owner").strip()
    key = json.loads(tally(stack, "dev", "api-key", "--tenant", tenant_id, "--environment", "production",
                           "--json"))["fullKey"]
    return {"id": tenant_id, "auth": {"Authorization": f"Bearer {token}"}, "key": key}


def post_event(stack: dict, payload: str, signature: str) -> tuple[int, dict, dict]:
    """A raw POST to the webhook, as Stripe sends it (the body signed byte for byte)."""
    request = urllib.request.Request(f"{stack['base']}/stripe/webhook", data=payload.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Stripe-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def dashboard(stack, hooli, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    headers = {**hooli["auth"], "Content-Type": "application/json"}
    status, _headers, answer = call(method, stack["base"] + path, headers, body)
    return status, answer


def plan(stack, hooli) -> dict:
    status, answer = dashboard(stack, hooli, "GET", PLAN)
    assert status == 200, answer
    return answer["data"]


def test_a_free_tenant_upgrades_changes_plan_cancels_and_returns_to_free(stack, hooli):
    sdk = PacSpace(api_key=hooli["key"], base_url=stack["base"])
    batch = [{"customerId": f"cust_{i % 7}", "delta": 1, "reason": "seat"} for i in range(100)]
    status, _h, answer = call("POST", stack["base"] + "/api/v1/balance/delta/batch",
                              {"X-Api-Key": hooli["key"], "Content-Type": "application/json"}, {"deltas": batch})
    assert status == 202 and answer["data"]["totalQueued"] == 100
    with pytest.raises(InsufficientCreditsError):  # the SDK's class for every 402
        sdk.balance.emit("cust_1", 1, "seat 101")
    status, _h, refused = call("POST", stack["base"] + "/api/v1/balance/delta/batch",
                               {"X-Api-Key": hooli["key"], "Content-Type": "application/json"}, {"deltas": batch[:3]})
    assert status == 402 and refused["error"]["code"] == "PLAN_LIMIT_EXCEEDED"

    status, session = dashboard(stack, hooli, "POST", "/dashboard/stripe/create-subscription-session",
                                {"tier": "starter"})
    assert status == 201, session
    url = session["data"]["url"]
    page_status, page = curl(url)
    assert page_status == 200 and "starter" in page.lower()
    assert plan(stack, hooli)["tier"] == "free"  # not before the payment

    tally(stack, "dev", "stripe", "complete-checkout", url)
    current = plan(stack, hooli)
    assert current["tier"] == "starter" and current["stripeSubscriptionId"].startswith("sub_")
    assert current["monthlyAllotment"] == 100_000 and current["stripeCurrentPeriodEnd"].endswith("T00:00:00.000Z")
    accepted = sdk.balance.emit("cust_1", 1, "seat 101")  # the same write, now accepted
    assert accepted["status"] == "QUEUED"

    status, changed = dashboard(stack, hooli, "POST", "/dashboard/stripe/change-plan", {"tier": "growth"})
    assert status == 200 and changed["data"] == {"subscriptionId": current["stripeSubscriptionId"],
                                                 "status": "active"}
    assert plan(stack, hooli)["tier"] == "growth"
    status, usage = dashboard(stack, hooli, "GET", "/dashboard/billing/usage")
    assert usage["data"]["consumedDeltas"] == 101  # usage does not reset on a plan change

    status, portal = dashboard(stack, hooli, "POST", "/dashboard/stripe/create-portal-session")
    assert status == 201
    page_status, page = curl(portal["data"]["url"])
    assert page_status == 200 and "growth" in page.lower()

    status, cancelled = dashboard(stack, hooli, "POST", "/dashboard/stripe/cancel-subscription")
    assert status == 200 and cancelled["data"]["cancelAtPeriodEnd"] is True
    assert cancelled["data"]["currentPeriodEnd"] == current["stripeCurrentPeriodEnd"]
    assert plan(stack, hooli)["tier"] == "growth"  # until the period ends

    tally(stack, "dev", "stripe", "advance-period", "--tenant", hooli["id"])
    ended = plan(stack, hooli)
    assert ended["tier"] == "free" and ended["stripeSubscriptionId"] is None and ended["cancelAtPeriodEnd"] is False


def test_a_failed_payment_flags_the_tenant_and_paying_clears_it(stack, hooli):
    status, session = dashboard(stack, hooli, "POST", "/dashboard/stripe/create-subscription-session",
                                {"tier": "pilot"})
    assert status == 201, session
    tally(stack, "dev", "stripe", "complete-checkout", session["data"]["url"])
    assert plan(stack, hooli)["tier"] == "pilot"

    tally(stack, "dev", "stripe", "fail-payment", "--tenant", hooli["id"])
    shown = json.loads(tally(stack, "tenants", "show", hooli["id"], "--json"))
    assert shown["has_unpaid_invoices_at"] is not None and shown["dashboard_blocked"] is False
    # Flagged, not yet past the 14-day limit: the block job (run twice) records nothing. Past the limit it
    # records each block once (tests/functional/test_payment_blocks.py, on a clock 15 days later).
    for _run in range(2):
        assert json.loads(tally(stack, "jobs", "run", "missing-payment-blocks")) == {
            "job": "missing-payment-blocks", "blocked": [], "skipped": 0}
    assert dashboard(stack, hooli, "GET", "/dashboard/tenant")[0] == 200

    tally(stack, "dev", "stripe", "pay-invoice", "--tenant", hooli["id"])
    shown = json.loads(tally(stack, "tenants", "show", hooli["id"], "--json"))
    assert shown["has_unpaid_invoices_at"] is None
    assert plan(stack, hooli)["tier"] == "pilot"


def test_the_period_rollover_run_twice_closes_the_previous_month_once(stack):
    """The stack's own scheduler may have closed the month already; either way a rerun changes nothing."""
    first = json.loads(tally(stack, "jobs", "run", "period-rollover"))
    assert first["job"] == "period-rollover" and first["done"] is True
    creds = json.loads(tally(stack, "dev", "credentials", "--json"))
    sdk = PacSpace(api_key=creds["apiKeys"]["production"], base_url=stack["base"])
    before = json.dumps(sdk.balance.list_checkpoints({"customerId": "cust_123"}), default=str, sort_keys=True)
    second = json.loads(tally(stack, "jobs", "run", "period-rollover"))
    assert second["done"] is True
    assert (second["closed"], second["reports"], second["reverted"], second["checkpoints"]) == (0, 0, 0, 0)
    after = json.dumps(sdk.balance.list_checkpoints({"customerId": "cust_123"}), default=str, sort_keys=True)
    assert before == after
    status, _h, usage = call("GET", stack["base"] + f"/dashboard/billing/usage?period={first['period']}",
                             {"Authorization": f"Bearer {creds['jwt']}"})
    assert status == 200 and usage["data"]["period"] == first["period"]


def test_a_signed_payment_failure_flags_the_tenant_once_over_http(stack):
    """The gateway hands `POST /stripe/webhook` to the `stripe_webhook` function, which verifies the
    signature with the stack's secret (`stripeWebhookSecret`) and applies each event once."""
    import stripe

    tenant = json.loads(tally(stack, "tenants", "create", "--name", "Webhook Co", "--stripe-customer", "cus_webhook",
                              "--json"))
    secret = json.loads(tally(stack, "dev", "credentials", "--json"))["stripeWebhookSecret"]
    payload = json.dumps({"id": "evt_local_1", "object": "event", "type": "invoice.payment_failed", "data": {
        "object": {"id": "in_local_1", "object": "invoice", "customer": "cus_webhook", "parent": None}}})
    signature = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=int(time.time()))

    status, headers, body = post_event(stack, payload, signature)
    assert status == 200, body
    assert body["data"]["outcome"] == "payment_flagged" and body["data"]["duplicate"] is False
    assert headers.get("X-Request-Id")
    status, _h, body = post_event(stack, payload, signature)
    assert (status, body["data"]["duplicate"]) == (200, True)
    status, _h, body = post_event(stack, payload.replace("in_local_1", "in_local_2"), signature)
    assert (status, body["error"]["code"]) == (400, "INVALID_SIGNATURE")

    # The platform API sees the webhook's mark (and keeps it: the first mark wins).
    token = json.loads(tally(stack, "dev", "credentials", "--json"))["platformToken"]
    status, _h, body = call("POST", f"{stack['base']}/tenants/{tenant['id']}/missing-payments",
                            {"Authorization": f"Bearer {token}"})
    assert status == 200 and body["data"]["has_unpaid_invoices_at"] is not None
    status, _h, body = call("GET", f"{stack['base']}/stripe/webhook")
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")


def test_past_the_limit_date_the_block_job_records_the_block_once(stack, hooli):
    """The same data on a stack whose clock runs 15 days ahead (`tally dev up --clock-offset-days 15`): the
    missing-payment flag is past its limit date. The job, run twice (and by the stack's own scheduler), records
    the block once; the dashboard answers 402 except billing; clearing the flag lifts it and records that."""
    flagged = json.loads(tally(stack, "tenants", "mark-missing-payment", hooli["id"], "--json"))
    assert flagged["dashboard_blocked"] is False
    stack["stack"].stop()
    later = Stack(stack["home"], args=("--clock-offset-days", "15")).start()
    try:
        info = later.info()
        runs = [json.loads(tally(info, "jobs", "run", "missing-payment-blocks"))["blocked"] for _ in range(2)]
        # The stack's scheduler may have recorded it before the first run (and other flagged tenants with it);
        # the second run has nothing left to record, and the audit log below holds exactly one block.
        assert runs[1] == []
        shown = json.loads(tally(info, "tenants", "show", hooli["id"], "--json"))
        assert shown["dashboard_blocked"] is True
        status, _h, body = call("GET", later.base + "/dashboard/tenant", hooli["auth"])
        assert (status, body["error"]["code"]) == (402, "DASHBOARD_BLOCKED")
        assert call("GET", later.base + PLAN, hooli["auth"])[0] == 200  # billing stays reachable, to pay
        audit = call("GET", later.base + "/dashboard/audit?limit=100", hooli["auth"])
        assert audit[0] == 402  # the audit log is dashboard too: blocked
        cleared = json.loads(tally(info, "tenants", "clear-missing-payment", hooli["id"], "--json"))
        assert cleared["dashboard_blocked"] is False
        status, _h, body = call("GET", later.base + "/dashboard/audit?limit=100", hooli["auth"])
        assert status == 200, body
        actions = [entry["action"] for entry in body["data"]["items"]]
        assert actions.count("tenant.dashboard_blocked") == 1 and actions.count("tenant.dashboard_unblocked") == 1
    finally:
        later.stop()

