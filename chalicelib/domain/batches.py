"""Sealed verification batches: a signed Merkle root chained to the previous batch.

The signature covers the RFC 8785 form of :meth:`SealedBatch.statement`, so a
verifier needs only the statement, the signature and the published public key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.clock import iso_ms

STATEMENT_TYPE = "tally.batch/v1"


@dataclass(frozen=True)
class ChainHead:
    sequence: int = 0  # batches sealed so far in this tenant environment
    last_root: str | None = None
    last_batch_id: str | None = None


@dataclass(frozen=True)
class SealedBatch:
    batch_id: str
    tenant_id: str
    environment: str
    root: str  # hex
    tree_size: int
    sequence: int
    previous_root: str | None
    sealed_at: datetime
    key_id: str
    record_ids: tuple[str, ...]
    leaf_hashes: tuple[str, ...]  # hex leaf hashes, in leaf order
    signature: str = ""

    def statement(self) -> dict[str, Any]:
        """What the signature commits to."""
        return {
            "type": STATEMENT_TYPE,
            "batchId": self.batch_id,
            "tenantId": self.tenant_id,
            "environment": self.environment,
            "root": self.root,
            "treeSize": self.tree_size,
            "sequence": self.sequence,
            "previousRoot": self.previous_root,
            "sealedAt": iso_ms(self.sealed_at),
            "keyId": self.key_id,
        }
