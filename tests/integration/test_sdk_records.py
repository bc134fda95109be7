"""Customer records through the official `pacspace-sdk` (0.7.0) over real HTTP, against the real local stack
(`tally dev up`): `balance.customer` (balance, paged recent activity, a month's summary), `balance.gaps`,
`balance.checkpoint` and `balance.list_checkpoints` (signed, consistency-proven checkpoints of one UTC month,
checked offline with Tally's own Merkle and signature code), and `customers.create` with a dashboard JWT.

One stack for the module, the demo tenant ("Acme Inc", production key). Every customer id is new, so no test
depends on another; the two module fixtures only prepare customers that their tests then read."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from pacspace_sdk import NotFoundError, PacSpace, PacSpaceError
from pacspace_sdk.errors import InvalidScopeCombinationError

from chalicelib.adapters.signing import verify_signature
from chalicelib.domain.fingerprints import canonical
from chalicelib.domain.merkle import verify_consistency
from tests.integration.localstack import call, local_stack, run, tally

WAIT = {"timeout": 30_000, "pollInterval": 200}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for info in local_stack(tmp_path_factory, "tally-sdk-records-home"):
        info["creds"] = json.loads(tally(info, "dev", "credentials", "--json"))
        yield info


@pytest.fixture(scope="module")
def client(stack) -> PacSpace:
    return PacSpace(stack["creds"]["apiKeys"]["production"], base_url=stack["base"], max_retries=0)


def cust(label: str = "cust") -> str:
    return f"{label}_{uuid.uuid4().hex[:8]}"


def emit_verified(client: PacSpace, customer: str, amounts: tuple[float, ...]) -> list[dict]:
    """`emit_and_wait` each amount in turn (sequence numbers 1, 2, ...) until it is VERIFIED."""
    records = [client.balance.emit_and_wait(customer, amount, f"delta {amount}", WAIT) for amount in amounts]
    assert [r["status"] for r in records] == ["VERIFIED"] * len(amounts)
    return records


@pytest.fixture(scope="module")
def three(client) -> dict:
    """A customer with three verified deltas: 10, -3, 2.5."""
    customer = cust()
    records = emit_verified(client, customer, (10, -3, 2.5))
    return {"customer": customer, "records": records, "month": records[0]["period"]}


@pytest.fixture(scope="module")
def sealed(client) -> dict:
    """A customer checkpointed after three verified deltas, asked again, then checkpointed after two more."""
    customer = cust("sealed")
    month = emit_verified(client, customer, (1, 2, 3))[0]["period"]
    first = client.balance.checkpoint(customer, {"period": month})
    again = client.balance.checkpoint(customer, {"period": month})
    emit_verified(client, customer, (4, -5))
    second = client.balance.checkpoint(customer, {"period": month})
    return {"customer": customer, "month": month, "first": first, "again": again, "second": second}


# --- customer ----------------------------------------------------------------------------------------------


def test_customer_shows_balance_paged_activity_and_a_period_summary(client, three):
    customer, records = three["customer"], three["records"]
    detail = client.balance.customer(customer, {"deltaLimit": 2})
    assert detail["customerId"] == customer and detail["source"] == "integration"
    assert detail["computedBalance"] == 9.5 and detail["totalDeltas"] == 3 and detail["lastSequenceNumber"] == 3
    activity = detail["recentActivity"]
    assert [d["recordId"] for d in activity["items"]] == [records[2]["recordId"], records[1]["recordId"]]
    assert [d["delta"] for d in activity["items"]] == [2.5, -3]
    assert activity["hasMore"] is True and activity["total"] == 3 and activity["limit"] == 2
    assert detail["periodSummary"] is None

    older = client.balance.customer(customer, {"deltaPage": 2, "deltaLimit": 2})["recentActivity"]
    assert [(d["recordId"], d["delta"], d["sequenceNumber"]) for d in older["items"]] == \
        [(records[0]["recordId"], 10, 1)]
    assert older["page"] == 2 and older["hasMore"] is False

    summary = client.balance.customer(customer, {"period": three["month"]})["periodSummary"]
    assert summary == {"period": three["month"], "netChange": 9.5, "deltaCount": 3, "verified": 3, "failed": 0,
                       "awaitingVerification": 0}


# --- gaps --------------------------------------------------------------------------------------------------


def test_gaps_are_none_once_verified_and_numbers_past_the_latest_are_missing(client, three):
    customer = three["customer"]
    gaps = client.balance.gaps(customer)
    assert gaps["hasGaps"] is False and gaps["gaps"] == []
    assert (gaps["fromSequence"], gaps["toSequence"], gaps["lastSequenceNumber"]) == (1, 3, 3)

    wider = client.balance.gaps(customer, {"fromSequence": 1, "toSequence": 5})
    assert wider["hasGaps"] is True and (wider["fromSequence"], wider["toSequence"]) == (1, 5)
    assert wider["gaps"] == [{"fromSequence": 4, "toSequence": 5, "count": 2, "reason": "missing"}]


# --- checkpoints -------------------------------------------------------------------------------------------


def test_checkpoints_are_signed_idempotent_and_consistent(stack, sealed):
    first, again, second = sealed["first"], sealed["again"], sealed["second"]
    assert first["created"] is True and first["customerId"] == sealed["customer"]
    assert first["period"] == sealed["month"] and first["treeSize"] == 3 and first["sequence"] == 1
    assert (first["firstSequence"], first["lastSequence"], first["netChange"]) == (1, 3, 6)
    assert first["previousRoot"] is None and first["consistencyProof"] == []
    assert first["signature"] and first["statement"]["root"] == first["root"]
    assert first["statement"]["type"] == "tally.checkpoint/v1"

    assert again["created"] is False and again["checkpointId"] == first["checkpointId"]
    assert again["root"] == first["root"]

    assert second["created"] is True and second["checkpointId"] != first["checkpointId"]
    assert second["treeSize"] == 5 and second["sequence"] == 2 and second["netChange"] == 5
    assert second["previousRoot"] == first["root"] and second["previousTreeSize"] == 3
    assert verify_consistency(3, 5, bytes.fromhex(first["root"]), bytes.fromhex(second["root"]),
                              [bytes.fromhex(p) for p in second["consistencyProof"]])
    assert not verify_consistency(3, 5, bytes.fromhex(second["root"]), bytes.fromhex(first["root"]),
                                  [bytes.fromhex(p) for p in second["consistencyProof"]])

    status, _h, answer = call("GET", stack["base"] + "/api/v1/verification-keys")
    assert status == 200, answer
    keys = {k["keyId"]: base64.b64decode(k["publicKey"]) for k in answer["data"]["keys"]}
    for made in (first, second):
        public = keys[made["keyId"]]
        assert verify_signature(public, canonical(made["statement"]), made["signature"])
        tampered = {**made["statement"], "treeSize": made["treeSize"] + 1}
        assert not verify_signature(public, canonical(tampered), made["signature"])


def test_list_checkpoints_newest_first_and_by_month(client, sealed):
    ids = [sealed["second"]["checkpointId"], sealed["first"]["checkpointId"]]
    mine = client.balance.list_checkpoints({"customerId": sealed["customer"]})
    assert [c["checkpointId"] for c in mine["items"]] == ids
    assert mine["items"][0]["consistencyProof"] == sealed["second"]["consistencyProof"]

    month = client.balance.list_checkpoints({"period": sealed["month"], "limit": 100})
    listed = [c["checkpointId"] for c in month["items"] if c["customerId"] == sealed["customer"]]
    assert sorted(listed) == sorted(ids)


@pytest.mark.parametrize("call_sdk", [
    lambda client, customer: client.balance.list_checkpoints(
        {"customerId": customer, "period": "2026-01", "timePreset": "current_month"}),
    lambda client, customer: client.balance.checkpoint(customer, {"period": "2026-01", "timePreset": "current_month"}),
], ids=["list_checkpoints", "checkpoint"])
def test_period_with_time_preset_is_an_invalid_scope_combination(client, three, call_sdk):
    # The SDK checks scopes client-side only for derive/compare: these two reach the server, which refuses.
    with pytest.raises(InvalidScopeCombinationError) as caught:
        call_sdk(client, three["customer"])
    assert caught.value.status_code == 400 and caught.value.code == "INVALID_SCOPE_COMBINATION"
    assert caught.value.api_body["code"] == "INVALID_SCOPE_COMBINATION"


# --- customers.create (dashboard JWT) ----------------------------------------------------------------------


def test_customers_create_with_a_dashboard_token(stack, client):
    jwt = tally(stack, "dev", "token").strip()
    customer = cust("manual")
    made = client.customers.create(display_name="Acme Corp", customer_id=customer, options={"dashboardToken": jwt})
    assert made["customerId"] == customer and made["displayName"] == "Acme Corp"
    assert made["source"] == "manual" and made["environment"] == "production"

    with pytest.raises(PacSpaceError) as caught:
        client.customers.create(display_name="Acme Corp", customer_id=customer, options={"dashboardToken": jwt})
    assert caught.value.status_code == 409 and caught.value.code == "CUSTOMER_EXISTS"

    emit_verified(client, customer, (7,))
    detail = client.balance.customer(customer)
    assert detail["displayName"] == "Acme Corp" and detail["source"] == "manual"
    assert detail["computedBalance"] == 7 and detail["totalDeltas"] == 1


def test_a_verification_package_link_needs_no_login_and_passes_tally_verify(stack, three, tmp_path):
    jwt = tally(stack, "dev", "token").strip()
    url = f"{stack['base']}/dashboard/customers/{three['customer']}/verification-package"
    status, _headers, made = call("POST", url, {"Authorization": f"Bearer {jwt}", "Content-Type": "application/json"},
                                  {"period": three["month"], "sampleSize": 2})
    assert status == 201, made
    link = made["data"]
    assert link["url"].startswith(stack["base"] + "/api/v1/verification-packages/") and link["sampleSize"] == 2
    status, _headers, package = call("GET", link["url"])  # no credentials
    assert status == 200 and package["data"]["checkpoint"]["statement"]["root"] == link["checkpointRoot"]
    saved = tmp_path / "package.json"
    saved.write_text(json.dumps(package))
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(call("GET", f"{stack['base']}/api/v1/verification-keys")[2]))
    done = run(stack, "verify", str(saved), "--keys", str(keys))
    assert done.returncode == 0 and done.stdout.rstrip().endswith("VERIFIED"), done.stdout + done.stderr


def test_a_close_package_export_is_a_zip_over_real_http(stack, three):
    import io
    import urllib.request
    import zipfile

    jwt = tally(stack, "dev", "token").strip()
    request = urllib.request.Request(
        f"{stack['base']}/dashboard/customers/bulk/close-package-export", method="POST",
        data=json.dumps({"customerIds": [three["customer"]], "period": three["month"]}).encode(),
        headers={"Authorization": f"Bearer {jwt}", "Content-Type": "application/json", "Accept": "application/zip"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["customerIds"] == [three["customer"]] and len(manifest["files"]) == 5


def test_receipt_and_invoice_proof_through_the_sdk(client, three):
    receipt = client.balance.receipt(three["customer"])
    assert receipt["finalBalance"] == 9.5 and receipt["deltaCount"] == 3 and receipt["signature"]
    proof = client.balance.invoice_proof(three["customer"], {"period": three["month"]})
    assert proof["finalBalance"] == 9.5 and proof["customerLinkUrl"].startswith("http")
    assert proof["customerLinkHost"] == "127.0.0.1" and proof["verificationApiUrl"].endswith("/verification-keys")
    status, _headers, package = call("GET", proof["customerLinkUrl"])
    assert status == 200 and package["data"]["customerId"] == three["customer"]


def test_derive_and_compare_through_the_sdk(client, three):
    derived = client.balance.derive(three["customer"], {"startingBalance": 100})
    assert derived["derivedBalance"] == 109.5 and derived["deltaCount"] == 3 and derived["settled"] is True
    month = client.balance.derive_for_period(three["customer"], three["month"])
    assert month["derivedBalance"] == 9.5 and month["scope"]["period"] == three["month"]
    compared = client.balance.compare(three["customer"], {"yours": 9.5, "theirs": "9.4"})
    assert compared["yoursMatches"] is True and compared["theirsMatches"] is False and compared["match"] is False
    with pytest.raises(ValueError):  # the SDK itself refuses this mix before sending (the server would: 400)
        client.balance.derive(three["customer"], {"startingCheckpoint": "chk_x", "period": three["month"]})


# --- errors ------------------------------------------------------------------------------------------------


def test_an_unknown_customer_is_not_found(client):
    nobody = "cust_nobody_" + uuid.uuid4().hex[:8]
    with pytest.raises(NotFoundError) as caught:
        client.balance.customer(nobody)
    assert caught.value.status_code == 404
    with pytest.raises(NotFoundError) as caught:
        client.balance.gaps(nobody)
    assert caught.value.status_code == 404
