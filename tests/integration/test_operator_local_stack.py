"""The platform-token limit and the operator commands on the real local stack (`tally dev up`).

The stack serves requests from several execution environments (processes) side by side, as Lambda
does: a per-process counter would let each of them allow 60 requests a minute. Black-box, like
test_cli_credits.py: real HTTP, and the `tally` command in a subprocess.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from tests.integration.localstack import call, local_stack, tally

ALL = ["cross-tenant", "tenants:read", "tenants:write"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "tally-operator-home")


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
