"""How many deltas a tenant may have accepted right now (SPEC "Billing").

* credits billing: as many as the available credits pay for;
* monthly billing on a hard-capped plan (free): up to the allotment this UTC month;
* monthly billing on a paid plan: unlimited, the excess is overage.
The storage conditions re-check the same numbers exactly at commit time.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.credits import CreditAccount
from chalicelib.domain.plans import Plan
from chalicelib.domain.tenants import BillingMode, Tenant


@dataclass(frozen=True)
class Capacity:
    limit: int | None  # None: unlimited
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class BillingReads:
    """What acceptance must read besides the tenant: the month's usage (a hard-capped plan's limit) and the
    credit position (credits billing). A paid monthly plan needs neither: its excess is overage."""

    usage: bool
    credits: bool

    def covers(self, other: BillingReads) -> bool:
        return (self.usage or not other.usage) and (self.credits or not other.credits)


EVERYTHING = BillingReads(usage=True, credits=True)


def billing_reads(tenant: Tenant, plan: Plan) -> BillingReads:
    credits = tenant.billing_mode == BillingMode.CREDITS
    return BillingReads(usage=not credits and plan.hard_cap, credits=credits)


def acceptance_capacity(tenant: Tenant, plan: Plan, *, consumed: int, credits: CreditAccount | None) -> Capacity:
    if tenant.billing_mode == BillingMode.CREDITS:
        if credits is None:
            raise ValueError("credits billing needs the credit position")
        return Capacity(
            credits.available // plan.credits_per_delta,
            "INSUFFICIENT_CREDITS",
            f"Insufficient credits: {credits.available} available, {plan.credits_per_delta} needed per delta.",
        )
    if plan.hard_cap and plan.monthly_allotment is not None:
        return Capacity(
            max(0, plan.monthly_allotment - consumed),
            "PLAN_LIMIT_EXCEEDED",
            f"The {plan.tier} plan allows {plan.monthly_allotment} deltas per UTC month; "
            "upgrade to a paid plan to continue.",
        )
    return Capacity(None)
