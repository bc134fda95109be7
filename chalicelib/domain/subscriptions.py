"""Subscriptions as Tally sees them: the few Stripe fields plan state follows (SPEC "Billing").

The billing provider (Stripe, or the local stand-in) owns subscriptions; a tenant's plan is a
projection of its subscription, recomputed whole from a fresh read each time (never patched from
an event's payload), so events may arrive late, twice or out of order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.tenants import BillingMode, Tenant

#: Tiers a tenant may subscribe to itself (seed 003); free and enterprise are not sold through Checkout.
SELF_SERVE_TIERS = ("pilot", "starter", "growth", "scale")

#: Stripe subscription statuses under which the paid plan is in force (past_due: Stripe is still retrying
#: the payment; the missing-payment flag, not the plan, handles it).
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})


def check_tier(value: object) -> str:
    """Seed 003: ``tier`` is one of pilot, starter, growth, scale (else 400 VALIDATION_ERROR)."""
    if not isinstance(value, str) or value not in SELF_SERVE_TIERS:
        raise ValidationError(f"tier must be one of: {', '.join(SELF_SERVE_TIERS)}", field="tier")
    return value


@dataclass(frozen=True)
class Subscription:
    """A provider subscription, reduced to what plan state needs."""

    id: str
    customer_id: str
    status: str
    tier: str | None  # the catalogue tier of its plan price; None when the price is not one of ours
    current_period_end: datetime | None
    cancel_at_period_end: bool = False
    tenant_id: str | None = None  # metadata.tenant_id, set by Tally at checkout

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES and self.tier is not None


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


def is_second_subscription(tenant: Tenant, subscription: Subscription) -> bool:
    """A live subscription other than the tenant's live one: two Checkout sessions were both paid (two tabs,
    the back button). The first stays in force; an operator refunds and cancels the second."""
    return (subscription.live and tenant.stripe_subscription_id not in (None, subscription.id)
            and tenant.stripe_subscription_status in LIVE_STATUSES)


def apply_subscription(tenant: Tenant, subscription: Subscription, now: datetime) -> Tenant:
    """The tenant's plan as the subscription says it is now.

    A live subscription puts its tier in force at once (monthly billing: allotment plus overage);
    an ended one reverts the tenant to the free plan. The same subscription read twice gives the
    same tenant, so applying it again changes nothing (``tenant`` is returned as is). A second live
    subscription never replaces the first (see :func:`is_second_subscription`)."""
    if is_second_subscription(tenant, subscription):
        return tenant
    if subscription.live:
        after = replace(
            tenant.with_plan(subscription.tier, BillingMode.MONTHLY, now),
            stripe_customer_id=subscription.customer_id,
            stripe_subscription_id=subscription.id,
            stripe_subscription_status=subscription.status,
            stripe_current_period_end=subscription.current_period_end,
            cancel_at_period_end=subscription.cancel_at_period_end,
        )
    elif tenant.stripe_subscription_id not in (None, subscription.id):
        return tenant  # an older subscription ended; the tenant has moved on to another one
    else:
        after = replace(
            tenant.with_plan("free" if tenant.plan != "enterprise" else tenant.plan, tenant.billing_mode, now),
            stripe_customer_id=tenant.stripe_customer_id or subscription.customer_id,
            stripe_subscription_id=None,
            stripe_subscription_status=subscription.status,
            stripe_current_period_end=None,
            cancel_at_period_end=False,
        )
    if _plan_fields(after) == _plan_fields(tenant):
        return tenant
    return replace(after, updated_at=now)


def _plan_fields(tenant: Tenant) -> tuple:
    return (tenant.plan, tenant.billing_mode, tenant.stripe_customer_id, tenant.stripe_subscription_id,
            tenant.stripe_subscription_status, tenant.stripe_current_period_end, tenant.cancel_at_period_end)
