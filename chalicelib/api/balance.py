"""Balance API (``X-Api-Key``): wire-compatible with the official ``pacspace-sdk``."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.request import int_param, query_param
from chalicelib.api.responses import ok, page_body
from chalicelib.api.routing import Auth, Ctx, query, route
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.customers import Customer
from chalicelib.services import customers as customer_service

bp = Blueprint(__name__)


def customer_summary(customer: Customer) -> dict:
    return {
        "customerId": customer.customer_id,
        "displayName": customer.display_name,
        "source": str(customer.source),
        "createdAt": iso_ms(customer.created_at),
    }


@route(bp, "/api/v1/balance/customers", "GET", auth=Auth.API_KEY, summary="List customers",
       tags=("Balance API",), responses={200: "BalanceCustomerPage"}, errors=(400,),
       params=(query("search", "Customer id prefix."),
               query("limit", "Page size, 1-100 (default 25).", {"type": "integer", "minimum": 1, "maximum": 100}),
               query("page", "1-based page number; `cursor` is cheaper for deep pages.",
                     {"type": "integer", "minimum": 1, "maximum": 1000}),
               query("cursor", "The nextCursor of the previous page.")))
def list_customers(ctx: Ctx) -> Response:
    """Compact customer list of the key's environment (SDK `balance.customers`)."""
    limit = int_param(ctx.request, "limit", default=25, minimum=1, maximum=100)
    page = customer_service.list_customers(
        ctx.uow, ctx.principal, limit=limit, cursor=query_param(ctx.request, "cursor"),
        search=query_param(ctx.request, "search"),
        page=int_param(ctx.request, "page", default=1, minimum=1, maximum=1000),
    )
    return ok(page_body([customer_summary(c) for c in page.items], limit=limit, page=page.extra["page"],
                        next_cursor=page.next_cursor, total=None))
