"""Exports with bounded memory: rows are produced page by page and spooled (memory, then /tmp)."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from chalicelib.domain.clock import iso_ms
from chalicelib.domain.customers import Customer
from chalicelib.domain.deltas import Delta, format_delta
from chalicelib.domain.merkle import leaf_hash
from chalicelib.domain.scopes import TimeScope
from chalicelib.services.ports import UnitOfWork

PAGE = 1_000
SPOOL_IN_MEMORY = 1024 * 1024  # beyond this the spool moves to /tmp


@dataclass
class Spooled:
    file: IO[bytes]  # positioned at the start
    size: int
    rows: int


def _row(delta: Delta) -> dict[str, Any]:
    return {
        "sequenceNumber": delta.sequence_number, "recordId": delta.record_id, "receiptId": delta.receipt_id,
        "createdAt": iso_ms(delta.created_at), "delta": format_delta(delta.delta), "reason": delta.reason,
        "referenceId": delta.reference_id or "", "status": str(delta.status), "contentHash": delta.content_hash or "",
        "proofHash": leaf_hash(bytes.fromhex(delta.content_hash)).hex() if delta.content_hash else "",
        "batchId": delta.batch_id or "", "proofRoot": delta.proof_root or "",
        "leafIndex": "" if delta.leaf_index is None else delta.leaf_index,
        "verifiedAt": iso_ms(delta.verified_at) or "", "error": delta.error or "",
    }


def customer_deltas(uow: UnitOfWork, customer: Customer) -> Iterator[Delta]:
    """The customer's deltas in sequence order, one key-range query per page."""
    last = customer.last_seq or 0
    for first in range(1, last + 1, PAGE):
        yield from uow.deltas.customer_range(customer.tenant_id, customer.environment, customer.customer_id, first,
                                             min(first + PAGE - 1, last))


@contextmanager
def customer_activity_csv(uow: UnitOfWork, customer: Customer, *, status: str | None, scope: TimeScope | None,
                          columns: tuple[str, ...]) -> Iterator[Spooled]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by the with below
    with spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        rows = 0
        for delta in customer_deltas(uow, customer):
            if status is not None and str(delta.status) != status:
                continue
            if scope is not None and not scope.start <= delta.created_at < scope.end:
                continue
            writer.writerow(_row(delta))
            rows += 1
        text.flush()
        size = spool.tell()
        text.detach()
        spool.seek(0)
        yield Spooled(spool, size, rows)
