"""Dashboard customer records (seed 001): list and directory, summary, manual creation, detail, exports,
receipts, checkpoints, verification packages and close packages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.inputs import (
    CURSOR,
    ENVIRONMENT_HEADER,
    INSTANT,
    PAGE_NUMBER,
    PERIOD,
    SCOPE_RULES,
    ParamGroup,
    customer_path,
    page_size,
    path_param,
    query,
)
from chalicelib.api.responses import file_response, ok, page_body
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.api.views import (
    candidates_view,
    checkpoint_view,
    dashboard_customer_detail_view,
    dashboard_customer_view,
    directory_view,
    listed_customer_view,
    package_link_view,
    receipt_view,
)
from chalicelib.domain import directory
from chalicelib.domain.clock import iso_ms, parse_iso, period_of
from chalicelib.domain.customers import EventCadence, Policy, SharingState
from chalicelib.domain.identity import Permission
from chalicelib.lazy import lazy
from chalicelib.services import customers as customer_service

if TYPE_CHECKING:
    from chalicelib.domain.scopes import TimeScope
    from chalicelib.services.exports import Destination, ExportFile

bp = Blueprint(__name__)
checkpoint_service = lazy("chalicelib.services.checkpoints")
close_package_service = lazy("chalicelib.services.close_packages")
export_service = lazy("chalicelib.services.exports")
package_service = lazy("chalicelib.services.packages")
receipt_service = lazy("chalicelib.services.receipts")
records_service = lazy("chalicelib.services.records")


@route(bp, "/dashboard/customers", "POST", auth=Auth.DASHBOARD, summary="Create a manual customer",
       tags=("Customer records",), responses={201: "DashboardCustomer"}, errors=(400, 403, 409),
       request_body="CreateCustomerRequest", params=(ENVIRONMENT_HEADER,))
def create_customer(ctx: Ctx, body: dict) -> Response:
    """Admins and managers, before integration events arrive (SDK `customers.create`). A generated
    `cust_…` id when `customerId` is omitted; a duplicate manual id is 409 `CUSTOMER_EXISTS`, an id
    already known from integration records is 409 `CUSTOMER_EXISTS_FROM_INTEGRATION` (not adopted).
    Writes a `customer.created` audit entry and sends the `customer.created` webhook."""
    customer = customer_service.create_and_announce(ctx.uow, ctx.principal, body, now=ctx.now,
                                                    queue=bootstrap.webhook_queue())
    return ok(dashboard_customer_view(customer), 201)


# --- checkpoints -------------------------------------------------------------------------------------

CUSTOMER = customer_path()
MONTH = query("period", "UTC month `YYYY-MM` (default: the current month).", PERIOD)


@route(bp, "/dashboard/customers/{customerId}/checkpoint", "POST", auth=Auth.DASHBOARD,
       summary="Create a customer checkpoint", tags=("Customer records",),
       responses={201: "CustomerCheckpoint", 200: "CustomerCheckpoint"}, errors=(400, 403, 404, 409),
       request_body="CreateCheckpointRequest", body_required=False, params=(CUSTOMER, ENVIRONMENT_HEADER))
def create_checkpoint(ctx: Ctx, customerId: str, body: dict) -> Response:
    """Admins and managers. Signs a Merkle root over the customer's verified deltas of `period`, in sequence
    order, up to the first delta still awaiting verification (failed ones are skipped). A later checkpoint
    of the period extends the earlier one and carries a consistency proof from it. Nothing new since the
    latest checkpoint: that one is returned with 200 and `created: false`."""
    ctx.principal.require(Permission.CUSTOMERS_WRITE)
    checkpoint, created = checkpoint_service.create_for_customer(
        ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, customerId, body.get("period"), now=ctx.now,
        signer=bootstrap.signer())
    return ok({**checkpoint_view(checkpoint), "created": created}, 201 if created else 200)


@route(bp, "/dashboard/customers/{customerId}/checkpoints", "GET", auth=Auth.DASHBOARD,
       summary="List a customer's checkpoints", tags=("Customer records",),
       responses={200: "CustomerCheckpointPage"}, errors=(400, 404),
       params=(CUSTOMER, ENVIRONMENT_HEADER, MONTH, page_size(50), CURSOR))
def list_checkpoints(ctx: Ctx, customerId: str, period: str | None, limit: int, cursor: str | None) -> Response:
    """Newest first; `period` narrows to one month (a key condition)."""
    page = checkpoint_service.list_checkpoints(
        ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, customerId, period=period, limit=limit,
        cursor=cursor)
    return ok(page_body([checkpoint_view(c) for c in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))


@route(bp, "/dashboard/customers/{customerId}/checkpoint-fingerprints", "GET", auth=Auth.DASHBOARD,
       summary="Fingerprint candidates of the next checkpoint", tags=("Customer records",),
       responses={200: "CheckpointCandidates"}, errors=(400, 404),
       params=(CUSTOMER, ENVIRONMENT_HEADER, MONTH,
               page_size(100, 1000, what="Candidates listed (`total` counts them all)")))
def checkpoint_fingerprints(ctx: Ctx, customerId: str, period: str | None, limit: int) -> Response:
    """Verified deltas of the period not yet under a checkpoint, in sequence order, with their fingerprints
    (`contentHash`) and leaf hashes (`proofHash`): exactly what the next checkpoint would add."""
    found = checkpoint_service.candidates_for_customer(ctx.uow, ctx.principal.tenant_id, ctx.principal.environment,
                                                      customerId, period, now=ctx.now)
    return ok(candidates_view(customerId, found, limit=limit))


# --- verification packages ------------------------------------------------------------------------


@route(bp, "/dashboard/customers/{customerId}/verification-package", "POST", auth=Auth.DASHBOARD,
       summary="Create a shareable verification package", tags=("Customer records",),
       responses={201: "VerificationPackageLink"}, errors=(400, 403, 404, 409),
       request_body="CreatePackageRequest", body_required=False, params=(CUSTOMER, ENVIRONMENT_HEADER))
def create_verification_package(ctx: Ctx, customerId: str, body: dict) -> Response:
    """Admins and managers. A random sample of `sampleSize` (1-100, default 10) of the period's checkpointed
    deltas, each with its exact content and inclusion proof, plus the signed checkpoint (made now if the
    period has none or it is behind) and the public key. Shared by an unguessable link that needs no login
    and expires after `expiresInDays` (1-90, default 7); the link is shown only here. The file passes
    `tally verify`."""
    ctx.principal.require(Permission.CUSTOMERS_WRITE)
    shared = package_service.create_for_customer(
        ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, customerId, period=body.get("period"),
        sample_size=body.get("sampleSize"), expires_in_days=body.get("expiresInDays"), now=ctx.now,
        signer=bootstrap.signer(), store=bootstrap.artifacts(), actor=ctx.principal.actor)
    return ok(package_link_view(customerId, shared), 201)


@route(bp, "/api/v1/verification-packages/{token}", "GET", auth=Auth.NONE, summary="Open a shared package",
       tags=("Verification",), responses={200: "VerificationPackage"}, errors=(404,),
       params=(path_param("token", "The link token from the package's creation."),))
def open_verification_package(ctx: Ctx, token: str) -> Response:
    """Public, no login: the package behind a shared link until it expires (`Expires` header). Save the
    answer and run `tally verify FILE` to check every hash, proof and signature offline."""
    from email.utils import format_datetime

    package, expires = package_service.open_shared(token, now=ctx.now, store=bootstrap.artifacts())
    return ok(package, headers={"Expires": format_datetime(parse_iso(expires), usegmt=True),
                                "Cache-Control": "private, no-store"})


@route(bp, "/dashboard/customers/{customerId}/receipt", "GET", auth=Auth.DASHBOARD, summary="Generate a receipt",
       tags=("Customer records",),
       responses={200: {"media": {
           "application/json": {"type": "object", "required": ["statusCode", "success", "data"], "properties": {
               "statusCode": {"const": 200}, "success": {"const": True},
               "data": {"$ref": "#/components/schemas/Receipt"}}},
           "application/pdf": {"type": "string", "format": "binary"}}}, 303: "FileLink"},
       errors=(400, 404),
       params=(CUSTOMER, ENVIRONMENT_HEADER, MONTH,
               query("format", "`json` (default) or `pdf`: a one-page printable receipt, as an attachment.",
                     {"type": "string", "enum": ["json", "pdf"]}, default="json", arg="fmt")))
def get_customer_receipt(ctx: Ctx, customerId: str, period: str | None, fmt: str) -> Response:
    """The signed summary of one UTC month (default: the current one): starting and final balance, net
    change, counts, the latest checkpoint; check the signature against `verificationKeysUrl`. `format=pdf`
    answers the same receipt as a one-page PDF to file or send (`receipt-{customerId}-{period}.pdf`); the
    signed statement is printed on it, so the page alone is enough to check the signature. API Gateway
    returns a binary body only to a request that accepts one: without `Accept: application/pdf` (or `*/*`)
    the PDF is stored and answered with 303 and a presigned URL instead."""
    from chalicelib.domain.scopes import parse_scope

    scope = parse_scope(period=period, now=ctx.now) or parse_scope(time_preset="current_month", now=ctx.now)
    principal = ctx.principal
    if fmt == "pdf":
        return _file(receipt_service.issue_pdf(
            ctx.uow, principal.tenant_id, principal.environment, customerId, scope, now=ctx.now,
            signer=bootstrap.signer(), view=receipt_view,
            to=_destination(ctx, any_size=True, accepted=_accepts(ctx, "application/pdf"))))
    return ok(receipt_view(receipt_service.issue(ctx.uow, principal.tenant_id, principal.environment, customerId,
                                                 scope, now=ctx.now, signer=bootstrap.signer())))


# --- exports --------------------------------------------------------------------------------------

INLINE_LIMIT = 4 * 1024 * 1024  # Lambda answers at most 6 MB; larger files go to S3 behind a presigned URL
LINK_SECONDS = 3600
CHECKPOINT_COLUMNS = ("customerId", "period", "sequence", "checkpointId", "root", "treeSize", "firstSequence",
                      "lastSequence", "netChange", "previousRoot", "previousTreeSize", "createdAt", "keyId",
                      "signature")


def _destination(ctx: Ctx, *, any_size: bool = False, accepted: bool = True) -> Destination:
    """Where a generated file goes: inline to this request when it takes it (up to ``INLINE_LIMIT`` unless
    ``any_size``), else S3 under the tenant's key."""
    return export_service.Destination(ctx.principal.tenant_id, bootstrap.artifacts(),
                                      None if any_size else INLINE_LIMIT, accepted)


def _file(exported: ExportFile) -> Response:
    """A generated file inline, or 303 to a presigned link of where it is stored."""
    if exported.body is None:
        return _file_link(exported.key, exported.filename, exported.size)
    return file_response(exported.body, exported.media, exported.filename)


def _file_link(key: str, filename: str, size: int) -> Response:
    """303 to a presigned URL of a stored export."""
    url = bootstrap.artifacts().presign(key, expires_in=LINK_SECONDS, filename=filename)
    return ok({"url": url, "expiresInSeconds": LINK_SECONDS, "bytes": size, "filename": filename}, 303,
              headers={"Location": url})


def _accepts(ctx: Ctx, media: str) -> bool:
    """Whether the request's Accept header takes a binary ``media`` (Chalice, like API Gateway, refuses to
    send a binary body to a request that does not: such requests get the link instead)."""
    accept = (ctx.request.headers or {}).get("accept") or ""
    return any(part.split(";", 1)[0].strip().lower() in ("*/*", media) for part in accept.split(","))


@route(bp, "/dashboard/customers/batch-checkpoints/export", "GET", auth=Auth.DASHBOARD,
       summary="Export checkpoints across customers", tags=("Customer records",),
       responses={200: {"media": {"text/csv": {"type": "string"},
                                  "application/json": {"$ref": "#/components/schemas/CheckpointExport"}}},
                  303: "FileLink"},
       errors=(400,), params=(ENVIRONMENT_HEADER, MONTH,
                              query("format", "`csv` (default) or `json`.", {"type": "string",
                                                                              "enum": ["csv", "json"]},
                                    default="csv", arg="fmt")))
def export_batch_checkpoints(ctx: Ctx, period: str | None, fmt: str) -> Response:
    """Every customer's checkpoints of one UTC month (default: the current one), by customer and sequence,
    from the checkpoint-period index a page at a time. Files over 4 MB are written to S3 and answered with
    303 and a presigned URL (valid one hour)."""
    return _file(export_service.period_checkpoints_file(
        ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, period or period_of(ctx.now), fmt=fmt,
        view=checkpoint_view, columns=CHECKPOINT_COLUMNS, to=_destination(ctx)))


ACTIVITY_COLUMNS = ("sequenceNumber", "recordId", "receiptId", "createdAt", "delta", "reason", "referenceId",
                    "status", "contentHash", "proofHash", "batchId", "proofRoot", "leafIndex", "verifiedAt", "error")
STATUSES = ("QUEUED", "PROCESSING", "VERIFIED", "FAILED")
#: A delta status, in either case (seed 001 writes `status=verified`).
STATUS = {"type": "string", "enum": [*STATUSES, *(s.lower() for s in STATUSES)]}
#: Deltas accepted in ``[startDate, endDate)``: both or neither (400 ``INVALID_SCOPE_COMBINATION``).
ACCEPTED_WINDOW = ParamGroup(
    "window", "Acceptance time window: `startDate` and `endDate` together.",
    (query("startDate", "Accepted at or after. " + INSTANT["description"], INSTANT),
     query("endDate", "Accepted before. " + INSTANT["description"], INSTANT)),
    {"dependentSchemas": {name: SCOPE_RULES["dependentSchemas"][name] for name in ("startDate", "endDate")}})


def _window(ctx: Ctx, start: str | None, end: str | None) -> TimeScope | None:
    """The acceptance window, when one is given (the declaration already paired the dates)."""
    from chalicelib.domain.scopes import parse_scope

    return parse_scope(start_date=start, end_date=end, now=ctx.now) if start else None


@route(bp, "/dashboard/customers/{customerId}/export", "GET", auth=Auth.DASHBOARD,
       summary="Export customer activity (CSV)", tags=("Customer records",),
       responses={200: {"media": {"text/csv": {"type": "string"}}}, 303: "FileLink"}, errors=(400, 404),
       params=(CUSTOMER, ENVIRONMENT_HEADER,
               query("status", "Only deltas in this status (upper or lower case).", STATUS),
               ACCEPTED_WINDOW))
def export_customer_activity(ctx: Ctx, customerId: str, status: str | None, startDate: str | None,
                             endDate: str | None) -> Response:
    """One row per delta in sequence order, with status, fingerprint (`contentHash`) and proof references.
    Rows are read 1,000 at a time and spooled (memory stays bounded); a file over 4 MB goes to S3 and is
    answered with 303 and a presigned URL (valid one hour)."""
    scope = _window(ctx, startDate, endDate)
    return _file(export_service.activity_file(
        ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, customerId,
        status=status.upper() if status else None, scope=scope, columns=ACTIVITY_COLUMNS, to=_destination(ctx)))


@route(bp, "/dashboard/customers/bulk/close-package-export", "POST", auth=Auth.DASHBOARD,
       summary="Export close packages as one zip", tags=("Customer records",),
       responses={200: {"media": {"application/zip": {"type": "string", "format": "binary"}}}, 303: "FileLink"},
       errors=(400, 403, 404, 409), request_body="ClosePackageExportRequest", params=(ENVIRONMENT_HEADER,))
def export_close_packages(ctx: Ctx, body: dict) -> Response:
    """Admins and managers. One folder per customer (1-100 distinct `customerIds`) with the month's signed
    receipt (`receipt.json`, `receipt.pdf`), its checkpoints (`checkpoints.json`), its activity
    (`activity.csv`) and a verification package that passes `tally verify` (`verification-package.json`,
    against the month's checkpoint, made now if there is none or it is behind); at the root `manifest.json`
    lists every file's SHA-256 and size, signed with the platform key. Nothing is written unless every
    customer can be packaged: unknown ids are 404 and a month with no verified delta is 409
    `NOTHING_TO_CHECKPOINT`, each naming every such customer (`customerIds`). The zip is kept on S3; up to
    4 MB, to a request that accepts it (`Accept: application/zip` or `*/*`), it is answered inline, else
    with 303 and a presigned URL (valid one hour)."""
    ctx.principal.require(Permission.CUSTOMERS_WRITE)
    views = close_package_service.Views(receipt=receipt_view, checkpoint=checkpoint_view,
                                        activity_columns=ACTIVITY_COLUMNS)
    return _file(close_package_service.export_file(
        ctx.uow, ctx.principal, body["customerIds"], body["period"], now=ctx.now, signer=bootstrap.signer(),
        views=views, to=_destination(ctx, accepted=_accepts(ctx, close_package_service.MEDIA))))


def _enum_query(name: str, kind: Any, description: str) -> Any:
    return query(name, description, {"type": "string", "enum": [str(v) for v in kind]}, arg=None)


FILTERS = ("sharingState", "health", "policy", "eventCadence", "cycleCloseWindow")
#: The directory filters and the page they allow: a filtered page may come back short, so after the first one
#: clients follow ``nextCursor``, never a page number (the service reads at most 1,000 customers a request).
DIRECTORY_PAGE = ParamGroup(
    "directoryPage", "Directory filters and paging: with a filter, `page` > 1 needs `cursor`.",
    (_enum_query("sharingState", SharingState, "Sharing state hint: INHERIT (the tenant's default), SHARED or "
                 "PRIVATE."),
     _enum_query("health", directory.Health, "Record freshness against the event cadence: HEALTHY (within the "
                 "expected interval), LATE (within twice it), STALE, NO_ACTIVITY, UNMONITORED (no cadence)."),
     _enum_query("policy", Policy, "Metering policy: TWO_TIER (allotment then overage), GATED (stops when "
                 "prepaid units run out), OPEN (unmetered)."),
     _enum_query("eventCadence", EventCadence, "Expected delta cadence: PER_EVENT and HOURLY (an hour), DAILY, "
                 "WEEKLY, MONTHLY (31 days)."),
     _enum_query("cycleCloseWindow", directory.CycleCloseWindow, "`7d`, `14d`, `30d`: this UTC month has deltas "
                 "no checkpoint covers yet and closes within that many days; `IDLE`: no delta this month."),
     PAGE_NUMBER, CURSOR),
    {"if": {"anyOf": [{"required": [name]} for name in FILTERS], "required": ["page"],
            "properties": {"page": {"minimum": 2}},
            "not": {"required": ["cursor"], "properties": {"cursor": {"minLength": 1}}}},
     "then": False, "x-error": "With filters, pages may come back short: follow nextCursor instead of page numbers",
     "x-error-field": "page"},
    arg="listing")


@route(bp, "/dashboard/customers", "GET", auth=Auth.DASHBOARD, summary="List customer records",
       tags=("Customer records",),
       responses={200: {"anyOf": [{"$ref": "#/components/schemas/DashboardCustomerPage"},
                                  {"$ref": "#/components/schemas/DashboardDirectoryPage"}]}},
       errors=(400,),
       params=(ENVIRONMENT_HEADER,
               query("include", "`directory` for the enriched directory records.",
                     {"type": "string", "enum": ["directory"]}),
               query("search", "Prefix of what the page is sorted by: the id, or the display name (any case).",
                     {"type": "string", "maxLength": 128}),
               query("sortBy", "`customerId` (default) or `displayName` (default with `include=directory`).",
                     {"type": "string", "enum": ["customerId", "displayName"]}),
               query("sortOrder", "`asc` (default) or `desc`.", {"type": "string", "enum": ["asc", "desc"]},
                     default="asc"),
               page_size(25),
               DIRECTORY_PAGE))
def list_dashboard_customers(ctx: Ctx, include: str | None, search: str | None, sortBy: str | None, sortOrder: str,
                             limit: int, listing: dict) -> Response:
    """Customers of the `X-Environment` scope with their running balance and delta count (counters kept by
    every accepted delta). `include=directory` adds display name, source, sharing state, event cadence,
    cycle summary, verification state, next close date, record freshness and at-a-glance counts, and
    sorts by display name from the directory index unless `sortBy` says otherwise.

    Cost: an unfiltered page is one query on each of the index's 32 shards (all at once, merged by sort
    key; each asked for about twice its share of the page, a shard that runs dry asked again) and one batch
    read; `search` is a key condition on the sort order; `page` passes over the earlier pages' keys in the
    same queries. A filtered page reads the shards 100 customers at a time and keeps the matches, examining
    at most 1,000 customers per request: when that runs out first, the page comes back short (possibly empty) with a
    `nextCursor` that resumes after the last customer examined. Filtered pages follow `nextCursor` only
    (`page` > 1 with a filter is 400)."""
    filters = directory.parse_filter({name: listing.get(name) for name in FILTERS})
    page = customer_service.list_customers(
        ctx.uow, ctx.principal, limit=limit, cursor=listing.get("cursor"), search=search,
        page=listing.get("page", 1), sort_by=sortBy or ("displayName" if include else "customerId"),
        descending=sortOrder == "desc", filters=filters, now=ctx.now,
    )
    items = [directory_view(c, ctx.now) if include else listed_customer_view(c) for c in page.items]
    return ok(page_body(items, limit=limit, page=page.extra["page"], next_cursor=page.next_cursor, total=None))


@route(bp, "/dashboard/customers/summary", "GET", auth=Auth.DASHBOARD, summary="Aggregate customer summary",
       tags=("Customer records",), responses={200: "CustomerSummary"}, params=(ENVIRONMENT_HEADER,))
def get_customer_summary(ctx: Ctx) -> Response:
    """Totals of the `X-Environment` scope: customers (by source), deltas, balances and verification
    metrics, plus this UTC month's accepted deltas. Read from counters the write paths keep current (two
    key lookups), so the cost does not grow with customers or deltas."""
    stats, usage = customer_service.summary(ctx.uow, ctx.principal, now=ctx.now)
    settled = stats.verified + stats.failed
    return ok({
        "environment": str(ctx.principal.environment),
        "customers": {"total": stats.customers, "manual": stats.manual, "integration": stats.integration},
        "deltas": {"total": stats.deltas, "verified": stats.verified,
                   "awaitingVerification": stats.awaiting_verification, "failed": stats.failed},
        "balances": {"total": stats.balance},
        "verification": {
            "verifiedRate": round(stats.verified / settled, 6) if settled else None,
            "failedRate": round(stats.failed / settled, 6) if settled else None,
        },
        "currentPeriod": {"period": usage.period,
                          "acceptedDeltas": usage.by_environment.get(str(ctx.principal.environment), 0)},
        "generatedAt": iso_ms(ctx.now),
    })


DETAIL_SORTS = ("sequenceNumber", "createdAt", "delta")


@route(bp, "/dashboard/customers/{customerId}", "GET", auth=Auth.DASHBOARD, summary="Customer detail and activity",
       tags=("Customer records",), responses={200: "DashboardCustomerDetail"}, errors=(400, 404),
       params=(CUSTOMER, ENVIRONMENT_HEADER,
               query("deltaPage", "1-based page of activity (1-1,000,000, default 1).",
                     {"type": "integer", "minimum": 1, "maximum": 10**6}, default=1),
               page_size(20, what="Deltas per page", name="deltaLimit"),
               query("status", "queued, processing, verified or failed (upper or lower case).", STATUS),
               query("reason", "Exact reason.", {"type": "string", "maxLength": 500}),
               ACCEPTED_WINDOW,
               query("search", "Record id, receipt id or reference id prefix.", {"type": "string", "maxLength": 256}),
               query("sortBy", "sequenceNumber (default), createdAt or delta.",
                     {"type": "string", "enum": list(DETAIL_SORTS)}, default="sequenceNumber"),
               query("sortOrder", "desc (default) or asc.", {"type": "string", "enum": ["asc", "desc"]},
                     default="desc")))
def get_dashboard_customer(ctx: Ctx, customerId: str, deltaPage: int, deltaLimit: int, status: str | None,
                           reason: str | None, startDate: str | None, endDate: str | None, search: str | None,
                           sortBy: str, sortOrder: str) -> Response:
    """The customer's record, counters, latest checkpoint of this month, and a page of its activity.
    Unfiltered and by sequence, a page is one key-range query; with filters or another sort, the
    customer's deltas are read page by page (at most 50,000, else 400 `SCOPE_TOO_WIDE`) and filtered."""
    page, limit = deltaPage, deltaLimit
    window = _window(ctx, startDate, endDate)
    detail = records_service.dashboard_detail(
        ctx.uow, ctx.principal.tenant_id, ctx.principal.environment, customerId, page=page, limit=limit,
        status=status.upper() if status else None, reason=reason, window=window, search=search, sort_by=sortBy,
        descending=sortOrder == "desc", now=ctx.now)
    return ok(dashboard_customer_detail_view(detail, page=page, limit=limit))
