"""The platform's Ed25519 signing key.

The private key's 32-byte seed is SHA-256 of a Secrets Manager secret that the
deployment template generates (the local stack creates one in moto on first
start), so the key never appears in configuration. Public keys are published by
key id at ``GET /api/v1/verification-keys``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from chalicelib.settings import Settings


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    raw: bytes  # 32 bytes

    def view(self) -> dict[str, Any]:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        pem = Ed25519PublicKey.from_public_bytes(self.raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {
            "keyId": self.key_id,
            "algorithm": "Ed25519",
            "publicKey": base64.b64encode(self.raw).decode(),
            "publicKeyPem": pem.decode(),
            "status": "active",
        }


class Signer:
    def __init__(self, key_id: str, seed: bytes) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.key_id = key_id
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = PublicKey(key_id, raw)

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
    """Read the seed secret once per cold start."""
    import boto3

    client = boto3.client("secretsmanager", region_name=settings.region)
    secret = client.get_secret_value(SecretId=settings.signing_secret_id)["SecretString"]
    return Signer(settings.signing_key_id, hashlib.sha256(secret.encode()).digest())
