"""Tenant use cases: create (operator), delete (seed 000), ensure_user."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.access import KeyStatus
from chalicelib.domain.errors import (
    ConflictError,
    InvalidApiKeyError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from chalicelib.domain.identity import Environment, Role
from chalicelib.domain.tenants import DELETION_MESSAGE, TenantStatus, UserStatus
from chalicelib.domain.webhooks import Endpoint, EndpointStatus
from chalicelib.services import auth
from chalicelib.services import tenants as service
from tests.fakes import FakeUnitOfWork
from tests.unit.builders import NOW, audit_actions, dashboard, seed_key, seed_tenant, seed_user

# --- create --------------------------------------------------------------------------------


def test_tenant_ids_come_from_the_counter(uow):
    first, _ = service.create_tenant(uow, company_name="First", now=NOW)
    second, _ = service.create_tenant(uow, company_name="Second", now=NOW)
    assert (first.id, second.id) == ("1", "2")
    assert uow.tenants.get("2").company_name == "Second"


def test_create_tenant_stores_the_profile(uow):
    tenant, _owner = service.create_tenant(uow, company_name="  Acme Inc  ", now=NOW, plan="pro",
                                           stripe_customer_id="cus_123", lang="de")
    stored = uow.tenants.get(tenant.id)
    assert stored.company_name == "Acme Inc"
    assert (stored.plan, stored.stripe_customer_id, stored.lang) == ("pro", "cus_123", "de")
    assert stored.status == TenantStatus.ACTIVE and stored.created_at == NOW
    assert stored.subdomain == f"tenant-{tenant.id}.tally.local"


def test_create_tenant_creates_an_active_owner(uow):
    tenant, owner = service.create_tenant(uow, company_name="Acme", now=NOW, owner_email="boss@acme.test")
    stored = uow.users.get(tenant.id, owner.user_id)
    assert stored is not None and stored.role == Role.OWNER and stored.is_active
    assert stored.email == "boss@acme.test" and owner.user_id.startswith("usr_")
    assert uow.users.list(tenant.id) == [stored]


def test_create_tenant_writes_one_audit_entry(uow):
    tenant, _owner = service.create_tenant(uow, company_name="Acme", now=NOW, actor="operator:alice")
    [entry] = uow.audit.list(tenant.id, 10, None).items
    assert (entry.action, entry.actor, entry.target, entry.at) == (
        "tenant.created", "operator:alice", f"tenant:{tenant.id}", NOW)


def test_create_tenant_writes_everything_in_one_transaction(uow):
    service.create_tenant(uow, company_name="Acme", now=NOW)
    assert uow.committed == [3]


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 201])
def test_tenant_name_must_be_1_to_200_characters(uow, name):
    with pytest.raises(ValidationError) as caught:
        service.create_tenant(uow, company_name=name, now=NOW)
    assert caught.value.details == {"field": "name"}
    assert uow.committed == []


def test_a_200_character_name_is_accepted(uow):
    tenant, _ = service.create_tenant(uow, company_name="x" * 200, now=NOW)
    assert len(uow.tenants.get(tenant.id).company_name) == 200


@pytest.mark.parametrize("stripe_id", ["sub_123", "CUS_123", "", "cus", " cus_123"])
def test_stripe_customer_id_must_start_with_cus(uow, stripe_id):
    with pytest.raises(ValidationError) as caught:
        service.create_tenant(uow, company_name="Acme", now=NOW, stripe_customer_id=stripe_id)
    assert caught.value.details == {"field": "stripeCustomerId"}


def test_invalid_input_consumes_no_tenant_id(uow):
    with pytest.raises(ValidationError):
        service.create_tenant(uow, company_name="Acme", now=NOW, stripe_customer_id="sub_1")
    tenant, _ = service.create_tenant(uow, company_name="Acme", now=NOW)
    assert tenant.id == "1"


def test_seeding_an_existing_tenant_id_conflicts_and_writes_nothing(uow):
    service.create_tenant(uow, company_name="Acme", now=NOW, tenant_id="7")
    with pytest.raises(ConflictError):
        service.create_tenant(uow, company_name="Impostor", now=NOW, tenant_id="7", owner_email="x@y.test")
    assert uow.tenants.get("7").company_name == "Acme"
    assert len(uow.users.list("7")) == 1
    assert audit_actions(uow, "7") == ["tenant.created"]


# --- delete --------------------------------------------------------------------------------


@pytest.fixture
def populated(uow):
    """Tenant 2 with 120 active keys over both environments, a revoked key, five users
    (one already deactivated), and a neighbour tenant 3 with a live key."""
    seed_tenant(uow, "2", "Acme Inc", plan="pro", stripe_customer_id="cus_1", stripe_subscription_id="sub_1")
    for n in range(70):
        seed_key(uow, "2", Environment.PRODUCTION, key_id=f"Prod{n:08d}")
    for n in range(50):
        seed_key(uow, "2", Environment.SANDBOX, key_id=f"Sand{n:08d}")
    revoked_key, _ = seed_key(uow, "2", Environment.PRODUCTION, key_id="Revoked00001", status=KeyStatus.REVOKED)
    for user_id, role in [("usr_owner", Role.OWNER), ("usr_admin", Role.ADMIN), ("usr_mgr", Role.MANAGER),
                          ("usr_view", Role.VIEWER)]:
        seed_user(uow, "2", user_id, role)
    seed_user(uow, "2", "usr_gone", Role.VIEWER, status=UserStatus.DEACTIVATED)
    seed_tenant(uow, "3", "Neighbour")
    _, neighbour_key = seed_key(uow, "3", Environment.PRODUCTION, key_id="Neighbour001")
    _, a_live_key = seed_key(uow, "2", Environment.PRODUCTION, key_id="Prod99999999")
    uow.committed.clear()
    return {"revoked": revoked_key, "neighbour_key": neighbour_key, "live_key": a_live_key}


LATER = NOW + timedelta(days=1)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MANAGER])
def test_only_owners_and_admins_may_delete(uow, populated, role):
    with pytest.raises(PermissionDeniedError) as caught:
        service.delete_tenant(uow, dashboard("2", role), "Acme Inc", now=LATER)
    assert caught.value.code == "FORBIDDEN"
    assert uow.committed == [] and not uow.tenants.get("2").is_deleted


@pytest.mark.parametrize("confirmation", ["acme inc", "Acme Inc ", "", None])
def test_wrong_confirmation_deletes_nothing(uow, populated, confirmation):
    with pytest.raises(ValidationError):
        service.delete_tenant(uow, dashboard("2", Role.OWNER), confirmation, now=LATER)
    assert uow.committed == [] and not uow.tenants.get("2").is_deleted


def test_deleting_an_unknown_tenant_is_not_found(uow):
    with pytest.raises(NotFoundError):
        service.delete_tenant(uow, dashboard("404", Role.OWNER), "Acme Inc", now=LATER)


def test_delete_tenant_returns_the_deletion_message_and_marks_the_tenant(uow, populated):
    assert service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER) == DELETION_MESSAGE
    tenant = uow.tenants.get("2")
    assert tenant.is_deleted and tenant.deleted_at == LATER
    assert tenant.status == TenantStatus.SUSPENDED and tenant.plan == "free"
    assert set(tenant.environments.values()) == {"disabled"}
    assert not tenant.listed_in_directory


def test_delete_tenant_disables_every_active_key_in_both_environments(uow, populated):
    service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER)
    keys = uow.api_keys.list_all("2")
    assert len(keys) == 122
    disabled = [k for k in keys if k.status == KeyStatus.DISABLED]
    assert len(disabled) == 121 and {k.environment for k in disabled} == set(Environment)
    assert all(k.revoked_at == LATER for k in disabled)
    revoked = uow.api_keys.get("2", Environment.PRODUCTION, "Revoked00001")
    assert (revoked.status, revoked.revoked_at) == (KeyStatus.REVOKED, populated["revoked"].revoked_at)
    with pytest.raises(InvalidApiKeyError):
        auth.authenticate_api_key(uow, populated["live_key"], now=LATER, touch_every_seconds=60)


def test_delete_tenant_leaves_other_tenants_alone(uow, populated):
    service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER)
    principal = auth.authenticate_api_key(uow, populated["neighbour_key"], now=LATER, touch_every_seconds=60)
    assert principal.tenant_id == "3" and not uow.tenants.get("3").is_deleted


def test_delete_tenant_deactivates_every_user(uow, populated):
    service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER)
    users = uow.users.list("2")
    assert len(users) == 5 and all(u.status == UserStatus.DEACTIVATED for u in users)


def test_delete_tenant_audits_what_it_did(uow, populated):
    service.delete_tenant(uow, dashboard("2", user_id="usr_admin"), "Acme Inc", now=LATER)
    entry = uow.audit.list("2", 1, None).items[0]
    assert (entry.action, entry.actor, entry.target, entry.at) == (
        "tenant.deleted", "user:usr_admin", "tenant:2", LATER)
    assert entry.details == {"apiKeysDisabled": 121, "usersDeactivated": 4, "webhooksDisabled": 0,
                             "planCancelled": "pro"}


def test_delete_tenant_disables_every_webhook_endpoint_in_both_environments(uow, populated):
    endpoints = [Endpoint(tenant_id=t, environment=env, endpoint_id=f"we_{t}{env}", url="https://hooks.example.com/x",
                          secret="whsec_" + "a" * 32, events=("delta.verified",), created_at=LATER,
                          created_by="user:usr_admin")
                 for t in ("2", "3") for env in Environment]
    for endpoint in endpoints:
        uow.webhooks.save_endpoint(endpoint, new=True)
    uow.commit()
    service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER)
    statuses = {(e.tenant_id, e.environment): e.status
                for env in Environment for t in ("2", "3") for e in uow.webhooks.endpoints(t, env)}
    assert statuses == {("2", Environment.SANDBOX): EndpointStatus.DISABLED,
                        ("2", Environment.PRODUCTION): EndpointStatus.DISABLED,
                        ("3", Environment.SANDBOX): EndpointStatus.ACTIVE,
                        ("3", Environment.PRODUCTION): EndpointStatus.ACTIVE}
    assert uow.audit.list("2", 1, None).items[0].details["webhooksDisabled"] == 2


def test_delete_tenant_writes_in_chunks_within_the_transaction_limit(uow, populated):
    service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER)
    assert uow.committed == [50, 50, 21, 4, 2]  # keys, keys, keys, users, tenant + audit


def test_re_running_a_completed_deletion_is_harmless(uow, populated):
    service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER)
    assert service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER + timedelta(hours=1)) == DELETION_MESSAGE
    assert all(not k.is_active for k in uow.api_keys.list_all("2"))
    assert all(not u.is_active for u in uow.users.list("2"))
    assert uow.tenants.get("2").is_deleted
    assert uow.audit.list("2", 1, None).items[0].details["apiKeysDisabled"] == 0


def test_a_deletion_interrupted_by_a_concurrent_change_is_finished_by_retrying(uow, populated):
    rival = FakeUnitOfWork(uow.store)
    list_users = uow.users.list

    def list_then_rival_saves(tenant_id):
        rival.tenants.save(rival.tenants.get(tenant_id).mark_missing_payment(NOW))  # bumps the version
        rival.commit()
        return list_users(tenant_id)

    uow.users.list = list_then_rival_saves  # type: ignore[method-assign]
    with pytest.raises(ConflictError):
        service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER)
    assert not uow.tenants.get("2").is_deleted  # the tenant row is written last
    assert all(not k.is_active for k in uow.api_keys.list_all("2"))

    uow.users.list = list_users  # type: ignore[method-assign]
    service.delete_tenant(uow, dashboard("2"), "Acme Inc", now=LATER)
    tenant = uow.tenants.get("2")
    assert tenant.is_deleted and tenant.has_unpaid_invoices_at == NOW


# --- ensure_user ---------------------------------------------------------------------------


def test_ensure_user_creates_an_absent_user(uow):
    seed_tenant(uow)
    user = service.ensure_user(uow, "2", "usr_new", Role.VIEWER, now=NOW)
    assert uow.users.get("2", "usr_new") == user
    assert (user.role, user.status, user.created_at) == (Role.VIEWER, UserStatus.ACTIVE, NOW)


def test_ensure_user_leaves_a_matching_user_untouched(uow):
    seed_tenant(uow)
    existing = seed_user(uow, "2", "usr_a", Role.ADMIN)
    uow.committed.clear()
    assert service.ensure_user(uow, "2", "usr_a", Role.ADMIN, now=LATER) == existing
    assert uow.committed == []


def test_ensure_user_updates_the_role_and_reactivates_but_keeps_created_at(uow):
    seed_tenant(uow)
    seed_user(uow, "2", "usr_a", Role.VIEWER, status=UserStatus.DEACTIVATED)
    service.ensure_user(uow, "2", "usr_a", Role.ADMIN, now=LATER)
    stored = uow.users.get("2", "usr_a")
    assert (stored.role, stored.status, stored.created_at) == (Role.ADMIN, UserStatus.ACTIVE, NOW)


def test_ensure_user_keeps_an_existing_users_email(uow):
    # Regression: a role change once replaced the real email with a generated one.
    seed_tenant(uow)
    seed_user(uow, "2", "usr_a", Role.VIEWER)  # email usr_a@example.com
    service.ensure_user(uow, "2", "usr_a", Role.ADMIN, now=LATER)
    assert uow.users.get("2", "usr_a").email == "usr_a@example.com"


def test_ensure_user_in_an_unknown_tenant_is_not_found(uow):
    with pytest.raises(NotFoundError):
        service.ensure_user(uow, "404", "usr_a", Role.ADMIN, now=NOW)
    assert uow.committed == []
