"""Credential formats and hashing, roles and abilities, environments."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.credentials import (
    KEY_PREFIX,
    hash_secret,
    make_api_key,
    new_secret,
    parse_api_key,
    parse_platform_token,
    parse_session_cookie,
    random_id,
    secret_matches,
)
from chalicelib.domain.errors import PermissionDeniedError, ValidationError
from chalicelib.domain.identity import (
    ROLE_PERMISSIONS,
    Ability,
    Environment,
    Permission,
    PlatformPrincipal,
    Role,
)
from tests.unit.builders import dashboard

ALNUM = string.ascii_letters + string.digits
SECRET_ALPHABET = ALNUM + "_-"
SECRET = "s" * 43

# --- API keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("environment, prefix", [
    (Environment.SANDBOX, "pk_test_"), (Environment.PRODUCTION, "pk_live_"),
])
def test_generated_api_key_parses_back_to_its_environment_and_id(environment, prefix):
    full_key = make_api_key(environment, "AbC123xyz0")
    assert full_key.startswith(f"{prefix}AbC123xyz0.")
    parsed = parse_api_key(full_key)
    assert parsed is not None
    assert (parsed.environment, parsed.public_id, parsed.full_key) == (environment, "AbC123xyz0", full_key)


def test_generated_api_keys_carry_fresh_secrets():
    assert make_api_key(Environment.SANDBOX, "AbC123xyz0") != make_api_key(Environment.SANDBOX, "AbC123xyz0")


def test_api_key_surrounding_whitespace_is_ignored():
    full_key = make_api_key(Environment.PRODUCTION, "AbC123xyz0")
    parsed = parse_api_key(f"  {full_key}\n")
    assert parsed is not None and parsed.full_key == full_key


@pytest.mark.parametrize("value", [
    None,
    "",
    "   ",
    f"pk_test_.{SECRET}",  # no public id
    f"pk_test_abcdefg.{SECRET}",  # public id of 7
    f"pk_test_{'a' * 41}.{SECRET}",  # public id of 41
    f"pk_test_abc_defgh.{SECRET}",  # '_' in the public id
    f"pk_prod_abcdefgh.{SECRET}",  # unknown environment
    f"sk_test_abcdefgh.{SECRET}",  # wrong kind
    f"PK_TEST_abcdefgh.{SECRET}",  # prefix is case-sensitive
    f"pk_test_abcdefgh{SECRET}",  # no dot
    "pk_test_abcdefgh." + "s" * 19,  # secret of 19
    "pk_test_abcdefgh." + "s" * 129,  # secret of 129
    f"pk_test_abcdefgh.{SECRET}.x",  # second dot
    f"pk_test_abcdefgh.{SECRET[:-1]}+",  # standard-base64 character
    f"pk_test_abcdefgh.{SECRET[:20]} {SECRET[20:]}",  # inner space
    f"pk_test_abcdefg\u0661.{SECRET}",  # a non-ASCII digit
    f"pk_live_abcdefgh.{SECRET}\npk_live_abcdefgh.{SECRET}",  # two keys
])
def test_malformed_api_keys_are_rejected(value):
    assert parse_api_key(value) is None


def test_api_key_prefix_table_covers_both_environments():
    assert KEY_PREFIX == {Environment.SANDBOX: "pk_test_", Environment.PRODUCTION: "pk_live_"}


# Hypothesis: characters from the whole code space minus the secret alphabet, without the
# charmap (so nothing is cached on disk).
_FOREIGN = st.integers(min_value=0, max_value=0x10FFFF).map(chr).filter(lambda c: c not in SECRET_ALPHABET)
_KEYS = st.builds(
    lambda env, public_id, secret: (env, public_id, f"{KEY_PREFIX[env]}{public_id}.{secret}"),
    st.sampled_from(list(Environment)),
    st.text(alphabet=ALNUM, min_size=8, max_size=40),
    st.text(alphabet=SECRET_ALPHABET, min_size=20, max_size=128),
)


@settings(database=None, max_examples=300)
@given(_KEYS)
def test_property_every_well_formed_key_round_trips(case):
    environment, public_id, full_key = case
    parsed = parse_api_key(full_key)
    assert parsed is not None
    assert (parsed.environment, parsed.public_id, parsed.full_key) == (environment, public_id, full_key)


@settings(database=None, max_examples=50)
@given(st.sampled_from(list(Environment)), st.text(alphabet=ALNUM, min_size=8, max_size=40))
def test_property_make_api_key_output_always_parses(environment, public_id):
    full_key = make_api_key(environment, public_id)
    parsed = parse_api_key(full_key)
    assert parsed is not None and parsed.public_id == public_id and parsed.environment == environment


@settings(database=None, max_examples=300)
@given(_KEYS, _FOREIGN, st.data())
def test_property_a_foreign_character_inside_the_secret_never_parses(case, foreign, data):
    _env, _public_id, full_key = case
    secret_start = full_key.index(".") + 1
    # Strictly inside the key: trailing whitespace is trimmed by design.
    at = data.draw(st.integers(min_value=secret_start, max_value=len(full_key) - 1), label="position")
    inserted = full_key[:at] + foreign + full_key[at:]
    replaced = full_key[:at - 1] + foreign + full_key[at:] if at > secret_start else inserted
    assert parse_api_key(inserted) is None
    assert parse_api_key(replaced) is None


@settings(database=None, max_examples=200)
@given(_KEYS, st.data())
def test_property_a_secret_with_a_character_removed_never_matches_the_hash(case, data):
    _env, _public_id, full_key = case
    secret_start = full_key.index(".") + 1
    at = data.draw(st.integers(min_value=secret_start, max_value=len(full_key) - 1), label="position")
    shortened = full_key[:at] + full_key[at + 1:]
    parsed = parse_api_key(shortened)
    assert parsed is None or not secret_matches(parsed.full_key, hash_secret(full_key))


# --- hashing and secrets -------------------------------------------------------------------


def test_hash_secret_is_hex_sha256():
    assert hash_secret("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_secret("é") == hashlib.sha256("é".encode()).hexdigest()


def test_secret_matches_only_its_own_hash():
    stored = hash_secret("correct horse")
    assert secret_matches("correct horse", stored)
    assert not secret_matches("correct horse ", stored)
    assert not secret_matches("Correct horse", stored)
    assert not secret_matches("", stored)


def test_new_secret_is_url_safe_and_fresh():
    secrets_ = {new_secret() for _ in range(200)}
    assert len(secrets_) == 200
    assert all(len(s) >= 43 and set(s) <= set(SECRET_ALPHABET) for s in secrets_)


def test_random_ids_are_prefixed_alphanumeric_and_unique_ish():
    ids = [random_id("usr_", 12) for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert value.startswith("usr_") and len(value) == 16 and value[4:].isalnum() and value[4:].isascii()
    assert len(random_id()) == 16


# --- platform tokens and session cookies ---------------------------------------------------


def test_platform_token_parses_into_id_and_secret():
    assert parse_platform_token(f"ptk_abcd1234|{SECRET}") == ("ptk_abcd1234", SECRET)


@pytest.mark.parametrize("value", [
    None, "", f"ptk_abcd1234{SECRET}", f"tok_abcd1234|{SECRET}", f"ptk_abc|{SECRET}", "ptk_abcd1234|short",
    f"ptk_abcd1234|{SECRET}|x", f"ptk_abcd-234|{SECRET}", f" ptk_abcd1234|{SECRET}",
])
def test_malformed_platform_tokens_are_rejected(value):
    assert parse_platform_token(value) is None


def test_session_cookie_parses_into_tenant_session_and_secret():
    assert parse_session_cookie(f"42.ses_abcd1234.{SECRET}") == ("42", "ses_abcd1234", SECRET)


@pytest.mark.parametrize("value", [
    None, "", f"acme.ses_abcd1234.{SECRET}", f"42.abcd1234.{SECRET}", f"42.ses_abc.{SECRET}",
    "42.ses_abcd1234.short", f"42|ses_abcd1234|{SECRET}", f"{'9' * 21}.ses_abcd1234.{SECRET}",
    f"42.ses_abcd1234.{SECRET}.x",
])
def test_malformed_session_cookies_are_rejected(value):
    assert parse_session_cookie(value) is None


# --- roles ---------------------------------------------------------------------------------

ALLOWED = {
    Permission.TENANT_READ: {Role.OWNER, Role.ADMIN, Role.MANAGER, Role.VIEWER},
    Permission.TENANT_DELETE: {Role.OWNER, Role.ADMIN},
    Permission.API_KEYS_READ: {Role.OWNER, Role.ADMIN, Role.MANAGER, Role.VIEWER},
    Permission.API_KEYS_WRITE: {Role.OWNER, Role.ADMIN},
    Permission.AUDIT_READ: {Role.OWNER, Role.ADMIN},
    Permission.CUSTOMERS_WRITE: {Role.OWNER, Role.ADMIN, Role.MANAGER},
    Permission.CREDITS_TOPUP: {Role.OWNER, Role.ADMIN},
    Permission.WEBHOOKS_READ: {Role.OWNER, Role.ADMIN, Role.MANAGER, Role.VIEWER},
    Permission.WEBHOOKS_WRITE: {Role.OWNER, Role.ADMIN},
    Permission.BILLING_READ: {Role.OWNER, Role.ADMIN, Role.MANAGER, Role.VIEWER},
    Permission.BILLING_WRITE: {Role.OWNER, Role.ADMIN},
}


def test_every_permission_has_a_row_in_the_role_table():
    assert set(ROLE_PERMISSIONS) == set(Permission)
    assert {p: set(roles) for p, roles in ROLE_PERMISSIONS.items()} == ALLOWED


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_require_follows_the_role_table(role, permission):
    principal = dashboard(role=role)
    if role in ALLOWED[permission]:
        principal.require(permission)
    else:
        with pytest.raises(PermissionDeniedError) as caught:
            principal.require(permission)
        assert caught.value.code == "FORBIDDEN"
        assert str(permission) in caught.value.message


def test_viewer_can_read_but_not_delete_tenants_or_write_keys():
    viewer = dashboard(role=Role.VIEWER)
    viewer.require(Permission.TENANT_READ)
    viewer.require(Permission.API_KEYS_READ)
    for permission in (Permission.TENANT_DELETE, Permission.API_KEYS_WRITE, Permission.AUDIT_READ,
                       Permission.CUSTOMERS_WRITE):
        with pytest.raises(PermissionDeniedError):
            viewer.require(permission)


def test_manager_can_write_customers_but_not_keys():
    manager = dashboard(role=Role.MANAGER)
    manager.require(Permission.CUSTOMERS_WRITE)
    with pytest.raises(PermissionDeniedError):
        manager.require(Permission.API_KEYS_WRITE)


def test_dashboard_actor_names_the_user():
    assert dashboard(user_id="usr_1").actor == "user:usr_1"


# --- platform abilities --------------------------------------------------------------------


def test_platform_principal_with_every_ability_passes():
    principal = PlatformPrincipal("ptk_x", frozenset({"tenants:read", "cross-tenant"}))
    principal.require(Ability.TENANTS_READ, Ability.CROSS_TENANT)
    principal.require()
    assert principal.actor == "platform_token:ptk_x"


@pytest.mark.parametrize("granted", [set(), {"tenants:read"}, {"cross-tenant"}, {"tenants:write"}])
def test_platform_principal_missing_an_ability_gets_invalid_ability(granted):
    principal = PlatformPrincipal("ptk_x", frozenset(granted))
    with pytest.raises(PermissionDeniedError) as caught:
        principal.require(Ability.TENANTS_READ, Ability.CROSS_TENANT)
    assert caught.value.code == "invalid_ability"
    assert caught.value.message == "Invalid ability provided."


# --- environments --------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("sandbox", Environment.SANDBOX), ("production", Environment.PRODUCTION),
    (" Production ", Environment.PRODUCTION), ("SANDBOX", Environment.SANDBOX),
])
def test_environment_parse_accepts_either_name_in_any_case(raw, expected):
    assert Environment.parse(raw) is expected


@pytest.mark.parametrize("raw", [None, ""])
def test_absent_environment_falls_back_to_the_default(raw):
    assert Environment.parse(raw, default=Environment.SANDBOX) is Environment.SANDBOX


@pytest.mark.parametrize("raw", [None, ""])
def test_absent_environment_without_default_is_required(raw):
    with pytest.raises(ValidationError) as caught:
        Environment.parse(raw)
    assert caught.value.details == {"field": "environment"}
    assert caught.value.message == "environment is required"


@pytest.mark.parametrize("raw", ["staging", "prod", "test", "live", "   ", "sand box"])
def test_unknown_environment_is_a_validation_error(raw):
    with pytest.raises(ValidationError) as caught:
        Environment.parse(raw, default=Environment.PRODUCTION)
    assert caught.value.details == {"field": "environment"}
    assert "sandbox" in caught.value.message
