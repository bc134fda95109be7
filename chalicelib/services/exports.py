"""Exports with bounded memory: rows are produced page by page and spooled (memory, then /tmp); a file too large
to answer inline (or one the request does not accept inline) is stored under the tenant's ``exports/`` on S3."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.credentials import random_id
from chalicelib.domain.customers import Customer
from chalicelib.domain.deltas import Delta, format_delta
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import leaf_hash
from chalicelib.domain.scopes import TimeScope
from chalicelib.log import get_logger
from chalicelib.services.customers import get_customer
from chalicelib.services.ports import UnitOfWork

log = get_logger("tally.exports")

PAGE = 1_000
SPOOL_IN_MEMORY = 1024 * 1024  # beyond this the spool moves to /tmp


CHECKPOINT_PAGE = 100


@dataclass(frozen=True)
class Destination:
    """Where a generated file goes: answered inline when the request accepts it and it is small enough, else
    stored for a presigned link."""

    tenant_id: str
    store: Any
    inline_limit: int | None  # bytes answered inline at most (None: any size)
    accepted: bool  # the request accepts the media inline

    def inline(self, size: int) -> bool:
        return self.accepted and (self.inline_limit is None or size <= self.inline_limit)


@dataclass(frozen=True)
class ExportFile:
    """A file handed over: its bytes to answer inline, or the key it is stored under (or both)."""

    filename: str
    media: str
    size: int
    body: bytes | None = None
    key: str | None = None


def file_key(tenant_id: str, filename: str) -> str:
    """An unguessable key of the tenant's for an export file."""
    return f"exports/{tenant_id}/{random_id('', 24)}/{filename}"


def store_file(store: Any, tenant_id: str, body: bytes | IO[bytes], media: str, filename: str) -> str:
    """Put a file on S3 under :func:`file_key`; the key."""
    key = file_key(tenant_id, filename)
    store.put(key, body, content_type=media)
    return key


def store_audited(uow: UnitOfWork, store: Any, key: str, body: bytes | IO[bytes], entry: AuditEntry,
                  **put: Any) -> None:
    """Put ``body`` under ``key`` and commit ``entry`` with whatever else is staged. A file whose audit did not
    commit is deleted: its link is never handed out, so nothing is shared unrecorded or left behind."""
    try:
        store.put(key, body, **put)
        uow.audit.add(entry)
        uow.commit()
    except BaseException:
        forget(store, key)
        raise


def forget(store: Any, key: str) -> None:
    """Delete a stored file whose request failed; S3 failing too is logged, and the bucket's lifecycle rule
    removes the file."""
    try:
        store.delete(key)
    except Exception:
        log.warning("an unshared file could not be deleted", exc_info=True, extra={"key": key})


def hand_over(body: bytes | IO[bytes], *, media: str, filename: str, size: int, to: Destination) -> ExportFile:
    """``body`` answered inline when ``to`` takes it, else stored."""
    if to.inline(size):
        return ExportFile(filename, media, size, body=body if isinstance(body, bytes) else body.read())
    return ExportFile(filename, media, size, key=store_file(to.store, to.tenant_id, body, media, filename))


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


def activity_file(uow: UnitOfWork, tenant_id: str, environment: Environment, customer_id: str, *,
                  status: str | None, scope: TimeScope | None, columns: tuple[str, ...],
                  to: Destination) -> ExportFile:
    """A customer of this tenant environment (else 404): its activity CSV (``{customerId}-activity.csv``)."""
    customer = get_customer(uow, tenant_id, environment, customer_id)
    with customer_activity_csv(uow, customer, status=status, scope=scope, columns=columns) as spooled:
        return hand_over(spooled.file, media="text/csv", filename=f"{customer.customer_id}-activity.csv",
                         size=spooled.size, to=to)


def period_checkpoints_file(uow: UnitOfWork, tenant_id: str, environment: Environment, period: str, *, fmt: str,
                            view: Callable[[Checkpoint], dict[str, Any]], columns: tuple[str, ...],
                            to: Destination) -> ExportFile:
    """Every customer's checkpoints of ``period`` as ``view`` shows them, by customer and sequence, read from the
    checkpoint-period index a page at a time: ``checkpoints-{period}.json`` or ``.csv`` (``columns``)."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = uow.checkpoints.list_period(tenant_id, environment, period, CHECKPOINT_PAGE, cursor)
        rows += [view(c) for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    if fmt == "json":
        media = "application/json"
        body = json.dumps({"period": period, "count": len(rows), "items": rows}, default=str).encode()
    else:
        media = "text/csv"
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([["" if r[c] is None else r[c] for c in columns] for r in rows])
        body = out.getvalue().encode()
    return hand_over(body, media=media, filename=f"checkpoints-{period}.{fmt}", size=len(body), to=to)
