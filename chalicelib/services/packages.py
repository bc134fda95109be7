"""Verification packages: a random sample of a customer's deltas with inclusion proofs against a signed
checkpoint, shareable through an unguessable, expiring link that needs no login.

The package is self-contained (checkpoint statement and signature, public key,
each sampled delta's exact content and proof) and signed as a whole (`signature`:
Ed25519 over the RFC 8785 form of everything else, with the current key, `publicKey`).
A checkpoint signed before a key rotation keeps its retired key's signature; the package
then carries that key too (`checkpoint.publicKey`). So `tally verify` checks it
offline and no byte of it can change unnoticed. It is stored on S3 under the SHA-256 of its link token: the token is
shown once and never stored, and the object carries its own expiry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.clock import iso_ms, parse_iso
from chalicelib.domain.credentials import time_ordered_id
from chalicelib.domain.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.domain.fingerprints import canonical, delta_content
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import MerkleTree, leaf_hash
from chalicelib.domain.scopes import TimeScope
from chalicelib.services import checkpoints as checkpoint_service
from chalicelib.services import exports, receipts, signing_keys
from chalicelib.services.ports import UnitOfWork

PACKAGE_TYPE = "tally.verification-package/v1"
MAX_SAMPLE = 100
DEFAULT_SAMPLE = 10
DEFAULT_TTL = timedelta(days=7)
MAX_TTL = timedelta(days=90)  # the bucket's lifecycle rule removes packages/ after 90 days anyway
EXPIRES_META = "expires-at"


@dataclass(frozen=True)
class SharedPackage:
    package_id: str
    checkpoint: Checkpoint
    sample_size: int
    token: str  # shown once
    expires_at: datetime
    sha256: str  # of the stored JSON file


def _object_key(token: str) -> str:
    return f"packages/{hashlib.sha256(token.encode()).hexdigest()}.json"


def check_sample_size(value: object) -> int:
    if value is None:
        return DEFAULT_SAMPLE
    if type(value) is not int or not 1 <= value <= MAX_SAMPLE:
        raise ValidationError(f"sampleSize must be an integer from 1 to {MAX_SAMPLE}", field="sampleSize")
    return value


def check_ttl_days(value: object) -> timedelta:
    if value is None:
        return DEFAULT_TTL
    if type(value) is not int or not 1 <= value <= MAX_TTL.days:
        raise ValidationError(f"expiresInDays must be an integer from 1 to {MAX_TTL.days}", field="expiresInDays")
    return timedelta(days=value)


@dataclass(frozen=True)
class PackageDocument:
    """A signed package as the file `tally verify` reads (not stored, not shared)."""

    package_id: str
    checkpoint: Checkpoint
    sample_size: int
    body: bytes  # the JSON file
    sha256: str  # of ``body``


def _key(key_id: str, raw: bytes) -> dict[str, str]:
    return {"keyId": key_id, "algorithm": "Ed25519", "publicKey": base64.b64encode(raw).decode()}


def build_document(uow: UnitOfWork, scope: checkpoint_service.Scope, *, sample_size: int, now: datetime,
                   signer: Any) -> PackageDocument:
    """Sample against the period's checkpoint (made now if there is none or it is behind) and sign."""
    checkpoint, _created, covered = checkpoint_service.seal(uow, scope, now=now, signer=signer)
    checkpoint_key = signing_keys.public_key(uow, checkpoint.key_id, current=signer)  # current or retired
    if checkpoint_key is None:
        raise ConflictError(f"The checkpoint was signed with key {checkpoint.key_id!r}, which is not a registered "
                            "signing key; it cannot be verified.", code="SIGNING_KEY_UNKNOWN")
    tree = MerkleTree([leaf_hash(bytes.fromhex(d.content_hash or "")) for d in covered])
    if tree.root.hex() != checkpoint.root:
        raise ConflictError("The checkpoint's deltas could not be read back consistently; retry.",
                            code="CHECKPOINT_MISMATCH")
    picked = sorted(secrets.SystemRandom().sample(range(tree.size), min(sample_size, tree.size)))
    package_id = "pkg_" + time_ordered_id(int(now.timestamp() * 1000), 20)
    document = {
        "type": PACKAGE_TYPE,
        "packageId": package_id,
        "customerId": scope.customer_id,
        "period": scope.period,
        "generatedAt": iso_ms(now),
        "checkpoint": {"statement": checkpoint.statement(), "signature": checkpoint.signature,
                       # Signed before a key rotation: the checkpoint names a retired key, carried here.
                       **({"publicKey": _key(checkpoint.key_id, checkpoint_key)}
                          if checkpoint.key_id != signer.key_id else {})},
        "publicKey": _key(signer.key_id, signer.public_key.raw),
        "sampleSize": len(picked),
        "samples": [{
            "recordId": covered[i].record_id,
            "content": delta_content(covered[i]),
            "contentHash": covered[i].content_hash,
            "leafHash": tree.levels[0][i].hex(),
            "leafIndex": i,
            "inclusionProof": [p.hex() for p in tree.inclusion_proof(i)],
        } for i in picked],
    }
    document["signature"] = signer.sign(canonical(document))  # binds every field, labels and samples included
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return PackageDocument(package_id, checkpoint, len(picked), body, hashlib.sha256(body).hexdigest())


def create(uow: UnitOfWork, scope: checkpoint_service.Scope, *, sample_size: int, ttl: timedelta, now: datetime,
           signer: Any, store: Any, actor: str) -> SharedPackage:
    """:func:`build_document`, stored and shared behind a new link, and audited (``verification_package.created``
    by ``actor``), whichever route asked: a link that exposes deltas is never made unrecorded."""
    package = build_document(uow, scope, sample_size=sample_size, now=now, signer=signer)
    token = secrets.token_urlsafe(32)
    expires_at = now + ttl
    entry = AuditEntry(tenant_id=scope.tenant_id, actor=actor, action="verification_package.created",
                       target=f"customer:{scope.customer_id}", environment=str(scope.environment), at=now,
                       details={"packageId": package.package_id, "period": scope.period,
                                "sampleSize": package.sample_size, "expiresAt": iso_ms(expires_at)})
    exports.store_audited(uow, store, _object_key(token), package.body, entry, content_type="application/json",
                          metadata={EXPIRES_META: iso_ms(expires_at)})
    return SharedPackage(package.package_id, package.checkpoint, package.sample_size, token, expires_at,
                         package.sha256)


def create_for_customer(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, *,
                        period: str | None, sample_size: object, expires_in_days: object, now: datetime, signer: Any,
                        store: Any, actor: str) -> SharedPackage:
    """:func:`create` for a customer of this tenant environment (else 404) and a month (default: this one),
    ``sampleSize`` and ``expiresInDays`` as the request gives them (checked first)."""
    checked_size = check_sample_size(sample_size)
    ttl = check_ttl_days(expires_in_days)
    scope = checkpoint_service.scope_of(uow, tenant_id, environment, customer_id, period, now=now)
    return create(uow, scope, sample_size=checked_size, ttl=ttl, now=now, signer=signer, store=store, actor=actor)


INVOICE_SAMPLE = 10
INVOICE_TTL = timedelta(days=30)


@dataclass(frozen=True)
class InvoiceProof:
    receipt: receipts.Receipt
    package: SharedPackage | None  # only for a scope of one whole month


def invoice_proof(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, scope: TimeScope, *,
                  now: datetime, signer: Any, store: Any, actor: str) -> InvoiceProof:
    """The customer's signed receipt of ``scope`` and, when the scope is one whole month, a package of
    ``INVOICE_SAMPLE`` sampled deltas against the month's checkpoint, shared for ``INVOICE_TTL`` (audited as
    every package is)."""
    receipt = receipts.issue(uow, tenant_id, environment, customer_id, scope, now=now, signer=signer)
    if scope.period is None:
        return InvoiceProof(receipt, None)
    month = checkpoint_service.Scope(tenant_id, environment, customer_id, scope.period)
    shared = create(uow, month, sample_size=INVOICE_SAMPLE, ttl=INVOICE_TTL, now=now, signer=signer, store=store,
                    actor=actor)
    return InvoiceProof(receipt, shared)




def open_shared(token: str, *, now: datetime, store: Any) -> tuple[dict[str, Any], str]:
    """The package behind a link; unknown and expired links are the same 404 (nothing to probe)."""
    if not 20 <= len(token) <= 100:
        raise NotFoundError("This verification link is unknown or has expired.", code="LINK_NOT_FOUND")
    found = store.get(_object_key(token))
    expires = found.metadata.get(EXPIRES_META) if found else None
    if found is None or expires is None or parse_iso(expires) <= now:
        raise NotFoundError("This verification link is unknown or has expired.", code="LINK_NOT_FOUND")
    return json.loads(found.body), expires
