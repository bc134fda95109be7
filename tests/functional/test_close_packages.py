"""Bulk close-package export (seed 001): one zip with a folder per customer (receipt JSON and PDF, checkpoints,
activity CSV, a verification package `tally verify` passes) and a signed manifest; nothing is written unless
every requested customer can be packaged."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import zipfile

import boto3
import pytest

from chalicelib import bootstrap
from chalicelib.adapters.signing import Signer, verify_signature
from chalicelib.cli.main import main
from chalicelib.domain.fingerprints import canonical
from chalicelib.settings import get_settings
from tests.helpers import add_customer, overriding, submit, verify

EXPORT = "/dashboard/customers/bulk/close-package-export"
ZIP = {"Accept": "application/zip"}
FILES = {"receipt.json", "receipt.pdf", "checkpoints.json", "activity.csv", "verification-package.json"}


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


@pytest.fixture
def april(api, key, tenant, clock) -> dict[str, list[str]]:
    """Verified April deltas of two customers: their record ids in sequence order."""
    ids = {"cust_a": [submit(api, key, "cust_a", amount=a) for a in (5, -2, 3.5)],
           "cust_b": [submit(api, key, "cust_b", amount=a) for a in (7, 1)]}
    verify(tenant, ids["cust_a"] + ids["cust_b"], clock)
    return ids


def stored_objects() -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = get_settings().bucket
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="exports/").get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def checkpoints(api, auth, customer: str) -> list[dict]:
    return api.get(f"/dashboard/customers/{customer}/checkpoints?period=2026-04", headers=auth).data["items"]


def test_two_customers_export_one_folder_each_and_a_signed_manifest(api, world, tenant, key, april, clock,
                                                                     tmp_path):
    clock.advance(days=20)  # May: April is closed, and a May delta stays out of April's files
    may = submit(api, key, "cust_a", amount=100)
    admin = world.auth(tenant, "admin")
    reply = api.post(EXPORT, headers={**admin, **ZIP},
                     json_body={"customerIds": ["cust_b", "cust_a"], "period": "2026-04"})
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "application/zip"
    assert reply.headers["content-disposition"] == 'attachment; filename="close-packages-2026-04.zip"'
    archive = zipfile.ZipFile(io.BytesIO(reply.body))
    assert archive.testzip() is None
    names = archive.namelist()
    assert len(names) == len(set(names)) == 11
    assert {n.split("/", 1)[0] for n in names if "/" in n} == {"cust_a", "cust_b"}
    for customer in ("cust_a", "cust_b"):
        assert {n.split("/", 1)[1] for n in names if n.startswith(customer + "/")} == FILES
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())

    manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["type"], manifest["period"], manifest["tenantId"], manifest["environment"]) == (
        "tally.close-package-manifest/v1", "2026-04", tenant.id, "production")
    assert manifest["customerIds"] == ["cust_b", "cust_a"] and manifest["generatedAt"] == "2026-05-05T12:00:00.000Z"
    assert sorted(f["path"] for f in manifest["files"]) == sorted(n for n in names if n != "manifest.json")
    for listed in manifest["files"]:
        data = archive.read(listed["path"])
        assert listed["bytes"] == len(data)
        assert listed["sha256"] == hashlib.sha256(data).hexdigest()
    published = api.get("/api/v1/verification-keys").data["keys"]
    public = next(k for k in published if k["keyId"] == manifest["keyId"])
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    assert verify_signature(base64.b64decode(public["publicKey"]), canonical(unsigned), manifest["signature"])
    tampered = {**unsigned, "customerIds": ["cust_a"]}
    assert not verify_signature(base64.b64decode(public["publicKey"]), canonical(tampered), manifest["signature"])

    for customer, ids in april.items():
        package = json.loads(archive.read(f"{customer}/verification-package.json"))
        statement = package["checkpoint"]["statement"]
        assert (package["customerId"], package["period"], statement["treeSize"]) == (customer, "2026-04", len(ids))
        saved = tmp_path / f"{customer}.json"
        saved.write_bytes(archive.read(f"{customer}/verification-package.json"))
        assert main(["verify", str(saved)]) == 0  # `tally verify`

        rows = list(csv.DictReader(io.StringIO(archive.read(f"{customer}/activity.csv").decode())))
        assert [r["recordId"] for r in rows] == ids and may not in [r["recordId"] for r in rows]
        assert [r["sequenceNumber"] for r in rows] == [str(n) for n in range(1, len(ids) + 1)]
        assert {r["status"] for r in rows} == {"VERIFIED"}

        receipt = json.loads(archive.read(f"{customer}/receipt.json"))
        assert (receipt["customerId"], receipt["period"], receipt["deltaCount"]) == (customer, "2026-04", len(ids))
        assert receipt["latestCheckpoint"]["checkpointId"] == statement["checkpointId"]
        assert verify_signature(base64.b64decode(public["publicKey"]), canonical(receipt["statement"]),
                                receipt["signature"])
        assert archive.read(f"{customer}/receipt.pdf").startswith(b"%PDF-")

        listed = json.loads(archive.read(f"{customer}/checkpoints.json"))
        assert [c["checkpointId"] for c in listed["items"]] == [statement["checkpointId"]]
        assert listed["items"][0]["statement"] == statement and listed["count"] == 1
        assert [c["checkpointId"] for c in checkpoints(api, admin, customer)] == [statement["checkpointId"]]

    stored = stored_objects()
    assert list(stored.values()) == [reply.body]
    (stored_key,) = stored
    assert stored_key.startswith(f"exports/{tenant.id}/") and stored_key.endswith("/close-packages-2026-04.zip")
    entry = next(e for e in api.get("/dashboard/audit", headers=admin).data["items"]
                 if e["action"] == "close_package.exported")
    assert entry["details"] == {"period": "2026-04", "customerCount": 2, "bytes": len(reply.body),
                                "sha256": hashlib.sha256(reply.body).hexdigest()}


def test_an_existing_checkpoint_is_reused_and_a_later_one_extends_it(api, admin, key, tenant, clock, april):
    first = api.post("/dashboard/customers/cust_a/checkpoint", headers=admin, json_body={"period": "2026-04"}).data
    more = submit(api, key, "cust_a", amount=2)
    verify(tenant, [more], clock)
    reply = api.post(EXPORT, headers={**admin, "Accept": "*/*"},
                     json_body={"customerIds": ["cust_a"], "period": "2026-04"})
    assert reply.status == 200, reply
    archive = zipfile.ZipFile(io.BytesIO(reply.body))
    listed = json.loads(archive.read("cust_a/checkpoints.json"))["items"]
    assert [c["sequence"] for c in listed] == [1, 2] and listed[0]["checkpointId"] == first["checkpointId"]
    assert listed[1]["treeSize"] == 4 and listed[1]["previousRoot"] == first["root"]
    package = json.loads(archive.read("cust_a/verification-package.json"))
    assert package["checkpoint"]["statement"]["checkpointId"] == listed[1]["checkpointId"]


BAD_IDS = [f"cust_{n}" for n in range(101)]


@pytest.mark.parametrize("body, field", [
    ({"customerIds": BAD_IDS, "period": "2026-04"}, "customerIds"),
    ({"customerIds": [], "period": "2026-04"}, "customerIds"),
    ({"customerIds": ["cust_a", "cust_b", "cust_a"], "period": "2026-04"}, "customerIds"),
    ({"customerIds": "cust_a", "period": "2026-04"}, "customerIds"),
    ({"customerIds": ["cust a"], "period": "2026-04"}, "customerIds"),
    ({"customerIds": [7], "period": "2026-04"}, "customerIds"),
    ({"period": "2026-04"}, "customerIds"),
    ({"customerIds": ["cust_a"]}, "period"),
    ({"customerIds": ["cust_a"], "period": "2026-4"}, "period"),
    ({"customerIds": ["cust_a"], "period": 202604}, "period"),
    ({"customerIds": ["cust_a"], "period": "2026-05"}, "period"),  # not closed yet, not current
])
def test_bad_requests_are_400_with_the_field(api, admin, april, body, field):
    reply = api.post(EXPORT, headers=admin, json_body=body)
    assert reply.status == 400, reply
    assert reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == field
    assert stored_objects() == {}


def test_exactly_100_customers_is_the_limit_not_an_error(api, admin, april):
    reply = api.post(EXPORT, headers=admin, json_body={"customerIds": BAD_IDS[:100], "period": "2026-04"})
    assert reply.status == 404 and len(reply.error["customerIds"]) == 100  # checked, not refused as too many


def test_unknown_customers_are_404_naming_each_and_nothing_is_written(api, admin, april):
    reply = api.post(EXPORT, headers=admin,
                     json_body={"customerIds": ["cust_a", "cust_zz", "cust_b", "cust_yy"], "period": "2026-04"})
    assert reply.status == 404 and reply.error["code"] == "NOT_FOUND"
    assert reply.error["customerIds"] == ["cust_zz", "cust_yy"]
    assert "cust_zz" in reply.error["message"] and "cust_yy" in reply.error["message"]
    assert stored_objects() == {}
    assert checkpoints(api, admin, "cust_a") == []  # nothing sealed for the known ones either


def test_a_customer_without_verified_deltas_fails_the_whole_export(api, admin, key, tenant, april):
    submit(api, key, "cust_c")  # accepted, not verified yet
    add_customer(tenant.id, "cust_d")  # no delta at all
    reply = api.post(EXPORT, headers=admin,
                     json_body={"customerIds": ["cust_a", "cust_c", "cust_b", "cust_d"], "period": "2026-04"})
    assert reply.status == 409 and reply.error["code"] == "NOTHING_TO_CHECKPOINT"
    assert reply.error["customerIds"] == ["cust_c", "cust_d"] and "cust_c" in reply.error["message"]
    assert stored_objects() == {}
    assert checkpoints(api, admin, "cust_a") == [] and checkpoints(api, admin, "cust_b") == []


def test_a_checkpoint_signed_before_a_key_rotation_is_packaged_with_its_retired_key(api, admin, april, rotate,
                                                                                   tmp_path):
    assert api.post("/dashboard/customers/cust_b/checkpoint", headers=admin, json_body={}).status == 201
    retired = bootstrap.signer().public_key
    rotate("a-new-secret-" + "c" * 51)
    reply = api.post(EXPORT, headers={**admin, **ZIP},
                     json_body={"customerIds": ["cust_a", "cust_b"], "period": "2026-04"})
    assert reply.status == 200, reply
    archive = zipfile.ZipFile(io.BytesIO(reply.body))
    current = bootstrap.signer().public_key
    assert json.loads(archive.read("manifest.json"))["keyId"] == current.key_id != retired.key_id
    keys = tmp_path / "keys.json"
    keys.write_bytes(api.get("/api/v1/verification-keys").body)
    for customer, checkpoint_key in (("cust_a", current), ("cust_b", retired)):
        package = json.loads(archive.read(f"{customer}/verification-package.json"))
        assert package["checkpoint"]["statement"]["keyId"] == checkpoint_key.key_id
        assert package["publicKey"]["keyId"] == current.key_id
        assert package["checkpoint"].get("publicKey", package["publicKey"])["publicKey"] == \
            base64.b64encode(checkpoint_key.raw).decode()
        assert ("publicKey" in package["checkpoint"]) == (customer == "cust_b")  # only when the keys differ
        saved = tmp_path / f"{customer}.json"
        saved.write_bytes(archive.read(f"{customer}/verification-package.json"))
        assert main(["verify", str(saved), "--keys", str(keys)]) == 0


def test_a_checkpoint_signed_with_an_unregistered_key_fails_before_writing(api, admin, april):
    with overriding(signer=Signer(b"\x05" * 32)):  # never loaded through bootstrap: not in the registry
        assert api.post("/dashboard/customers/cust_b/checkpoint", headers=admin, json_body={}).status == 201
    reply = api.post(EXPORT, headers=admin, json_body={"customerIds": ["cust_a", "cust_b"], "period": "2026-04"})
    assert reply.status == 409 and reply.error["code"] == "SIGNING_KEY_UNKNOWN"
    assert reply.error["customerIds"] == ["cust_b"] and stored_objects() == {}


def test_roles_tenants_and_environments(api, world, tenant, admin, april):
    body = {"customerIds": ["cust_a"], "period": "2026-04"}
    viewer = api.post(EXPORT, headers=world.auth(tenant, "viewer"), json_body=body)
    assert viewer.status == 403 and stored_objects() == {}
    assert api.post(EXPORT, headers={**world.auth(tenant, "manager"), **ZIP}, json_body=body).status == 200
    other = api.post(EXPORT, headers=world.auth(world.tenant("Globex"), "admin"), json_body=body)
    assert other.status == 404 and other.error["customerIds"] == ["cust_a"]
    assert api.post(EXPORT, headers={**admin, "X-Environment": "sandbox"}, json_body=body).status == 404
    assert api.post(EXPORT, json_body=body).status == 401


def test_a_large_archive_is_answered_with_a_presigned_link(api, admin, tenant, april, monkeypatch):
    from chalicelib.api import customers
    from chalicelib.services import close_packages

    monkeypatch.setattr(customers, "INLINE_LIMIT", 100)
    monkeypatch.setattr(close_packages, "SPOOL_IN_MEMORY", 1000)  # the archive spills to disk
    reply = api.post(EXPORT, headers={**admin, **ZIP},
                     json_body={"customerIds": ["cust_a", "cust_b"], "period": "2026-04"})
    assert reply.status == 303, reply
    link = reply.data
    assert reply.headers["location"] == link["url"] and link["filename"] == "close-packages-2026-04.zip"
    assert link["expiresInSeconds"] == 3600
    (stored_key, body), = stored_objects().items()
    assert stored_key.startswith(f"exports/{tenant.id}/") and stored_key in link["url"]
    assert len(body) == link["bytes"] > 100
    archive = zipfile.ZipFile(io.BytesIO(body))
    manifest = json.loads(archive.read("manifest.json"))
    assert len(manifest["files"]) == 10 and archive.testzip() is None


def test_a_client_that_does_not_accept_a_zip_gets_the_link(api, admin, april):
    body = {"customerIds": ["cust_a"], "period": "2026-04"}
    for accept in ({}, {"Accept": "application/json"}):
        reply = api.post(EXPORT, headers={**admin, **accept}, json_body=body)
        assert reply.status == 303 and reply.data["bytes"] < 4 * 1024 * 1024
    assert len(stored_objects()) == 2


def test_the_cold_start_does_not_load_the_close_package_service():
    import subprocess
    import sys

    code = ("import sys, app; print(sorted(m for m in sys.modules if m.startswith(("
            "'chalicelib.services.close_packages', 'chalicelib.services.receipt_pdf', 'zipfile'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_folders_stay_apart_on_any_file_system():
    from chalicelib.services.close_packages import folders

    assert folders(["Cust_A", "cust_a", "CUST_A", "ns:1", ".", "..", "a.", "b"]) == {
        "Cust_A": "Cust_A/", "cust_a": "cust_a~2/", "CUST_A": "CUST_A~3/", "ns:1": "ns%3A1/", ".": "%2E/",
        "..": "%2E%2E/", "a.": "a%2E/", "b": "b/"}


def test_ids_equal_but_for_case_get_their_own_folders(api, admin, key, tenant, clock):
    ids = ["Acme", "acme", "ns:acme"]
    verify(tenant, [submit(api, key, c) for c in ids], clock)
    reply = api.post(EXPORT, headers={**admin, **ZIP}, json_body={"customerIds": ids, "period": "2026-04"})
    assert reply.status == 200, reply
    archive = zipfile.ZipFile(io.BytesIO(reply.body))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["folders"] == {"Acme": "Acme/", "acme": "acme~2/", "ns:acme": "ns%3Aacme/"}
    tops = {n.split("/", 1)[0].casefold() for n in archive.namelist() if "/" in n}
    assert len(tops) == 3  # still three folders once case is ignored
    for customer, folder in manifest["folders"].items():
        assert json.loads(archive.read(folder + "checkpoints.json"))["customerId"] == customer
