"""Platform operator use cases (seed 002): tokens, tenant directory, missing payments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.credentials import hash_secret, parse_platform_token
from chalicelib.domain.errors import AuthenticationError, NotFoundError, PermissionDeniedError, ValidationError
from chalicelib.domain.identity import PLATFORM_TENANT_ID, Ability
from chalicelib.domain.tenants import TenantStatus
from chalicelib.services import auth
from chalicelib.services import platform as service
from tests.unit.builders import NOW, audit_actions, platform, seed_tenant

WRITER = platform(Ability.TENANTS_WRITE)
READER = platform(Ability.TENANTS_READ, Ability.CROSS_TENANT)
LATER = NOW + timedelta(days=2)

# --- platform tokens -----------------------------------------------------------------------


def test_created_token_authenticates_with_its_abilities(uow):
    token, plaintext = service.create_platform_token(
        uow, name="ops", abilities=["tenants:read", "cross-tenant"], now=NOW)
    assert parse_platform_token(plaintext)[0] == token.token_id
    stored = uow.platform_tokens.get(token.token_id)
    assert stored == token and stored.secret_hash == hash_secret(plaintext)
    assert plaintext.split("|")[1] not in repr(stored)
    principal = auth.authenticate_platform_token(uow, plaintext, now=NOW)
    assert principal.abilities == frozenset({"tenants:read", "cross-tenant"})


def test_created_token_is_audited_on_the_platform_tenant(uow):
    token, _ = service.create_platform_token(uow, name="ops", abilities=["tenants:write", "cross-tenant"], now=NOW)
    [entry] = uow.audit.list(PLATFORM_TENANT_ID, 10, None).items
    assert (entry.action, entry.actor, entry.target) == (
        "platform_token.created", "operator:cli", f"platform_token:{token.token_id}")
    assert entry.details == {"abilities": ["cross-tenant", "tenants:write"]}


def test_unnamed_token_is_named_after_its_id(uow):
    token, _ = service.create_platform_token(uow, name="", abilities=[], now=NOW)
    assert token.name == token.token_id


@pytest.mark.parametrize("abilities, unknown", [
    (["tenants:delete"], "tenants:delete"),
    (["tenants:read", "admin", "Cross-Tenant"], "Cross-Tenant, admin"),
    (["*"], "*"),
])
def test_unknown_abilities_are_rejected_and_nothing_is_stored(uow, abilities, unknown):
    with pytest.raises(ValidationError) as caught:
        service.create_platform_token(uow, name="ops", abilities=abilities, now=NOW)
    assert caught.value.details == {"field": "abilities"}
    assert caught.value.message == f"unknown abilities: {unknown}"
    assert uow.committed == []


def test_revoked_token_stops_authenticating_and_revoking_again_is_a_no_op(uow):
    token, plaintext = service.create_platform_token(uow, name="ops", abilities=["tenants:read"], now=NOW)
    revoked = service.revoke_platform_token(uow, token.token_id, now=LATER)
    assert revoked.revoked_at == LATER and uow.platform_tokens.get(token.token_id) == revoked
    with pytest.raises(AuthenticationError):
        auth.authenticate_platform_token(uow, plaintext, now=LATER)
    commits = len(uow.committed)
    assert service.revoke_platform_token(uow, token.token_id, now=LATER + timedelta(days=1)) == revoked
    assert len(uow.committed) == commits
    assert audit_actions(uow, PLATFORM_TENANT_ID) == ["platform_token.revoked", "platform_token.created"]


def test_revoking_an_unknown_token_is_not_found(uow):
    with pytest.raises(NotFoundError):
        service.revoke_platform_token(uow, "ptk_Unknown0000001", now=NOW)


# --- directory -----------------------------------------------------------------------------


@pytest.mark.parametrize("abilities", [
    (), (Ability.TENANTS_READ,), (Ability.CROSS_TENANT,), (Ability.TENANTS_WRITE, Ability.CROSS_TENANT),
])
def test_listing_tenants_needs_read_and_cross_tenant(uow, abilities):
    with pytest.raises(PermissionDeniedError) as caught:
        service.list_tenants(uow, platform(*abilities), per_page=15, cursor=None)
    assert caught.value.code == "invalid_ability"


@pytest.fixture
def directory(uow):
    seed_tenant(uow, PLATFORM_TENANT_ID, "Platform")
    for tenant_id in ("10", "2", "11", "9", "3"):
        seed_tenant(uow, tenant_id, f"Tenant {tenant_id}")
    seed_tenant(uow, "4", "Pending", status=TenantStatus.PENDING)
    seed_tenant(uow, "5", "Suspended", status=TenantStatus.SUSPENDED)
    gone = seed_tenant(uow, "6", "Gone")
    uow.tenants.save(gone.deleted(NOW))
    uow.commit()


def test_directory_lists_live_customer_tenants_by_numeric_id(uow, directory):
    page = service.list_tenants(uow, READER, per_page=15, cursor=None)
    assert [t.id for t in page.items] == ["2", "3", "9", "10", "11"]
    assert page.next_cursor is None


def test_directory_pages_with_cursors(uow, directory):
    seen, cursor = [], None
    for _ in range(5):
        page = service.list_tenants(uow, READER, per_page=2, cursor=cursor)
        seen.append([t.id for t in page.items])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [["2", "3"], ["9", "10"], ["11"]]


def test_directory_refuses_a_cursor_from_another_listing(uow, directory):
    from chalicelib.adapters.dynamodb.cursors import encode_cursor

    foreign = encode_cursor({"pk": {"S": "T#2"}, "sk": {"S": "KEY#x"}}, 1)
    with pytest.raises(ValidationError):
        service.list_tenants(uow, READER, per_page=2, cursor=foreign)


# --- missing payments ----------------------------------------------------------------------


@pytest.fixture
def billed(uow):
    seed_tenant(uow, PLATFORM_TENANT_ID, "Platform", stripe_customer_id="cus_platform")
    seed_tenant(uow, "2", "Acme", stripe_customer_id="cus_acme")
    seed_tenant(uow, "3", "Free Co")
    uow.committed.clear()


def test_marking_missing_payments_flags_the_tenant_and_audits(uow, billed):
    updated = service.mark_missing_payments(uow, WRITER, "2", now=NOW)
    assert updated.has_unpaid_invoices_at == NOW
    assert uow.tenants.get("2").missing_payment_limit_date == NOW + timedelta(days=14)
    entry = uow.audit.list("2", 1, None).items[0]
    assert (entry.action, entry.actor, entry.target) == (
        "tenant.missing_payments.marked", "platform_token:ptk_testtoken", "tenant:2")


def test_marking_again_keeps_the_first_date_and_writes_nothing(uow, billed):
    service.mark_missing_payments(uow, WRITER, "2", now=NOW)
    again = service.mark_missing_payments(uow, WRITER, "2", now=LATER)
    assert again.has_unpaid_invoices_at == NOW and uow.tenants.get("2").has_unpaid_invoices_at == NOW
    assert uow.committed == [2]


def test_clearing_missing_payments_unflags_and_audits(uow, billed):
    service.mark_missing_payments(uow, WRITER, "2", now=NOW)
    cleared = service.clear_missing_payments(uow, WRITER, "2", now=LATER)
    assert cleared.has_unpaid_invoices_at is None and uow.tenants.get("2").has_unpaid_invoices_at is None
    assert audit_actions(uow, "2") == ["tenant.missing_payments.cleared", "tenant.missing_payments.marked"]


@pytest.mark.parametrize("tenant_id", ["2", "3"])
def test_clearing_a_clear_tenant_is_a_no_op(uow, billed, tenant_id):
    result = service.clear_missing_payments(uow, WRITER, tenant_id, now=NOW)
    assert result.id == tenant_id and result.has_unpaid_invoices_at is None
    assert uow.committed == []


def test_marking_a_tenant_without_stripe_customer_is_refused(uow, billed):
    with pytest.raises(ValidationError) as caught:
        service.mark_missing_payments(uow, WRITER, "3", now=NOW)
    assert caught.value.code == "tenant_has_no_stripe_customer"
    assert uow.committed == []


@pytest.mark.parametrize("operation", [service.mark_missing_payments, service.clear_missing_payments])
def test_the_platform_tenant_cannot_be_targeted(uow, billed, operation):
    with pytest.raises(PermissionDeniedError) as caught:
        operation(uow, WRITER, PLATFORM_TENANT_ID, now=NOW)
    assert caught.value.code == "platform_tenant_forbidden"
    assert uow.committed == []


@pytest.mark.parametrize("operation", [service.mark_missing_payments, service.clear_missing_payments])
@pytest.mark.parametrize("tenant_id", ["404", "abc", "", "2a", "-2"])
def test_unknown_tenants_are_not_found(uow, billed, operation, tenant_id):
    with pytest.raises(NotFoundError) as caught:
        operation(uow, WRITER, tenant_id, now=NOW)
    assert caught.value.code == "tenant_not_found"


@pytest.mark.parametrize("operation", [service.mark_missing_payments, service.clear_missing_payments])
@pytest.mark.parametrize("tenant_id", ["2", PLATFORM_TENANT_ID, "404"])
def test_missing_payments_need_tenants_write_before_anything_else(uow, billed, operation, tenant_id):
    with pytest.raises(PermissionDeniedError) as caught:
        operation(uow, READER, tenant_id, now=NOW)
    assert caught.value.code == "invalid_ability"
