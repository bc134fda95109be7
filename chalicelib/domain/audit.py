"""Audit entries: who did what to which target, and when. Immutable once written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.credentials import random_id


@dataclass(frozen=True)
class AuditEntry:
    tenant_id: str
    actor: str
    action: str
    target: str
    at: datetime
    environment: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    entry_id: str = field(default_factory=lambda: random_id("aud_", 16))
