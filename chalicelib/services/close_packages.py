"""Close packages: one zip of several customers' month-end evidence, for the books.

Per customer, a folder with the signed receipt of the month (JSON and PDF), every
checkpoint of the month, the month's activity CSV and a verification package that
`tally verify` checks offline; at the root a manifest listing every file with its
SHA-256 and size, signed as a whole (Ed25519 over its RFC 8785 form, as packages are).

The request fails before the archive is written if any customer cannot be packaged
(:func:`check_customers`: key lookups and one read of each customer's month, nothing
kept), so a failed export leaves no file behind. The archive is then written one
customer at a time into a spool that moves to /tmp past ``SPOOL_IN_MEMORY``.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from chalicelib import jsoncodec
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.clock import iso_ms, period_of
from chalicelib.domain.customers import Customer, check_customer_id
from chalicelib.domain.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.domain.fingerprints import canonical
from chalicelib.domain.identity import DashboardPrincipal, Environment
from chalicelib.domain.scopes import TimeScope, parse_scope
from chalicelib.services import checkpoints as checkpoint_service
from chalicelib.services import exports, packages, receipts, signing_keys
from chalicelib.services.ports import UnitOfWork
from chalicelib.services.receipt_pdf import render_receipt_pdf

MANIFEST_TYPE = "tally.close-package-manifest/v1"
MAX_CUSTOMERS = 100
SPOOL_IN_MEMORY = 4 * 1024 * 1024  # beyond this the archive moves to /tmp
CHUNK = 64 * 1024
MEDIA = "application/zip"


@dataclass(frozen=True)
class Views:
    """How the HTTP edge shows receipts, checkpoints and activity: the archive holds the same documents the
    single-customer routes answer."""

    receipt: Callable[[receipts.Receipt], dict[str, Any]]
    checkpoint: Callable[[Checkpoint], dict[str, Any]]
    activity_columns: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    customer_ids: tuple[str, ...]
    scope: TimeScope  # exactly the month

    @property
    def period(self) -> str:
        return self.scope.period or ""


@dataclass
class Archive:
    file: IO[bytes]  # positioned at the start
    size: int
    sha256: str
    filename: str
    manifest: dict[str, Any]


def check_request(customer_ids: object, period: object, *, now: datetime) -> Request:
    """1-100 distinct customer ids and a closed or the current UTC month."""
    if not isinstance(customer_ids, list) or not customer_ids:
        raise ValidationError("customerIds must be a non-empty array of customer ids", field="customerIds")
    if len(customer_ids) > MAX_CUSTOMERS:
        raise ValidationError(f"customerIds may list at most {MAX_CUSTOMERS} customers", field="customerIds")
    for index, value in enumerate(customer_ids):
        try:
            check_customer_id(value)
        except ValidationError as exc:
            raise ValidationError(f"customerIds[{index}]: {exc.message}", field="customerIds") from None
    repeated = sorted({c for c in customer_ids if customer_ids.count(c) > 1})
    if repeated:
        raise ValidationError(f"customerIds lists {', '.join(repeated)} more than once", field="customerIds",
                              duplicates=repeated)
    if period is None:
        raise ValidationError("period (YYYY-MM) is required", field="period")
    scope = parse_scope(period=period, now=now)
    if scope is None or scope.period is None or scope.period > period_of(now):
        raise ValidationError("period must be a closed month or the current one", field="period")
    return Request(tuple(customer_ids), scope)


def check_customers(uow: UnitOfWork, tenant_id: str, environment: Environment, request: Request, *,
                    signer: Any) -> list[Customer]:
    """Every requested customer, in request order, once each can be packaged; else the error that says which
    cannot (all of them, not the first): 404 for unknown ids, 409 ``NOTHING_TO_CHECKPOINT`` for a month with
    no verified delta to sign, 409 ``SIGNING_KEY_UNKNOWN`` when the month's checkpoint names a key id that is not
    in the signing-key registry (a retired key is fine: the package carries it).
    One BatchGetItem for the customers; each month's deltas are read and let go (the archive reads them again)."""
    found = uow.customers.get_many(tenant_id, environment, list(request.customer_ids))
    missing = [c for c in request.customer_ids if c not in found]
    if missing:
        raise NotFoundError(f"{len(missing)} customer(s) not found: {', '.join(missing)}", customerIds=missing)
    empty, unknown = [], []
    for customer_id in request.customer_ids:
        scope = checkpoint_service.Scope(tenant_id, environment, customer_id, request.period)
        _new, latest, covered = checkpoint_service.fingerprint_candidates(uow, scope)
        if not covered.leaves:
            empty.append(customer_id)
        elif (latest is not None and latest.tree_size >= len(covered.leaves)
              and signing_keys.public_key(uow, latest.key_id, current=signer) is None):
            unknown.append(customer_id)  # reused as is (nothing new to seal), and its key is not registered
    if empty:
        raise ConflictError(f"No verified delta in {request.period} to checkpoint for {len(empty)} customer(s): "
                            f"{', '.join(empty)}", code="NOTHING_TO_CHECKPOINT", customerIds=empty)
    if unknown:
        raise ConflictError(f"The {request.period} checkpoint of {len(unknown)} customer(s) was signed with a key "
                            f"that is not a registered signing key: {', '.join(unknown)}", code="SIGNING_KEY_UNKNOWN",
                            customerIds=unknown)
    return [found[c] for c in request.customer_ids]


def folders(customer_ids: list[str]) -> dict[str, str]:
    """Each customer's folder, portable across file systems: ``:`` and trailing dots are escaped (``%`` never
    appears in an id, so escapes cannot meet a real id; an id of only dots cannot climb out), and an id equal
    to an earlier one but for case gets ``~2``, ``~3``… (``~`` is not an id character either), so no two
    folders merge when unzipped on a case-insensitive file system. The manifest maps ids to folders."""
    taken: set[str] = set()
    found: dict[str, str] = {}
    for customer_id in customer_ids:
        trimmed = customer_id.rstrip(".")
        base = trimmed.replace(":", "%3A") + "%2E" * (len(customer_id) - len(trimmed))
        name, n = base, 1
        while name.casefold() in taken:
            n += 1
            name = f"{base}~{n}"
        taken.add(name.casefold())
        found[customer_id] = name + "/"
    return found


class _Writer:
    """Adds files to the archive, recording each one's path, SHA-256 and size for the manifest."""

    def __init__(self, archive: zipfile.ZipFile, now: datetime) -> None:
        self._archive = archive
        self._stamp = now.timetuple()[:6]
        self.files: list[dict[str, Any]] = []

    def entry(self, path: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self._stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def add(self, path: str, body: bytes) -> None:
        self._archive.writestr(self.entry(path), body)
        self.files.append({"path": path, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)})

    def add_stream(self, path: str, source: IO[bytes]) -> None:
        digest, size = hashlib.sha256(), 0
        with self._archive.open(self.entry(path), "w") as target:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                target.write(chunk)
        self.files.append({"path": path, "sha256": digest.hexdigest(), "bytes": size})


def _json(value: Any) -> bytes:
    return jsoncodec.dumps(value).encode()


def _checkpoints(uow: UnitOfWork, customer: Customer, period: str) -> list[Checkpoint]:
    found: list[Checkpoint] = []
    cursor = None
    while True:
        page = uow.checkpoints.list(customer.tenant_id, customer.environment, customer.customer_id, period,
                                    exports.CHECKPOINT_PAGE, cursor)
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return sorted(found, key=lambda c: c.sequence)


def _add_customer(writer: _Writer, uow: UnitOfWork, customer: Customer, folder: str, request: Request, *,
                  now: datetime, signer: Any, views: Views) -> None:
    """One customer's folder. The package comes first: it seals the month's checkpoint if it is behind, so
    the receipt and the checkpoint list that follow include it."""
    period = request.period
    scope = checkpoint_service.Scope(customer.tenant_id, customer.environment, customer.customer_id, period)
    package = packages.build_document(uow, scope, sample_size=packages.DEFAULT_SAMPLE, now=now, signer=signer)
    receipt = views.receipt(receipts.build(uow, customer, request.scope, now=now, signer=signer))
    writer.add(folder + "receipt.json", _json(receipt))
    writer.add(folder + "receipt.pdf", render_receipt_pdf(receipt))
    listed = [views.checkpoint(c) for c in _checkpoints(uow, customer, period)]
    writer.add(folder + "checkpoints.json", _json({"customerId": customer.customer_id, "period": period,
                                                   "count": len(listed), "items": listed}))
    with exports.customer_activity_csv(uow, customer, status=None, scope=request.scope,
                                       columns=views.activity_columns) as activity:
        writer.add_stream(folder + "activity.csv", activity.file)
    writer.add(folder + "verification-package.json", package.body)


@contextmanager
def build_archive(uow: UnitOfWork, customers: list[Customer], request: Request, *, tenant_id: str,
                  environment: Environment, now: datetime, signer: Any, views: Views) -> Iterator[Archive]:
    """The zip of customers already passed by :func:`check_customers`, with its signed manifest."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by the with below
    with spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            writer = _Writer(archive, now)
            folder = folders([c.customer_id for c in customers])
            for customer in customers:
                _add_customer(writer, uow, customer, folder[customer.customer_id], request, now=now, signer=signer,
                              views=views)
            manifest: dict[str, Any] = {
                "type": MANIFEST_TYPE,
                "period": request.period,
                "generatedAt": iso_ms(now),
                "tenantId": tenant_id,
                "environment": str(environment),
                "customerIds": [c.customer_id for c in customers],
                "folders": folder,
                "files": writer.files,
                "keyId": signer.key_id,
            }
            manifest["signature"] = signer.sign(canonical(manifest))  # binds every listed hash and label
            archive.writestr(writer.entry("manifest.json"), _json(manifest))
        size = spool.seek(0, 2)
        spool.seek(0)
        digest = hashlib.sha256()
        while chunk := spool.read(CHUNK):
            digest.update(chunk)
        spool.seek(0)
        yield Archive(spool, size, digest.hexdigest(), f"close-packages-{request.period}.zip", manifest)


@contextmanager
def export(uow: UnitOfWork, tenant_id: str, environment: Environment, request: Request, *, now: datetime,
           signer: Any, views: Views) -> Iterator[Archive]:
    """:func:`check_customers`, then :func:`build_archive`: no byte is written unless every customer passes."""
    customers = check_customers(uow, tenant_id, environment, request, signer=signer)
    with build_archive(uow, customers, request, tenant_id=tenant_id, environment=environment, now=now,
                       signer=signer, views=views) as archive:
        yield archive


def export_file(uow: UnitOfWork, principal: DashboardPrincipal, customer_ids: object, period: object, *,
                now: datetime, signer: Any, views: Views, to: exports.Destination) -> exports.ExportFile:
    """``POST /dashboard/customers/bulk/close-package-export``: :func:`check_request`, then :func:`export`; the
    zip is kept on S3 (read back inline too when ``to`` takes it) and the export audited
    (``close_package.exported``), then committed."""
    request = check_request(customer_ids, period, now=now)
    with export(uow, principal.tenant_id, principal.environment, request, now=now, signer=signer,
                views=views) as archive:
        inline = archive.file.read() if to.inline(archive.size) else None
        key = exports.file_key(to.tenant_id, archive.filename)
        entry = AuditEntry(tenant_id=principal.tenant_id, actor=principal.actor, action="close_package.exported",
                           target=f"period:{request.period}", environment=str(principal.environment), at=now,
                           details={"period": request.period, "customerCount": len(request.customer_ids),
                                    "bytes": archive.size, "sha256": archive.sha256})
        exports.store_audited(uow, to.store, key, archive.file if inline is None else inline, entry,
                              content_type=MEDIA)
    return exports.ExportFile(archive.filename, MEDIA, archive.size, body=inline, key=key)
