"""GET /api/v1/balance/delta/{recordId}/proof and `tally verify` on what the API really serves."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib import bootstrap
from chalicelib.cli.main import main
from chalicelib.domain.identity import Environment
from chalicelib.offline_verify import DocumentError, check, loads
from chalicelib.services import verification
from tests.helpers import one_chain

DELTA = "/api/v1/balance/delta"
METADATA = {"rate": 0.30000000000000004, "tiny": 2.5e-7, "n": [1, 1.5], "note": 'café "q" \\ \n ✓'}


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def submit(api, key, count: int, **extra) -> list[str]:
    ids = []
    for i in range(count):
        body = {"customerId": f"cust_{i % 2}", "delta": i + 1.25, "reason": f"calls {i}", **extra}
        reply = api.post(DELTA, headers=key, json_body=body)
        assert reply.status == 202, reply
        ids.append(reply.data["recordId"])
    return ids


def seal(tenant, ids, clock) -> verification.VerifyReport:
    refs = [(tenant.id, Environment.PRODUCTION, r) for r in ids]
    return verification.verify_records(bootstrap.unit_of_work(), refs, now=clock(), signer=bootstrap.signer())


def verdict(raw: bytes, keys=None) -> bool:
    try:
        return check(loads(raw), keys=keys).ok
    except DocumentError:
        return False


def flipped(raw: bytes, i: int) -> bytes:
    return raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:]


def test_a_served_bundle_verifies_offline_and_no_single_byte_can_change(api, key, tenant, clock, tmp_path):
    ids = submit(api, key, 1, metadata=METADATA, referenceId="inv-1") + submit(api, key, 2)
    batch = seal(tenant, ids, clock).batches[0]
    reply = api.get(f"{DELTA}/{ids[0]}/proof", headers=key)
    assert reply.status == 200
    proof = reply.data
    status = api.get(f"{DELTA}/{ids[0]}", headers=key).data
    assert proof["type"] == "tally.delta-proof/v1" and proof["recordId"] == ids[0]
    assert (proof["contentHash"], proof["leafHash"], proof["leafIndex"], proof["inclusionProof"], proof["proofRoot"]) \
        == (status["contentHash"], status["proofHash"], status["leafIndex"], status["inclusionProof"], batch.root)
    assert proof["treeSize"] == 3 and proof["batch"]["statement"] == batch.statement()
    assert proof["content"]["metadata"]["rate"] == METADATA["rate"] and proof["content"]["delta"] == "1.25"

    raw = reply.body if isinstance(reply.body, bytes) else reply.body.encode()
    path, keys_path = tmp_path / "proof.json", tmp_path / "keys.json"
    path.write_bytes(raw)
    keys_path.write_bytes(api.get("/api/v1/verification-keys").body)
    assert main(["verify", str(path), "--keys", str(keys_path)]) == 0

    tally = Path(sys.executable).with_name("tally")
    command = [str(tally)] if tally.exists() else [sys.executable, "-m", "chalicelib.cli.main"]
    done = subprocess.run([*command, "verify", str(path), "--keys", str(keys_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("\nVERIFIED")

    keys = loads(keys_path.read_bytes())
    assert verdict(raw, keys)
    survivors = [i for i in range(len(raw)) if verdict(flipped(raw, i), keys)]
    assert survivors == [], [raw[max(0, i - 20):i + 20] for i in survivors[:3]]


def test_a_saved_verify_answer_is_a_checkable_batch_document(api, key, tenant, clock, tmp_path):
    ids = submit(api, key, 3)
    batch = seal(tenant, ids, clock).batches[0]
    reply = api.get(f"/api/v1/verify/{batch.root}")
    assert reply.data["verification"]["publicKey"] == api.get("/api/v1/verification-keys").data["keys"][0]["publicKey"]
    raw = reply.body if isinstance(reply.body, bytes) else reply.body.encode()
    path = tmp_path / "batch.json"
    path.write_bytes(raw)
    assert main(["verify", str(path)]) == 0
    # Record ids are not covered by the signature (the note says so); every other byte is.
    unsigned = {i for r in ids for m in re.finditer(re.escape(f'"recordId":"{r}"'.encode()), raw)
                for i in range(m.start() + len(b'"recordId":"'), m.end() - 1)}
    survivors = [i for i in range(len(raw)) if i not in unsigned and verdict(flipped(raw, i))]
    assert survivors == [], [raw[max(0, i - 20):i + 20] for i in survivors[:3]]
    leaf = batch.leaf_hashes[1].encode()
    path.write_bytes(raw.replace(leaf, leaf[:-1] + (b"1" if leaf[-1:] == b"0" else b"0")))
    assert main(["verify", str(path)]) == 1


def test_a_keys_file_without_the_signing_key_fails(api, key, tenant, clock, tmp_path):
    ids = submit(api, key, 1)
    seal(tenant, ids, clock)
    path, keys_path = tmp_path / "proof.json", tmp_path / "keys.json"
    path.write_bytes(api.get(f"{DELTA}/{ids[0]}/proof", headers=key).body)
    published = api.get("/api/v1/verification-keys").json
    other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    published["data"]["keys"][0]["publicKey"] = other
    keys_path.write_text(json.dumps(published))
    assert main(["verify", str(path), "--keys", str(keys_path)]) == 1
    published["data"]["keys"][0]["keyId"] = "k9"
    keys_path.write_text(json.dumps(published))
    assert main(["verify", str(path), "--keys", str(keys_path)]) == 1


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_bundles_verify_for_every_leaf_of_a_batch(api, key, tenant, clock, size):
    ids = submit(api, key, size)
    [batch] = seal(tenant, ids, clock).batches
    assert batch.tree_size == size
    for index, record_id in enumerate(ids):
        proof = api.get(f"{DELTA}/{record_id}/proof", headers=key)
        assert proof.data["leafIndex"] == index
        report = check(loads(proof.body))
        assert report.ok, [c for c in report.checks if not c.ok]


def test_route_errors(api, key, world, tenant, clock):
    queued = submit(api, key, 1)[0]
    reply = api.get(f"{DELTA}/{queued}/proof", headers=key)
    assert reply.status == 409 and reply.error["code"] == "DELTA_NOT_VERIFIED" and "QUEUED" in reply.error["message"]
    failed = submit(api, key, 1, metadata={"huge": 2 ** 60})[0]
    seal(tenant, [queued, failed], clock)
    reply = api.get(f"{DELTA}/{failed}/proof", headers=key)
    assert reply.status == 409 and reply.error["code"] == "DELTA_NOT_VERIFIED" and "FAILED" in reply.error["message"]
    assert api.get(f"{DELTA}/{queued}/proof", headers=key).status == 200

    assert api.get(f"{DELTA}/rec_unknown/proof", headers=key).status == 404
    sandbox = {"X-Api-Key": world.api_key(tenant, "sandbox")[1]}
    other = {"X-Api-Key": world.api_key(world.tenant("Globex"), "production")[1]}
    for headers in (sandbox, other):
        reply = api.get(f"{DELTA}/{queued}/proof", headers=headers)
        assert reply.status == 404 and reply.error["code"] == "NOT_FOUND"
    assert api.get(f"{DELTA}/{queued}/proof").status == 401


def _failing(document: dict) -> set[str]:
    return {c.name for c in check(document).checks if not c.ok}


def test_a_batch_off_the_first_chain_signs_its_chain_and_verifies_offline(api, key, tenant, clock, tmp_path):
    ids = submit(api, key, 2)
    with one_chain(3):
        [batch] = seal(tenant, ids, clock).batches
    assert (batch.chain, batch.sequence, batch.statement()["chain"]) == (3, 1, 3)
    answer, proof = api.get(f"/api/v1/verify/{batch.root}"), api.get(f"{DELTA}/{ids[1]}/proof", headers=key)
    assert answer.data["verified"] and answer.data["summary"]["chain"] == 3
    assert answer.data["verification"]["statement"]["chain"] == proof.data["batch"]["statement"]["chain"] == 3
    keys_path = tmp_path / "keys.json"
    keys_path.write_bytes(api.get("/api/v1/verification-keys").body)
    for name, reply in (("batch.json", answer), ("proof.json", proof)):
        (tmp_path / name).write_bytes(reply.body if isinstance(reply.body, bytes) else reply.body.encode())
        assert main(["verify", str(tmp_path / name), "--keys", str(keys_path)]) == 0

    # The chain's number is signed: another one fails the signature, even with a summary that agrees with it.
    document = copy.deepcopy(answer.json["data"])
    document["verification"]["statement"]["chain"] = document["summary"]["chain"] = 4
    assert _failing(document) == {"signature"}
    document["summary"]["chain"] = 3
    assert _failing(document) == {"signature", "summary"}
    bundle = copy.deepcopy(proof.json["data"])
    bundle["batch"]["statement"]["chain"] = 4
    assert _failing(bundle) == {"signature"}
    del bundle["batch"]["statement"]["chain"]  # passed off as the first chain's
    assert _failing(bundle) == {"signature"}


def test_a_batch_on_the_first_chain_signs_what_batches_always_signed(api, key, tenant, clock):
    """Chain 0 is the one chain there was: its statements name no chain, so every batch signed before there were
    several chains verifies as ever, and a /verify answer saved then (its summary has no chain) checks too."""
    ids = submit(api, key, 2)
    with one_chain(0):
        [batch] = seal(tenant, ids, clock).batches
    answer = api.get(f"/api/v1/verify/{batch.root}")
    assert "chain" not in answer.data["verification"]["statement"] and answer.data["summary"]["chain"] == 0
    assert "chain" not in api.get(f"{DELTA}/{ids[0]}/proof", headers=key).data["batch"]["statement"]
    saved_before = copy.deepcopy(answer.json["data"])
    del saved_before["summary"]["chain"]
    assert check(saved_before).ok
    saved_before["summary"]["chain"] = 1
    assert _failing(saved_before) == {"summary"}
    named = copy.deepcopy(answer.json["data"])
    named["verification"]["statement"]["chain"] = 0  # chain 0 is never named
    assert _failing(named) == {"structure"}
