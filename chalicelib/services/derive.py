"""`derive` and `compare`: recompute a customer's balance over a scope from the recorded deltas.

A scope is a time window (``period``, ``timePreset`` or ``startDate``/``endDate``;
deltas by acceptance time), or everything after a checkpoint (``startingCheckpoint``:
the deltas after its last sequence number), or — with neither — the customer's whole
history. ``derivedBalance = startingBalance + Σ delta`` over the scope's deltas that
are not terminally failed; deltas still awaiting verification count, and are
reported, so a caller can tell a settled figure from a provisional one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.customers import Customer
from chalicelib.domain.deltas import Delta, DeltaStatus
from chalicelib.domain.errors import NotFoundError, ValidationError
from chalicelib.domain.identity import Environment
from chalicelib.domain.scopes import TimeScope, parse_scope
from chalicelib.services.customers import get_customer
from chalicelib.services.ports import UnitOfWork

MAX_WINDOW = timedelta(days=366)
MAX_DELTAS = 50_000
CHECKPOINT_TYPES = ("checkpoint",)


def _scope_error(message: str) -> ValidationError:
    return ValidationError(message, code="INVALID_SCOPE_COMBINATION")


def amount(value: object, field: str) -> Decimal:
    """An exact decimal from a JSON number or numeric string (never through float arithmetic)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValidationError(f"{field} must be a number", field=field)
    try:
        parsed = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationError(f"{field} must be a number", field=field) from exc
    if not parsed.is_finite():
        raise ValidationError(f"{field} must be a finite number", field=field)
    return parsed


@dataclass(frozen=True)
class Derivation:
    customer: Customer
    starting_balance: Decimal
    scope: TimeScope | None
    checkpoint: Checkpoint | None
    deltas: list[Delta]  # in the scope, in sequence order (failed included, flagged)

    @property
    def counted(self) -> list[Delta]:
        return [d for d in self.deltas if d.status != DeltaStatus.FAILED]

    @property
    def net_change(self) -> Decimal:
        return sum((d.delta for d in self.counted), Decimal(0))

    @property
    def derived_balance(self) -> Decimal:
        return self.starting_balance + self.net_change

    @property
    def settled(self) -> bool:
        return not any(d.awaiting_verification for d in self.deltas)


def derive(uow: UnitOfWork, customer: Customer, *, scope: TimeScope | None, starting_balance: object,
           starting_checkpoint: object, checkpoint_type: object) -> Derivation:
    start = amount(starting_balance if starting_balance is not None else 0, "startingBalance")
    checkpoint = None
    if starting_checkpoint is not None:
        if scope is not None:
            raise _scope_error("Choose either a checkpoint or a time scope for this request.")
        if checkpoint_type is not None and checkpoint_type not in CHECKPOINT_TYPES:
            raise ValidationError(f"startingCheckpointType must be one of {', '.join(CHECKPOINT_TYPES)}",
                                  field="startingCheckpointType")
        checkpoint = _checkpoint(uow, customer, starting_checkpoint)
    elif checkpoint_type is not None:
        raise _scope_error("startingCheckpointType needs startingCheckpoint")
    if scope is not None and scope.end - scope.start > MAX_WINDOW:
        raise ValidationError("Scope window is too wide for a single request (at most 366 days).",
                              code="SCOPE_TOO_WIDE")
    first = (checkpoint.last_sequence or 0) + 1 if checkpoint else 1
    last = customer.last_seq or 0
    if scope is not None:
        deltas = [d for d in _range(uow, customer, first, last) if scope.start <= d.created_at < scope.end]
    else:
        deltas = _range(uow, customer, first, last)
    return Derivation(customer, start, scope, checkpoint, deltas)


def derive_for(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, *,
               scope: Mapping[str, Any], now: datetime, starting_balance: object, starting_checkpoint: object,
               checkpoint_type: object) -> Derivation:
    """:func:`derive` for a customer of this tenant environment (else 404); ``scope`` holds the request's
    ``period``/``time_preset``/``start_date``/``end_date`` (:func:`parse_scope`), read after the customer."""
    customer = get_customer(uow, tenant_id, environment, customer_id)
    return derive(uow, customer, scope=parse_scope(**scope, now=now), starting_balance=starting_balance,
                  starting_checkpoint=starting_checkpoint, checkpoint_type=checkpoint_type)


@dataclass(frozen=True)
class Comparison:
    derivation: Derivation
    yours: Decimal
    theirs: Decimal


def compare(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, *, your_balance: object,
            their_balance: object, scope: Mapping[str, Any], now: datetime, starting_balance: object,
            starting_checkpoint: object, checkpoint_type: object) -> Comparison:
    """SDK ``compare``: both parties' balances (exact decimals) beside :func:`derive_for`'s."""
    yours = amount(your_balance, "yourBalance")
    theirs = amount(their_balance, "theirBalance")
    derivation = derive_for(uow, tenant_id, environment, customer_id, scope=scope, now=now,
                            starting_balance=starting_balance, starting_checkpoint=starting_checkpoint,
                            checkpoint_type=checkpoint_type)
    return Comparison(derivation, yours, theirs)


def _range(uow: UnitOfWork, customer: Customer, first: int, last: int) -> list[Delta]:
    if last - first + 1 > MAX_DELTAS:
        raise ValidationError(f"Scope window is too wide for a single request (more than {MAX_DELTAS:,} deltas); "
                              "narrow it with a period, a date range or a starting checkpoint.",
                              code="SCOPE_TOO_WIDE")
    return uow.deltas.customer_range(customer.tenant_id, customer.environment, customer.customer_id, first, last)


def _checkpoint(uow: UnitOfWork, customer: Customer, checkpoint_id: object) -> Checkpoint:
    if not isinstance(checkpoint_id, str) or not checkpoint_id.startswith("chk_"):
        raise ValidationError("startingCheckpoint must be a checkpoint id (chk_…)", field="startingCheckpoint")
    cursor = None
    while True:  # a customer's checkpoints are few (one per month, a handful each)
        page = uow.checkpoints.list(customer.tenant_id, customer.environment, customer.customer_id, None, 100,
                                    cursor)
        for checkpoint in page.items:
            if checkpoint.checkpoint_id == checkpoint_id:
                return checkpoint
        cursor = page.next_cursor
        if cursor is None:
            raise NotFoundError("Checkpoint not found for this customer.")

