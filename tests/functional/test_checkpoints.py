"""Customer checkpoints on the dashboard (seed 001): create, list, fingerprint candidates; signatures,
roots over the period's verified deltas in sequence order, consistency between growing checkpoints."""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.signing import verify_signature
from chalicelib.domain.fingerprints import canonical
from chalicelib.domain.merkle import leaf_hash, root_of, verify_consistency
from tests.helpers import DELTA, submit, verify

CUSTOMERS = "/dashboard/customers"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}






def checkpoint(api, auth, customer="cust_a", period="2026-04", status=201) -> dict:
    reply = api.post(f"{CUSTOMERS}/{customer}/checkpoint", headers=auth, json_body={"period": period})
    assert reply.status == status, reply
    return reply.data


def content_hashes(api, key, record_ids) -> list[str]:
    return [api.get(f"{DELTA}/{r}", headers=key).data["contentHash"] for r in record_ids]


def test_a_checkpoint_signs_the_root_of_the_verified_deltas_in_sequence_order(api, admin, key, tenant, clock):
    ids = [submit(api, key, amount=n) for n in (5, -2, 3)]
    verify(tenant, list(reversed(ids)), clock)  # batch order differs from sequence order
    made = checkpoint(api, admin)
    leaves = [leaf_hash(bytes.fromhex(h)) for h in content_hashes(api, key, ids)]
    assert made["root"] == root_of(leaves).hex() and made["treeSize"] == 3 and made["created"] is True
    assert (made["firstSequence"], made["lastSequence"], made["netChange"], made["sequence"]) == (1, 3, 6, 1)
    public = base64.b64decode(api.get("/api/v1/verification-keys").data["keys"][0]["publicKey"])
    assert verify_signature(public, canonical(made["statement"]), made["signature"])
    assert made["statement"]["root"] == made["root"] and made["statement"]["customerId"] == "cust_a"


def test_the_same_scope_is_not_sealed_twice(api, admin, key, tenant, clock):
    verify(tenant, [submit(api, key)], clock)
    first = checkpoint(api, admin)
    again = checkpoint(api, admin, status=200)
    assert again["checkpointId"] == first["checkpointId"] and again["created"] is False


def test_a_later_checkpoint_extends_the_earlier_one_with_a_consistency_proof(api, admin, key, tenant, clock):
    sizes = []
    for n in range(1, 6):
        verify(tenant, [submit(api, key) for _ in range(n)], clock)
        sizes.append(checkpoint(api, admin))
    for old, new in itertools.pairwise(sizes):
        assert new["previousRoot"] == old["root"] and new["previousTreeSize"] == old["treeSize"]
        assert verify_consistency(old["treeSize"], new["treeSize"], bytes.fromhex(old["root"]),
                                  bytes.fromhex(new["root"]), [bytes.fromhex(p) for p in new["consistencyProof"]])
    assert [c["treeSize"] for c in sizes] == [1, 3, 6, 10, 15]
    listed = api.get(f"{CUSTOMERS}/cust_a/checkpoints?period=2026-04&limit=2", headers=admin).data
    assert [c["sequence"] for c in listed["items"]] == [5, 4] and listed["nextCursor"]
    rest = api.get(f"{CUSTOMERS}/cust_a/checkpoints?period=2026-04&cursor={listed['nextCursor']}",
                   headers=admin).data
    assert [c["sequence"] for c in rest["items"]] == [3, 2, 1] and rest["nextCursor"] is None


def test_coverage_stops_at_the_first_delta_awaiting_verification(api, admin, key, tenant, clock):
    ids = [submit(api, key) for _ in range(4)]
    verify(tenant, [ids[0], ids[1], ids[3]], clock)  # ids[2] still queued
    made = checkpoint(api, admin)
    assert (made["treeSize"], made["lastSequence"]) == (2, 2)
    candidates = api.get(f"{CUSTOMERS}/cust_a/checkpoint-fingerprints?period=2026-04", headers=admin).data
    assert candidates["total"] == 0 and candidates["awaitingVerification"] == 2
    verify(tenant, [ids[2]], clock)
    candidates = api.get(f"{CUSTOMERS}/cust_a/checkpoint-fingerprints?period=2026-04", headers=admin).data
    assert [c["recordId"] for c in candidates["items"]] == ids[2:] and candidates["total"] == 2
    assert candidates["latestCheckpoint"]["checkpointId"] == made["checkpointId"]
    assert candidates["items"][0]["proofHash"] == leaf_hash(bytes.fromhex(candidates["items"][0]["contentHash"])).hex()
    assert checkpoint(api, admin)["treeSize"] == 4


def test_periods_and_customers_are_separate(api, admin, key, tenant, clock):
    verify(tenant, [submit(api, key, "cust_a"), submit(api, key, "cust_b")], clock)
    clock.advance(days=30)  # 2026-05
    verify(tenant, [submit(api, key, "cust_a")], clock)
    assert checkpoint(api, admin, "cust_a", "2026-04")["treeSize"] == 1
    assert checkpoint(api, admin, "cust_a", "2026-05")["treeSize"] == 1
    assert checkpoint(api, admin, "cust_b", "2026-05")["treeSize"] == 0  # an empty period seals the empty root
    default = api.post(f"{CUSTOMERS}/cust_b/checkpoint", headers=admin).data  # no body: the current month
    assert default["period"] == "2026-05" and default["created"] is False
    listed = api.get(f"{CUSTOMERS}/cust_a/checkpoints", headers=admin).data["items"]
    assert [c["period"] for c in listed] == ["2026-05", "2026-04"]


def test_errors(api, world, tenant, admin, key, clock):
    verify(tenant, [submit(api, key)], clock)
    assert api.post(f"{CUSTOMERS}/cust_nobody/checkpoint", headers=admin, json_body={}).status == 404
    for bad in ({"period": "2026-13"}, {"period": "April"}, {"period": 202604}):
        reply = api.post(f"{CUSTOMERS}/cust_a/checkpoint", headers=admin, json_body=bad)
        assert reply.status == 400 and reply.error["field"] == "period", bad
    assert api.get(f"{CUSTOMERS}/cust_a/checkpoints?period=x", headers=admin).status == 400
    assert api.get(f"{CUSTOMERS}/cust_a/checkpoint-fingerprints?limit=0", headers=admin).status == 400
    viewer = world.auth(tenant, "viewer")
    assert api.post(f"{CUSTOMERS}/cust_a/checkpoint", headers=viewer, json_body={}).status == 403
    assert api.get(f"{CUSTOMERS}/cust_a/checkpoints", headers=viewer).status == 200
    other = world.auth(world.tenant("Globex"), "admin")
    for method, path in (("post", "checkpoint"), ("get", "checkpoints"), ("get", "checkpoint-fingerprints")):
        assert getattr(api, method)(f"{CUSTOMERS}/cust_a/{path}", headers=other).status == 404
    sandbox = {**admin, "X-Environment": "sandbox"}
    assert api.get(f"{CUSTOMERS}/cust_a/checkpoints", headers=sandbox).status == 404
    assert api.get(f"{CUSTOMERS}/cust_a/checkpoints").status == 401


# --- Balance API (SDK `checkpoint`, `list_checkpoints`) ------------------------------------------------

BALANCE = "/api/v1/balance/checkpoint"


def test_balance_checkpoint_for_one_customer_with_scope_mode_and_fingerprints(api, key, tenant, clock):
    ids = [submit(api, key) for _ in range(3)]
    verify(tenant, ids[:2], clock)
    hashes = content_hashes(api, key, ids)
    strict = api.post(BALANCE, headers=key, json_body={"customerId": "cust_a", "mode": "strict"})
    assert strict.status == 409 and strict.error["code"] == "CHECKPOINT_NOT_READY"
    assert hashes[2] is None  # not verified: no fingerprint yet
    missing = api.post(BALANCE, headers=key, json_body={"customerId": "cust_a", "fingerprints": [hashes[0], "ab" * 32]})
    assert missing.status == 409 and missing.error["code"] == "FINGERPRINTS_NOT_COVERED"
    assert missing.error["missing"] == ["ab" * 32]
    made = api.post(BALANCE, headers=key, json_body={"customerId": "cust_a", "timePreset": "current_month",
                                                     "fingerprints": hashes[:2]})
    assert made.status == 201 and made.data["treeSize"] == 2 and made.data["period"] == "2026-04"
    again = api.post(BALANCE, headers=key, json_body={"customerId": "cust_a", "period": "2026-04"})
    assert again.status == 200 and again.data["checkpointId"] == made.data["checkpointId"]


@pytest.mark.parametrize("body, code", [
    ({"customerId": "cust_a", "period": "2026-04", "timePreset": "current_month"}, "INVALID_SCOPE_COMBINATION"),
    ({"customerId": "cust_a", "startDate": "2026-04-01"}, "INVALID_SCOPE_COMBINATION"),
    ({"customerId": "cust_a", "timePreset": "previous_month", "endDate": "2026-05-01"}, "INVALID_SCOPE_COMBINATION"),
    ({"customerId": "cust_a", "startDate": "2026-03-01", "endDate": "2026-05-01"}, "SCOPE_TOO_WIDE"),
    ({"customerId": "cust_a", "timePreset": "yesterday"}, "VALIDATION_ERROR"),
    ({"customerId": "cust_a", "mode": "fast"}, "VALIDATION_ERROR"),
    ({"customerId": "cust_a", "fingerprints": "abc"}, "VALIDATION_ERROR"),
    ({"customerId": "bad id!"}, "VALIDATION_ERROR"),
])
def test_balance_checkpoint_bad_requests(api, key, tenant, clock, body, code):
    verify(tenant, [submit(api, key)], clock)
    reply = api.post(BALANCE, headers=key, json_body=body)
    assert reply.status == 400 and reply.error["code"] == code


def test_balance_checkpoint_of_every_active_customer_pages_through_customers(api, key, tenant, clock):
    clock.advance(days=-20)  # 2026-03: cust_old's only delta
    verify(tenant, [submit(api, key, "cust_old")], clock)
    clock.advance(days=20)
    verify(tenant, [submit(api, key, f"cust_{n:02d}") for n in range(30)], clock)
    first = api.post(BALANCE, headers=key, json_body={"period": "2026-04"}).data
    assert first["createdCount"] == 25 and first["nextCursor"]
    second = api.post(BALANCE, headers=key, json_body={"period": "2026-04", "cursor": first["nextCursor"]}).data
    assert second["createdCount"] == 5 and second["nextCursor"] is None  # cust_old has nothing in April
    assert {c["customerId"] for c in first["created"] + second["created"]} == {f"cust_{n:02d}" for n in range(30)}
    rerun = api.post(BALANCE, headers=key, json_body={"period": "2026-04"}).data
    assert (rerun["createdCount"], rerun["unchangedCount"]) == (0, 25)
    listed = api.get("/api/v1/balance/checkpoints?period=2026-04&limit=100", headers=key).data["items"]
    assert [c["customerId"] for c in listed] == [f"cust_{n:02d}" for n in range(30)]
    offset = api.get("/api/v1/balance/checkpoints?period=2026-04&limit=5&offset=10", headers=key).data["items"]
    assert [c["customerId"] for c in offset] == [f"cust_{n:02d}" for n in range(10, 15)]
    one = api.get("/api/v1/balance/checkpoints?customerId=cust_03", headers=key).data["items"]
    assert [c["customerId"] for c in one] == ["cust_03"]


def test_balance_checkpoints_are_scoped_to_the_key(api, world, key, tenant, clock):
    verify(tenant, [submit(api, key)], clock)
    assert api.post(BALANCE, headers=key, json_body={"customerId": "cust_a"}).status == 201
    sandbox = {"X-Api-Key": world.api_key(tenant, "sandbox")[1]}
    other = {"X-Api-Key": world.api_key(world.tenant("Globex"), "production")[1]}
    for headers in (sandbox, other):
        assert api.get("/api/v1/balance/checkpoints", headers=headers).data["items"] == []
        assert api.get("/api/v1/balance/checkpoints?customerId=cust_a", headers=headers).status == 404
        assert api.post(BALANCE, headers=headers, json_body={"customerId": "cust_a"}).status == 404
    assert api.post(BALANCE, json_body={}).status == 401


def test_checkpoint_roots_stay_out_of_the_batch_root_index(api, admin, key, tenant, clock):
    verify(tenant, [submit(api, key)], clock)
    verify(tenant, [submit(api, key)], clock)  # two batches of one: the checkpoint root is neither's
    made = checkpoint(api, admin)
    reply = api.get(f"/api/v1/verify/{made['root']}")
    assert reply.status == 200 and reply.data["verified"] is False


# --- multi-customer checkpoint export ---------------------------------------------------------------------

EXPORT = "/dashboard/customers/batch-checkpoints/export"


def test_checkpoints_export_as_csv_and_json(api, admin, key, tenant, clock):
    verify(tenant, [submit(api, key, c, n) for n, c in enumerate(("cust_b", "cust_a", "cust_b"), start=1)], clock)
    for customer in ("cust_a", "cust_b"):
        checkpoint(api, admin, customer)
    reply = api.get(f"{EXPORT}?period=2026-04&format=csv", headers=admin)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/csv")
    assert reply.headers["content-disposition"] == 'attachment; filename="checkpoints-2026-04.csv"'
    rows = list(csv.DictReader(io.StringIO(reply.body.decode())))
    assert [(r["customerId"], r["treeSize"], r["netChange"]) for r in rows] == [("cust_a", "1", "2"),
                                                                                ("cust_b", "2", "4")]
    as_json = json.loads(api.get(f"{EXPORT}?format=json", headers=admin).body)  # default: the current month
    assert as_json["count"] == 2 and [c["customerId"] for c in as_json["items"]] == ["cust_a", "cust_b"]
    assert api.get(f"{EXPORT}?period=2026-03", headers=admin).body.decode().count("\n") == 1  # header only


def test_a_large_export_goes_to_s3_behind_a_presigned_url(api, admin, key, tenant, clock, monkeypatch):
    from chalicelib.api import customers

    verify(tenant, [submit(api, key)], clock)
    checkpoint(api, admin)
    monkeypatch.setattr(customers, "INLINE_LIMIT", 10)
    reply = api.get(f"{EXPORT}?period=2026-04", headers=admin)
    assert reply.status == 303 and reply.headers["location"] == reply.data["url"]
    assert reply.data["filename"] == "checkpoints-2026-04.csv" and "X-Amz-Signature=" in reply.data["url"]
    key = reply.data["url"].split(".amazonaws.com/", 1)[1].split("?", 1)[0]
    stored = bootstrap.artifacts().get(key)
    assert stored.body.decode().startswith("customerId,period,sequence") and len(stored.body) == reply.data["bytes"]


def test_export_errors(api, world, tenant, admin):
    assert api.get(f"{EXPORT}?format=xml", headers=admin).status == 400
    assert api.get(f"{EXPORT}?period=2026-13", headers=admin).status == 400
    assert api.get(EXPORT).status == 401
    other = world.auth(world.tenant("Globex"), "viewer")
    assert api.get(f"{EXPORT}?period=2026-04", headers=other).body.decode().count("\n") == 1
