"""Tenants and their users: lifecycle, deletion and missing-payment rules."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import PLATFORM_TENANT_ID, Role

#: Fixed by the platform (seed 002): flagged tenants are blocked two weeks later.
MISSING_PAYMENT_GRACE = timedelta(days=14)
#: How long plan changes are remembered: long enough for the rollover to price any month it may still close.
PLAN_HISTORY_KEPT = timedelta(days=92)

DELETION_MESSAGE = (
    "Your account has been deleted. All API keys, webhooks, and integrations have been "
    "deactivated. Verification data is preserved permanently for audit purposes."
)


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    PENDING = "pending"


class BillingMode(StrEnum):
    MONTHLY = "monthly"
    CREDITS = "credits"


class ProvisioningState(StrEnum):
    PROVISIONED = "provisioned"
    PROVISIONING = "provisioning"
    NOT_PROVISIONED = "not_provisioned"
    DISABLED = "disabled"


class UserStatus(StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class PlanChange:
    """Until ``at`` the tenant was on ``plan``, billed ``billing_mode``. A closed month is priced under the
    plan in force at its end, whenever the rollover gets to it (a cancellation that took effect at 00:00 on
    the 1st, or a downgrade that morning, must not reprice the month before)."""

    at: datetime
    plan: str
    billing_mode: str


@dataclass
class Tenant:
    id: str
    company_name: str
    created_at: datetime
    updated_at: datetime
    status: TenantStatus = TenantStatus.ACTIVE
    billing_mode: BillingMode = BillingMode.MONTHLY
    plan: str = "free"
    environments: dict[str, str] = field(
        default_factory=lambda: {
            "sandbox": ProvisioningState.PROVISIONED,
            "production": ProvisioningState.PROVISIONED,
        }
    )
    stripe_customer_id: str | None = None
    stripe_subscription_id: str | None = None
    stripe_subscription_status: str | None = None
    stripe_current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    subdomain: str | None = None
    final_domain: str | None = None
    https: bool = True
    lang: str = "en"
    has_unpaid_invoices_at: datetime | None = None
    dashboard_blocked_at: datetime | None = None  # when the block job recorded the block (None: not recorded)
    plan_changes: tuple[PlanChange, ...] = ()  # recent changes, oldest first (PLAN_HISTORY_KEPT)
    deleted_at: datetime | None = None
    version: int | None = None

    @property
    def is_platform(self) -> bool:
        return self.id == PLATFORM_TENANT_ID

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def listed_in_directory(self) -> bool:
        """Seed 002 lists tenants with an active plan: live customer tenants only."""
        return self.status == TenantStatus.ACTIVE and not self.is_deleted and not self.is_platform

    # Plans over time.
    def with_plan(self, plan: str, billing_mode: BillingMode, now: datetime) -> Tenant:
        """The tenant on ``plan`` from ``now``, the change remembered; unchanged when it is the same plan."""
        if (plan, billing_mode) == (self.plan, self.billing_mode):
            return self
        kept = tuple(c for c in self.plan_changes if now - c.at <= PLAN_HISTORY_KEPT)
        change = PlanChange(at=now, plan=self.plan, billing_mode=str(self.billing_mode))
        return replace(self, plan=plan, billing_mode=billing_mode, plan_changes=(*kept, change), updated_at=now)

    def plan_before(self, moment: datetime) -> tuple[str, BillingMode]:
        """The plan and billing mode in force just before ``moment`` (e.g. a period's end)."""
        for change in sorted(self.plan_changes, key=lambda c: c.at):
            if change.at >= moment:
                return change.plan, BillingMode(change.billing_mode)
        return self.plan, self.billing_mode

    # Missing payments (seed 002).
    @property
    def missing_payment_limit_date(self) -> datetime | None:
        if self.has_unpaid_invoices_at is None:
            return None
        return self.has_unpaid_invoices_at + MISSING_PAYMENT_GRACE

    def dashboard_blocked(self, now: datetime) -> bool:
        """Blocked whenever ``now`` is past the limit date (computed, never stored)."""
        limit = self.missing_payment_limit_date
        return limit is not None and now > limit

    def mark_missing_payment(self, now: datetime) -> Tenant:
        """Flag unpaid invoices; re-flagging keeps the first mark so the grace period never resets."""
        if self.has_unpaid_invoices_at is not None:
            return self
        return replace(self, has_unpaid_invoices_at=now, updated_at=now)

    def clear_missing_payment(self, now: datetime) -> Tenant:
        if self.has_unpaid_invoices_at is None:
            return self
        return replace(self, has_unpaid_invoices_at=None, updated_at=now)

    # Deletion (seed 000).
    def check_deletion_confirmation(self, confirmation: object) -> None:
        """The confirmation must equal the company name exactly (case and spaces included)."""
        if not isinstance(confirmation, str) or confirmation == "":
            raise ValidationError("confirmation is required", field="confirmation")
        if confirmation != self.company_name:
            raise ValidationError(
                "confirmation must exactly match your organization name",
                code="CONFIRMATION_MISMATCH",
                field="confirmation",
            )

    def deleted(self, now: datetime) -> Tenant:
        """The tenant as it stands once deleted: suspended, environments disabled, plan cancelled."""
        return replace(
            self.with_plan("free", self.billing_mode, now),
            status=TenantStatus.SUSPENDED,
            deleted_at=self.deleted_at or now,
            updated_at=now,
            environments={name: ProvisioningState.DISABLED for name in self.environments},
            stripe_subscription_id=None,
            stripe_subscription_status=None,
            stripe_current_period_end=None,
            cancel_at_period_end=False,
        )


@dataclass
class User:
    tenant_id: str
    user_id: str
    email: str
    role: Role
    created_at: datetime
    status: UserStatus = UserStatus.ACTIVE

    @property
    def is_active(self) -> bool:
        return self.status == UserStatus.ACTIVE
