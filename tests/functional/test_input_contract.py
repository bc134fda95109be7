"""Server and document agree on every input (issue 13): each mismatch schemathesis found, now one declaration,
with the document's rule and the server's answer checked together. Tenant routes refuse with 400 and a code,
the platform's with seed 002's 422."""

from __future__ import annotations

import pytest

from chalicelib.domain.identity import Ability
from chalicelib.domain.usage import PERIOD_PATTERN
from tests.helpers import submit

DERIVE = "/api/v1/balance/derive/cust_a"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant)[1]}


@pytest.fixture
def document(api):
    return api.get("/openapi.json").json


def parameter(document: dict, path: str, method: str, name: str) -> dict:
    for declared in document["paths"][path][method]["parameters"]:
        if declared["name"] == name:
            return declared
        if name in declared["schema"].get("properties", {}):  # a form-exploded group
            return {**declared, "schema": declared["schema"]["properties"][name]}
    raise AssertionError(f"{method} {path} documents no {name}")


def refused(reply, field: str | None, code: str = "VALIDATION_ERROR", status: int = 400) -> None:
    assert reply.status == status, reply
    assert reply.error["code"] == code and reply.error["message"], reply
    assert reply.error.get("field") == field, reply


FULL_WIDTH_2026 = "\uff12\uff10\uff12\uff16"


@pytest.mark.parametrize("period", ["2026-13", "1999-12", "3000-01", "2026-4", f"{FULL_WIDTH_2026}-04", "2026-04%0A"])
def test_period_is_a_documented_pattern_and_a_month_outside_it_is_a_400(api, key, document, period):
    assert parameter(document, "/api/v1/balance/customers/{customerId}", "get", "period")["schema"]["pattern"] \
        == PERIOD_PATTERN
    submit(api, key, "cust_a")
    refused(api.get(f"/api/v1/balance/customers/cust_a?period={period}", headers=key), "period")
    assert api.get("/api/v1/balance/customers/cust_a?period=2026-04", headers=key).status == 200


@pytest.mark.parametrize("reference", ["", "   "])
def test_reference_id_is_documented_non_empty_and_an_empty_one_is_a_400(api, key, document, reference):
    schema = document["components"]["schemas"]["DeltaRequest"]["properties"]["referenceId"]
    assert schema["minLength"] == 1 and schema["pattern"] == r"\S"
    reply = api.post("/api/v1/balance/delta", headers=key,
                     json_body={"customerId": "cust_a", "delta": 1, "reason": "r", "referenceId": reference})
    refused(reply, "referenceId")


@pytest.mark.parametrize("customer", ["cust%20a", "caf%C3%A9", "x" * 129])
def test_a_path_customer_id_outside_the_documented_characters_is_a_400_not_a_404(api, key, document, customer):
    schema = parameter(document, "/api/v1/balance/customers/{customerId}", "get", "customerId")["schema"]
    assert schema["pattern"] == r"^[A-Za-z0-9_\-.:]{1,128}$"
    refused(api.get(f"/api/v1/balance/customers/{customer}", headers=key), "customerId")
    assert api.get("/api/v1/balance/customers/ns:cust_unknown", headers=key).status == 404


@pytest.mark.parametrize(("status", "ok"), [("verified", True), ("QUEUED", True), ("Verified", False),
                                            ("done", False)])
def test_delta_status_is_a_documented_enum(api, key, admin, document, status, ok):
    assert "verified" in parameter(document, "/dashboard/customers/{customerId}", "get", "status")["schema"]["enum"]
    submit(api, key, "cust_a")
    for path in (f"/dashboard/customers/cust_a?status={status}", f"/dashboard/customers/cust_a/export?status={status}"):
        reply = api.get(path, headers=admin)
        if ok:
            assert reply.status == 200, reply
        else:
            refused(reply, "status")


@pytest.mark.parametrize("url", ["https://hooks.example.com/a}b", "https://hooks.example.com/%zz", "ftp://example.com/x",
                                 "https://user:pw@hooks.example.com/x", "https://hooks.localhost/x",
                                 "https://10.1.2.3/x"])
def test_a_webhook_url_outside_the_documented_form_is_a_400(api, admin, document, url):
    assert document["components"]["schemas"]["CreateWebhookRequest"]["properties"]["url"]["pattern"].startswith(
        "^(https://")
    refused(api.post("/dashboard/webhooks", headers=admin, json_body={"url": url}), "url")
    assert api.post("/dashboard/webhooks", headers=admin,
                    json_body={"url": "https://hooks.example.com/in?x=1#y"}).status == 201


@pytest.mark.parametrize("value", [" leading", "trailing ", "tab\there", "é-accented", "k" * 256, ""])
def test_an_idempotency_key_outside_printable_ascii_is_a_400(api, key, document, value):
    assert parameter(document, "/api/v1/balance/delta", "post", "Idempotency-Key")["schema"]["pattern"]
    reply = api.post("/api/v1/balance/delta", headers={**key, "Idempotency-Key": value},
                     json_body={"customerId": "cust_a", "delta": 1, "reason": "r"})
    refused(reply, "Idempotency-Key")


def test_an_idempotency_key_of_255_printable_characters_with_inner_spaces_is_taken(api, key):
    reply = api.post("/api/v1/balance/delta", headers={**key, "Idempotency-Key": "a b" + "k" * 252},
                     json_body={"customerId": "cust_a", "delta": 1, "reason": "r"})
    assert reply.status == 202


@pytest.mark.parametrize(("per_page", "status"), [("0", 422), ("501", 422), ("1", 200), ("500", 200)])
def test_per_page_is_documented_1_to_500_and_outside_it_is_seed_002s_422(api, world, document, per_page, status):
    schema = parameter(document, "/tenants", "get", "per_page")["schema"]
    assert (schema["minimum"], schema["maximum"]) == (1, 500)
    world.tenant("Platform")
    bearer = {"Authorization": f"Bearer {world.platform_token(*Ability)}"}
    reply = api.get(f"/tenants?per_page={per_page}", headers=bearer)
    assert reply.status == status
    if status == 422:
        assert reply.json["errors"] == {"per_page": ["The per page field must be between 1 and 500."]}


@pytest.mark.parametrize("query", [
    "period=2026-04&timePreset=current_month", "period=2026-04&startDate=2026-04-01", "startDate=2026-04-01",
    "endDate=2026-05-01", "timePreset=custom&startDate=2026-04-01", "timePreset=previous_month&endDate=2026-05-01",
    "startingCheckpoint=chk_1&period=2026-04", "startingCheckpointType=checkpoint",
])
def test_parameters_that_exclude_each_other_are_documented_and_refused(api, key, document, query):
    scope = parameter(document, "/api/v1/balance/derive/{customerId}", "get", "period")
    assert scope["style"] == "form" and scope["explode"] is True and "dependentSchemas" in next(
        p for p in document["paths"]["/api/v1/balance/derive/{customerId}"]["get"]["parameters"]
        if p["name"] == "scope")["schema"]
    submit(api, key, "cust_a")
    refused(api.get(f"{DERIVE}?{query}", headers=key), None, code="INVALID_SCOPE_COMBINATION")


def test_a_filtered_directory_page_past_the_first_needs_the_cursor(api, admin):
    refused(api.get("/dashboard/customers?health=HEALTHY&page=2", headers=admin), "page")
    assert api.get("/dashboard/customers?page=2", headers=admin).status == 200
    assert api.get("/dashboard/customers?health=HEALTHY&page=1", headers=admin).status == 200


@pytest.mark.parametrize("environment", ["", "staging", "Production"])
def test_an_x_environment_outside_its_enum_is_a_400_even_empty(api, admin, environment):
    refused(api.get("/dashboard/customers", headers={**admin, "X-Environment": environment}), "X-Environment")


def test_a_balance_checkpoint_without_a_body_is_documented_as_optional_and_taken(api, key, document):
    assert document["paths"]["/api/v1/balance/checkpoint"]["post"]["requestBody"]["required"] is False
    reply = api.post("/api/v1/balance/checkpoint", headers=key)
    assert reply.status == 200 and reply.data["createdCount"] == 0


def test_a_null_customer_id_on_manual_create_is_a_400(api, admin):
    refused(api.post("/dashboard/customers", headers=admin, json_body={"displayName": "Acme", "customerId": None}),
            "customerId")
    assert api.post("/dashboard/customers", headers=admin, json_body={"displayName": "Acme"}).status == 201


@pytest.mark.parametrize(("path", "body"), [
    ("/dashboard/api-keys", {"name": "k", "scope": "all"}),
    ("/dashboard/stripe/create-subscription-session", {"tier": "starter", "coupon": "X"}),
])
def test_a_body_property_the_document_does_not_list_is_a_400(api, admin, path, body):
    refused(api.post(path, headers=admin, json_body=body), next(k for k in body if k not in ("name", "tier")))


def test_a_query_parameter_given_twice_is_a_400(api, key):
    refused(api.get("/api/v1/balance/customers?limit=5&limit=6", headers=key), "limit")


@pytest.mark.parametrize("query", ["limit=", "period="])
def test_an_empty_value_is_checked_like_any_other(api, admin, query):
    refused(api.get(f"/dashboard/customers/cust_a/checkpoints?{query}", headers=admin), query[:-1])


def test_an_undeclared_query_parameter_is_ignored(api, key):
    assert api.get("/api/v1/balance/customers?sortOrder=sideways", headers=key).status == 200


def test_an_empty_free_text_value_means_none(api, key):
    assert api.get("/api/v1/balance/customers?search=&cursor=", headers=key).status == 200
