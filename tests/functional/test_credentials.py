"""SPEC "Credentials": dashboard JWTs, session cookies + CSRF, API keys, platform tokens, isolation."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import time

import pytest

from chalicelib.domain.identity import Environment
from tests.helpers import add_customer, overriding

ALLOWED_ORIGIN = "https://dashboard.tally.test"
OTHER_SECRET = "a-completely-different-hs256-secret-of-40-bytes"
COOKIE_RE = re.compile(r"^[0-9]+\.ses_[A-Za-z0-9]+\.[A-Za-z0-9_-]+$")


# --- helpers -------------------------------------------------------------------------------


def b64url(raw: bytes | dict) -> str:
    if isinstance(raw, dict):
        raw = json.dumps(raw, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def craft(header: dict, payload: dict, hmac_key: bytes | None = None) -> str:
    """A hand-built JWS: HMAC-SHA256 over the signing input, or an empty signature."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    signature = b"" if hmac_key is None else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims(tenant, user_id: str, role: str = "admin", **overrides) -> dict:
    payload = {"sub": user_id, "tenant_id": tenant.id, "role": role, "iss": "tally-local",
               "aud": "tally-dashboard", "iat": int(time.time()), "exp": int(time.time()) + 600}
    payload.update(overrides)
    return payload


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def cookie(value: str, **extra: str) -> dict:
    return {"Cookie": f"tally_session={value}", **extra}


def flip(segment: str, at: int = 0) -> str:
    """Change one base64url character (not the last one, whose low bits may be padding)."""
    return segment[:at] + ("A" if segment[at] != "A" else "B") + segment[at + 1:]


def text(reply) -> str:
    return reply.body.decode() if isinstance(reply.body, bytes) else reply.body


def assert_denied(reply, status: int = 401, code: str | None = None) -> None:
    """Tenant-facing error envelope (the contract client validated its shape) and no traceback."""
    assert reply.status == status, reply
    assert reply.json["statusCode"] == status and reply.json["success"] is False
    if code is not None:
        assert reply.error["code"] == code, reply
    assert "Traceback" not in text(reply) and 'File "' not in text(reply)
    assert "data" not in reply.json


def key_count(api, world, tenant, environment: str = "production") -> int:
    return api.get("/dashboard/api-keys", headers=world.auth(tenant, "owner", environment)).data["total"]


# --- dashboard JWT ------------------------------------------------------------------------


def _signed(world, t, **overrides):
    """HS256 with the server's secret, any claims (None drops one), for a real admin of ``t``."""
    from chalicelib.settings import get_settings

    payload = {k: v for k, v in claims(t, world.user(t), **overrides).items() if v is not None}
    return craft({"alg": "HS256", "typ": "JWT"}, payload, get_settings().jwt_secret.encode())


def _alg_none(world, t):
    return craft({"alg": "none", "typ": "JWT"}, claims(t, world.user(t, "owner"), "owner"))


def _alg_none_signed(world, t):
    return craft({"alg": "None", "typ": "JWT"}, claims(t, world.user(t, "owner"), "owner"), b"x")


def _tampered_signature(world, t):
    head, body, sig = world.jwt(t, "admin").split(".")
    return f"{head}.{body}.{flip(sig)}"


def _tampered_payload(world, t):
    """A viewer promotes itself to owner without re-signing."""
    head, body, sig = world.jwt(t, "viewer").split(".")
    payload = {**b64url_json(body), "role": "owner"}
    return f"{head}.{b64url(payload)}.{sig}"


def _other_secret(world, t):
    return craft({"alg": "HS256", "typ": "JWT"}, claims(t, world.user(t)), OTHER_SECRET.encode())


INVALID_JWTS = {
    "alg-none": (_alg_none, "INVALID_TOKEN"),
    "alg-None-with-signature": (_alg_none_signed, "INVALID_TOKEN"),
    "expired": (lambda w, t: w.jwt(t, exp=int(time.time()) - 120), "TOKEN_EXPIRED"),
    "wrong-aud": (lambda w, t: w.jwt(t, aud="someone-else"), "INVALID_TOKEN"),
    "wrong-iss": (lambda w, t: w.jwt(t, iss="https://evil.example"), "INVALID_TOKEN"),
    "missing-exp": (lambda w, t: w.jwt(t, exp=None), "INVALID_TOKEN"),
    "missing-sub": (lambda w, t: w.jwt(t, sub=None), "INVALID_TOKEN"),
    "missing-aud": (lambda w, t: w.jwt(t, aud=None), "INVALID_TOKEN"),
    "missing-iss": (lambda w, t: w.jwt(t, iss=None), "INVALID_TOKEN"),
    "missing-tenant": (lambda w, t: w.jwt(t, tenant_id=None), "INVALID_TOKEN"),
    "not-yet-valid": (lambda w, t: w.jwt(t, nbf=int(time.time()) + 3600), "INVALID_TOKEN"),
    "role-superuser": (lambda w, t: _signed(w, t, role="superuser"), "INVALID_TOKEN"),
    "role-missing": (lambda w, t: _signed(w, t, role=None), "INVALID_TOKEN"),
    "role-uppercase": (lambda w, t: _signed(w, t, role="OWNER"), "INVALID_TOKEN"),
    "role-list": (lambda w, t: _signed(w, t, role=["owner"]), "INVALID_TOKEN"),
    "sub-not-a-string": (lambda w, t: _signed(w, t, sub=42), "INVALID_TOKEN"),
    "unknown-tenant": (lambda w, t: w.jwt(t, tenant_id="999999"), "INVALID_TOKEN"),
    "unknown-user": (lambda w, t: w.jwt(t, sub="usr_nobody"), "USER_DEACTIVATED"),
    "tampered-signature": (_tampered_signature, "INVALID_TOKEN"),
    "tampered-payload": (_tampered_payload, "INVALID_TOKEN"),
    "other-hs256-secret": (_other_secret, "INVALID_TOKEN"),
    "garbage": (lambda w, t: "not-a-jwt", "INVALID_TOKEN"),
    "two-segments": (lambda w, t: ".".join(w.jwt(t).split(".")[:2]), "INVALID_TOKEN"),
}


@pytest.mark.parametrize("case", INVALID_JWTS)
def test_dashboard_rejects_invalid_jwts(api, world, case):
    tenant = world.tenant()
    build, code = INVALID_JWTS[case]
    token = build(world, tenant)
    reply = api.get("/dashboard/tenant", headers=bearer(token))
    assert_denied(reply, 401, code)
    assert tenant.company_name not in text(reply)


def test_dashboard_accepts_a_valid_jwt_and_an_expiry_within_the_leeway(api, world):
    tenant = world.tenant()
    assert api.get("/dashboard/tenant", headers=bearer(world.jwt(tenant))).data["id"] == tenant.id
    almost = world.jwt(tenant, exp=int(time.time()) - 5)  # 5 s late, leeway is 30 s
    assert api.get("/dashboard/tenant", headers=bearer(almost)).status == 200


def test_jwt_of_another_tenant_where_the_user_does_not_exist_is_rejected(api, world):
    tenant_a, tenant_b = world.tenant("A Co"), world.tenant("B Co")
    token = world.jwt(tenant_a, "owner", tenant_id=tenant_b.id)  # A's user claims B
    assert_denied(api.get("/dashboard/tenant", headers=bearer(token)), 401, "USER_DEACTIVATED")


def test_deactivated_user_is_rejected_by_jwt_and_cookie(api, world):
    from chalicelib.domain.tenants import UserStatus

    tenant = world.tenant()
    token, session = world.jwt(tenant, "manager"), world.session_cookie(tenant, "manager")
    uow = world.uow()
    user = uow.users.get(tenant.id, "usr_manager_" + tenant.id)
    uow.users.save(dataclasses.replace(user, status=UserStatus.DEACTIVATED))
    uow.commit()
    assert_denied(api.get("/dashboard/tenant", headers=bearer(token)), 401, "USER_DEACTIVATED")
    assert_denied(api.get("/dashboard/tenant", headers=cookie(session)), 401, "USER_DEACTIVATED")
    assert api.get("/dashboard/tenant", headers=world.auth(tenant, "owner")).status == 200


def test_deleted_tenant_credentials_are_rejected(api, world):
    tenant = world.tenant("Acme Inc")
    owner = world.auth(tenant, "owner")
    session = world.session_cookie(tenant, "viewer")
    assert api.delete("/dashboard/tenant", headers=owner, json_body={"confirmation": "Acme Inc"}).status == 200
    assert_denied(api.get("/dashboard/tenant", headers=owner), 401, "ACCOUNT_DELETED")
    assert_denied(api.get("/dashboard/tenant", headers=cookie(session)), 401, "ACCOUNT_DELETED")
    assert_denied(api.post("/dashboard/session", headers=owner), 401, "ACCOUNT_DELETED")


@pytest.mark.parametrize("authorization", [
    "Basic dXNlcjpwYXNzd29yZA==",
    "Bearer",
    "Bearer    ",
    "Token abc.def.ghi",
])
def test_non_bearer_authorization_is_rejected(api, world, authorization):
    world.tenant()
    assert_denied(api.get("/dashboard/tenant", headers={"Authorization": authorization}), 401, "INVALID_TOKEN")


@pytest.mark.parametrize("method, path", [
    ("GET", "/dashboard/tenant"),
    ("DELETE", "/dashboard/tenant"),
    ("GET", "/dashboard/session"),
    ("POST", "/dashboard/session"),
    ("DELETE", "/dashboard/session"),
    ("GET", "/dashboard/api-keys"),
    ("POST", "/dashboard/api-keys"),
    ("GET", "/dashboard/audit"),
])
def test_dashboard_routes_without_credentials_are_unauthorized(api, world, method, path):
    world.tenant()
    reply = api.request(method, path, json_body={"name": "x"} if method == "POST" else None)
    assert_denied(reply, 401, "UNAUTHORIZED")


# --- RS256 configuration (algorithm allow-list) -------------------------------------------


@pytest.fixture(scope="module")
def rsa_keys():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def pem_pair():
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        return private, public.decode()

    return pem_pair(), pem_pair()


@pytest.fixture(params=[("RS256",), ("HS256", "RS256")], ids=["rs256-only", "hs256-and-rs256-no-secret"])
def rs256(request, world, rsa_keys):
    """The server verifies with an RSA public key and has no HMAC secret."""
    from chalicelib.adapters.jwt_tokens import JwtVerifier
    from chalicelib.settings import get_settings

    (private, public_pem), _other = rsa_keys
    settings = dataclasses.replace(get_settings(), jwt_algorithms=request.param, jwt_public_key=public_pem,
                                   jwt_secret="")
    with overriding(jwt=JwtVerifier(settings)):
        yield private, public_pem


def test_rs256_token_signed_with_the_configured_key_is_accepted(api, world, rs256):
    import jwt

    private, _public = rs256
    tenant = world.tenant()
    token = jwt.encode(claims(tenant, world.user(tenant, "viewer"), "viewer"), private, algorithm="RS256")
    reply = api.get("/dashboard/session", headers=bearer(token))
    assert reply.status == 200 and reply.data["tenantId"] == tenant.id and reply.data["role"] == "viewer"


def test_hs256_token_keyed_with_the_rsa_public_key_is_rejected(api, world, rs256):
    _private, public_pem = rs256
    tenant = world.tenant()
    token = craft({"alg": "HS256", "typ": "JWT"}, claims(tenant, world.user(tenant, "owner"), "owner"),
                  public_pem.encode())
    assert_denied(api.get("/dashboard/tenant", headers=bearer(token)), 401, "INVALID_TOKEN")


def test_rs256_rejects_alg_none_and_a_foreign_rsa_key(api, world, rs256, rsa_keys):
    import jwt

    _own, (foreign_private, _foreign_public) = rsa_keys
    tenant = world.tenant()
    payload = claims(tenant, world.user(tenant, "owner"), "owner")
    for token in (craft({"alg": "none", "typ": "JWT"}, payload),
                  jwt.encode(payload, foreign_private, algorithm="RS256")):
        assert_denied(api.get("/dashboard/tenant", headers=bearer(token)), 401, "INVALID_TOKEN")


# --- session cookie -----------------------------------------------------------------------


def cookie_attributes(set_cookie: str) -> tuple[str, str, set[str]]:
    first, *attributes = [part.strip() for part in set_cookie.split(";")]
    name, _, value = first.partition("=")
    return name, value, set(attributes)


@pytest.mark.parametrize("proto, secure", [(None, False), ("http", False), ("https", True), ("HTTPS", True)])
def test_session_exchange_sets_a_hardened_cookie(api, world, proto, secure):
    tenant = world.tenant()
    headers = world.auth(tenant, "manager")
    if proto:
        headers["X-Forwarded-Proto"] = proto
    reply = api.post("/dashboard/session", headers=headers)
    assert reply.status == 201
    assert reply.data == {"tenantId": tenant.id, "userId": f"usr_manager_{tenant.id}", "role": "manager",
                          "via": "session", "expiresAt": "2026-04-16T00:00:00.000Z"}
    name, value, attributes = cookie_attributes(reply.headers["set-cookie"])
    assert name == "tally_session" and COOKIE_RE.match(value)
    assert {"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"} <= attributes
    assert ("Secure" in attributes) is secure
    assert value not in text(reply)  # the secret travels only in the HttpOnly cookie

    me = api.get("/dashboard/session", headers=cookie(value))
    assert me.status == 200 and me.data["via"] == "session" and me.data["role"] == "manager"
    assert api.get("/dashboard/tenant", headers=cookie(value)).data["id"] == tenant.id


@pytest.mark.parametrize("proto, secure", [(None, False), ("https", True)])
def test_logout_clears_the_cookie_and_ends_the_session(api, world, proto, secure):
    tenant = world.tenant()
    value = cookie_attributes(api.post("/dashboard/session", headers=world.auth(tenant)).headers["set-cookie"])[1]
    headers = cookie(value, **({"X-Forwarded-Proto": proto} if proto else {}))
    reply = api.delete("/dashboard/session", headers=headers)
    assert reply.status == 200 and reply.data == {"message": "Signed out."}
    name, cleared, attributes = cookie_attributes(reply.headers["set-cookie"])
    assert name == "tally_session" and cleared == ""
    assert {"Max-Age=0", "Path=/", "HttpOnly", "SameSite=Lax"} <= attributes
    assert ("Secure" in attributes) is secure
    assert_denied(api.get("/dashboard/tenant", headers=cookie(value)), 401, "INVALID_SESSION")
    assert_denied(api.delete("/dashboard/session", headers=cookie(value)), 401, "INVALID_SESSION")


def test_logout_with_jwt_and_cookie_ends_the_cookie_session(api, world):
    tenant = world.tenant()
    value = world.session_cookie(tenant)
    reply = api.delete("/dashboard/session", headers={**world.auth(tenant), **cookie(value)})
    assert reply.status == 200 and "Max-Age=0" in reply.headers["set-cookie"]
    assert_denied(api.get("/dashboard/tenant", headers=cookie(value)), 401, "INVALID_SESSION")


def test_session_expires_after_its_ttl(api, world, clock):
    tenant = world.tenant()
    value = world.session_cookie(tenant)
    clock.advance(hours=11, minutes=59)
    assert api.get("/dashboard/tenant", headers=cookie(value)).status == 200
    clock.advance(minutes=2)
    assert_denied(api.get("/dashboard/tenant", headers=cookie(value)), 401, "SESSION_EXPIRED")


def _swap_tenant(world, value: str) -> str:
    other = world.tenant("Other Co")
    world.user(other, "admin")
    _tenant_id, session_id, secret = value.split(".")
    return f"{other.id}.{session_id}.{secret}"


FORGED_COOKIES = {
    "tampered-secret": lambda w, v: v[:-5] + flip(v[-5:]),
    "secret-of-another-session": lambda w, v: v.rsplit(".", 1)[0] + "." + w.session_cookie(w.tenant("X")).split(".")[2],
    "unknown-session-id": lambda w, v: ".".join([v.split(".")[0], "ses_" + "A" * 20, v.split(".")[2]]),
    "other-tenant-id": _swap_tenant,
    "empty-secret": lambda w, v: v.rsplit(".", 1)[0] + ".",
    "garbage": lambda w, v: "garbage",
    "three-dots": lambda w, v: "a.b.c",
    "jwt-as-cookie": lambda w, v: w.jwt(w.tenant("Y")),
}


@pytest.mark.parametrize("case", FORGED_COOKIES)
def test_forged_session_cookies_are_rejected(api, world, case):
    tenant = world.tenant()
    value = world.session_cookie(tenant, "owner")
    forged = FORGED_COOKIES[case](world, value)
    assert forged != value
    reply = api.get("/dashboard/tenant", headers=cookie(forged))
    assert_denied(reply, 401, "INVALID_SESSION")
    assert api.get("/dashboard/tenant", headers=cookie(value)).status == 200


def test_session_exchange_requires_a_bearer_jwt(api, world):
    tenant = world.tenant()
    value = world.session_cookie(tenant)
    assert_denied(api.post("/dashboard/session", headers=cookie(value)), 401, "UNAUTHORIZED")


# --- CSRF on cookie-authenticated writes -----------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "Cross-Site"},
    {"Origin": "null"},
    {"Origin": "http://dashboard.tally.test"},
    {"Origin": "https://dashboard.tally.test.evil.example"},
    {"Origin": "https://evil.example", "X-Pacspace-CSRF": "1"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    {"Origin": "https://evil.example", "Host": "api.tally.test"},
    # the same host under another scheme is another origin (issue 13)
    {"Origin": "http://api.tally.test", "Host": "api.tally.test", "X-Forwarded-Proto": "https"},
    {"Origin": "https://api.tally.test", "Host": "api.tally.test", "X-Forwarded-Proto": "http"},
], ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()))
def test_cross_site_cookie_write_is_forbidden(api, world, headers):
    tenant = world.tenant()
    value = world.session_cookie(tenant, "owner")
    reply = api.post("/dashboard/api-keys", headers=cookie(value, **headers), json_body={"name": "x"})
    assert_denied(reply, 403, "CROSS_SITE_REQUEST")
    assert key_count(api, world, tenant) == 0


@pytest.mark.parametrize("headers", [
    {},
    {"Origin": ALLOWED_ORIGIN},
    {"Origin": ALLOWED_ORIGIN, "Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},
    {"X-Pacspace-CSRF": "1"},
    {"Origin": "https://api.tally.test", "Host": "api.tally.test", "X-Forwarded-Proto": "https"},
    {"Origin": "http://127.0.0.1:8000", "Host": "127.0.0.1:8000"},  # the local stack, over plain HTTP
], ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()) or "no-origin-headers")
def test_same_origin_or_headerless_cookie_write_is_allowed(api, world, headers):
    tenant = world.tenant()
    value = world.session_cookie(tenant, "owner")
    reply = api.post("/dashboard/api-keys", headers=cookie(value, **headers), json_body={"name": "x"})
    assert reply.status == 201 and reply.data["name"] == "x"
    assert key_count(api, world, tenant) == 1


@pytest.mark.parametrize("method, path", [
    ("POST", "/dashboard/api-keys/{key}/rotate"),
    ("POST", "/dashboard/api-keys/{key}/revoke"),
    ("DELETE", "/dashboard/api-keys/{key}"),
    ("DELETE", "/dashboard/tenant"),
    ("DELETE", "/dashboard/session"),
])
def test_every_cookie_write_route_is_csrf_guarded(api, world, method, path):
    tenant = world.tenant("Acme Inc")
    key_id, full_key = world.api_key(tenant)
    value = world.session_cookie(tenant, "owner")
    reply = api.request(method, path.format(key=key_id), json_body={"confirmation": "Acme Inc"},
                        headers=cookie(value, Origin="https://evil.example"))
    assert_denied(reply, 403, "CROSS_SITE_REQUEST")
    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key}).status == 200
    assert api.get("/dashboard/tenant", headers=cookie(value)).data["status"] == "active"


def test_jwt_write_is_not_subject_to_the_origin_check(api, world):
    tenant = world.tenant()
    headers = {**world.auth(tenant, "owner"), "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert api.post("/dashboard/api-keys", headers=headers, json_body={"name": "x"}).status == 201


def test_cookie_read_is_not_subject_to_the_origin_check(api, world):
    tenant = world.tenant()
    value = world.session_cookie(tenant)
    headers = cookie(value, Origin="https://evil.example", **{"Sec-Fetch-Site": "cross-site"})
    assert api.get("/dashboard/api-keys", headers=headers).status == 200
    assert api.get("/dashboard/tenant", headers=headers).data["id"] == tenant.id


# --- API keys -------------------------------------------------------------------------------


def _switch_prefix(full_key: str, prefix: str) -> str:
    return prefix + full_key.split("_", 2)[2]


BAD_API_KEYS = {
    "missing": lambda live, test: None,
    "empty": lambda live, test: "",
    "blank": lambda live, test: "   ",
    "prefix-only": lambda live, test: "pk_live_",
    "short-id": lambda live, test: "pk_live_abc",
    "no-secret": lambda live, test: live.split(".")[0],
    "sk-prefix": lambda live, test: _switch_prefix(live, "sk_live_"),
    "uppercase-prefix": lambda live, test: _switch_prefix(live, "PK_LIVE_"),
    "wrong-secret": lambda live, test: live.split(".")[0] + "." + "x" * 43,
    "secret-of-another-key": lambda live, test: live.split(".")[0] + "." + test.split(".")[1],
    "sandbox-key-as-live": lambda live, test: _switch_prefix(test, "pk_live_"),
    "live-key-as-sandbox": lambda live, test: _switch_prefix(live, "pk_test_"),
    "bearer-scheme": lambda live, test: f"Bearer {live}",
    "trailing-garbage": lambda live, test: live + "!",
}


@pytest.mark.parametrize("case", BAD_API_KEYS)
def test_malformed_or_wrong_api_keys_are_rejected(api, world, case):
    tenant = world.tenant()
    add_customer(tenant.id, "cust_secret", Environment.PRODUCTION)
    add_customer(tenant.id, "cust_secret", Environment.SANDBOX)
    _live_id, live = world.api_key(tenant, "production")
    _test_id, test = world.api_key(tenant, "sandbox")
    presented = BAD_API_KEYS[case](live, test)
    reply = api.get("/api/v1/balance/customers", headers={} if presented is None else {"X-Api-Key": presented})
    assert_denied(reply, 401, "INVALID_API_KEY")
    assert "cust_secret" not in text(reply)


@pytest.mark.parametrize("method, suffix", [("POST", "/revoke"), ("DELETE", "")])
def test_revoked_api_key_is_rejected(api, world, method, suffix):
    tenant = world.tenant()
    key_id, full_key = world.api_key(tenant)
    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key}).status == 200
    reply = api.request(method, f"/dashboard/api-keys/{key_id}{suffix}", headers=world.auth(tenant, "owner"))
    assert reply.status == 200 and reply.data["status"] == "revoked"
    assert_denied(api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key}), 401, "INVALID_API_KEY")


def test_rotated_api_key_only_accepts_the_new_secret(api, world):
    tenant = world.tenant()
    key_id, old_key = world.api_key(tenant, "sandbox")
    reply = api.post(f"/dashboard/api-keys/{key_id}/rotate", headers=world.auth(tenant, "admin", "sandbox"))
    assert reply.status == 200
    new_key = reply.data["fullKey"]
    assert new_key != old_key and new_key.startswith(f"pk_test_{key_id}.")
    assert_denied(api.get("/api/v1/balance/customers", headers={"X-Api-Key": old_key}), 401, "INVALID_API_KEY")
    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": new_key}).status == 200


@pytest.mark.parametrize("environment", ["production", "sandbox"])
def test_api_key_use_sets_last_used_at_at_most_once_a_minute(api, world, clock, environment):
    tenant = world.tenant()
    key_id, full_key = world.api_key(tenant, environment)
    dashboard = world.auth(tenant, "viewer", environment)

    def last_used():
        return api.get(f"/dashboard/api-keys/{key_id}", headers=dashboard).data["lastUsedAt"]

    assert last_used() is None
    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key}).status == 200
    assert last_used() == "2026-04-15T12:00:00.000Z"
    clock.advance(seconds=30)
    api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key})
    assert last_used() == "2026-04-15T12:00:00.000Z"
    clock.advance(seconds=30)
    api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key})
    assert last_used() == "2026-04-15T12:01:00.000Z"


def test_failed_api_key_attempt_does_not_touch_last_used_at(api, world):
    tenant = world.tenant()
    key_id, full_key = world.api_key(tenant)
    api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key.split(".")[0] + "." + "x" * 43})
    assert api.get(f"/dashboard/api-keys/{key_id}", headers=world.auth(tenant)).data["lastUsedAt"] is None


# --- platform tokens ------------------------------------------------------------------------


@pytest.fixture
def platform_world(world):
    world.tenant("Platform")  # id 1
    return world.tenant("Acme Inc", stripe_customer_id="cus_1")


@pytest.mark.parametrize("abilities, method, path", [
    (("tenants:read",), "GET", "/tenants"),
    (("cross-tenant",), "GET", "/tenants"),
    (("tenants:write", "cross-tenant"), "GET", "/tenants"),
    ((), "GET", "/tenants"),
    (("tenants:read", "cross-tenant"), "POST", "/tenants/{tenant}/missing-payments"),
    (("tenants:read", "cross-tenant"), "DELETE", "/tenants/{tenant}/missing-payments"),
])
def test_platform_token_without_the_ability_is_forbidden(api, world, platform_world, abilities, method, path):
    token = world.platform_token(*abilities)
    reply = api.request(method, path.format(tenant=platform_world.id), headers=bearer(token))
    assert reply.status == 403
    assert reply.json == {"message": "Invalid ability provided."}
    assert world.uow().tenants.get(platform_world.id).has_unpaid_invoices_at is None


def test_platform_token_with_the_abilities_is_accepted(api, world, platform_world):
    read = world.platform_token("tenants:read", "cross-tenant")
    assert [t["id"] for t in api.get("/tenants", headers=bearer(read)).json["data"]] == [platform_world.id]
    write = world.platform_token("tenants:write")
    reply = api.post(f"/tenants/{platform_world.id}/missing-payments", headers=bearer(write))
    assert reply.status == 200 and reply.json["data"]["tenant_id"] == platform_world.id


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_platform_tenant_cannot_be_targeted_by_path(api, world, platform_world, method):
    token = world.platform_token("tenants:read", "tenants:write", "cross-tenant")
    reply = api.request(method, "/tenants/1/missing-payments", headers=bearer(token))
    assert reply.status == 403 and "data" not in reply.json
    assert world.uow().tenants.get("1").has_unpaid_invoices_at is None


def test_revoked_platform_token_is_unauthenticated(api, world, platform_world):
    from chalicelib.services.platform import revoke_platform_token

    token = world.platform_token("tenants:read", "cross-tenant")
    assert api.get("/tenants", headers=bearer(token)).status == 200
    revoke_platform_token(world.uow(), token.split("|")[0], now=world.clock())
    reply = api.get("/tenants", headers=bearer(token))
    assert reply.status == 401 and reply.json["message"] == "Unauthenticated."
    assert "data" not in reply.json and "Acme" not in text(reply)


BAD_PLATFORM_TOKENS = {
    "missing": lambda w, tok: {},
    "garbage": lambda w, tok: bearer("garbage"),
    "id-only": lambda w, tok: bearer(tok.split("|")[0]),
    "wrong-secret": lambda w, tok: bearer(tok.split("|")[0] + "|" + "x" * 43),
    "unknown-id": lambda w, tok: bearer("ptk_AAAAAAAAAAAAAAAA|" + tok.split("|")[1]),
    "basic-scheme": lambda w, tok: {"Authorization": f"Basic {tok}"},
    "no-scheme": lambda w, tok: {"Authorization": tok},
    "dashboard-jwt": lambda w, tok: w.auth(w.tenant("Jwt Co"), "owner"),
}


@pytest.mark.parametrize("case", BAD_PLATFORM_TOKENS)
def test_malformed_platform_credentials_are_unauthenticated(api, world, platform_world, case):
    token = world.platform_token("tenants:read", "tenants:write", "cross-tenant")
    reply = api.get("/tenants", headers=BAD_PLATFORM_TOKENS[case](world, token))
    assert reply.status == 401 and reply.json["message"] == "Unauthenticated."
    assert "data" not in reply.json and "Acme" not in text(reply) and "Traceback" not in text(reply)


def test_platform_token_is_not_a_dashboard_credential(api, world, platform_world):
    token = world.platform_token("tenants:read", "tenants:write", "cross-tenant")
    assert_denied(api.get("/dashboard/tenant", headers=bearer(token)), 401, "INVALID_TOKEN")
    assert_denied(api.get("/dashboard/tenant", headers=cookie(token)), 401, "INVALID_SESSION")


# --- tenant isolation -----------------------------------------------------------------------


@pytest.fixture
def two_tenants(world):
    tenant_a, tenant_b = world.tenant("Alpha Co"), world.tenant("Bravo Co")
    b_key_id, b_key = world.api_key(tenant_b, name="bravo-secret-key")
    return tenant_a, tenant_b, b_key_id, b_key


@pytest.fixture(params=["jwt", "cookie"])
def a_credentials(request, world, two_tenants):
    tenant_a = two_tenants[0]
    if request.param == "jwt":
        return world.auth(tenant_a, "owner")
    return cookie(world.session_cookie(tenant_a, "owner"))


def assert_no_bravo_data(reply, b_key_id: str, b_key: str) -> None:
    assert_denied(reply, 404, "NOT_FOUND")
    for leaked in (b_key_id, b_key[-4:], "bravo-secret-key", "Bravo Co"):
        assert leaked not in text(reply)


@pytest.mark.parametrize("method, suffix", [
    ("GET", ""), ("POST", "/rotate"), ("POST", "/revoke"), ("DELETE", ""),
])
def test_another_tenants_api_key_answers_404(api, world, two_tenants, a_credentials, method, suffix):
    _a, tenant_b, b_key_id, b_key = two_tenants
    reply = api.request(method, f"/dashboard/api-keys/{b_key_id}{suffix}", headers=a_credentials)
    assert_no_bravo_data(reply, b_key_id, b_key)
    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": b_key}).status == 200
    stored = api.get(f"/dashboard/api-keys/{b_key_id}", headers=world.auth(tenant_b, "owner")).data
    assert stored["status"] == "active" and stored["rotatedAt"] is None and stored["revokedAt"] is None


def test_api_key_list_is_scoped_to_the_callers_tenant(api, world, two_tenants, a_credentials):
    _a, _b, b_key_id, _b_key = two_tenants
    reply = api.get("/dashboard/api-keys", headers=a_credentials)
    assert reply.status == 200 and reply.data["items"] == [] and reply.data["total"] == 0
    assert b_key_id not in text(reply)


def test_api_key_sees_only_its_tenant_and_environment(api, world):
    tenant_a, tenant_b = world.tenant("Alpha Co"), world.tenant("Bravo Co")
    add_customer(tenant_a.id, "cust_a_live", Environment.PRODUCTION)
    add_customer(tenant_a.id, "cust_a_test", Environment.SANDBOX)
    add_customer(tenant_b.id, "cust_b_live", Environment.PRODUCTION)
    add_customer(tenant_b.id, "cust_b_test", Environment.SANDBOX)
    expected = {("A", "production"): ["cust_a_live"], ("A", "sandbox"): ["cust_a_test"],
                ("B", "production"): ["cust_b_live"], ("B", "sandbox"): ["cust_b_test"]}
    for (label, environment), customers in expected.items():
        _key_id, full_key = world.api_key(tenant_a if label == "A" else tenant_b, environment)
        reply = api.get("/api/v1/balance/customers", headers={"X-Api-Key": full_key})
        assert reply.status == 200
        assert [c["customerId"] for c in reply.data["items"]] == customers, (label, environment)
        probe = api.get("/api/v1/balance/customers?search=cust_", headers={"X-Api-Key": full_key})
        assert [c["customerId"] for c in probe.data["items"]] == customers


def test_api_key_environment_cannot_be_overridden_by_header(api, world):
    tenant = world.tenant()
    add_customer(tenant.id, "cust_live", Environment.PRODUCTION)
    add_customer(tenant.id, "cust_test", Environment.SANDBOX)
    _key_id, sandbox_key = world.api_key(tenant, "sandbox")
    reply = api.get("/api/v1/balance/customers", headers={"X-Api-Key": sandbox_key, "X-Environment": "production"})
    assert [c["customerId"] for c in reply.data["items"]] == ["cust_test"]


def test_sandbox_scope_hides_production_keys(api, world):
    tenant = world.tenant()
    live_id, live_key = world.api_key(tenant, "production", name="live-key")
    test_id, _test_key = world.api_key(tenant, "sandbox", name="test-key")
    sandbox = world.auth(tenant, "owner", "sandbox")
    for method, suffix in (("GET", ""), ("POST", "/rotate"), ("POST", "/revoke")):
        reply = api.request(method, f"/dashboard/api-keys/{live_id}{suffix}", headers=sandbox)
        assert_denied(reply, 404, "NOT_FOUND")
        assert "live-key" not in text(reply)
    listed = api.get("/dashboard/api-keys", headers=sandbox).data
    assert [k["id"] for k in listed["items"]] == [test_id] and listed["total"] == 1
    assert api.get(f"/dashboard/api-keys/{test_id}", headers=world.auth(tenant, "owner")).status == 404
    assert api.get(f"/dashboard/api-keys/{live_id}", headers=world.auth(tenant)).data["status"] == "active"
    assert api.get("/api/v1/balance/customers", headers={"X-Api-Key": live_key}).status == 200
