"""Seed 003: plan, usage and the Stripe subscription routes (all reachable while the dashboard is blocked,
so a blocked tenant can pay)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.inputs import PERIOD, query
from chalicelib.api.responses import ok
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.domain.clock import iso_ms
from chalicelib.lazy import lazy
from chalicelib.services import usage as usage_service
from chalicelib.settings import get_settings

bp = Blueprint(__name__)
#: The subscription use cases, loaded on the first billing request: `import app` (every cold start) skips them
#: and the subscription domain.
billing_service = lazy("chalicelib.services.billing")
BILLING = ("Billing",)


@route(bp, "/dashboard/billing/plan", "GET", auth=Auth.DASHBOARD, summary="Current subscription plan",
       tags=BILLING, responses={200: "BillingPlan"}, errors=(401, 403), billing=True)
def get_billing_plan(ctx: Ctx) -> Response:
    """The tier in force, its allotment and prices (catalogue), and the Stripe subscription behind it."""
    details = billing_service.plan_details(ctx.uow, ctx.principal)
    tenant, plan = details.tenant, details.plan
    return ok({
        "tier": plan.tier,
        "monthlyAllotment": plan.monthly_allotment,
        "planPriceUsd": plan.price_usd,
        "overagePriceUsd": plan.overage_usd,
        "stripeSubscriptionId": tenant.stripe_subscription_id,
        "cancelAtPeriodEnd": tenant.cancel_at_period_end,
        "stripeCurrentPeriodEnd": iso_ms(tenant.stripe_current_period_end),
    })


@route(bp, "/dashboard/billing/usage", "GET", auth=Auth.DASHBOARD, summary="Monthly usage and overage",
       tags=BILLING, responses={200: "BillingUsage"}, errors=(400,), billing=True,
       params=(query("period", "YYYY-MM (UTC month); defaults to the current period.", PERIOD),))
def get_billing_usage(ctx: Ctx, period: str | None) -> Response:
    """Accepted billable units of the period (both environments; terminal failures released)."""
    figures = usage_service.usage_figures(ctx.uow, ctx.principal.tenant_id, period=period, now=ctx.now)
    return ok({
        "period": figures.counter.period,
        "consumedDeltas": figures.counter.consumed,
        "overageCount": figures.overage_count,
        "overageChargesUsd": figures.overage_charges_usd,
        "remainingDeltas": figures.remaining,
    })


@route(bp, "/dashboard/stripe/create-subscription-session", "POST", auth=Auth.DASHBOARD,
       summary="Start a subscription (Checkout URL)", tags=BILLING, responses={201: "RedirectUrl"},
       errors=(400, 401, 403, 409, 502, 503), request_body="TierRequest", billing=True)
def create_subscription_session(ctx: Ctx, body: dict) -> Response:
    """Owner/admin. Redirect the user to `url`; the plan is active as soon as Stripe reports the payment.
    409 `SUBSCRIPTION_EXISTS` when subscribed (use change-plan)."""
    session = billing_service.start_subscription(
        ctx.uow, ctx.principal, tier=body["tier"], provider=bootstrap.billing_provider(),
        return_url=get_settings().billing_return_url, now=ctx.now)
    return ok({"url": session.url}, status=201)


@route(bp, "/dashboard/stripe/change-plan", "POST", auth=Auth.DASHBOARD, summary="Change the subscription's tier",
       tags=BILLING, responses={200: "PlanChange"}, errors=(400, 401, 403, 409, 502, 503),
       request_body="TierRequest", billing=True)
def change_plan(ctx: Ctx, body: dict) -> Response:
    """Owner/admin. Immediate, with proration; usage does not reset mid-cycle. 409 `NO_ACTIVE_SUBSCRIPTION`
    without a subscription (subscribe first)."""
    subscription = billing_service.change_plan(ctx.uow, ctx.principal, tier=body["tier"],
                                               provider=bootstrap.billing_provider(), now=ctx.now)
    return ok({"subscriptionId": subscription.id, "status": subscription.status})


@route(bp, "/dashboard/stripe/create-portal-session", "POST", auth=Auth.DASHBOARD,
       summary="Open the Stripe Customer Portal", tags=BILLING, responses={201: "RedirectUrl"},
       errors=(401, 403, 409, 502, 503), billing=True)
def create_portal_session(ctx: Ctx) -> Response:
    """Owner/admin. Payment methods, invoices, receipts; the portal returns to the dashboard Billing page."""
    url = billing_service.open_portal(ctx.uow, ctx.principal, provider=bootstrap.billing_provider(),
                                      return_url=get_settings().billing_return_url, now=ctx.now)
    return ok({"url": url}, status=201)


@route(bp, "/dashboard/stripe/cancel-subscription", "POST", auth=Auth.DASHBOARD,
       summary="Cancel the subscription at period end", tags=BILLING, responses={200: "SubscriptionCancellation"},
       errors=(401, 403, 409, 502, 503), billing=True)
def cancel_subscription(ctx: Ctx) -> Response:
    """Owner/admin. Access continues until `currentPeriodEnd`, then the tenant reverts to the Free tier."""
    subscription = billing_service.cancel_subscription(ctx.uow, ctx.principal, provider=bootstrap.billing_provider(),
                                                       now=ctx.now)
    return ok({"subscriptionId": subscription.id, "cancelAtPeriodEnd": subscription.cancel_at_period_end,
               "currentPeriodEnd": iso_ms(subscription.current_period_end)})
