"""Tenant rules: deletion confirmation and effects, missing payments, directory listing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import PLATFORM_TENANT_ID
from chalicelib.domain.tenants import (
    MISSING_PAYMENT_GRACE,
    ProvisioningState,
    TenantStatus,
)
from tests.unit.builders import NOW, tenant

# --- deletion confirmation -----------------------------------------------------------------


def test_confirmation_equal_to_the_company_name_is_accepted():
    tenant(company_name="Acme Inc").check_deletion_confirmation("Acme Inc")


@pytest.mark.parametrize("confirmation", [
    "acme inc", "ACME INC", "Acme inc", "Acme Inc ", " Acme Inc", "Acme  Inc", "Acme Inc\n", "Acme Inc.", "Other Co",
])
def test_confirmation_must_match_exactly_including_case_and_whitespace(confirmation):
    with pytest.raises(ValidationError) as caught:
        tenant(company_name="Acme Inc").check_deletion_confirmation(confirmation)
    assert caught.value.code == "CONFIRMATION_MISMATCH"
    assert caught.value.details == {"field": "confirmation"}


@pytest.mark.parametrize("confirmation", [None, "", 42, 0, ["Acme Inc"], {"name": "Acme Inc"}, b"Acme Inc"])
def test_missing_or_non_string_confirmation_is_a_plain_validation_error(confirmation):
    with pytest.raises(ValidationError) as caught:
        tenant(company_name="Acme Inc").check_deletion_confirmation(confirmation)
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.details == {"field": "confirmation"}


# --- deletion effects ----------------------------------------------------------------------


def _paying_tenant():
    return tenant(plan="pro", stripe_customer_id="cus_123", stripe_subscription_id="sub_123",
                  cancel_at_period_end=True, environments={"sandbox": "provisioned", "production": "provisioning"})


def test_deleted_tenant_is_suspended_with_every_environment_disabled():
    deleted = _paying_tenant().deleted(NOW + timedelta(hours=1))
    assert deleted.status == TenantStatus.SUSPENDED
    assert deleted.environments == {"sandbox": ProvisioningState.DISABLED, "production": ProvisioningState.DISABLED}


def test_deleted_tenant_falls_back_to_the_free_plan_without_subscription():
    deleted = _paying_tenant().deleted(NOW)
    assert deleted.plan == "free"
    assert deleted.stripe_subscription_id is None
    assert deleted.cancel_at_period_end is False


def test_deleted_tenant_records_when_and_keeps_its_identity():
    later = NOW + timedelta(days=3)
    original = _paying_tenant()
    deleted = original.deleted(later)
    assert deleted.deleted_at == later and deleted.updated_at == later
    assert deleted.is_deleted
    assert (deleted.id, deleted.company_name, deleted.created_at) == (original.id, "Acme Inc", NOW)
    assert deleted.stripe_customer_id == "cus_123"  # invoices stay reachable


def test_deleted_returns_a_copy_and_leaves_the_original_untouched():
    original = _paying_tenant()
    original.deleted(NOW)
    assert original.status == TenantStatus.ACTIVE and original.deleted_at is None
    assert original.environments["sandbox"] == "provisioned" and original.plan == "pro"


# --- missing payments ----------------------------------------------------------------------


def test_marking_missing_payment_stamps_the_time():
    marked = tenant().mark_missing_payment(NOW)
    assert marked.has_unpaid_invoices_at == NOW and marked.updated_at == NOW


def test_re_marking_keeps_the_first_mark_so_the_grace_period_never_resets():
    first = tenant().mark_missing_payment(NOW)
    again = first.mark_missing_payment(NOW + timedelta(days=10))
    assert again is first
    assert again.has_unpaid_invoices_at == NOW
    assert again.missing_payment_limit_date == NOW + timedelta(days=14)


def test_clearing_missing_payment_removes_the_mark():
    later = NOW + timedelta(days=1)
    cleared = tenant().mark_missing_payment(NOW).clear_missing_payment(later)
    assert cleared.has_unpaid_invoices_at is None and cleared.updated_at == later
    assert cleared.missing_payment_limit_date is None


def test_clearing_an_unflagged_tenant_changes_nothing():
    clear = tenant()
    assert clear.clear_missing_payment(NOW + timedelta(days=1)) is clear


def test_limit_date_is_fourteen_days_after_the_mark():
    assert timedelta(days=14) == MISSING_PAYMENT_GRACE
    assert tenant().missing_payment_limit_date is None
    assert tenant().mark_missing_payment(NOW).missing_payment_limit_date == NOW + timedelta(days=14)


@pytest.mark.parametrize("offset, blocked", [
    (timedelta(0), False),
    (timedelta(days=13, hours=23, minutes=59), False),
    (timedelta(days=14), False),  # exactly the limit date: not yet
    (timedelta(days=14, microseconds=1), True),
    (timedelta(days=30), True),
])
def test_dashboard_is_blocked_only_strictly_after_the_limit_date(offset, blocked):
    assert tenant().mark_missing_payment(NOW).dashboard_blocked(NOW + offset) is blocked


def test_unflagged_or_cleared_tenant_is_never_blocked():
    far = NOW + timedelta(days=365)
    assert tenant().dashboard_blocked(far) is False
    assert tenant().mark_missing_payment(NOW).clear_missing_payment(NOW).dashboard_blocked(far) is False


# --- directory -----------------------------------------------------------------------------


@pytest.mark.parametrize("subject, listed", [
    (tenant(), True),
    (tenant(tenant_id=PLATFORM_TENANT_ID), False),
    (tenant().deleted(NOW), False),
    (tenant(deleted_at=NOW), False),  # deleted even if the status was left active
    (tenant(status=TenantStatus.SUSPENDED), False),
    (tenant(status=TenantStatus.PENDING), False),
    (tenant().mark_missing_payment(NOW - timedelta(days=30)), True),  # blocked dashboards stay listed
], ids=["active", "platform", "deleted", "deleted-but-active", "suspended", "pending", "blocked"])
def test_directory_lists_only_live_customer_tenants(subject, listed):
    assert subject.listed_in_directory is listed


# --- plans over time ---------------------------------------------------------------------------------------


def test_plan_before_a_moment_follows_the_remembered_changes():
    from chalicelib.domain.tenants import BillingMode

    start = tenant(plan="pilot")
    first = start.with_plan("growth", BillingMode.MONTHLY, NOW + timedelta(days=1))
    second = first.with_plan("free", BillingMode.MONTHLY, NOW + timedelta(days=2))
    assert second.plan == "free" and len(second.plan_changes) == 2
    assert second.plan_before(NOW + timedelta(hours=1)) == ("pilot", BillingMode.MONTHLY)
    assert second.plan_before(NOW + timedelta(days=1)) == ("pilot", BillingMode.MONTHLY)  # just before the change
    assert second.plan_before(NOW + timedelta(days=1, hours=1)) == ("growth", BillingMode.MONTHLY)
    assert second.plan_before(NOW + timedelta(days=3)) == ("free", BillingMode.MONTHLY)


def test_the_same_plan_is_no_change_and_old_changes_are_forgotten():
    from chalicelib.domain.tenants import PLAN_HISTORY_KEPT, BillingMode

    start = tenant(plan="pilot")
    assert start.with_plan("pilot", start.billing_mode, NOW) is start
    changed = start.with_plan("growth", BillingMode.MONTHLY, NOW)
    later = changed.with_plan("scale", BillingMode.MONTHLY, NOW + PLAN_HISTORY_KEPT + timedelta(days=1))
    assert [c.plan for c in later.plan_changes] == ["growth"]  # the pilot → growth change has aged out


def test_deletion_remembers_the_plan_it_ended():
    deleted = tenant(plan="starter").deleted(NOW)
    assert deleted.plan == "free" and deleted.plan_before(NOW) == ("starter", deleted.plan_changes[0].billing_mode)
