"""Signing keys: ids derived from the key itself, and the registry record of every key ever used.

A key id is the RFC 7638 JWK SHA-256 thumbprint of the Ed25519 public key (the
RFC 8037 ``OKP`` form: SHA-256 of ``{"crv":"Ed25519","kty":"OKP","x":"<base64url key>"}``),
base64url without padding: 43 characters from ``A-Z a-z 0-9 - _``. Because the id is
a hash of the key, an id can never name two keys: a new key (a rotated secret) gets a
new id by construction, and anyone holding the public key can recompute its id with
standard JOSE tooling. Signed statements carry the id, so they commit to the key.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

ALGORITHM = "Ed25519"
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of 32 bytes, unpadded


class KeyStatus(StrEnum):
    ACTIVE = "active"  # the key this process signs with
    RETIRED = "retired"  # signed earlier records; still published so they verify


def key_id_of(public_key: bytes) -> str:
    """The RFC 7638 thumbprint of a raw 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    x = base64.urlsafe_b64encode(public_key).rstrip(b"=").decode()
    jwk = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'  # required members, sorted, no whitespace
    return base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b"=").decode()


def names_key(key_id: str, public_key: bytes) -> bool:
    """Whether ``key_id`` is ``public_key``'s thumbprint."""
    return len(public_key) == 32 and key_id == key_id_of(public_key)


@dataclass(frozen=True)
class SigningKey:
    """One registry entry: written once, when a process first signs with the key, and never changed."""

    key_id: str
    public_key: bytes  # raw, 32 bytes
    first_seen_at: datetime
    algorithm: str = ALGORITHM


class KeyIdCollisionError(RuntimeError):
    """The registry holds another key under this id: refuse to sign rather than publish two keys as one."""
