"""Stored credentials: API keys, platform tokens and dashboard sessions (hashes only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from chalicelib.domain.credentials import KEY_PREFIX
from chalicelib.domain.identity import Environment


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    DISABLED = "disabled"  # tenant deleted


@dataclass
class ApiKey:
    tenant_id: str
    environment: Environment
    key_id: str  # the publicId inside the key
    name: str
    secret_hash: str
    last4: str
    created_at: datetime
    created_by: str
    status: KeyStatus = KeyStatus.ACTIVE
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def prefix(self) -> str:
        return f"{KEY_PREFIX[self.environment]}{self.key_id}"

    @property
    def is_active(self) -> bool:
        return self.status == KeyStatus.ACTIVE

    def needs_touch(self, now: datetime, every_seconds: int) -> bool:
        """Whether ``lastUsedAt`` is stale enough to be worth a write."""
        return self.last_used_at is None or now - self.last_used_at >= timedelta(seconds=every_seconds)


@dataclass
class PlatformToken:
    token_id: str
    name: str
    abilities: frozenset[str]
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


@dataclass
class Session:
    tenant_id: str
    session_id: str
    user_id: str
    role: str
    secret_hash: str
    created_at: datetime
    expires_at: datetime
    meta: dict[str, str] = field(default_factory=dict)

    def is_live(self, now: datetime) -> bool:
        return now < self.expires_at
