"""Authentication use cases: API keys, platform tokens, sessions, JWT claims, dashboard block."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.access import ApiKey, KeyStatus
from chalicelib.domain.credentials import hash_secret, make_api_key
from chalicelib.domain.errors import AuthenticationError, InvalidApiKeyError, PaymentRequiredError
from chalicelib.domain.identity import Environment, Role
from chalicelib.domain.tenants import UserStatus
from chalicelib.services import auth
from tests.unit.builders import NOW, dashboard, seed_key, seed_platform_token, seed_tenant, seed_user

TOUCH = 60

# --- API keys ------------------------------------------------------------------------------


def test_valid_api_key_authenticates_as_its_tenant_and_environment(uow):
    key, full_key = seed_key(uow, "2", Environment.SANDBOX)
    principal = auth.authenticate_api_key(uow, full_key, now=NOW, touch_every_seconds=TOUCH)
    assert (principal.tenant_id, principal.environment, principal.key_id) == ("2", Environment.SANDBOX, key.key_id)
    assert principal.actor == f"api_key:{key.key_id}"


def test_first_use_records_last_used_at(uow):
    key, full_key = seed_key(uow)
    auth.authenticate_api_key(uow, full_key, now=NOW, touch_every_seconds=TOUCH)
    assert uow.api_keys.touches == [(key.key_id, NOW)]
    assert uow.api_keys.get("2", Environment.PRODUCTION, key.key_id).last_used_at == NOW


@pytest.mark.parametrize("age, touched", [
    (timedelta(seconds=0), False), (timedelta(seconds=59, microseconds=999999), False),
    (timedelta(seconds=60), True), (timedelta(hours=5), True),
])
def test_last_used_at_is_written_only_when_stale(uow, age, touched):
    _key, full_key = seed_key(uow, last_used_at=NOW - age)
    auth.authenticate_api_key(uow, full_key, now=NOW, touch_every_seconds=TOUCH)
    assert len(uow.api_keys.touches) == (1 if touched else 0)


def test_repeated_calls_within_the_window_touch_once(uow):
    _key, full_key = seed_key(uow)
    for second in range(0, 120, 10):
        auth.authenticate_api_key(uow, full_key, now=NOW + timedelta(seconds=second), touch_every_seconds=TOUCH)
    assert [at for _id, at in uow.api_keys.touches] == [NOW, NOW + timedelta(seconds=60)]


@pytest.mark.parametrize("status", [KeyStatus.REVOKED, KeyStatus.DISABLED])
def test_inactive_api_key_is_rejected_and_not_touched(uow, status):
    _key, full_key = seed_key(uow, status=status)
    with pytest.raises(InvalidApiKeyError) as caught:
        auth.authenticate_api_key(uow, full_key, now=NOW, touch_every_seconds=TOUCH)
    assert caught.value.code == "INVALID_API_KEY"
    assert uow.api_keys.touches == []


def test_api_key_with_the_wrong_secret_is_rejected(uow):
    key, _full_key = seed_key(uow)
    forged = make_api_key(Environment.PRODUCTION, key.key_id)
    with pytest.raises(InvalidApiKeyError):
        auth.authenticate_api_key(uow, forged, now=NOW, touch_every_seconds=TOUCH)


def test_api_key_presented_with_the_other_environment_prefix_is_rejected(uow):
    # The stored hash is of the *live* string, so only the environment check can refuse it.
    live_string = make_api_key(Environment.PRODUCTION, "Mismatch0001")
    uow.api_keys.add(ApiKey(tenant_id="2", environment=Environment.SANDBOX, key_id="Mismatch0001", name="k",
                            secret_hash=hash_secret(live_string), last4=live_string[-4:], created_at=NOW,
                            created_by="user:seed"))
    uow.commit()
    with pytest.raises(InvalidApiKeyError):
        auth.authenticate_api_key(uow, live_string, now=NOW, touch_every_seconds=TOUCH)


@pytest.mark.parametrize("presented", [None, "", "Bearer nonsense", "pk_live_Unknown0001." + "x" * 43])
def test_missing_malformed_or_unknown_api_key_is_rejected(uow, presented):
    seed_key(uow)
    with pytest.raises(InvalidApiKeyError):
        auth.authenticate_api_key(uow, presented, now=NOW, touch_every_seconds=TOUCH)


# --- platform tokens -----------------------------------------------------------------------


def test_valid_platform_token_carries_its_abilities(uow):
    token, plaintext = seed_platform_token(uow, "tenants:read", "cross-tenant")
    principal = auth.authenticate_platform_token(uow, plaintext, now=NOW)
    assert principal.token_id == token.token_id
    assert principal.abilities == frozenset({"tenants:read", "cross-tenant"})
    assert uow.platform_tokens.touches == [(token.token_id, NOW)]
    assert uow.platform_tokens.get(token.token_id).last_used_at == NOW


@pytest.mark.parametrize("age, touched", [(timedelta(seconds=59), False), (timedelta(seconds=60), True)])
def test_platform_token_use_is_recorded_at_most_every_minute(uow, age, touched):
    _token, plaintext = seed_platform_token(uow, last_used_at=NOW - age)
    auth.authenticate_platform_token(uow, plaintext, now=NOW)
    assert len(uow.platform_tokens.touches) == (1 if touched else 0)


def test_revoked_platform_token_is_unauthenticated(uow):
    _token, plaintext = seed_platform_token(uow, "tenants:read", revoked=True)
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate_platform_token(uow, plaintext, now=NOW)
    assert caught.value.code == "unauthenticated"
    assert uow.platform_tokens.touches == []


@pytest.mark.parametrize("tamper", ["secret", "unknown", "malformed", "none"])
def test_bad_platform_tokens_are_unauthenticated(uow, tamper):
    token, plaintext = seed_platform_token(uow, "tenants:read")
    presented = {
        "secret": f"{token.token_id}|{'x' * 43}",
        "unknown": "ptk_Unknown00000001|" + plaintext.split("|")[1],
        "malformed": plaintext.replace("|", ":"),
        "none": None,
    }[tamper]
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate_platform_token(uow, presented, now=NOW)
    assert caught.value.code == "unauthenticated"


# --- sessions ------------------------------------------------------------------------------


@pytest.fixture
def member(uow):
    """A live tenant "2" with an active manager; returns its JWT principal."""
    seed_tenant(uow)
    seed_user(uow, "2", "usr_mgr", Role.MANAGER)
    return dashboard("2", Role.MANAGER, user_id="usr_mgr")


def test_open_session_stores_a_hash_and_returns_the_cookie(uow, member):
    session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    tenant_id, session_id, secret = cookie.split(".")
    assert (tenant_id, session_id) == ("2", session.session_id)
    stored = uow.sessions.get("2", session.session_id)
    assert stored is not None and stored.secret_hash == hash_secret(secret) and secret not in stored.secret_hash
    assert stored.expires_at == NOW + timedelta(hours=1) and stored.role == "manager"
    assert uow.audit.list("2", 10, None).items[0].action == "session.created"


def test_session_cookie_resolves_to_the_same_user_and_role(uow, member):
    session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    principal, tenant = auth.resolve_session(uow, cookie, now=NOW + timedelta(minutes=59),
                                             environment=Environment.SANDBOX)
    assert tenant.id == "2"
    assert (principal.user_id, principal.role, principal.via) == ("usr_mgr", Role.MANAGER, "session")
    assert principal.session_id == session.session_id and principal.environment == Environment.SANDBOX


@pytest.mark.parametrize("after, code", [
    (timedelta(seconds=3600) - timedelta(microseconds=1), None),
    (timedelta(seconds=3600), "SESSION_EXPIRED"),
    (timedelta(days=2), "SESSION_EXPIRED"),
])
def test_session_expires_at_its_ttl(uow, member, after, code):
    _session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    if code is None:
        auth.resolve_session(uow, cookie, now=NOW + after, environment=Environment.PRODUCTION)
        return
    with pytest.raises(AuthenticationError) as caught:
        auth.resolve_session(uow, cookie, now=NOW + after, environment=Environment.PRODUCTION)
    assert caught.value.code == code


def test_tampered_session_secret_is_invalid(uow, member):
    _session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    last = "A" if cookie[-1] != "A" else "B"
    with pytest.raises(AuthenticationError) as caught:
        auth.resolve_session(uow, cookie[:-1] + last, now=NOW, environment=Environment.PRODUCTION)
    assert caught.value.code == "INVALID_SESSION"


@pytest.mark.parametrize("mangle", [
    lambda c: None, lambda c: "", lambda c: c.replace(".", ":"),
    lambda c: "3" + c[1:],  # another tenant's partition
    lambda c: c.split(".")[0] + ".ses_Unknown000000." + c.split(".")[2],
])
def test_unknown_or_malformed_session_is_invalid(uow, member, mangle):
    _session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    with pytest.raises(AuthenticationError) as caught:
        auth.resolve_session(uow, mangle(cookie), now=NOW, environment=Environment.PRODUCTION)
    assert caught.value.code == "INVALID_SESSION"


def test_session_of_a_deleted_tenant_reports_account_deleted(uow, member):
    _session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    uow.tenants.save(uow.tenants.get("2").deleted(NOW))
    uow.commit()
    with pytest.raises(AuthenticationError) as caught:
        auth.resolve_session(uow, cookie, now=NOW, environment=Environment.PRODUCTION)
    assert caught.value.code == "ACCOUNT_DELETED"


def test_session_of_a_deactivated_user_reports_user_deactivated(uow, member):
    _session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    seed_user(uow, "2", "usr_mgr", Role.MANAGER, status=UserStatus.DEACTIVATED)
    with pytest.raises(AuthenticationError) as caught:
        auth.resolve_session(uow, cookie, now=NOW, environment=Environment.PRODUCTION)
    assert caught.value.code == "USER_DEACTIVATED"


def test_closing_a_session_stops_it_at_once(uow, member):
    _session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    principal, _tenant = auth.resolve_session(uow, cookie, now=NOW, environment=Environment.PRODUCTION)
    auth.close_session(uow, principal, now=NOW + timedelta(minutes=1))
    with pytest.raises(AuthenticationError) as caught:
        auth.resolve_session(uow, cookie, now=NOW + timedelta(minutes=1), environment=Environment.PRODUCTION)
    assert caught.value.code == "INVALID_SESSION"
    latest = uow.audit.list("2", 10, None).items[0]
    assert (latest.action, latest.target) == ("session.deleted", f"session:{principal.session_id}")


def test_closing_without_a_session_is_a_no_op(uow, member):
    commits = len(uow.committed)
    auth.close_session(uow, member, now=NOW)  # a JWT principal has no session id
    assert len(uow.committed) == commits


def test_jwt_logout_also_ends_the_same_users_cookie_session(uow, member):
    session, cookie = auth.open_session(uow, member, now=NOW, ttl_seconds=3600)
    auth.close_session(uow, member, now=NOW + timedelta(minutes=1), cookie_value=cookie)
    assert uow.sessions.get("2", session.session_id) is None


@pytest.mark.parametrize("whose", ["other-user", "tampered", "other-tenant"])
def test_jwt_logout_never_ends_a_session_it_does_not_own(uow, member, whose):
    seed_user(uow, "2", "usr_other", Role.VIEWER)
    owner = member if whose != "other-user" else dashboard("2", Role.VIEWER, user_id="usr_other")
    session, cookie = auth.open_session(uow, owner, now=NOW, ttl_seconds=3600)
    presented = {"other-user": cookie, "tampered": cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB"),
                 "other-tenant": cookie}[whose]
    closer = dashboard("3", Role.MANAGER, user_id="usr_mgr") if whose == "other-tenant" else member
    commits = len(uow.committed)
    auth.close_session(uow, closer, now=NOW, cookie_value=presented)
    assert uow.sessions.get("2", session.session_id) is not None
    assert len(uow.committed) == commits


# --- JWT claims ----------------------------------------------------------------------------


def _claims(uow, claims, **kw):
    kw.setdefault("tenant_claim", "tenant_id")
    kw.setdefault("role_claim", "role")
    kw.setdefault("environment", Environment.PRODUCTION)
    return auth.dashboard_principal_from_claims(uow, claims, **kw)


def test_claims_of_an_active_user_become_a_jwt_principal(uow, member):
    principal, tenant = _claims(uow, {"sub": "usr_mgr", "tenant_id": "2", "role": "manager"},
                                environment=Environment.SANDBOX)
    assert tenant.id == "2"
    assert principal == dashboard("2", Role.MANAGER, user_id="usr_mgr", environment=Environment.SANDBOX)


def test_claim_names_are_configurable_and_numeric_tenant_ids_accepted(uow, member):
    principal, _tenant = _claims(uow, {"sub": "usr_mgr", "https://t/tenant": 2, "https://t/role": "viewer"},
                                 tenant_claim="https://t/tenant", role_claim="https://t/role")
    assert (principal.tenant_id, principal.role) == ("2", Role.VIEWER)


@pytest.mark.parametrize("claims", [
    {"tenant_id": "2", "role": "admin"},
    {"sub": "", "tenant_id": "2", "role": "admin"},
    {"sub": 7, "tenant_id": "2", "role": "admin"},
    {"sub": "usr_mgr", "role": "admin"},
    {"sub": "usr_mgr", "tenant_id": "2"},
    {"sub": "usr_mgr", "tenant_id": "2", "role": "superuser"},
    {"sub": "usr_mgr", "tenant_id": "2", "role": "ADMIN"},
    {"sub": "usr_mgr", "tenant_id": "99", "role": "admin"},
], ids=["no-sub", "empty-sub", "int-sub", "no-tenant", "no-role", "bad-role", "upper-role", "unknown-tenant"])
def test_incomplete_or_invalid_claims_are_an_invalid_token(uow, member, claims):
    with pytest.raises(AuthenticationError) as caught:
        _claims(uow, claims)
    assert caught.value.code == "INVALID_TOKEN"


def test_claims_for_a_deleted_tenant_report_account_deleted(uow, member):
    uow.tenants.save(uow.tenants.get("2").deleted(NOW))
    uow.commit()
    with pytest.raises(AuthenticationError) as caught:
        _claims(uow, {"sub": "usr_mgr", "tenant_id": "2", "role": "manager"})
    assert caught.value.code == "ACCOUNT_DELETED"


@pytest.mark.parametrize("user_id", ["usr_gone", "usr_off"])
def test_claims_for_an_unknown_or_deactivated_user_report_user_deactivated(uow, member, user_id):
    seed_user(uow, "2", "usr_off", Role.ADMIN, status=UserStatus.DEACTIVATED)
    with pytest.raises(AuthenticationError) as caught:
        _claims(uow, {"sub": user_id, "tenant_id": "2", "role": "admin"})
    assert caught.value.code == "USER_DEACTIVATED"


# --- dashboard block -----------------------------------------------------------------------


def test_unflagged_tenant_is_never_blocked(uow):
    auth.check_dashboard_block(seed_tenant(uow), NOW + timedelta(days=400), billing_route=False)


def test_flagged_tenant_within_grace_is_not_blocked(uow):
    flagged = seed_tenant(uow).mark_missing_payment(NOW)
    auth.check_dashboard_block(flagged, NOW + timedelta(days=14), billing_route=False)


def test_flagged_tenant_past_the_limit_is_blocked_except_on_billing_routes(uow):
    flagged = seed_tenant(uow).mark_missing_payment(NOW)
    late = NOW + timedelta(days=14, microseconds=1)
    auth.check_dashboard_block(flagged, late, billing_route=True)
    with pytest.raises(PaymentRequiredError) as caught:
        auth.check_dashboard_block(flagged, late, billing_route=False)
    assert caught.value.code == "DASHBOARD_BLOCKED"
