"""Dashboard customer records (seed 001): manual creation so far."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.responses import ok
from chalicelib.api.routing import ENVIRONMENT_HEADER, Auth, Ctx, route
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.customers import Customer
from chalicelib.services import customers as customer_service
from chalicelib.services import webhooks as webhook_service

bp = Blueprint(__name__)


def dashboard_customer_view(customer: Customer) -> dict[str, Any]:
    return {**customer_service.customer_event(customer), "updatedAt": iso_ms(customer.updated_at)}


@route(bp, "/dashboard/customers", "POST", auth=Auth.DASHBOARD, summary="Create a manual customer",
       tags=("Customer records",), responses={201: "DashboardCustomer"}, errors=(400, 403, 409),
       request_body="CreateCustomerRequest", params=(ENVIRONMENT_HEADER,))
def create_customer(ctx: Ctx) -> Response:
    """Admins and managers, before integration events arrive (SDK `customers.create`). A generated
    `cust_…` id when `customerId` is omitted; a duplicate manual id is 409 `CUSTOMER_EXISTS`, an id
    already known from integration records is 409 `CUSTOMER_EXISTS_FROM_INTEGRATION` (not adopted).
    Writes a `customer.created` audit entry and sends the `customer.created` webhook."""
    customer, outbox = customer_service.create_customer(ctx.uow, ctx.principal, ctx.body(), now=ctx.now)
    if outbox is not None:
        webhook_service.announce(bootstrap.webhook_queue(), [ctx.uow.webhooks.outbox_ref(outbox)])
    return ok(dashboard_customer_view(customer), 201)
