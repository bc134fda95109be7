"""GET /api/v1/verification-keys, the signer behind it, the signing-key registry and key rotation."""

from __future__ import annotations

import base64
import hashlib

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.signing import Signer, verify_signature
from chalicelib.cli.main import main
from chalicelib.domain.signing_keys import key_id_of
from chalicelib.offline_verify import check, loads
from tests.helpers import one_chain, overriding, submit, verify

KEYS = "/api/v1/verification-keys"
DELTA = "/api/v1/balance/delta"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def current_secret(aws, boto_session) -> str:
    return boto_session.client("secretsmanager", region_name="us-east-1").get_secret_value(
        SecretId=aws["TALLY_SIGNING_SECRET_ID"])["SecretString"]


def test_keys_are_public_and_describe_the_ed25519_key(api, aws, boto_session):
    reply = api.get(KEYS)
    assert reply.status == 200
    [key] = reply.data["keys"]
    assert key["algorithm"] == "Ed25519" and key["status"] == "active"
    assert len(base64.b64decode(key["publicKey"])) == 32
    assert key["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
    # The key is derived from the stack's secret (SHA-256(secret) is the private seed), its id from the key.
    expected = Signer(hashlib.sha256(current_secret(aws, boto_session).encode()).digest())
    assert base64.b64decode(key["publicKey"]) == expected.public_key.raw
    assert key["keyId"] == expected.key_id == key_id_of(expected.public_key.raw)


def test_signatures_verify_with_the_published_key_and_fail_when_tampered(api):
    signer = bootstrap.signer()
    message = b'{"root":"abc","treeSize":3}'
    signature = signer.sign(message)
    public = base64.b64decode(api.get(KEYS).data["keys"][0]["publicKey"])
    assert verify_signature(public, message, signature)
    assert not verify_signature(public, message.replace(b"3", b"4"), signature)
    assert not verify_signature(public, message, base64.b64encode(b"\x00" * 64).decode())
    assert not verify_signature(public, message, "not base64!")


def test_a_restart_keeps_the_key_and_its_id_and_registers_it_once(api, aws, world):
    before = api.get(KEYS).data["keys"]
    first_seen = world.uow().signing_keys.get(before[0]["keyId"]).first_seen_at
    world.clock.advance(hours=1)
    bootstrap.reset()  # a cold start with the same secret
    assert api.get(KEYS).data["keys"] == before
    assert world.uow().signing_keys.get(before[0]["keyId"]).first_seen_at == first_seen


def test_rotation_publishes_both_keys_and_proofs_signed_before_still_verify(api, aws, boto_session, key, tenant,
                                                                           clock, rotate, tmp_path):
    first_secret = current_secret(aws, boto_session)
    old_ids = [submit(api, key, "cust_a", amount=a) for a in (5, 2)]
    with one_chain(2):  # both batches on one chain (of the environment's several), to see it go on
        [old_batch] = verify(tenant, old_ids, clock).batches
    old_key = bootstrap.signer().public_key
    keys_before = api.get(KEYS).body
    old_proof = api.get(f"{DELTA}/{old_ids[0]}/proof", headers=key).body

    rotate("a-new-secret-" + "r" * 51)
    new_ids = [submit(api, key, "cust_a", amount=1)]
    with one_chain(2):
        [new_batch] = verify(tenant, new_ids, clock).batches
    new_key = bootstrap.signer().public_key
    assert new_batch.key_id == new_key.key_id != old_batch.key_id == old_key.key_id
    assert new_batch.previous_root == old_batch.root  # the chain goes on across the rotation

    published = api.get(KEYS).data["keys"]
    assert [(k["keyId"], k["status"]) for k in published] == [(new_key.key_id, "active"), (old_key.key_id, "retired")]
    assert base64.b64decode(published[1]["publicKey"]) == old_key.raw

    answer = api.get(f"/api/v1/verify/{old_batch.root}").data
    assert answer["verified"] and answer["verification"]["keyId"] == old_key.key_id
    assert base64.b64decode(answer["verification"]["publicKey"]) == old_key.raw
    assert api.get(f"/api/v1/verify/{new_batch.root}").data["verified"]

    proof = api.get(f"{DELTA}/{old_ids[0]}/proof", headers=key)
    assert proof.status == 200 and proof.body == old_proof  # the same bundle as before the rotation
    assert proof.data["publicKey"]["keyId"] == old_key.key_id

    # `tally verify --keys`: a proof of the old key against a keys answer listing both.
    keys_after = api.get(KEYS).body
    for name, data in (("proof.json", old_proof), ("batch.json", api.get(f"/api/v1/verify/{old_batch.root}").body),
                       ("keys-before.json", keys_before), ("keys-after.json", keys_after)):
        (tmp_path / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    for document in ("proof.json", "batch.json"):
        for keys in ("keys-before.json", "keys-after.json"):
            assert main(["verify", str(tmp_path / document), "--keys", str(tmp_path / keys)]) == 0
    # A proof of the new key is not pinned by the answer saved before the rotation.
    new_proof = api.get(f"{DELTA}/{new_ids[0]}/proof", headers=key).body
    report = check(loads(new_proof), keys=loads(keys_before))
    assert [c.name for c in report.checks if not c.ok] == ["published key"]
    assert check(loads(new_proof), keys=loads(keys_after)).ok

    # Back to the first secret: its old id again (an id is the key's), active again; no third key.
    rotate(first_secret)
    assert [(k["keyId"], k["status"]) for k in api.get(KEYS).data["keys"]] == [
        (old_key.key_id, "active"), (new_key.key_id, "retired")]


def test_a_record_naming_an_unregistered_key_is_reported_not_verifiable(api, key, tenant, clock):
    stranger = Signer(b"\x05" * 32)  # used without being loaded through bootstrap: never registered
    with overriding(signer=stranger):
        ids = [submit(api, key, "cust_a", amount=3)]
        [batch] = verify(tenant, ids, clock).batches
    assert batch.key_id == stranger.key_id
    answer = api.get(f"/api/v1/verify/{batch.root}")
    assert answer.status == 200 and answer.data["verified"] is False
    verification = answer.data["verification"]
    assert (verification["keyId"], verification["publicKey"]) == (stranger.key_id, None)
    assert (verification["signatureValid"], verification["rootValid"]) == (False, True)
    proof = api.get(f"{DELTA}/{ids[0]}/proof", headers=key)
    assert proof.status == 409 and proof.error["code"] == "SIGNING_KEY_UNKNOWN"
    assert stranger.key_id not in [k["keyId"] for k in api.get(KEYS).data["keys"]]
