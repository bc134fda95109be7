"""Dashboard API key management: create, list, get, rotate, revoke."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.access import KeyStatus
from chalicelib.domain.credentials import hash_secret, parse_api_key
from chalicelib.domain.errors import (
    ConflictError,
    InvalidApiKeyError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from chalicelib.domain.identity import Environment, Role
from chalicelib.services import api_keys as service
from chalicelib.services import auth
from tests.unit.builders import NOW, audit_actions, dashboard, seed_key

ADMIN = dashboard("2", Role.ADMIN, user_id="usr_admin")
SANDBOX_ADMIN = dashboard("2", Role.ADMIN, user_id="usr_admin", environment=Environment.SANDBOX)


def _authenticates(uow, full_key) -> bool:
    try:
        auth.authenticate_api_key(uow, full_key, now=NOW, touch_every_seconds=60)
    except InvalidApiKeyError:
        return False
    return True


# --- create --------------------------------------------------------------------------------


@pytest.mark.parametrize("environment, prefix", [
    (Environment.SANDBOX, "pk_test_"), (Environment.PRODUCTION, "pk_live_"),
])
def test_created_key_is_shown_once_and_only_its_hash_is_stored(uow, environment, prefix):
    key, full_key = service.create_api_key(uow, ADMIN, name="CI", environment=environment, now=NOW)
    assert full_key.startswith(f"{prefix}{key.key_id}.")
    stored = uow.api_keys.get("2", environment, key.key_id)
    assert stored == key
    assert stored.secret_hash == hash_secret(full_key) and stored.last4 == full_key[-4:]
    assert full_key.split(".")[1] not in repr(stored)
    assert (stored.status, stored.created_at, stored.created_by) == (KeyStatus.ACTIVE, NOW, "user:usr_admin")
    assert stored.prefix == f"{prefix}{key.key_id}"
    assert _authenticates(uow, full_key)


def test_created_key_is_audited(uow):
    key, _ = service.create_api_key(uow, ADMIN, name="CI", environment=Environment.SANDBOX, now=NOW)
    [entry] = uow.audit.list("2", 10, None).items
    assert (entry.action, entry.actor, entry.target, entry.environment, entry.details) == (
        "api_key.created", "user:usr_admin", f"api_key:{key.key_id}", "sandbox", {"name": "CI"})


def test_key_name_is_trimmed_and_may_be_100_characters(uow):
    key, _ = service.create_api_key(uow, ADMIN, name="  CI  ", environment=Environment.PRODUCTION, now=NOW)
    assert key.name == "CI"
    long, _ = service.create_api_key(uow, ADMIN, name="n" * 100, environment=Environment.PRODUCTION, now=NOW)
    assert len(long.name) == 100


@pytest.mark.parametrize("name", ["", "   ", None, 42, "n" * 101])
def test_key_name_must_be_1_to_100_characters(uow, name):
    with pytest.raises(ValidationError) as caught:
        service.create_api_key(uow, ADMIN, name=name, environment=Environment.PRODUCTION, now=NOW)
    assert caught.value.details == {"field": "name"}
    assert uow.committed == []


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER])
def test_only_owners_and_admins_create_keys(uow, role):
    with pytest.raises(PermissionDeniedError):
        service.create_api_key(uow, dashboard("2", role), name="CI", environment=Environment.PRODUCTION, now=NOW)
    assert uow.committed == []


# --- list and get --------------------------------------------------------------------------


def _create_over_time(uow, count, principal=ADMIN, environment=Environment.PRODUCTION):
    return [service.create_api_key(uow, principal, name=f"k{n}", environment=environment,
                                   now=NOW + timedelta(seconds=n))[0] for n in range(count)]


def test_list_is_newest_first(uow):
    created = _create_over_time(uow, 6)
    page = service.list_api_keys(uow, dashboard("2", Role.VIEWER), limit=25, cursor=None)
    assert [k.name for k in page.items] == ["k5", "k4", "k3", "k2", "k1", "k0"]
    assert page.total == 6 and page.next_cursor is None and page.extra == {"page": 1}
    assert {k.key_id for k in page.items} == {k.key_id for k in created}


def test_list_pages_with_cursors(uow):
    _create_over_time(uow, 5)
    viewer = dashboard("2", Role.VIEWER)
    first = service.list_api_keys(uow, viewer, limit=2, cursor=None)
    second = service.list_api_keys(uow, viewer, limit=2, cursor=first.next_cursor)
    third = service.list_api_keys(uow, viewer, limit=2, cursor=second.next_cursor)
    assert [[k.name for k in p.items] for p in (first, second, third)] == [["k4", "k3"], ["k2", "k1"], ["k0"]]
    assert [p.extra["page"] for p in (first, second, third)] == [1, 2, 3]
    assert third.next_cursor is None and first.total == 5


def test_list_is_scoped_to_the_principals_environment(uow):
    _create_over_time(uow, 2, environment=Environment.PRODUCTION)
    _create_over_time(uow, 3, principal=SANDBOX_ADMIN, environment=Environment.SANDBOX)
    seed_key(uow, "3", Environment.PRODUCTION)
    assert service.list_api_keys(uow, ADMIN, limit=25, cursor=None).total == 2
    sandbox = service.list_api_keys(uow, SANDBOX_ADMIN, limit=25, cursor=None)
    assert sandbox.total == 3 and {k.environment for k in sandbox.items} == {Environment.SANDBOX}


def test_a_cursor_from_another_environment_is_refused(uow):
    _create_over_time(uow, 3)
    cursor = service.list_api_keys(uow, ADMIN, limit=1, cursor=None).next_cursor
    with pytest.raises(ValidationError) as caught:
        service.list_api_keys(uow, SANDBOX_ADMIN, limit=1, cursor=cursor)
    assert caught.value.details == {"field": "cursor"}


def test_get_finds_only_keys_of_the_principals_tenant_and_environment(uow):
    mine, _ = seed_key(uow, "2", Environment.PRODUCTION)
    other_tenant, _ = seed_key(uow, "3", Environment.PRODUCTION)
    assert service.get_api_key(uow, dashboard("2", Role.VIEWER), mine.key_id) == mine
    for principal, key_id in [(SANDBOX_ADMIN, mine.key_id), (ADMIN, other_tenant.key_id), (ADMIN, "Nope00000000")]:
        with pytest.raises(NotFoundError):
            service.get_api_key(uow, principal, key_id)


# --- rotate --------------------------------------------------------------------------------


def test_rotation_keeps_the_id_and_replaces_the_secret(uow):
    key, old_full = service.create_api_key(uow, ADMIN, name="CI", environment=Environment.PRODUCTION, now=NOW)
    later = NOW + timedelta(hours=1)
    rotated, new_full = service.rotate_api_key(uow, ADMIN, key.key_id, now=later)
    assert rotated.key_id == key.key_id and parse_api_key(new_full).public_id == key.key_id
    assert new_full != old_full and rotated.last4 == new_full[-4:] and rotated.rotated_at == later
    assert uow.api_keys.get("2", Environment.PRODUCTION, key.key_id) == rotated
    assert not _authenticates(uow, old_full)
    assert _authenticates(uow, new_full)
    assert audit_actions(uow, "2") == ["api_key.rotated", "api_key.created"]


@pytest.mark.parametrize("status", [KeyStatus.REVOKED, KeyStatus.DISABLED])
def test_only_active_keys_can_be_rotated(uow, status):
    key, _ = seed_key(uow, "2", status=status)
    uow.committed.clear()
    with pytest.raises(ConflictError) as caught:
        service.rotate_api_key(uow, ADMIN, key.key_id, now=NOW)
    assert caught.value.code == "API_KEY_REVOKED"
    assert uow.committed == []


def test_rotating_needs_write_permission_and_an_existing_key(uow):
    key, _ = seed_key(uow, "2")
    with pytest.raises(PermissionDeniedError):
        service.rotate_api_key(uow, dashboard("2", Role.MANAGER), key.key_id, now=NOW)
    with pytest.raises(NotFoundError):
        service.rotate_api_key(uow, ADMIN, "Nope00000000", now=NOW)


# --- revoke --------------------------------------------------------------------------------


def test_revoked_key_stops_authenticating_and_is_audited(uow):
    key, full_key = service.create_api_key(uow, ADMIN, name="CI", environment=Environment.PRODUCTION, now=NOW)
    later = NOW + timedelta(minutes=5)
    revoked = service.revoke_api_key(uow, ADMIN, key.key_id, now=later)
    assert (revoked.status, revoked.revoked_at) == (KeyStatus.REVOKED, later)
    assert uow.api_keys.get("2", Environment.PRODUCTION, key.key_id) == revoked
    assert not _authenticates(uow, full_key)
    entry = uow.audit.list("2", 1, None).items[0]
    assert (entry.action, entry.target, entry.at) == ("api_key.revoked", f"api_key:{key.key_id}", later)


def test_revoking_twice_is_idempotent(uow):
    key, _ = seed_key(uow, "2")
    first = service.revoke_api_key(uow, ADMIN, key.key_id, now=NOW)
    commits = len(uow.committed)
    again = service.revoke_api_key(uow, ADMIN, key.key_id, now=NOW + timedelta(days=1))
    assert again == first and again.revoked_at == NOW
    assert len(uow.committed) == commits and audit_actions(uow, "2") == ["api_key.revoked"]


def test_revoking_needs_write_permission(uow):
    key, full_key = seed_key(uow, "2")
    with pytest.raises(PermissionDeniedError):
        service.revoke_api_key(uow, dashboard("2", Role.VIEWER), key.key_id, now=NOW)
    assert _authenticates(uow, full_key)
