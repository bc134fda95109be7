"""The signing-key registry: every key the platform has signed with, so every signature stays checkable.

A process records its key when it loads its signer (``bootstrap.signer``, once per
cold start): one read, and one write-once put the first time the key is seen. Anything
that checks a stored signature finds the key by the record's key id here, never by
comparing with the current signer, so records signed before a rotation still verify.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.domain.signing_keys import KeyIdCollisionError, KeyStatus, SigningKey, names_key
from chalicelib.services.ports import UnitOfWork
from chalicelib.services.retry import retry_on_conflict


def register(uow: UnitOfWork, key_id: str, public_key: bytes, *, now: datetime) -> SigningKey:
    """Record ``public_key`` under ``key_id`` unless it is there already; the registry entry.

    Raises :class:`KeyIdCollisionError` when the id is registered with another key:
    signing on would publish one id for two keys.
    """
    if not names_key(key_id, public_key):
        raise ValueError(f"key id {key_id!r} is not the thumbprint of the key")
    def attempt(_n: int) -> SigningKey:
        found = uow.signing_keys.get(key_id)
        if found is not None:
            if found.public_key != public_key:
                raise KeyIdCollisionError(f"signing key id {key_id!r} is registered with another key")
            return found
        entry = SigningKey(key_id=key_id, public_key=public_key, first_seen_at=now)
        uow.signing_keys.add(entry)
        uow.commit()  # a race: another cold start registered it first; the next attempt reads what it wrote
        return entry

    return retry_on_conflict(uow, attempt, attempts=2,
                             message="The signing key is being registered concurrently; retry.")


def public_key(uow: UnitOfWork, key_id: str, *, current: Any = None) -> bytes | None:
    """The raw public key that ``key_id`` names; None when no registered key has this id (whatever it
    signed cannot be verified). ``current`` (a signer) answers for its own id without a read."""
    if current is not None and key_id == current.key_id:
        return current.public_key.raw
    found = uow.signing_keys.get(key_id)
    return found.public_key if found is not None else None


def published(uow: UnitOfWork, *, active_key_id: str) -> list[tuple[SigningKey, KeyStatus]]:
    """Every registered key with its status: the active one (this process's signer) first, then the
    retired ones, most recently first seen first."""
    entries = sorted(uow.signing_keys.list(), key=lambda k: (k.key_id == active_key_id, k.first_seen_at, k.key_id),
                     reverse=True)
    return [(k, KeyStatus.ACTIVE if k.key_id == active_key_id else KeyStatus.RETIRED) for k in entries]
