"""Seed 003: plan usage on the dashboard (reachable while the dashboard is blocked)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.request import query_param
from chalicelib.api.responses import ok
from chalicelib.api.routing import Auth, Ctx, query, route
from chalicelib.services import usage as usage_service

bp = Blueprint(__name__)


@route(bp, "/dashboard/billing/usage", "GET", auth=Auth.DASHBOARD, summary="Monthly usage and overage",
       tags=("Billing",), responses={200: "BillingUsage"}, errors=(400,), billing=True,
       params=(query("period", "YYYY-MM (UTC month); defaults to the current period.",
                     {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}),))
def get_billing_usage(ctx: Ctx) -> Response:
    """Accepted billable units of the period (both environments; terminal failures released)."""
    figures = usage_service.usage_figures(ctx.uow, ctx.principal.tenant_id,
                                          period=query_param(ctx.request, "period"), now=ctx.now)
    return ok({
        "period": figures.counter.period,
        "consumedDeltas": figures.counter.consumed,
        "overageCount": figures.overage_count,
        "overageChargesUsd": figures.overage_charges_usd,
        "remainingDeltas": figures.remaining,
    })
