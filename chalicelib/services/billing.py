"""Seed 003's subscription use cases: plan details, Checkout, plan change, Customer Portal, cancel.

The billing provider (Stripe, or the local stand-in) owns the subscription; the tenant's plan is its
projection (domain/subscriptions.py). Plan changes and cancellations are applied to the tenant as soon
as the provider answers, so they take effect at once; the Stripe webhook applies the same projection
again from a fresh read, which changes nothing. Checkout completes later, in the provider's page, and
reaches the tenant through the webhook only. Every action is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import period_of
from chalicelib.domain.errors import ConflictError, NotFoundError
from chalicelib.domain.identity import DashboardPrincipal, Permission
from chalicelib.domain.plans import Plan, plan_for
from chalicelib.domain.subscriptions import CheckoutSession, Subscription, apply_subscription, check_tier
from chalicelib.domain.tenants import Tenant
from chalicelib.services.ports import BillingProvider, UnitOfWork
from chalicelib.services.retry import retry_on_conflict

SUBSCRIBE_ROUTE = "POST /dashboard/stripe/create-subscription-session"
CHANGE_PLAN_ROUTE = "POST /dashboard/stripe/change-plan"
MAX_APPLY_ATTEMPTS = 5


@dataclass(frozen=True)
class PlanDetails:
    tenant: Tenant
    plan: Plan


def _tenant(uow: UnitOfWork, principal: DashboardPrincipal) -> Tenant:
    tenant = uow.tenants.get(principal.tenant_id)
    if tenant is None:
        raise NotFoundError("Tenant not found.")
    return tenant


def _audit(uow: UnitOfWork, principal: DashboardPrincipal, action: str, now: datetime, **details: Any) -> None:
    uow.audit.add(AuditEntry(tenant_id=principal.tenant_id, actor=principal.actor, action=action,
                             target=f"tenant:{principal.tenant_id}", at=now,
                             details={k: v for k, v in details.items() if v is not None}))


def _require_subscription(tenant: Tenant) -> str:
    if not tenant.stripe_subscription_id:
        raise ConflictError(f"The tenant has no active subscription; subscribe first with {SUBSCRIBE_ROUTE}.",
                            code="NO_ACTIVE_SUBSCRIPTION")
    return tenant.stripe_subscription_id


def _key(action: str, tenant: Tenant, *parts: str) -> str:
    """Deterministic per action and tenant state: a retried click reuses the provider's first answer,
    while the same action on a later state (the tenant's version moved) is a new request."""
    return ":".join(("tally", action, tenant.id, *parts, f"v{tenant.version or 0}"))


def plan_details(uow: UnitOfWork, principal: DashboardPrincipal) -> PlanDetails:
    principal.require(Permission.BILLING_READ)
    tenant = _tenant(uow, principal)
    return PlanDetails(tenant=tenant, plan=plan_for(tenant.plan))


def start_subscription(uow: UnitOfWork, principal: DashboardPrincipal, *, tier: object, provider: BillingProvider,
                       return_url: str, now: datetime) -> CheckoutSession:
    """A Checkout session for ``tier``; the plan becomes active when the provider reports the payment."""
    principal.require(Permission.BILLING_WRITE)
    tier = check_tier(tier)
    tenant = _tenant(uow, principal)
    if tenant.stripe_subscription_id:
        raise ConflictError(f"The tenant already has a subscription ({tenant.plan}); change its tier with "
                            f"{CHANGE_PLAN_ROUTE}.", code="SUBSCRIPTION_EXISTS")
    user = uow.users.get(principal.tenant_id, principal.user_id)
    session = provider.create_checkout_session(
        tenant_id=tenant.id, tier=tier, customer_id=tenant.stripe_customer_id,
        customer_email=user.email if user else None, success_url=f"{return_url}?checkout=success",
        cancel_url=f"{return_url}?checkout=cancelled",
        idempotency_key=_key("checkout", tenant, tier, period_of(now)))  # the cycle anchor is part of the request
    _audit(uow, principal, "billing.checkout_session.created", now, tier=tier, sessionId=session.id)
    uow.commit()
    return session


def _apply(uow: UnitOfWork, principal: DashboardPrincipal, subscription: Subscription, action: str,
           now: datetime, **details: Any) -> Tenant:
    """Project the provider's answer onto the tenant at once, with the audit entry, in one commit."""

    def attempt(_n: int) -> Tenant:
        tenant = _tenant(uow, principal)
        after = apply_subscription(tenant, subscription, now)
        if after is not tenant:
            uow.tenants.save(after)
        _audit(uow, principal, action, now, subscriptionId=subscription.id, **details)
        uow.commit()
        return after

    return retry_on_conflict(uow, attempt, attempts=MAX_APPLY_ATTEMPTS,
                             message="The tenant kept changing while its plan was updated; retry.")


def change_plan(uow: UnitOfWork, principal: DashboardPrincipal, *, tier: object, provider: BillingProvider,
                now: datetime) -> Subscription:
    """Immediate, with proration; the month's usage is not reset (counters are per UTC month)."""
    principal.require(Permission.BILLING_WRITE)
    tier = check_tier(tier)
    tenant = _tenant(uow, principal)
    subscription_id = _require_subscription(tenant)
    subscription = provider.change_plan(subscription_id, tier=tier,
                                        idempotency_key=_key("change-plan", tenant, subscription_id, tier))
    _apply(uow, principal, subscription, "billing.plan.changed", now, fromTier=tenant.plan, toTier=tier)
    return subscription


def open_portal(uow: UnitOfWork, principal: DashboardPrincipal, *, provider: BillingProvider, return_url: str,
                now: datetime) -> str:
    principal.require(Permission.BILLING_WRITE)
    tenant = _tenant(uow, principal)
    if not tenant.stripe_customer_id:
        raise ConflictError(f"The tenant has no billing account yet; subscribe first with {SUBSCRIBE_ROUTE}.",
                            code="NO_STRIPE_CUSTOMER")
    url = provider.create_portal_session(tenant.stripe_customer_id, return_url=return_url)
    _audit(uow, principal, "billing.portal_session.created", now)
    uow.commit()
    return url


def cancel_subscription(uow: UnitOfWork, principal: DashboardPrincipal, *, provider: BillingProvider,
                        now: datetime) -> Subscription:
    """Scheduled for the period end: the plan stays until then, then reverts to free."""
    principal.require(Permission.BILLING_WRITE)
    tenant = _tenant(uow, principal)
    subscription_id = _require_subscription(tenant)
    subscription = provider.cancel_at_period_end(subscription_id,
                                                 idempotency_key=_key("cancel", tenant, subscription_id))
    _apply(uow, principal, subscription, "billing.subscription.cancel_scheduled", now,
           currentPeriodEnd=subscription.current_period_end.isoformat() if subscription.current_period_end else None)
    return subscription
