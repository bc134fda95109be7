"""Receipts: a signed summary of a customer's scope — starting and final balance, counts, the latest
checkpoint — that anyone holding the published key can check.

The starting balance comes from the customer's running balance (kept by every
accepted delta, less terminal failures) minus everything accepted since the
scope began, so only the deltas from the scope's start onward are read (newest
first, in pages, at most ``MAX_DELTAS``); amounts in the signed statement are
exact decimal strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.credentials import time_ordered_id
from chalicelib.domain.customers import Customer
from chalicelib.domain.deltas import Delta, DeltaStatus, format_delta
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.fingerprints import canonical
from chalicelib.domain.identity import Environment
from chalicelib.domain.scopes import TimeScope
from chalicelib.services.customers import get_customer
from chalicelib.services.exports import Destination, ExportFile, hand_over
from chalicelib.services.ports import UnitOfWork

STATEMENT_TYPE = "tally.receipt/v1"
MAX_DELTAS = 50_000
PAGE = 1_000


@dataclass(frozen=True)
class Receipt:
    statement: dict[str, Any]
    signature: str
    starting_balance: Decimal
    final_balance: Decimal
    net_change: Decimal
    checkpoint: Checkpoint | None


def _since(uow: UnitOfWork, customer: Customer, start: datetime) -> list[Delta]:
    """The customer's deltas accepted at or after ``start``, oldest first (read newest first, page by page)."""
    found: list[Delta] = []
    top = customer.last_seq or 0
    while top >= 1:
        page = uow.deltas.customer_range(customer.tenant_id, customer.environment, customer.customer_id,
                                         max(1, top - PAGE + 1), top, newest_first=True)
        for delta in page:
            if delta.created_at < start:
                return found[::-1]
            found.append(delta)
        if len(found) > MAX_DELTAS:
            raise ValidationError("Scope window is too wide for a single request (more than "
                                  f"{MAX_DELTAS:,} deltas since it began).", code="SCOPE_TOO_WIDE")
        top -= PAGE
    return found[::-1]


def build(uow: UnitOfWork, customer: Customer, scope: TimeScope, *, now: datetime, signer: Any) -> Receipt:
    since = _since(uow, customer, scope.start)
    later = sum((d.delta for d in since if d.status != DeltaStatus.FAILED), Decimal(0))
    inside = [d for d in since if d.created_at < scope.end]
    counted = [d for d in inside if d.status != DeltaStatus.FAILED]
    starting = customer.balance - later
    net = sum((d.delta for d in counted), Decimal(0))
    checkpoint = (uow.checkpoints.latest(customer.tenant_id, customer.environment, customer.customer_id, scope.period)
                  if scope.period else None)
    statement = {
        "type": STATEMENT_TYPE,
        "receiptId": "rct_" + time_ordered_id(int(now.timestamp() * 1000), 20),
        "tenantId": customer.tenant_id,
        "environment": str(customer.environment),
        "customerId": customer.customer_id,
        "period": scope.period,
        "startDate": iso_ms(scope.start),
        "endDate": iso_ms(scope.end),
        "startingBalance": format_delta(starting),
        "finalBalance": format_delta(starting + net),
        "netChange": format_delta(net),
        "deltaCount": len(counted),
        "verifiedCount": sum(1 for d in inside if d.status == DeltaStatus.VERIFIED),
        "failedCount": len(inside) - len(counted),
        "awaitingVerification": sum(1 for d in inside if d.awaiting_verification),
        "firstSequence": inside[0].sequence_number if inside else None,
        "lastSequence": inside[-1].sequence_number if inside else None,
        "checkpoint": {"checkpointId": checkpoint.checkpoint_id, "root": checkpoint.root,
                       "treeSize": checkpoint.tree_size, "sequence": checkpoint.sequence} if checkpoint else None,
        "generatedAt": iso_ms(now),
        "keyId": signer.key_id,
    }
    return Receipt(statement, signer.sign(canonical(statement)), starting, starting + net, net, checkpoint)


def issue(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, scope: TimeScope, *,
          now: datetime, signer: Any) -> Receipt:
    """:func:`build` for a customer of this tenant environment (else 404)."""
    customer = get_customer(uow, tenant_id, environment, customer_id)
    return build(uow, customer, scope, now=now, signer=signer)


def issue_pdf(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, scope: TimeScope, *,
              now: datetime, signer: Any, view: Callable[[Receipt], dict[str, Any]],
              to: Destination) -> ExportFile:
    """:func:`issue` as the one-page PDF of its ``view`` (``receipt-{customerId}-{period}.pdf``), handed over
    to ``to``."""
    from chalicelib.services.receipt_pdf import render_receipt_pdf

    body = render_receipt_pdf(view(issue(uow, tenant_id, environment, customer_id, scope, now=now, signer=signer)))
    return hand_over(body, media="application/pdf", filename=f"receipt-{customer_id}-{scope.period}.pdf",
                     size=len(body), to=to)
