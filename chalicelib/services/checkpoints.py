"""Customer checkpoints: create (idempotent for an unchanged scope), list, and fingerprint candidates."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from chalicelib.domain.checkpoints import Checkpoint, Coverage, coverage
from chalicelib.domain.clock import period_of
from chalicelib.domain.credentials import time_ordered_id
from chalicelib.domain.customers import marker_advances
from chalicelib.domain.deltas import Delta
from chalicelib.domain.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.domain.fingerprints import canonical
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import MerkleTree, consistency_proof, leaf_hash
from chalicelib.domain.usage import check_period
from chalicelib.services.ports import Page, UnitOfWork, page_after_offset
from chalicelib.services.retry import retry_on_conflict

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Scope:
    tenant_id: str
    environment: Environment
    customer_id: str
    period: str


def scope_of(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, period: str | None, *,
             now: datetime) -> Scope:
    """A customer of this tenant environment (else 404) and a ``YYYY-MM`` period (default: this month)."""
    checked = check_period(period) or period_of(now)
    customer = uow.customers.get(tenant_id, environment, customer_id)
    if customer is None:
        raise NotFoundError("Customer not found.")
    return Scope(tenant_id, environment, customer_id, checked)


def _coverage(uow: UnitOfWork, scope: Scope) -> Coverage:
    return coverage(uow.deltas.customer_period(scope.tenant_id, scope.environment, scope.customer_id, scope.period))


def _leaves(deltas: tuple[Delta, ...]) -> list[bytes]:
    return [leaf_hash(bytes.fromhex(d.content_hash or "")) for d in deltas]


def _check_request(covered: Coverage, *, strict: bool, fingerprints: object) -> None:
    """``strict``: nothing of the period may still await verification. ``fingerprints``: content hashes
    the caller expects under the checkpoint."""
    if strict and covered.waiting:
        raise ConflictError(f"{covered.waiting} delta(s) of the period still await verification",
                            code="CHECKPOINT_NOT_READY")
    if fingerprints is None:
        return
    if not isinstance(fingerprints, list) or not all(isinstance(f, str) for f in fingerprints):
        raise ValidationError("fingerprints must be an array of content hashes", field="fingerprints")
    missing = sorted(set(fingerprints) - {d.content_hash for d in covered.leaves})
    if missing:
        raise ConflictError(f"{len(missing)} fingerprint(s) would not be under the checkpoint (not verified yet, "
                            "after a delta still awaiting verification, or unknown)",
                            code="FINGERPRINTS_NOT_COVERED", missing=missing[:20])


def create(uow: UnitOfWork, scope: Scope, *, now: datetime, signer: Any, strict: bool = False,
           fingerprints: object = None) -> tuple[Checkpoint, bool]:
    """Seal the period's settled deltas; ``(checkpoint, created)``.

    When nothing new is covered since the latest checkpoint of the period, that
    checkpoint is returned (``created`` false): the same scope is never sealed twice.
    """
    checkpoint, created, _leaves = seal(uow, scope, now=now, signer=signer, strict=strict,
                                        fingerprints=fingerprints)
    return checkpoint, created


def seal(uow: UnitOfWork, scope: Scope, *, now: datetime, signer: Any, strict: bool = False,
         fingerprints: object = None) -> tuple[Checkpoint, bool, tuple[Delta, ...]]:
    """:func:`create`, also answering the deltas under the checkpoint in leaf order (read once). A race (a
    concurrent request sealed this sequence or moved the marker first) reads everything again."""

    def attempt(_n: int) -> tuple[Checkpoint, bool, tuple[Delta, ...]]:
        latest = uow.checkpoints.latest(scope.tenant_id, scope.environment, scope.customer_id, scope.period)
        covered = _coverage(uow, scope)
        _check_request(covered, strict=strict, fingerprints=fingerprints)
        customer = uow.customers.get(scope.tenant_id, scope.environment, scope.customer_id)
        if customer is not None and marker_advances(customer, scope.period, covered.through):
            uow.customers.mark_checkpointed(customer, scope.period, covered.through)
        if latest is not None and latest.tree_size >= len(covered.leaves):
            uow.commit()  # nothing new to sign, but failures after it are settled too: the marker moves
            return latest, False, covered.leaves[: latest.tree_size]  # the settled run only grows: a prefix
        leaves = _leaves(covered.leaves)
        tree = MerkleTree(leaves)
        previous_size = latest.tree_size if latest else None
        checkpoint = Checkpoint(
            checkpoint_id="chk_" + time_ordered_id(int(now.timestamp() * 1000), 20), tenant_id=scope.tenant_id,
            environment=str(scope.environment), customer_id=scope.customer_id, period=scope.period,
            sequence=(latest.sequence if latest else 0) + 1, root=tree.root.hex(), tree_size=tree.size,
            first_sequence=covered.leaves[0].sequence_number if covered.leaves else None,
            last_sequence=covered.leaves[-1].sequence_number if covered.leaves else None,
            net_change=covered.net_change, previous_root=latest.root if latest else None,
            previous_tree_size=previous_size,
            consistency_proof=tuple(p.hex() for p in consistency_proof(leaves, previous_size)) if previous_size
            else (), created_at=now, key_id=signer.key_id,
        )
        checkpoint = replace(checkpoint, signature=signer.sign(canonical(checkpoint.statement())))
        uow.checkpoints.add(checkpoint)
        uow.commit()
        return checkpoint, True, covered.leaves

    return retry_on_conflict(uow, attempt, attempts=MAX_ATTEMPTS,
                             message="Checkpoints for this customer are being created concurrently; retry.")


def create_for_customer(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str,
                        period: str | None, *, now: datetime, signer: Any, strict: bool = False,
                        fingerprints: object = None) -> tuple[Checkpoint, bool]:
    """:func:`create` for a customer of this tenant environment (else 404) and a month (default: this one)."""
    scope = scope_of(uow, tenant_id, environment, customer_id, period, now=now)
    return create(uow, scope, now=now, signer=signer, strict=strict, fingerprints=fingerprints)


def list_checkpoints(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, *,
                     period: str | None, limit: int, cursor: str | None) -> Page[Checkpoint]:
    """One customer's checkpoints, newest first (``period`` narrows them to a month): :func:`list_page`."""
    return list_page(uow, tenant_id, environment, customer_id=customer_id, period=period, limit=limit, offset=0,
                     cursor=cursor)


def list_page(uow: UnitOfWork, tenant_id: str, environment: Environment, *, customer_id: str | None,
              period: str | None, limit: int, offset: int, cursor: str | None) -> Page[Checkpoint]:
    """One customer's checkpoints, newest first (``period`` narrows them to a month), or, without a customer,
    every customer's checkpoints of ``period`` by customer id; ``offset`` skips items first (bounded)."""

    if customer_id is not None:  # checked once, not for each read an offset makes
        if uow.customers.get(tenant_id, environment, customer_id) is None:
            raise NotFoundError("Customer not found.")
        month = check_period(period)

    def page_at(size: int, at: str | None) -> Page[Checkpoint]:
        if customer_id is not None:
            return uow.checkpoints.list(tenant_id, environment, customer_id, month, size, at)
        return uow.checkpoints.list_period(tenant_id, environment, period, size, at)

    return page_after_offset(page_at, offset=offset, limit=limit, cursor=cursor)


@dataclass(frozen=True)
class Candidates:
    """What the next checkpoint of a customer's month would add, and what it would leave out."""

    period: str
    deltas: list[Delta]  # verified, not yet under a checkpoint, in sequence order
    latest: Checkpoint | None
    coverage: Coverage


def candidates_for_customer(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str,
                            period: str | None, *, now: datetime) -> Candidates:
    """:func:`fingerprint_candidates` of a customer of this tenant environment (else 404) and a month."""
    scope = scope_of(uow, tenant_id, environment, customer_id, period, now=now)
    deltas, latest, covered = fingerprint_candidates(uow, scope)
    return Candidates(scope.period, deltas, latest, covered)


def fingerprint_candidates(uow: UnitOfWork, scope: Scope) -> tuple[list[Delta], Checkpoint | None, Coverage]:
    """Verified deltas of the period not yet under a checkpoint (what the next one would add)."""
    latest = uow.checkpoints.latest(scope.tenant_id, scope.environment, scope.customer_id, scope.period)
    covered = _coverage(uow, scope)
    already = latest.tree_size if latest else 0
    return list(covered.leaves[already:]), latest, covered


@dataclass
class SweepResult:
    period: str
    created: list[Checkpoint]
    unchanged: list[Checkpoint]
    next_cursor: str | None


def create_for_active(uow: UnitOfWork, tenant_id: str, environment: Environment, period: str, *, now: datetime,
                      signer: Any, cursor: str | None, limit: int = 25) -> SweepResult:
    """Checkpoint every customer with deltas in ``period``, a page of customers at a time (``nextCursor``
    continues): customers whose last delta is older than the period are skipped without a read."""
    page = uow.customers.list(tenant_id, environment, limit, cursor)
    result = SweepResult(period, [], [], page.next_cursor)
    for customer in page.items:
        last = customer.last_delta_at
        if last is None or period_of(last) < period:
            continue
        checkpoint, created = create(uow, Scope(tenant_id, environment, customer.customer_id, period), now=now,
                                     signer=signer)
        (result.created if created else result.unchanged).append(checkpoint)
    return result

