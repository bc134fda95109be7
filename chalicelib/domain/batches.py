"""Sealed verification batches: a signed Merkle root chained to the previous batch of its chain.

The signature covers the RFC 8785 form of :meth:`SealedBatch.statement`, so a
verifier needs only the statement, the signature and the published public key.

A tenant environment has :data:`CHAINS` hash chains, each with a head of its own, so that
its seals commit in parallel rather than one at a time behind a single head. Chain 0 is
the one chain there was before: its statements name no chain, so what it signed then
verifies unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.clock import iso_ms
from chalicelib.domain.deltas import CreditState, Delta
from chalicelib.domain.fingerprints import fingerprint

STATEMENT_TYPE = "tally.batch/v1"
CHAINS = 32  # hash chains per tenant environment (their keys: adapters/dynamodb/keys.CHAINS): twice the chains
#             20,000 deltas/s keep busy at 50 ms a seal, so random picks seldom meet


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
    """One chain's latest batch."""

    sequence: int = 0  # batches sealed so far on this chain of the tenant environment
    last_root: str | None = None
    last_batch_id: str | None = None


@dataclass(frozen=True)
class SealedBatch:
    batch_id: str
    tenant_id: str
    environment: str
    root: str  # hex
    tree_size: int
    sequence: int  # its place on its chain: 1, 2, … per chain
    previous_root: str | None  # the root of its chain's previous batch
    sealed_at: datetime
    key_id: str
    record_ids: tuple[str, ...]
    leaf_hashes: tuple[str, ...]  # hex leaf hashes, in leaf order
    signature: str = ""
    chain: int = 0  # which of the tenant environment's CHAINS

    def statement(self) -> dict[str, Any]:
        """What the signature commits to. ``chain`` only off chain 0, so every statement signed before
        there were several chains (all on chain 0) is the same bytes as ever."""
        chain = {"chain": self.chain} if self.chain else {}
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
            **chain,
        }
