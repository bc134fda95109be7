"""`tally credits topup` against the running local stack, and the demo tenant's seeded credits (seed 004).

Black-box, like test_local_stack.py: `tally dev up` in a subprocess with its own TALLY_HOME,
driven over real HTTP and through the `tally` CLI.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.localstack import call, local_stack, run, tally

BALANCE_KEYS = {"creditBalance", "availableBalance", "reserved"}
DEMO_CREDITS = 100_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "tally-credits-home")


@pytest.fixture(scope="module")
def creds(stack) -> dict:
    return json.loads(tally(stack, "dev", "credentials", "--json"))


def dashboard(stack, creds, path: str) -> dict:
    status, _headers, body = call("GET", f"{stack['base']}{path}", {"Authorization": f"Bearer {creds['jwt']}"})
    assert status == 200, body
    return body["data"]


def balances(stack, creds) -> dict:
    data = dashboard(stack, creds, "/dashboard/credit/balances")
    assert set(data) == BALANCE_KEYS
    return data


# Runs first: the demo figures are checked before any top-up changes them.
def test_the_demo_tenant_starts_with_100000_credits_less_what_its_demo_deltas_spent(stack, creds):
    assert creds["tenantId"] == "2"
    entries = dashboard(stack, creds, "/dashboard/credit/entries?page=1&limit=100")
    assert entries["total"] == len(entries["items"])
    seeded = [e for e in entries["items"] if e["description"] == "Demo credits"]
    assert len(seeded) == 1
    assert seeded[0]["type"] == "topup" and seeded[0]["amount"] == DEMO_CREDITS
    assert seeded[0]["balanceAfter"] == DEMO_CREDITS
    settled = [e for e in entries["items"] if e["type"] == "settlement"]
    spent = -sum(e["amount"] for e in settled)
    # 3 customers x 6 deltas x 2 months x 2 environments, 1 credit each, every one verified and settled
    assert spent == 72
    assert balances(stack, creds) == {"creditBalance": DEMO_CREDITS - spent,
                                      "availableBalance": DEMO_CREDITS - spent, "reserved": 0}


def test_credits_topup_adds_credits_seen_over_http(stack, creds):
    before = balances(stack, creds)
    out = json.loads(tally(stack, "credits", "topup", "--tenant", "2", "--amount", "250", "--json"))
    assert out["tenantId"] == "2" and out["amount"] == 250 and out["entryId"]
    assert out["creditBalance"] == before["creditBalance"] + 250
    assert out["availableBalance"] == before["availableBalance"] + 250
    assert out["reserved"] == before["reserved"]

    assert balances(stack, creds) == {"creditBalance": out["creditBalance"],
                                      "availableBalance": out["availableBalance"], "reserved": out["reserved"]}
    newest = dashboard(stack, creds, "/dashboard/credit/entries?page=1&limit=20")["items"][0]
    assert newest["id"] == out["entryId"]
    assert (newest["type"], newest["amount"], newest["description"], newest["balanceAfter"]) == (
        "topup", 250, "Manual credit top-up", out["availableBalance"])


def test_credits_topup_records_its_description(stack, creds):
    out = json.loads(tally(stack, "credits", "topup", "--tenant", "2", "--amount", "5", "--description",
                           "Promo credits", "--json"))
    entries = dashboard(stack, creds, "/dashboard/credit/entries?limit=100")["items"]
    assert [e["description"] for e in entries if e["id"] == out["entryId"]] == ["Promo credits"]


def test_credits_topup_is_audited_on_the_tenant(stack, creds):
    out = json.loads(tally(stack, "credits", "topup", "--tenant", "2", "--amount", "7", "--json"))
    audit = dashboard(stack, creds, "/dashboard/audit?limit=100")["items"]
    topups = [e for e in audit if e["action"] == "credits.topup" and e["details"].get("amount") == 7]
    assert topups and topups[0]["actor"] == "operator:cli" and topups[0]["target"] == "tenant:2"
    assert out["amount"] == 7


def test_credits_topup_without_json_prints_the_fields(stack, creds):
    out = tally(stack, "credits", "topup", "--tenant", "2", "--amount", "1")
    assert "tenantId: 2" in out and "amount: 1" in out and "creditBalance:" in out


@pytest.mark.parametrize("args, message", [
    (("--tenant", "999", "--amount", "10"), "NOT_FOUND"),
    (("--tenant", "2", "--amount", "0"), "VALIDATION_ERROR"),
    (("--tenant", "2", "--amount", "-5"), "VALIDATION_ERROR"),
])
def test_credits_topup_refuses_bad_input(stack, creds, args, message):
    before = balances(stack, creds)
    done = run(stack, "credits", "topup", *args, "--json")
    assert done.returncode != 0 and message in done.stderr, done
    assert done.stdout == ""
    assert balances(stack, creds) == before


def test_credits_topup_rejects_a_non_integer_amount(stack, creds):
    before = balances(stack, creds)
    done = run(stack, "credits", "topup", "--tenant", "2", "--amount", "1.5")
    assert done.returncode != 0 and "amount" in done.stderr
    assert balances(stack, creds) == before


def test_topped_up_credits_pay_for_deltas(stack, creds):
    before = balances(stack, creds)
    status, _h, body = call("POST", f"{stack['base']}/api/v1/balance/delta",
                            {"X-Api-Key": creds["apiKeys"]["production"], "Content-Type": "application/json"},
                            {"customerId": "cust_cli", "delta": 1, "reason": "cli test"})
    assert status == 202, body
    after = balances(stack, creds)
    assert after["availableBalance"] == before["availableBalance"] - 1
    # reserved now, or already settled by the local verifier: one credit either way
    assert (after["creditBalance"], after["reserved"]) in {
        (before["creditBalance"], before["reserved"] + 1), (before["creditBalance"] - 1, before["reserved"])}
