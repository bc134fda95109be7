"""Route registration: one decorator wires auth, input checks, errors and the OpenAPI record.

A view receives a :class:`Ctx` (request, principal, tenant, clock, unit of work) and, as keyword arguments,
every input its ``@route`` declares — path and query parameters, headers, and the JSON body (``body``) —
already checked against the declarations that also document them (inputs.py, validator.py). Everything else a
route needs — authentication, the CSRF check, the missing-payment block, error envelopes, and its entry in
``GET /openapi.json`` — comes from the same declaration.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import bootstrap
from chalicelib.api import auth, errors
from chalicelib.api.inputs import Param, ParamGroup
from chalicelib.api.ratelimit import check_rate, platform_rate_headers
from chalicelib.domain.errors import TallyError
from chalicelib.domain.rate_limits import RateWindow
from chalicelib.domain.tenants import Tenant
from chalicelib.log import get_logger
from chalicelib.services import auth as auth_service
from chalicelib.services import rate_limits

ANY_CONTENT_TYPE = ["*/*"]
log = get_logger("tally.api")
_PATH_NAMES = re.compile(r"\{(\w+)\}")


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
    request_body: str | None = None  # a component of schemas.py: documents and checks the JSON body
    params: tuple[Param | ParamGroup, ...] = ()
    errors: tuple[int, ...] = ()
    body_required: bool = True
    guard: Callable[[Ctx], None] | None = None  # runs before the inputs are checked (e.g. a 404 for a feature off)
    view: Callable[..., Response] | None = field(default=None, repr=False)
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


def _dispatch(request: Request, op: Operation, view: Callable[..., Response], path_values: dict) -> Response:
    ctx = Ctx(request=request, now=bootstrap.now())
    try:
        _authenticate(ctx, op)
        if op.guard is not None:
            op.guard(ctx)
        from chalicelib.api.validator import read_inputs  # with the first request, not the cold start

        inputs = read_inputs(request, op.params, op.request_body, body_required=op.body_required,
                             path_values=path_values)
        response = view(ctx, **inputs)
    except TallyError as exc:
        response = errors.platform_error_response(exc) if op.platform_style else errors.tenant_error_response(exc)
    except Exception as exc:
        response = errors.unavailable_response(exc, platform=op.platform_style)  # throttled, timed out: 503
        if response is None:
            log.exception("unhandled error", extra={"operation": op.operation_id})
            response = errors.internal_error(platform=op.platform_style)
        else:
            log.warning("a dependency stayed unavailable through every retry", exc_info=True,
                        extra={"operation": op.operation_id})
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
    request_body: str | None = None,
    body_required: bool = True,
    params: tuple[Param | ParamGroup, ...] = (),
    errors: tuple[int, ...] = (),
    billing: bool = False,
    description: str = "",
    guard: Callable[[Ctx], None] | None = None,
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register ``view`` on ``bp`` and record its contract: ``params`` and ``request_body`` are the inputs it
    takes, each checked before the view runs and documented in ``GET /openapi.json``."""
    declared = {p.name for p in params if isinstance(p, Param) and p.location == "path"}
    if declared != set(_PATH_NAMES.findall(path)):
        raise ValueError(f"{method} {path}: declare every path parameter once (declared: {sorted(declared)})")

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
            body_required=body_required,
            guard=guard,
            view=view,
        )
        OPERATIONS.append(op)

        def endpoint(**path_params: str) -> Response:
            return _dispatch(bp.current_request, op, view, path_params)

        endpoint.__name__ = view.__name__
        endpoint.__doc__ = view.__doc__
        bp.route(path, methods=[method], content_types=ANY_CONTENT_TYPE)(endpoint)
        return view

    return decorator
