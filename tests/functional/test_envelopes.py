"""Envelopes and errors: unknown routes, wrong methods, bad bodies, request ids, 500s, the OpenAPI doc."""

from __future__ import annotations

import re

import pytest

from tests.contract import Reply, check_contract

SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")
KEYS = "/dashboard/api-keys"


def raw(api, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> Reply:
    """Like ``api.request`` but without its X-Request-Id assertion (the contract is still checked)."""
    reply = Reply(api._client.http.request(method, path, headers=headers or {}, body=body))
    check_contract(method, path, reply)
    return reply


def assert_clean(reply: Reply) -> None:
    text = reply.body.decode()
    assert "Traceback" not in text and 'File "' not in text


# --- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("GET", "/nope"),
    ("GET", "/dashboard/nope"),
    ("POST", "/api/v1/nope"),
    ("DELETE", "/tenants/2/nope"),
])
def test_unknown_route_is_a_404_envelope(api, method, path):
    reply = raw(api, method, path)
    assert reply.status == 404
    assert reply.json == {"statusCode": 404, "success": False,
                          "error": {"code": "NOT_FOUND", "message": reply.error["message"]}}


def test_unknown_route_carries_a_request_id(api):
    assert "x-request-id" in raw(api, "GET", "/nope").headers


@pytest.mark.parametrize("method, path, allow", [
    ("PUT", "/dashboard/tenant", "DELETE, GET"),
    ("PATCH", "/dashboard/api-keys", "GET, POST"),
    ("GET", "/dashboard/api-keys/abc/rotate", "POST"),
    ("POST", "/api/v1/balance/customers", "GET"),
])
def test_unregistered_method_on_a_known_path_is_a_405_with_allow(api, admin, method, path, allow):
    reply = api.request(method, path, headers=admin, json_body={})
    assert reply.status == 405 and reply.error["code"] == "METHOD_NOT_ALLOWED"
    assert reply.headers["allow"] == allow


@pytest.mark.parametrize("method, path, allow", [
    ("PUT", "/tenants", "GET"),
    ("GET", "/tenants/2/missing-payments", "DELETE, POST"),
])
def test_platform_paths_answer_405_in_the_platform_style(api, method, path, allow):
    reply = api.request(method, path, json_body={})
    assert reply.status == 405 and reply.json["code"] == "method_not_allowed" and "success" not in reply.json
    assert reply.headers["allow"] == allow


# --- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, body, code", [
    ("POST", KEYS, b'{"name": ', "INVALID_JSON"),
    ("POST", KEYS, b"\xff\xfe{}", "INVALID_JSON"),
    ("POST", KEYS, b'{"name": Infinity}', "INVALID_JSON"),
    ("POST", KEYS, b"[]", "VALIDATION_ERROR"),
    ("POST", KEYS, b'[{"name": "x"}]', "VALIDATION_ERROR"),
    ("POST", KEYS, b"null", "VALIDATION_ERROR"),
    ("POST", KEYS, b"42", "VALIDATION_ERROR"),
    ("POST", KEYS, b'{"name": {"nested": true}}', "VALIDATION_ERROR"),
    ("POST", KEYS, b'{"name": 1e999}', "VALIDATION_ERROR"),
    ("POST", KEYS, b'{"name": "ok", "environment": {"x": 1}}', "VALIDATION_ERROR"),
    ("DELETE", "/dashboard/tenant", b'{"confirmation": ', "INVALID_JSON"),
    ("DELETE", "/dashboard/tenant", b"[]", "VALIDATION_ERROR"),
    ("DELETE", "/dashboard/tenant", b'{"confirmation": ["Acme Inc"]}', "VALIDATION_ERROR"),
])
def test_bad_bodies_are_a_400_envelope_never_a_500(api, world, tenant, admin, method, path, body, code):
    reply = api.request(method, path, headers={**admin, "Content-Type": "application/json"}, body=body)
    assert reply.status == 400 and reply.json["success"] is False and reply.error["code"] == code, reply
    assert_clean(reply)
    assert world.uow().tenants.get(tenant.id).status == "active"


def test_deeply_nested_json_is_a_400(api, admin):
    reply = api.post(KEYS, headers={**admin, "Content-Type": "application/json"}, body=b"[" * 100_000)
    assert reply.status == 400 and reply.error["code"] == "INVALID_JSON"


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_a_json_body_is_read_when_it_says_it_is_json(api, admin, content_type):
    reply = api.post(KEYS, headers={**admin, "Content-Type": content_type}, body='{"name": "from curl"}')
    assert reply.status == 201 and reply.data["name"] == "from curl"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_does_not_say_json_is_a_415(api, admin, content_type):
    """curl's ``-d`` alone sends a form type: the answer says what to send instead of guessing (issue 13)."""
    headers = {**admin} | ({"Content-Type": content_type} if content_type else {})
    reply = api.post(KEYS, headers=headers, body='{"name": "from curl"}')
    assert reply.status == 415 and reply.error["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "application/json" in reply.error["message"]


# --- request ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("GET", "/dashboard/tenant"), ("GET", "/dashboard/audit?limit=0"), ("PUT", "/dashboard/tenant"),
    ("GET", "/health"),
])
def test_a_safe_client_request_id_is_echoed(api, admin, method, path):
    reply = api.request(method, path, headers={**admin, "X-Request-Id": "abcdef12-3456"})
    assert reply.headers["x-request-id"] == "abcdef12-3456"


@pytest.mark.parametrize("supplied", ["has spaces in it", "a" * 300, "short", "abc/def/ghi", "<script>x</script>"])
def test_an_unsafe_client_request_id_is_replaced(api, admin, supplied):
    reply = api.get("/dashboard/tenant", headers={**admin, "X-Request-Id": supplied})
    assert reply.status == 200
    assert reply.headers["x-request-id"] != supplied and SAFE_ID.match(reply.headers["x-request-id"])


def test_every_response_gets_its_own_request_id(api, admin):
    replies = [api.get("/dashboard/tenant", headers=admin), api.get("/health"), api.get(KEYS),
               api.post(KEYS, headers=admin, body="{")]
    request_ids = [r.headers["x-request-id"] for r in replies]
    assert len(set(request_ids)) == len(replies) and all(SAFE_ID.match(i) for i in request_ids)


# --- unexpected failures ------------------------------------------------------------------------


def test_an_unexpected_exception_is_a_500_envelope_without_details(api, admin, monkeypatch):
    from chalicelib.services import api_keys

    def explode(*_args, **_kwargs):
        raise RuntimeError("boom: secret internals /var/task/chalicelib")

    monkeypatch.setattr(api_keys, "list_api_keys", explode)
    reply = api.get(KEYS, headers=admin)
    assert reply.status == 500 and reply.json["success"] is False and reply.error["code"] == "INTERNAL_ERROR"
    text = reply.body.decode()
    assert "boom" not in text and "RuntimeError" not in text and "chalicelib" not in text
    assert_clean(reply)
    assert reply.headers["x-request-id"]


def test_an_unexpected_exception_on_a_platform_route_is_a_platform_style_500(api, world, monkeypatch):
    from chalicelib.services import platform

    world.tenant("Publica.la")
    token = world.platform_token("tenants:read", "cross-tenant")
    monkeypatch.setattr(platform, "list_tenants", lambda *a, **k: 1 / 0)
    reply = api.get("/tenants", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 500 and set(reply.json) <= {"message", "code"}
    assert "ZeroDivision" not in reply.body.decode() and "division" not in reply.body.decode()


# --- OpenAPI --------------------------------------------------------------------------------------


def test_openapi_is_a_valid_3_1_document_matching_the_routes(api):
    from openapi_spec_validator import validate

    from app import app
    from chalicelib.cli.local_gateway import FUNCTION_ROUTES

    reply = api.get("/openapi.json")
    assert reply.status == 200
    document = reply.json
    assert document["openapi"].startswith("3.1")
    validate(document)

    routed = {(path, method.lower()) for path, methods in app.routes.items()
              for method, entry in methods.items() if not entry.view_name.startswith("method_not_allowed")}
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    # Operations API Gateway sends to a function of their own (POST /stripe/webhook), not to a route.
    functions = {(path, method.lower()) for (method, path), name in FUNCTION_ROUTES.items() if name in app.handler_map}
    assert routed, "no routes found"
    assert functions <= documented, "function-served operations missing from the OpenAPI document"
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed - functions == set(), "documented operations without a route"
