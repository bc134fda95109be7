"""The platform's Ed25519 signing key.

The private key's 32-byte seed is SHA-256 of a Secrets Manager secret that the
deployment template generates (the local stack creates one on first start), so the
key never appears in configuration. The key id is derived from the public key
(:func:`chalicelib.domain.signing_keys.key_id_of`), so changing the secret changes
the id. Every key a process has signed with is recorded in the signing-key registry
and published at ``GET /api/v1/verification-keys``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.signing_keys import ALGORITHM, KeyStatus, key_id_of
from chalicelib.settings import Settings

# DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410): this prefix, then the 32 raw bytes.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def public_key_pem(raw: bytes) -> str:
    """PEM of a raw Ed25519 public key (44 DER bytes: one 60-character base64 line)."""
    return f"-----BEGIN PUBLIC KEY-----\n{base64.b64encode(_SPKI_PREFIX + raw).decode()}\n-----END PUBLIC KEY-----\n"


def key_view(key_id: str, raw: bytes, status: KeyStatus | str = KeyStatus.ACTIVE) -> dict[str, Any]:
    """One entry of ``GET /api/v1/verification-keys``."""
    return {
        "keyId": key_id,
        "algorithm": ALGORITHM,
        "publicKey": base64.b64encode(raw).decode(),
        "publicKeyPem": public_key_pem(raw),
        "status": str(status),
    }


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    raw: bytes  # 32 bytes

    def view(self, status: KeyStatus | str = KeyStatus.ACTIVE) -> dict[str, Any]:
        return key_view(self.key_id, self.raw, status)


class Signer:
    """Signs with the key whose 32-byte private seed is ``seed``; its id is the public key's thumbprint."""

    def __init__(self, seed: bytes) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id_of(raw)
        self.public_key = PublicKey(self.key_id, raw)

    def sign(self, message: bytes) -> str:
        """Base64 Ed25519 signature of ``message``."""
        return base64.b64encode(self._key.sign(message)).decode()


def verify_signature(public_key_raw: bytes, message: bytes, signature_b64: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(base64.b64decode(signature_b64), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_signer(settings: Settings) -> Signer:
    """Read the seed secret (once per cold start: ``bootstrap.signer`` caches the signer)."""
    import boto3

    client = boto3.client("secretsmanager", region_name=settings.region)
    secret = client.get_secret_value(SecretId=settings.signing_secret_id)["SecretString"]
    return Signer(hashlib.sha256(secret.encode()).digest())
