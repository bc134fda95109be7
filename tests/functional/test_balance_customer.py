"""Balance API reads of one customer: balance and activity (SDK `customer`), sequence gaps (SDK `gaps`)."""

from __future__ import annotations

import base64

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.signing import verify_signature
from chalicelib.cli.main import main
from chalicelib.domain.fingerprints import canonical
from chalicelib.domain.identity import Environment
from chalicelib.services import verification
from tests.helpers import submit, verify


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}






def test_customer_detail_has_counters_and_pages_of_recent_activity(api, key, tenant, clock):
    ids = [submit(api, key, amount=n) for n in (10, -3, 2.5, 4, 1)]
    data = api.get("/api/v1/balance/customers/cust_a?deltaLimit=2", headers=key).data
    assert (data["computedBalance"], data["totalDeltas"], data["lastSequenceNumber"]) == (14.5, 5, 5)
    assert [d["recordId"] for d in data["recentActivity"]["items"]] == [ids[4], ids[3]]
    assert data["recentActivity"]["hasMore"] is True and data["periodSummary"] is None
    third = api.get("/api/v1/balance/customers/cust_a?deltaLimit=2&deltaPage=3", headers=key).data
    assert [d["sequenceNumber"] for d in third["recentActivity"]["items"]] == [1]
    assert third["recentActivity"]["hasMore"] is False
    beyond = api.get("/api/v1/balance/customers/cust_a?deltaLimit=2&deltaPage=9", headers=key).data
    assert beyond["recentActivity"]["items"] == []


def test_customer_detail_summarises_a_period(api, key, tenant, clock):
    verify(tenant, [submit(api, key, amount=2), submit(api, key, amount=3)], clock)
    submit(api, key, amount=5)
    clock.advance(days=30)
    submit(api, key, amount=100)
    summary = api.get("/api/v1/balance/customers/cust_a?period=2026-04", headers=key).data["periodSummary"]
    assert summary == {"period": "2026-04", "netChange": 10, "deltaCount": 3, "verified": 2, "failed": 0,
                       "awaitingVerification": 1}


def test_customer_detail_errors(api, world, tenant, key):
    submit(api, key)
    assert api.get("/api/v1/balance/customers/cust_none", headers=key).status == 404
    for query in ("deltaPage=0", "deltaLimit=101", "period=2026-4"):
        assert api.get(f"/api/v1/balance/customers/cust_a?{query}", headers=key).status == 400, query
    sandbox = {"X-Api-Key": world.api_key(tenant, "sandbox")[1]}
    other = {"X-Api-Key": world.api_key(world.tenant("Globex"), "production")[1]}
    for headers in (sandbox, other):
        assert api.get("/api/v1/balance/customers/cust_a", headers=headers).status == 404
        assert api.get("/api/v1/balance/gaps/cust_a", headers=headers).status == 404
    assert api.get("/api/v1/balance/customers/cust_a").status == 401


def test_gaps_report_runs_without_a_verified_delta(api, key, tenant, clock):
    ids = [submit(api, key) for _ in range(6)]
    verify(tenant, [ids[0], ids[1], ids[4]], clock)
    uow = bootstrap.unit_of_work()
    delta = uow.deltas.get(tenant.id, Environment.PRODUCTION, ids[5])
    verification._fail_once(uow, delta, "test failure", clock(), [])
    data = api.get("/api/v1/balance/gaps/cust_a", headers=key).data
    assert (data["fromSequence"], data["toSequence"], data["hasGaps"]) == (1, 6, True)
    assert data["gaps"] == [
        {"fromSequence": 3, "toSequence": 4, "count": 2, "reason": "awaiting_verification"},
        {"fromSequence": 6, "toSequence": 6, "count": 1, "reason": "failed"},
    ]
    ahead = api.get("/api/v1/balance/gaps/cust_a?fromSequence=5&toSequence=9", headers=key).data["gaps"]
    assert ahead == [{"fromSequence": 6, "toSequence": 6, "count": 1, "reason": "failed"},
                     {"fromSequence": 7, "toSequence": 9, "count": 3, "reason": "missing"}]
    limited = api.get("/api/v1/balance/gaps/cust_a?limit=1", headers=key).data["gaps"]
    assert len(limited) == 1
    verify(tenant, [ids[2], ids[3]], clock)
    clean = api.get("/api/v1/balance/gaps/cust_a?toSequence=5", headers=key).data
    assert clean["hasGaps"] is False and clean["gaps"] == []


@pytest.mark.parametrize("query, code", [
    ("fromSequence=0", "VALIDATION_ERROR"), ("fromSequence=5&toSequence=2", "VALIDATION_ERROR"),
    ("fromSequence=1&toSequence=20000", "SCOPE_TOO_WIDE"), ("limit=0", "VALIDATION_ERROR"),
    ("toSequence=x", "VALIDATION_ERROR"),
])
def test_gap_window_errors(api, key, query, code):
    submit(api, key)
    reply = api.get(f"/api/v1/balance/gaps/cust_a?{query}", headers=key)
    assert reply.status == 400 and reply.error["code"] == code


# --- derive and compare ------------------------------------------------------------------------------


def test_derive_sums_the_scope_and_excludes_terminal_failures(api, key, tenant, clock):
    ids = [submit(api, key, amount=a) for a in (10, -2.5, 7)]
    verify(tenant, ids[:2], clock)
    uow = bootstrap.unit_of_work()
    verification._fail_once(uow, uow.deltas.get(tenant.id, Environment.PRODUCTION, ids[2]), "x", clock(), [])
    submit(api, key, amount=1)  # still queued: counted, and the answer says it is not settled
    data = api.get("/api/v1/balance/derive/cust_a?startingBalance=100", headers=key).data
    assert (data["derivedBalance"], data["netChange"], data["deltaCount"]) == (108.5, 8.5, 3)
    assert (data["failedExcluded"], data["awaitingVerification"], data["settled"]) == (1, 1, False)
    assert data["deltas"]["total"] == 4 and len(data["deltas"]["items"]) == 4
    detail = api.get("/api/v1/balance/customers/cust_a", headers=key).data
    assert (detail["computedBalance"], detail["totalDeltas"]) == (8.5, 4)  # the failed 7 left the balance
    page = api.get("/api/v1/balance/derive/cust_a?limit=1&offset=1", headers=key).data["deltas"]
    assert [d["sequenceNumber"] for d in page["items"]] == [2]


def test_derive_by_period_and_after_a_checkpoint(api, admin, key, tenant, clock):
    verify(tenant, [submit(api, key, amount=5), submit(api, key, amount=3)], clock)
    made = api.post("/dashboard/customers/cust_a/checkpoint", headers=admin, json_body={}).data
    clock.advance(days=30)  # May
    verify(tenant, [submit(api, key, amount=4)], clock)
    april = api.get("/api/v1/balance/derive/cust_a?period=2026-04", headers=key).data
    assert april["derivedBalance"] == 8 and april["scope"]["period"] == "2026-04"
    may = api.get("/api/v1/balance/derive/cust_a?timePreset=current_month&startingBalance=8", headers=key).data
    assert may["derivedBalance"] == 12 and (may["firstSequence"], may["lastSequence"]) == (3, 3)
    after = api.get(f"/api/v1/balance/derive/cust_a?startingCheckpoint={made['checkpointId']}&startingBalance=8",
                    headers=key).data
    assert after["derivedBalance"] == 12 and after["scope"]["startingCheckpoint"] == made["checkpointId"]
    custom = api.get("/api/v1/balance/derive/cust_a?timePreset=custom&startDate=2026-04-01&endDate=2026-06-01",
                     headers=key).data
    assert custom["derivedBalance"] == 12 and custom["scope"]["period"] is None


@pytest.mark.parametrize("query, code", [
    ("startingCheckpoint=chk_x&period=2026-04", "INVALID_SCOPE_COMBINATION"),
    ("period=2026-04&startDate=2026-04-01&endDate=2026-05-01", "INVALID_SCOPE_COMBINATION"),
    ("startingCheckpointType=checkpoint", "INVALID_SCOPE_COMBINATION"),
    ("startDate=2024-01-01&endDate=2026-01-01", "SCOPE_TOO_WIDE"),
    ("startingBalance=ten", "VALIDATION_ERROR"),
    ("startingCheckpoint=nope", "VALIDATION_ERROR"),
    ("startDate=2026-05-01&endDate=2026-04-01", "VALIDATION_ERROR"),
])
def test_derive_scope_errors(api, key, query, code):
    submit(api, key)
    reply = api.get(f"/api/v1/balance/derive/cust_a?{query}", headers=key)
    assert reply.status == 400 and reply.error["code"] == code, reply


def test_derive_unknown_checkpoint_or_customer_is_404(api, key):
    submit(api, key)
    assert api.get("/api/v1/balance/derive/cust_a?startingCheckpoint=chk_missing", headers=key).status == 404
    assert api.get("/api/v1/balance/derive/cust_zz", headers=key).status == 404


def test_compare_checks_both_parties_exactly(api, key, tenant, clock):
    verify(tenant, [submit(api, key, amount=0.1), submit(api, key, amount=0.2)], clock)
    body = {"customerId": "cust_a", "yourBalance": "0.3", "theirBalance": 0.30000000000000004}
    data = api.post("/api/v1/balance/compare", headers=key, json_body=body).data
    assert data["derivedBalance"] == 0.3 and data["yoursMatches"] is True
    assert data["theirsMatches"] is False and data["match"] is False and data["partiesAgree"] is False
    both = api.post("/api/v1/balance/compare", headers=key,
                    json_body={"customerId": "cust_a", "yourBalance": 1.3, "theirBalance": "1.30",
                               "startingBalance": 1}).data
    assert both["match"] is True and both["yourDifference"] == 0


@pytest.mark.parametrize("body, status", [
    ({"customerId": "cust_a", "yourBalance": 1}, 400),
    ({"customerId": "cust_a", "yourBalance": True, "theirBalance": 1}, 400),
    ({"customerId": "cust_a", "yourBalance": 1, "theirBalance": 1, "period": "2026-04", "timePreset": "custom"}, 400),
    ({"customerId": "cust_zz", "yourBalance": 1, "theirBalance": 1}, 404),
])
def test_compare_errors(api, key, body, status):
    submit(api, key)
    assert api.post("/api/v1/balance/compare", headers=key, json_body=body).status == status


# --- receipts and invoice proofs -----------------------------------------------------------------------


def test_a_receipt_carries_starting_and_final_balance_and_is_signed(api, admin, key, tenant, clock):
    clock.advance(days=-20)  # March: 10 + 5
    verify(tenant, [submit(api, key, amount=10), submit(api, key, amount=5)], clock)
    clock.advance(days=20)  # April: -3, 2.5 verified, 1 failed (7), 1 queued (4)
    ids = [submit(api, key, amount=a) for a in (-3, 2.5, 7, 4)]
    verify(tenant, ids[:2], clock)
    uow = bootstrap.unit_of_work()
    verification._fail_once(uow, uow.deltas.get(tenant.id, Environment.PRODUCTION, ids[2]), "x", clock(), [])
    api.post("/dashboard/customers/cust_a/checkpoint", headers=admin, json_body={})
    clock.advance(days=20)  # May: 100 (after the April receipt's scope)
    submit(api, key, amount=100)
    receipt = api.get("/dashboard/customers/cust_a/receipt?period=2026-04", headers=admin).data
    assert (receipt["startingBalance"], receipt["netChange"], receipt["finalBalance"]) == (15, 3.5, 18.5)
    assert (receipt["deltaCount"], receipt["verifiedCount"], receipt["failedCount"],
            receipt["awaitingVerification"]) == (3, 2, 1, 1)
    assert (receipt["firstSequence"], receipt["lastSequence"]) == (3, 6)
    assert receipt["latestCheckpoint"]["treeSize"] == 2
    statement = receipt["statement"]
    assert statement["type"] == "tally.receipt/v1" and statement["finalBalance"] == "18.5"
    public = base64.b64decode(api.get("/api/v1/verification-keys").data["keys"][0]["publicKey"])
    assert verify_signature(public, canonical(statement), receipt["signature"])
    march = api.get("/dashboard/customers/cust_a/receipt?period=2026-03", headers=admin).data
    assert (march["startingBalance"], march["finalBalance"], march["latestCheckpoint"]) == (0, 15, None)
    current = api.get("/api/v1/balance/receipt/cust_a", headers=key).data  # the SDK's unscoped receipt: May
    assert (current["period"], current["startingBalance"], current["finalBalance"]) == ("2026-05", 18.5, 118.5)


def test_an_invoice_proof_links_a_verification_package_for_a_month(api, key, tenant, admin, clock, tmp_path):
    verify(tenant, [submit(api, key, amount=a) for a in (1, 2, 3)], clock)
    proof = api.get("/api/v1/balance/invoice-proof/cust_a?period=2026-04", headers=key).data
    assert proof["finalBalance"] == 6 and proof["customerLinkHost"] == "127.0.0.1"
    assert proof["verificationApiUrl"].endswith("/api/v1/verification-keys") and "tally verify" in proof["accessHint"]
    package = api.get(proof["customerLinkUrl"].split("127.0.0.1:8000", 1)[-1])
    assert package.status == 200 and package.data["checkpoint"]["statement"]["treeSize"] == 3
    saved = tmp_path / "package.json"
    saved.write_text(package.body.decode() if isinstance(package.body, bytes) else package.body)
    assert main(["verify", str(saved)]) == 0
    wide = api.get("/api/v1/balance/invoice-proof/cust_a?startDate=2026-03-01&endDate=2026-05-01", headers=key).data
    assert wide["customerLinkUrl"] is None and wide["finalBalance"] == 6 and wide["period"] is None
    # Every package is audited, whichever route made it (the wide scope made none).
    made = [e for e in api.get("/dashboard/audit", headers=admin).data["items"]
            if e["action"] == "verification_package.created"]
    assert len(made) == 1 and made[0]["target"] == "customer:cust_a" and made[0]["actor"].startswith("api_key:")


def test_receipt_errors(api, world, tenant, admin, key):
    submit(api, key)
    assert api.get("/api/v1/balance/receipt/cust_zz", headers=key).status == 404
    bad = api.get("/api/v1/balance/invoice-proof/cust_a?period=2026-04&timePreset=current_month", headers=key)
    assert bad.status == 400 and bad.error["code"] == "INVALID_SCOPE_COMBINATION"
    assert api.get("/dashboard/customers/cust_a/receipt?period=04-2026", headers=admin).status == 400
    other = {"X-Api-Key": world.api_key(world.tenant("Globex"), "production")[1]}
    assert api.get("/api/v1/balance/invoice-proof/cust_a", headers=other).status == 404
