"""Customer checkpoints: a signed Merkle root over a customer's verified deltas of one period.

Leaves are the deltas' RFC 6962 leaf hashes (the same leaves their batches use), in
sequence order. A checkpoint covers the longest run of the period's deltas that
are settled: verified deltas are leaves, terminally failed ones are skipped, and
the first delta still awaiting verification ends the run. So a later checkpoint of
the same period always extends the earlier one, and carries an RFC 6962
consistency proof from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.clock import iso_ms
from chalicelib.domain.deltas import Delta, DeltaStatus, format_delta

STATEMENT_TYPE = "tally.checkpoint/v1"


@dataclass(frozen=True)
class Coverage:
    """What a checkpoint of the period would cover now."""

    leaves: tuple[Delta, ...]  # verified, in sequence order
    skipped_failed: int
    waiting: int  # deltas of the period after the run (not yet verified, or after one that is not)
    through: int | None = None  # the last sequence number of the settled run (verified or failed)

    @property
    def net_change(self) -> Decimal:
        return sum((d.delta for d in self.leaves), Decimal(0))


def coverage(deltas_in_sequence: list[Delta]) -> Coverage:
    """The settled prefix of a period's deltas (see module docstring)."""
    leaves: list[Delta] = []
    failed = 0
    through = None
    for index, delta in enumerate(deltas_in_sequence):
        if delta.status == DeltaStatus.VERIFIED:
            leaves.append(delta)
        elif delta.status == DeltaStatus.FAILED:
            failed += 1
        else:
            return Coverage(tuple(leaves), failed, len(deltas_in_sequence) - index, through)
        through = delta.sequence_number
    return Coverage(tuple(leaves), failed, 0, through)


@dataclass(frozen=True)
class Checkpoint:
    checkpoint_id: str
    tenant_id: str
    environment: str
    customer_id: str
    period: str
    sequence: int  # 1, 2, … within the customer's period
    root: str  # hex
    tree_size: int
    first_sequence: int | None
    last_sequence: int | None
    net_change: Decimal
    previous_root: str | None
    previous_tree_size: int | None
    consistency_proof: tuple[str, ...]  # hex, from the previous checkpoint of the period
    created_at: datetime
    key_id: str
    signature: str = ""

    def statement(self) -> dict[str, Any]:
        """What the signature commits to (RFC 8785 canonical form)."""
        return {
            "type": STATEMENT_TYPE,
            "checkpointId": self.checkpoint_id,
            "tenantId": self.tenant_id,
            "environment": self.environment,
            "customerId": self.customer_id,
            "period": self.period,
            "sequence": self.sequence,
            "root": self.root,
            "treeSize": self.tree_size,
            "firstSequence": self.first_sequence,
            "lastSequence": self.last_sequence,
            "netChange": format_delta(self.net_change),
            "previousRoot": self.previous_root,
            "previousTreeSize": self.previous_tree_size,
            "createdAt": iso_ms(self.created_at),
            "keyId": self.key_id,
        }
