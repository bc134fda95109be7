"""Sealed verification batches: a signed Merkle root chained to the previous batch.

The signature covers the RFC 8785 form of :meth:`SealedBatch.statement`, so a
verifier needs only the statement, the signature and the published public key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.clock import iso_ms
from chalicelib.domain.deltas import CreditState, Delta
from chalicelib.domain.fingerprints import fingerprint

STATEMENT_TYPE = "tally.batch/v1"


@dataclass(frozen=True)
class SealCandidate:
    """What sealing needs of a delta awaiting verification: its fingerprint and its hold.

    Ingest computes it from the content it has in hand and sends it with the queue reference, so the
    verifier seals without reading the deltas back; the seal's update is conditioned on the delta still
    awaiting verification with exactly this hold, so a stale or repeated message changes nothing.
    A pending delta holds credits exactly when ``credits_reserved`` is positive (acceptance sets both).
    """

    record_id: str
    customer_id: str
    content_hash: str
    credits_reserved: int = 0

    @property
    def reserved(self) -> bool:
        return self.credits_reserved > 0

    @classmethod
    def of(cls, delta: Delta) -> SealCandidate | None:
        """The delta's candidate; None when its content has no fingerprint (the verifier fails it)."""
        digest, _error = fingerprint(delta)
        return None if digest is None else cls.hashed(delta, digest)

    @classmethod
    def hashed(cls, delta: Delta, digest: str) -> SealCandidate:
        """The delta's candidate when its fingerprint is already taken."""
        held = delta.credits_reserved if delta.credit_state == CreditState.RESERVED else 0
        return cls(delta.record_id, delta.customer_id, digest, held)

    def wire(self) -> list[Any]:
        """The compact form a queue message carries after the reference."""
        return [self.content_hash, self.customer_id, self.credits_reserved]

    @classmethod
    def from_wire(cls, record_id: str, data: Any) -> SealCandidate | None:
        """The candidate a message carried, or None when it carried none (or one this code cannot read)."""
        if not (isinstance(data, list) and len(data) == 3):
            return None
        content_hash, customer_id, credits = data
        if not (isinstance(content_hash, str) and len(content_hash) == 64 and isinstance(customer_id, str)
                and type(credits) is int and credits >= 0):
            return None
        return cls(record_id, customer_id, content_hash, credits)


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
