"""Route registration: one decorator wires auth, errors and the OpenAPI record.

A view receives a :class:`Ctx` (request, principal, tenant, clock, unit of work)
and returns a response builder's result. Everything else a route needs —
authentication, the CSRF check, the missing-payment block, error envelopes,
and its entry in ``GET /openapi.json`` — comes from its ``@route`` declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import bootstrap
from chalicelib.api import auth, errors
from chalicelib.api.ratelimit import check_rate, platform_rate_headers
from chalicelib.api.request import json_body
from chalicelib.domain.errors import TallyError
from chalicelib.domain.rate_limits import RateWindow
from chalicelib.domain.tenants import Tenant
from chalicelib.log import get_logger
from chalicelib.services import auth as auth_service
from chalicelib.services import rate_limits

ANY_CONTENT_TYPE = ["*/*"]
log = get_logger("tally.api")


class Auth(StrEnum):
    NONE = "none"
    DASHBOARD = "dashboard"  # bearer JWT or session cookie
    DASHBOARD_JWT = "dashboard_jwt"  # bearer JWT only (session exchange)
    API_KEY = "api_key"
    PLATFORM = "platform"


@dataclass
class Operation:
    """One documented operation; the OpenAPI builder reads these."""

    path: str
    method: str
    auth: Auth
    summary: str
    tags: tuple[str, ...]
    responses: dict[int, Any]
    operation_id: str
    description: str = ""
    request_body: Any = None
    params: tuple[dict, ...] = ()
    errors: tuple[int, ...] = ()
    billing: bool = False  # stays reachable while the dashboard is blocked

    @property
    def platform_style(self) -> bool:
        return self.auth == Auth.PLATFORM


OPERATIONS: list[Operation] = []


@dataclass
class Ctx:
    request: Request
    now: datetime
    principal: Any = None
    tenant: Tenant | None = None
    rate: RateWindow | None = None  # the platform token's window, once this request is counted
    _uow: Any = field(default=None, repr=False)

    @property
    def uow(self) -> Any:
        if self._uow is None:
            self._uow = bootstrap.unit_of_work()
        return self._uow

    def body(self, *, required: bool = True) -> dict[str, Any]:
        return json_body(self.request, required=required)


def _authenticate(ctx: Ctx, op: Operation) -> None:
    if op.auth == Auth.NONE:
        return
    if op.auth == Auth.API_KEY:
        ctx.principal = auth.authenticate_api_key(ctx.request, ctx.uow, ctx.now)
        check_rate(ctx.principal.key_id)
    elif op.auth == Auth.PLATFORM:
        ctx.principal = auth.authenticate_platform(ctx.request, ctx.uow, ctx.now)
        ctx.rate = rate_limits.count_platform_request(ctx.uow, ctx.principal, now=ctx.now)
        ctx.rate.enforce(ctx.now)
    else:
        ctx.principal, ctx.tenant = auth.authenticate_dashboard(
            ctx.request, ctx.uow, ctx.now, jwt_only=op.auth == Auth.DASHBOARD_JWT
        )
        auth_service.check_dashboard_block(ctx.tenant, ctx.now, billing_route=op.billing)


def _dispatch(request: Request, op: Operation, view: Callable[..., Response], params: dict) -> Response:
    ctx = Ctx(request=request, now=bootstrap.now())
    try:
        _authenticate(ctx, op)
        response = view(ctx, **params)
    except TallyError as exc:
        response = errors.platform_error_response(exc) if op.platform_style else errors.tenant_error_response(exc)
    except Exception:
        log.exception("unhandled error", extra={"operation": op.operation_id})
        response = errors.internal_error(platform=op.platform_style)
    if ctx.rate is not None:  # every answer to a counted platform request says where its token stands
        response.headers.update(platform_rate_headers(ctx.rate, ctx.now))
    return response


def route(
    bp: Blueprint,
    path: str,
    method: str,
    *,
    auth: Auth,
    summary: str,
    tags: tuple[str, ...],
    responses: dict[int, Any],
    request_body: Any = None,
    params: tuple[dict, ...] = (),
    errors: tuple[int, ...] = (),
    billing: bool = False,
    description: str = "",
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register ``view`` on ``bp`` and record its contract."""

    def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
        op = Operation(
            path=path,
            method=method,
            auth=auth,
            summary=summary,
            tags=tags,
            responses=responses,
            operation_id=view.__name__,
            description=description or (view.__doc__ or "").strip(),
            request_body=request_body,
            params=params,
            errors=errors,
            billing=billing,
        )
        OPERATIONS.append(op)

        def endpoint(**path_params: str) -> Response:
            return _dispatch(bp.current_request, op, view, path_params)

        endpoint.__name__ = view.__name__
        endpoint.__doc__ = view.__doc__
        bp.route(path, methods=[method], content_types=ANY_CONTENT_TYPE)(endpoint)
        return view

    return decorator


def path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def query(name: str, description: str, schema: dict | None = None, *, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


CURSOR = query("cursor", "The nextCursor of the previous page.")
PAGE_NUMBER = query("page", "1-based page number; `cursor` is cheaper for deep pages.",
                    {"type": "integer", "minimum": 1, "maximum": 1000})


def page_size(default: int) -> dict:
    """The ``limit`` parameter of a page of 1-100 items (one definition for every listing route)."""
    return query("limit", f"Page size, 1-100 (default {default}).", {"type": "integer", "minimum": 1, "maximum": 100})


ENVIRONMENT_HEADER = {
    "name": "X-Environment",
    "in": "header",
    "required": False,
    "description": "Data scope for dashboard routes (default production).",
    "schema": {"type": "string", "enum": ["sandbox", "production"]},
}
IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays the first response for a repeated key with the same body.",
    "schema": {"type": "string", "maxLength": 255},
}
