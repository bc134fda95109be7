"""`make run`'s stack, black-box: `tally dev up` in a subprocess, driven over real HTTP
and through the `tally` CLI exactly as the README shows."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.localstack import TALLY, api_port, call, local_stack, stack_env, tally

CREDENTIAL_KEYS = {"baseUrl", "tenantId", "jwt", "apiKeys", "platformToken", "cookieJar", "stripeWebhookSecret"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "tally-home")


def test_credentials_have_the_documented_shape(stack):
    creds = json.loads(tally(stack, "dev", "credentials", "--json"))
    assert set(creds) == CREDENTIAL_KEYS
    assert creds["baseUrl"] == stack["base"]
    assert set(creds["apiKeys"]) == {"sandbox", "production"}
    assert creds["apiKeys"]["sandbox"].startswith("pk_test_") and creds["apiKeys"]["production"].startswith("pk_live_")
    assert "|" in creds["platformToken"] and Path(creds["cookieJar"]).exists()
    assert creds["stripeWebhookSecret"].startswith("whsec_")


def test_dashboard_tenant_answers_the_seed_shape_with_the_demo_jwt(stack):
    creds = json.loads(tally(stack, "dev", "credentials", "--json"))
    status, headers, body = call("GET", f"{stack['base']}/dashboard/tenant",
                                 {"Authorization": f"Bearer {creds['jwt']}"})
    assert status == 200 and headers.get("X-Request-Id")
    assert body["data"]["id"] == creds["tenantId"] and body["data"]["companyName"] == "Acme Inc"
    assert set(body["data"]) == {"id", "companyName", "status", "billingMode", "environments", "createdAt",
                                 "updatedAt"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_the_cookie_jar_works_on_dashboard_routes(stack):
    creds = json.loads(tally(stack, "dev", "credentials", "--json"))
    read = subprocess.run(["curl", "-s", f"{stack['base']}/dashboard/tenant", "-b", creds["cookieJar"]],
                          capture_output=True, text=True, timeout=30)
    assert json.loads(read.stdout)["data"]["id"] == creds["tenantId"]
    write = subprocess.run(
        ["curl", "-s", "-X", "POST", f"{stack['base']}/dashboard/api-keys", "-b", creds["cookieJar"],
         "-H", "Content-Type: application/json", "-d", '{"name": "from curl"}'],
        capture_output=True, text=True, timeout=30)
    assert json.loads(write.stdout)["statusCode"] == 201
    cross_site = subprocess.run(
        ["curl", "-s", "-X", "POST", f"{stack['base']}/dashboard/api-keys", "-b", creds["cookieJar"],
         "-H", "Origin: https://evil.example", "-d", '{"name": "csrf"}'],
        capture_output=True, text=True, timeout=30)
    assert json.loads(cross_site.stdout)["error"]["code"] == "CROSS_SITE_REQUEST"


def test_demo_api_keys_read_their_own_environment(stack):
    creds = json.loads(tally(stack, "dev", "credentials", "--json"))
    for environment in ("sandbox", "production"):
        status, _h, body = call("GET", f"{stack['base']}/api/v1/balance/customers",
                                {"X-Api-Key": creds["apiKeys"][environment]})
        assert status == 200
        assert [c["customerId"] for c in body["data"]["items"]] == ["cust_123", "cust_acme", "cust_globex"]


def test_operator_commands_work_against_the_running_stack(stack):
    tenant = json.loads(tally(stack, "tenants", "create", "--name", "Initech", "--stripe-customer", "cus_init1",
                              "--json"))
    assert tenant["companyName"] == "Initech" and tenant["stripeCustomerId"] == "cus_init1"

    key = json.loads(tally(stack, "dev", "api-key", "--tenant", tenant["id"], "--environment", "sandbox", "--json"))
    assert key["fullKey"].startswith("pk_test_")
    status, _h, body = call("GET", f"{stack['base']}/api/v1/balance/customers", {"X-Api-Key": key["fullKey"]})
    assert status == 200 and body["data"]["items"] == []

    token = tally(stack, "platform", "token", "create", "--abilities", "tenants:write").strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    status, _h, body = call("POST", f"{stack['base']}/tenants/{tenant['id']}/missing-payments", auth)
    assert status == 200 and body["data"]["tenant_id"] == tenant["id"]
    assert call("GET", f"{stack['base']}/tenants", auth)[0] == 403
    tally(stack, "platform", "token", "revoke", token.split("|")[0])
    assert call("POST", f"{stack['base']}/tenants/{tenant['id']}/missing-payments", auth)[0] == 401

    jwt = tally(stack, "dev", "token", "--tenant", tenant["id"], "--role", "viewer").strip()
    status, _h, body = call("GET", f"{stack['base']}/dashboard/tenant", {"Authorization": f"Bearer {jwt}"})
    assert status == 200 and body["data"]["companyName"] == "Initech"


def test_unknown_routes_answer_the_envelope(stack):
    status, _h, body = call("GET", f"{stack['base']}/no/such/route")
    assert status == 404 and body == {"statusCode": 404, "success": False,
                                      "error": {"code": "NOT_FOUND", "message": "No such route."}}


# --- the platform-token limit and the operator commands (several execution environments: a per-process
# counter would let each of them allow 60 requests a minute) ----------------------------------------------

ALL = ["cross-tenant", "tenants:read", "tenants:write"]


@pytest.fixture(scope="module")
def creds(stack) -> dict:
    return json.loads(tally(stack, "dev", "credentials", "--json"))


def fresh_token(stack) -> str:
    out = tally(stack, "platform", "token", "create", "--abilities", ",".join(ALL), "--name", "burst")
    return out.splitlines()[-1]


def test_the_limit_holds_across_execution_environments(stack):
    token = fresh_token(stack)
    if datetime.now(UTC).second >= 40:  # keep the burst inside one UTC minute
        time.sleep(61 - datetime.now(UTC).second)
    minute = datetime.now(UTC).replace(second=0, microsecond=0)

    def get(_n: int) -> tuple[int, dict]:
        status, headers, _body = call("GET", f"{stack['base']}/tenants", {"Authorization": f"Bearer {token}"})
        return status, {k.lower(): v for k, v in headers.items()}

    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(get, range(70)))
    assert datetime.now(UTC).replace(second=0, microsecond=0) == minute, "the burst crossed a minute; rerun"

    statuses = [status for status, _h in replies]
    assert statuses.count(200) == 60 and statuses.count(429) == 10
    remaining = sorted(int(h["x-ratelimit-remaining"]) for status, h in replies if status == 200)
    assert remaining == list(range(60))  # each count handed out exactly once, whichever process served it
    refused = [h for status, h in replies if status == 429]
    assert all(h["x-ratelimit-limit"] == "60" and h["x-ratelimit-remaining"] == "0" for h in refused)
    assert all(1 <= int(h["retry-after"]) <= 60 for h in refused)


def test_the_operator_commands_run_against_the_stack(stack, creds):
    listed = json.loads(tally(stack, "tenants", "list", "--json"))
    assert creds["tenantId"] in [t["id"] for t in listed["data"]]
    shown = json.loads(tally(stack, "tenants", "show", creds["tenantId"], "--json"))
    assert shown["id"] == creds["tenantId"] and shown["dashboard_blocked"] is False

    marked = json.loads(tally(stack, "tenants", "mark-missing-payment", creds["tenantId"], "--json"))
    assert marked["has_unpaid_invoices_at"] and marked["missing_payment_limit_date"]
    status, _h, body = call("POST", f"{stack['base']}/tenants/{creds['tenantId']}/missing-payments",
                            {"Authorization": f"Bearer {creds['platformToken']}"})
    assert status == 200 and body["data"] == marked
    cleared = json.loads(tally(stack, "tenants", "clear-missing-payment", creds["tenantId"], "--json"))
    assert cleared["has_unpaid_invoices_at"] is None

    tokens = json.loads(tally(stack, "platform", "token", "list", "--json"))
    demo = [t for t in tokens if t["id"] == creds["platformToken"].split("|")[0]]
    assert demo and demo[0]["abilities"] == ALL and demo[0]["revoked_at"] is None
    assert demo[0]["last_used_at"] is not None
    assert creds["platformToken"].split("|")[1] not in json.dumps(tokens)


# --- the stack's own lifecycle (last: the Ctrl-C test ends the stack) ---------------------------------


def test_a_second_stack_refuses_to_start_while_one_runs(stack):
    done = subprocess.run([TALLY, "dev", "up", "--port", str(api_port())], env=stack_env(stack["home"]),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "already running" in done.stdout


def test_ctrl_c_stops_cleanly_and_removes_the_state_file(stack):
    stack["proc"].send_signal(signal.SIGINT)
    assert stack["proc"].wait(timeout=20) == 0
    assert not (stack["home"] / "state.json").exists()
    done = subprocess.run([TALLY, "dev", "credentials", "--json"], env=stack_env(stack["home"]), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "No running local stack" in done.stderr
