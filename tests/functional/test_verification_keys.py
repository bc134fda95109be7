"""GET /api/v1/verification-keys and the signer behind it."""

from __future__ import annotations

import base64
import hashlib

from chalicelib import bootstrap
from chalicelib.adapters.signing import Signer, verify_signature


def test_keys_are_public_and_describe_the_ed25519_key(api, aws, boto_session):
    reply = api.get("/api/v1/verification-keys")
    assert reply.status == 200
    [key] = reply.data["keys"]
    assert key["keyId"] == "k1" and key["algorithm"] == "Ed25519" and key["status"] == "active"
    assert len(base64.b64decode(key["publicKey"])) == 32
    assert key["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
    # The key is derived from the stack's secret: SHA-256(secret) is the private seed.
    secret = boto_session.client("secretsmanager", region_name="us-east-1").get_secret_value(
        SecretId=aws["TALLY_SIGNING_SECRET_ID"])["SecretString"]
    expected = Signer("k1", hashlib.sha256(secret.encode()).digest()).public_key.raw
    assert base64.b64decode(key["publicKey"]) == expected


def test_signatures_verify_with_the_published_key_and_fail_when_tampered(api):
    signer = bootstrap.signer()
    message = b'{"root":"abc","treeSize":3}'
    signature = signer.sign(message)
    public = base64.b64decode(api.get("/api/v1/verification-keys").data["keys"][0]["publicKey"])
    assert verify_signature(public, message, signature)
    assert not verify_signature(public, message.replace(b"3", b"4"), signature)
    assert not verify_signature(public, message, base64.b64encode(b"\x00" * 64).decode())
    assert not verify_signature(public, message, "not base64!")
