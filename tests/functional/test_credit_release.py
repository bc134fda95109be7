"""Seed 004's `release`, end to end: the catalogue's volume rate (chalicelib/domain/plans.py).

Each accepted delta reserves 1 credit (the estimate). When the verifier seals at least 40 credit-billed
deltas of the tenant together, the seal's actual cost is 90 % of what they reserved, rounded up: the
settlement; the rest is released. A batch of 100 is submitted over HTTP, its verify-queue message run
through the verifier Lambda's handler, and the ledger is read back over HTTP.
"""

from __future__ import annotations

import pytest

from chalicelib import bootstrap
from chalicelib.domain.credits import CreditAccount, EntryType, apply
from chalicelib.domain.identity import Environment
from chalicelib.jobs import verifier
from chalicelib.services import credits as credit_service
from tests.helpers import run_queue

BATCH = "/api/v1/balance/delta/batch"
DELTA = "/api/v1/balance/delta"
ENTRIES = "/dashboard/credit/entries"
BALANCES = "/dashboard/credit/balances"
TOP_UP = 1_000


@pytest.fixture
def tenant(world, clock):
    world.tenant("Platform")
    tenant = world.tenant("Volume Co", billing_mode="credits", plan="starter")
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, TOP_UP, actor="test", now=clock())
    return tenant


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def submit_batch(api, key, customers: list[str], **extra) -> list[str]:
    reply = api.post(BATCH, headers=key, json_body={"deltas": [
        {"customerId": c, "delta": 1, "reason": "usage", **extra} for c in customers]})
    assert reply.status == 202 and reply.data["totalQueued"] == len(customers), reply
    return [r["recordId"] for r in reply.data["results"]]


def run_verifier() -> int:
    """Run the verifier Lambda on whatever the verify queue holds, as Lambda's SQS poller would."""
    return run_queue("verify", verifier.handle_queue)


def ledger(api, world, tenant) -> list[dict]:
    """Every entry, oldest first."""
    reply = api.get(f"{ENTRIES}?page=1&limit=100", headers=world.auth(tenant))
    assert reply.status == 200 and reply.data["total"] == len(reply.data["items"]), reply
    return list(reversed(reply.data["items"]))


def moves(entries: list[dict], *types: str) -> list[tuple[str, int]]:
    return [(e["type"], e["amount"]) for e in entries if e["type"] in types]


def assert_ledger_identities(entries: list[dict], balances: dict) -> None:
    """README "Credits": the totals explain the balances; replaying the entries gives each balanceAfter."""
    total = {t: sum(e["amount"] for e in entries if e["type"] == t) for t in map(str, EntryType)}
    assert balances["creditBalance"] == total["topup"] + total["settlement"]
    assert balances["reserved"] == -total["reservation"] + total["settlement"] - total["release"] - total["refund"]
    assert balances["availableBalance"] == balances["creditBalance"] - balances["reserved"] >= 0
    replay = CreditAccount(tenant_id="t")
    for entry in entries:
        replay, signed = apply(replay, EntryType(entry["type"]), abs(entry["amount"]))
        assert (signed, replay.available) == (entry["amount"], entry["balanceAfter"]), entry


def test_a_batch_of_100_for_one_customer_settles_91_and_releases_9(api, world, tenant, key):
    """One customer: the verifier seals 90 then 10 deltas (90 → 81 settled, 9 released; 10 → 10 settled), the
    seals' settlements go on lanes and the run posts them once: one settlement of 91, one release of 9."""
    ids = submit_batch(api, key, ["cust_1"] * 100)
    after_submit = api.get(BALANCES, headers=world.auth(tenant)).data
    assert after_submit == {"creditBalance": TOP_UP, "availableBalance": TOP_UP - 100, "reserved": 100}

    assert run_verifier() == 1  # one message carries the batch's 100 references
    assert {api.get(f"{DELTA}/{r}", headers=key).data["status"] for r in ids} == {"VERIFIED"}

    entries = ledger(api, world, tenant)
    assert -sum(a for _t, a in moves(entries, "reservation")) == 100  # the estimate: 1 credit per delta
    assert moves(entries, "settlement", "release") == [("settlement", -91), ("release", 9)]
    settled = [e for e in entries if e["type"] in ("settlement", "release")]
    assert [e["description"] for e in settled] == [
        "Verification settled — 100 deltas in 2 batches",
        "Volume rate: 9 of 100 reserved credits released — 100 deltas in 2 batches"]
    release = settled[1]
    assert set(release) == {"id", "type", "amount", "description", "balanceAfter", "createdAt"}  # seed 004's shape
    assert release["balanceAfter"] == TOP_UP - 91 == settled[0]["balanceAfter"] + 9
    balances = api.get(BALANCES, headers=world.auth(tenant)).data
    assert balances == {"creditBalance": TOP_UP - 91, "availableBalance": TOP_UP - 91, "reserved": 0}
    assert_ledger_identities(entries, balances)


def test_a_batch_of_100_customers_is_sealed_90_10_like_one_customer(api, world, tenant, key):
    """Customers take no room in a seal (their counters are applied in a transaction of their own), so 100
    customers seal as 90 and 10, like one customer: 81 + 10 settled, 9 released, posted together."""
    submit_batch(api, key, [f"cust_{n:03d}" for n in range(100)])
    run_verifier()
    entries = ledger(api, world, tenant)
    assert moves(entries, "settlement", "release") == [("settlement", -91), ("release", 9)]
    balances = api.get(BALANCES, headers=world.auth(tenant)).data
    assert balances == {"creditBalance": TOP_UP - 91, "availableBalance": TOP_UP - 91, "reserved": 0}
    customers = bootstrap.unit_of_work().customers.get_many(tenant.id, Environment.PRODUCTION,
                                                            [f"cust_{n:03d}" for n in range(100)])
    assert sorted({(c.delta_count, c.verified_count) for c in customers.values()}) == [(1, 1)]
    assert_ledger_identities(entries, balances)


def test_small_submissions_settle_exactly_what_they_reserved(api, world, tenant, key):
    submit_batch(api, key, ["cust_1"] * 39)
    run_verifier()
    entries = ledger(api, world, tenant)
    assert moves(entries, "settlement", "release") == [("settlement", -39)]
    assert api.get(BALANCES, headers=world.auth(tenant)).data["creditBalance"] == TOP_UP - 39


def test_a_rerun_and_a_duplicate_message_settle_and_release_nothing_more(api, world, tenant, key, clock):
    ids = submit_batch(api, key, ["cust_1"] * 100)
    run_verifier()
    before = ledger(api, world, tenant)
    from chalicelib.services import verification

    again = verification.verify_records(bootstrap.unit_of_work(),
                                        [(tenant.id, Environment.PRODUCTION, r) for r in ids],
                                        now=clock(), signer=bootstrap.signer())
    assert again.skipped == 100 and not again.batches
    assert ledger(api, world, tenant) == before


def test_a_failed_delta_is_refunded_and_the_rest_of_the_seal_earns_the_rate(api, world, tenant, key):
    """Each delta is resolved once: 1 refunded (content RFC 8785 cannot represent), 99 sealed as 90 + 9."""
    good = submit_batch(api, key, ["cust_1"] * 99)
    bad = submit_batch(api, key, ["cust_big"], metadata={"huge": 2 ** 60})
    assert run_verifier() >= 1
    assert api.get(f"{DELTA}/{bad[0]}", headers=key).data["status"] == "FAILED"
    assert {api.get(f"{DELTA}/{r}", headers=key).data["status"] for r in good} == {"VERIFIED"}
    entries = ledger(api, world, tenant)
    # the refund and the seals' posting come in the order SQS hands out the two messages; the seals of 90
    # and 9 are posted together either way
    assert sorted(moves(entries, "settlement", "release", "refund")) == [
        ("refund", 1), ("release", 9), ("settlement", -90)]
    balances = api.get(BALANCES, headers=world.auth(tenant)).data
    assert balances == {"creditBalance": TOP_UP - 90, "availableBalance": TOP_UP - 90, "reserved": 0}
    assert_ledger_identities(entries, balances)


def test_the_verification_completed_event_reports_the_actual_cost_and_the_release(api, tenant, key, clock):
    from chalicelib.services import verification

    ids = submit_batch(api, key, ["cust_1"] * 50)
    uow = bootstrap.unit_of_work()
    report = verification.verify_records(uow, [(tenant.id, Environment.PRODUCTION, r) for r in ids],
                                         now=clock(), signer=bootstrap.signer())
    events = [e for ref in report.outbox for e in uow.webhooks.get_outbox(ref).events
              if e.event_type == "verification.completed"]
    assert [(e.data["itemCount"], e.data["creditsConsumed"], e.data["creditsReleased"], e.data["remainingBalance"])
            for e in events] == [(50, 45, 5, TOP_UP - 45)]


def test_credits_released_but_not_yet_posted_are_spent_after_a_posting_never_refused(api, world, clock, monkeypatch):
    """A crash between the seals and their posting leaves the releases unposted: they count in the available
    balance at once but wait for a posting before a hold may use them. Acceptance plans on a snapshot without
    the settlements (a lower bound), so before refusing it reads the whole position, posts (consolidates) and
    holds: 9 more deltas are accepted on the 9 released credits, and a 10th is refused with 402."""
    from chalicelib.services import verification

    world.tenant("Platform")
    tenant = world.tenant("Tight Co", billing_mode="credits", plan="starter")
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 100, actor="test", now=clock())
    key = {"X-Api-Key": world.api_key(tenant, "production")[1]}
    submit_batch(api, key, ["cust_1"] * 100)  # every credit held
    monkeypatch.setattr(verification, "post_settlements", lambda *_a, **_k: False)  # the crash: never posted
    run_verifier()
    monkeypatch.undo()
    position = bootstrap.unit_of_work().credits.position(tenant.id)
    assert (position.available, position.spendable, position.unposted_settled.released) == (9, 0, 9)
    assert api.get(BALANCES, headers=world.auth(tenant)).data == {
        "creditBalance": 9, "availableBalance": 9, "reserved": 0}

    submit_batch(api, key, ["cust_2"] * 9)  # accepted: the posting frees the released credits first
    refused = api.post(DELTA, headers=key, json_body={"customerId": "cust_2", "delta": 1, "reason": "one more"})
    assert refused.status == 402 and refused.json["error"]["code"] == "INSUFFICIENT_CREDITS", refused
    entries = ledger(api, world, tenant)
    assert moves(entries, "settlement", "release") == [("settlement", -91), ("release", 9)]
    balances = api.get(BALANCES, headers=world.auth(tenant)).data
    assert balances == {"creditBalance": 9, "availableBalance": 0, "reserved": 9}
    # the ledger trails by the 9 holds since its last posting: its available balance is 0 + 9
    assert [e["type"] for e in entries][-2:] == ["settlement", "release"] and entries[-1]["balanceAfter"] == 9
