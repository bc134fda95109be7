"""Credential formats: generation, parsing and hashing. Only hashes are ever stored.

* API key: ``pk_{test|live}_{publicId}.{secret}``
* Platform token: ``{tokenId}|{secret}``
* Session cookie: ``{tenantId}.{sessionId}.{secret}``

Secrets carry 256 bits of entropy, so a single SHA-256 (not a slow KDF) is the
right hash: nothing to brute-force, and verification stays one hash per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from chalicelib.domain.identity import Environment

_ALNUM = string.ascii_letters + string.digits
KEY_PREFIX = {Environment.SANDBOX: "pk_test_", Environment.PRODUCTION: "pk_live_"}
_API_KEY_RE = re.compile(r"^pk_(test|live)_([A-Za-z0-9]{8,40})\.([A-Za-z0-9_-]{20,128})$")
_PLATFORM_RE = re.compile(r"^(ptk_[A-Za-z0-9]{8,40})\|([A-Za-z0-9_-]{20,128})$")
_SESSION_RE = re.compile(r"^([0-9]{1,20})\.(ses_[A-Za-z0-9]{8,40})\.([A-Za-z0-9_-]{20,128})$")


_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # ASCII order


def random_id(prefix: str = "", length: int = 16) -> str:
    """An unguessable alphanumeric identifier."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def time_ordered_id(now_ms: int, length: int = 16) -> str:
    """7 base62 digits of milliseconds, then random: sorting ids sorts by creation time."""
    stamp = ""
    for _ in range(7):
        now_ms, digit = divmod(now_ms, 62)
        stamp = _BASE62[digit] + stamp
    return stamp + "".join(secrets.choice(_BASE62) for _ in range(length - 7))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def secret_matches(value: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(value), expected_hash)


@dataclass(frozen=True)
class ParsedApiKey:
    environment: Environment
    public_id: str
    full_key: str


def make_api_key(environment: Environment, public_id: str) -> str:
    return f"{KEY_PREFIX[environment]}{public_id}.{new_secret()}"


def parse_api_key(value: str | None) -> ParsedApiKey | None:
    """Parse a presented key; ``None`` when it is not shaped like one."""
    if not value:
        return None
    match = _API_KEY_RE.fullmatch(value.strip())
    if not match:
        return None
    env = Environment.SANDBOX if match.group(1) == "test" else Environment.PRODUCTION
    return ParsedApiKey(environment=env, public_id=match.group(2), full_key=value.strip())


def parse_platform_token(value: str | None) -> tuple[str, str] | None:
    match = _PLATFORM_RE.fullmatch(value or "")
    return (match.group(1), match.group(2)) if match else None


def parse_session_cookie(value: str | None) -> tuple[str, str, str] | None:
    match = _SESSION_RE.fullmatch(value or "")
    return (match.group(1), match.group(2), match.group(3)) if match else None
