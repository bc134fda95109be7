"""Verification packages (seed 001): a sampled, proof-carrying, signed package behind an expiring public link
that needs no login, and that `tally verify` checks offline."""

from __future__ import annotations

import json

import pytest

from chalicelib.cli.main import main
from chalicelib.domain.merkle import verify_inclusion
from tests.helpers import submit, verify

PACKAGE = "/dashboard/customers/cust_a/verification-package"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


@pytest.fixture
def verified(api, key, tenant, clock):
    ids = [submit(api, key, amount=n) for n in range(1, 13)]
    verify(tenant, ids, clock)
    return ids


def open_link(api, url: str):
    return api.get(url.split("127.0.0.1:8000", 1)[-1])


def test_a_package_samples_proofs_against_the_checkpoint_and_passes_tally_verify(api, admin, verified, tmp_path):
    made = api.post(PACKAGE, headers=admin, json_body={"period": "2026-04", "sampleSize": 5})
    assert made.status == 201, made
    link = made.data
    assert (link["treeSize"], link["sampleSize"]) == (12, 5) and link["expiresAt"] == "2026-04-22T12:00:00.000Z"
    reply = open_link(api, link["url"])  # no credentials at all
    assert reply.status == 200 and reply.headers["cache-control"] == "private, no-store"
    package = reply.data
    statement = package["checkpoint"]["statement"]
    assert statement["root"] == link["checkpointRoot"] and len(package["samples"]) == 5
    indexes = [s["leafIndex"] for s in package["samples"]]
    assert indexes == sorted(set(indexes)) and all(s["recordId"] in verified for s in package["samples"])
    for sample in package["samples"]:
        assert verify_inclusion(bytes.fromhex(sample["leafHash"]), sample["leafIndex"], statement["treeSize"],
                                [bytes.fromhex(p) for p in sample["inclusionProof"]], bytes.fromhex(statement["root"]))
    saved = tmp_path / "package.json"
    saved.write_text(json.dumps(reply.json, separators=(",", ":")))
    assert main(["verify", str(saved)]) == 0


def test_a_package_made_after_a_key_rotation_carries_the_checkpoints_retired_key(api, admin, verified, rotate,
                                                                                 tmp_path):
    first = api.post(PACKAGE, headers=admin, json_body={}).data
    rotate("a-new-secret-" + "p" * 51)
    second = api.post(PACKAGE, headers=admin, json_body={}).data
    assert second["checkpointId"] == first["checkpointId"]  # nothing new to seal: the same checkpoint
    package = open_link(api, second["url"]).data  # the served document matches the OpenAPI schema
    published = {k["keyId"]: k for k in api.get("/api/v1/verification-keys").data["keys"]}
    assert published[package["publicKey"]["keyId"]]["status"] == "active"
    assert published[package["checkpoint"]["publicKey"]["keyId"]]["status"] == "retired"
    saved, keys = tmp_path / "package.json", tmp_path / "keys.json"
    saved.write_bytes(open_link(api, second["url"]).body)
    keys.write_bytes(api.get("/api/v1/verification-keys").body)
    assert main(["verify", str(saved), "--keys", str(keys)]) == 0


def test_the_sample_is_capped_by_the_checkpoint_and_defaults_apply(api, admin, key, tenant, clock):
    verify(tenant, [submit(api, key) for _ in range(3)], clock)
    link = api.post(PACKAGE, headers=admin, json_body={}).data  # current month, 10 asked, 3 there
    assert (link["sampleSize"], link["treeSize"], link["period"]) == (3, 3, "2026-04")


def test_links_expire_and_unknown_links_look_the_same(api, admin, verified, clock):
    link = api.post(PACKAGE, headers=admin, json_body={"expiresInDays": 1}).data
    assert open_link(api, link["url"]).status == 200
    clock.advance(days=1)
    expired = open_link(api, link["url"])
    assert expired.status == 404 and expired.error["code"] == "LINK_NOT_FOUND"
    unknown = api.get("/api/v1/verification-packages/" + "x" * 43)
    assert unknown.status == 404 and unknown.error["code"] == "LINK_NOT_FOUND"
    assert api.get("/api/v1/verification-packages/short").status == 404


def test_each_package_gets_its_own_link_and_an_audit_entry(api, admin, verified):
    first = api.post(PACKAGE, headers=admin, json_body={}).data
    second = api.post(PACKAGE, headers=admin, json_body={}).data
    assert first["url"] != second["url"] and first["checkpointId"] == second["checkpointId"]
    actions = [e["action"] for e in api.get("/dashboard/audit", headers=admin).data["items"]]
    assert actions.count("verification_package.created") == 2


@pytest.mark.parametrize("body, field", [
    ({"sampleSize": 0}, "sampleSize"), ({"sampleSize": 101}, "sampleSize"), ({"sampleSize": "5"}, "sampleSize"),
    ({"expiresInDays": 91}, "expiresInDays"), ({"period": "2026-4"}, "period"),
])
def test_bad_requests(api, admin, verified, body, field):
    reply = api.post(PACKAGE, headers=admin, json_body=body)
    assert reply.status == 400 and reply.error["field"] == field


def test_roles_tenants_and_environments(api, world, tenant, admin, verified):
    assert api.post(PACKAGE, headers=world.auth(tenant, "viewer"), json_body={}).status == 403
    assert api.post(PACKAGE, headers=world.auth(tenant, "manager"), json_body={}).status == 201
    assert api.post(PACKAGE, headers=world.auth(world.tenant("Globex"), "admin"), json_body={}).status == 404
    assert api.post(PACKAGE, headers={**admin, "X-Environment": "sandbox"}, json_body={}).status == 404
    assert api.post(PACKAGE, json_body={}).status == 401
