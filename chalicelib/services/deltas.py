"""Reading accepted deltas back: one delta's status, its proof bundle, and the public check of a sealed batch's
root. Keys are found by the id the batch names in the signing-key registry, current or retired."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.domain.batches import SealedBatch
from chalicelib.domain.deltas import Delta, DeltaStatus
from chalicelib.domain.errors import ConflictError, NotFoundError
from chalicelib.domain.fingerprints import canonical
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import root_of
from chalicelib.services import signing_keys
from chalicelib.services.ports import UnitOfWork

ROOT_RE = re.compile(r"^[0-9a-f]{64}$")


def get_delta(uow: UnitOfWork, tenant_id: str, environment: Environment, record_id: str) -> Delta:
    """One consistent read; 404 for a record of another tenant environment or none."""
    delta = uow.deltas.get(tenant_id, environment, record_id)
    if delta is None:
        raise NotFoundError("Delta not found.")
    return delta


@dataclass(frozen=True)
class DeltaProof:
    delta: Delta
    batch: SealedBatch
    public_key: bytes  # raw Ed25519 key the batch names


def delta_proof(uow: UnitOfWork, tenant_id: str, environment: Environment, record_id: str) -> DeltaProof:
    """A verified delta with its sealed batch and the key that signed it: 409 ``DELTA_NOT_VERIFIED`` before it
    is verified, 409 ``SIGNING_KEY_UNKNOWN`` when the batch names no registered key."""
    delta = get_delta(uow, tenant_id, environment, record_id)
    if delta.status != DeltaStatus.VERIFIED or not (delta.content_hash and delta.batch_id):
        raise ConflictError(f"Delta {record_id} is {delta.status}; its proof exists once it is VERIFIED.",
                            code="DELTA_NOT_VERIFIED")
    # By id, not by root: a consistent read of this tenant environment's batch (the root index lags).
    batch = uow.batches.get(delta.tenant_id, delta.environment, delta.batch_id)
    if batch is None or batch.root != delta.proof_root:
        raise RuntimeError(f"sealed batch {delta.batch_id} of verified delta {record_id} is missing")
    raw_key = signing_keys.public_key(uow, batch.key_id)  # current or retired: any registered key
    if raw_key is None:
        raise ConflictError(f"The key {batch.key_id!r} that signed this batch is not a registered signing key; "
                            "the proof cannot be verified.", code="SIGNING_KEY_UNKNOWN")
    return DeltaProof(delta, batch, raw_key)


@dataclass(frozen=True)
class RootCheck:
    batch: SealedBatch
    public_key: bytes | None  # None: the batch names no registered key, so its signature cannot be checked
    signature_valid: bool
    root_valid: bool

    @property
    def verified(self) -> bool:
        return self.signature_valid and self.root_valid


def check_root(uow: UnitOfWork, root: str, *,
               verify_signature: Callable[[bytes, bytes, str], bool]) -> RootCheck | None:
    """The sealed batch behind a (lower-case hex) root with its signature and root re-checked; None when no
    batch has it (anything but 64 hex digits is not looked up)."""
    batch = uow.batches.by_root(root) if ROOT_RE.match(root) else None
    if batch is None:
        return None
    raw_key = signing_keys.public_key(uow, batch.key_id)
    signature_ok = raw_key is not None and verify_signature(raw_key, canonical(batch.statement()), batch.signature)
    root_ok = root_of([bytes.fromhex(h) for h in batch.leaf_hashes]).hex() == batch.root
    return RootCheck(batch, raw_key, signature_ok, root_ok)
