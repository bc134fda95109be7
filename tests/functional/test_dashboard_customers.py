"""Dashboard customer records (seed 001): the list, the detail page with filters and sorting, and the activity
CSV export (status, fingerprint and proof references per delta; filters; large files through S3)."""

from __future__ import annotations

import csv
import io

import pytest

from chalicelib import bootstrap
from tests.helpers import submit, verify

EXPORT = "/dashboard/customers/cust_a/export"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def rows(reply) -> list[dict]:
    return list(csv.DictReader(io.StringIO(reply.body.decode())))


def test_the_export_lists_every_delta_with_its_proof_references(api, admin, key, tenant, clock):
    ids = [submit(api, key, amount=a) for a in (10, -2.5, 3)]
    verify(tenant, ids[:2], clock)
    reply = api.get(EXPORT, headers=admin)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/csv")
    assert reply.headers["content-disposition"] == 'attachment; filename="cust_a-activity.csv"'
    found = rows(reply)
    assert [(r["sequenceNumber"], r["recordId"], r["delta"], r["status"]) for r in found] == [
        ("1", ids[0], "10", "VERIFIED"), ("2", ids[1], "-2.5", "VERIFIED"), ("3", ids[2], "3", "QUEUED")]
    status = api.get(f"/api/v1/balance/delta/{ids[0]}", headers=key).data
    first = found[0]
    assert (first["contentHash"], first["proofHash"], first["batchId"], first["proofRoot"]) == (
        status["contentHash"], status["proofHash"], status["batchId"], status["proofRoot"])
    assert found[2]["contentHash"] == "" and found[2]["verifiedAt"] == ""


def test_filters_by_status_and_acceptance_time(api, admin, key, tenant, clock):
    verify(tenant, [submit(api, key)], clock)
    clock.advance(days=1)
    submit(api, key)
    verified = rows(api.get(f"{EXPORT}?status=verified", headers=admin))
    assert [r["sequenceNumber"] for r in verified] == ["1"]
    later = rows(api.get(f"{EXPORT}?startDate=2026-04-16&endDate=2026-04-17", headers=admin))
    assert [r["sequenceNumber"] for r in later] == ["2"]
    assert rows(api.get(f"{EXPORT}?status=failed", headers=admin)) == []


def test_a_large_export_is_spooled_to_s3(api, admin, key, tenant, clock, monkeypatch):
    from chalicelib.api import customers
    from chalicelib.services import exports

    for _ in range(30):
        submit(api, key)
    monkeypatch.setattr(customers, "INLINE_LIMIT", 500)
    monkeypatch.setattr(exports, "PAGE", 7)  # several key-range pages
    monkeypatch.setattr(exports, "SPOOL_IN_MEMORY", 100)  # the spool moves to disk
    reply = api.get(EXPORT, headers=admin)
    assert reply.status == 303 and reply.data["filename"] == "cust_a-activity.csv"
    key_name = reply.data["url"].split(".amazonaws.com/", 1)[1].split("?", 1)[0]
    stored = bootstrap.artifacts().get(key_name).body.decode()
    assert len(stored) == reply.data["bytes"] and stored.count("\n") == 31
    assert [r["sequenceNumber"] for r in csv.DictReader(io.StringIO(stored))] == [str(n) for n in range(1, 31)]


@pytest.mark.parametrize("query", ["status=done", "startDate=2026-04-01", "startDate=x&endDate=y"])
def test_bad_filters_are_400(api, admin, key, query):
    submit(api, key)
    assert api.get(f"{EXPORT}?{query}", headers=admin).status == 400


def test_unknown_customers_and_other_tenants_are_404(api, world, admin, key):
    submit(api, key)
    assert api.get("/dashboard/customers/cust_zz/export", headers=admin).status == 404
    assert api.get(EXPORT, headers=world.auth(world.tenant("Globex"), "admin")).status == 404
    assert api.get(EXPORT).status == 401


def test_the_batch_checkpoint_export_is_not_taken_for_a_customer(api, admin, key):
    submit(api, key, "batch-checkpoints")  # a customer id that collides with the static route's segment
    reply = api.get("/dashboard/customers/batch-checkpoints/export?period=2026-04", headers=admin)
    assert reply.headers["content-disposition"] == 'attachment; filename="checkpoints-2026-04.csv"'


# --- the dashboard customer list ------------------------------------------------------------------------


def test_the_dashboard_lists_customers_with_their_counters(api, world, tenant, admin, key):
    for customer, amount in (("cust_b", 2), ("cust_a", 1.5), ("cust_b", 3), ("other_c", 1)):
        submit(api, key, customer, amount)
    api.post("/dashboard/customers", headers=admin, json_body={"displayName": "Manual", "customerId": "cust_m"})
    items = api.get("/dashboard/customers", headers=admin).data["items"]
    assert [(c["customerId"], c["balance"], c["deltaCount"]) for c in items] == [
        ("cust_a", 1.5, 1), ("cust_b", 5, 2), ("cust_m", 0, 0), ("other_c", 1, 1)]
    assert items[2]["source"] == "manual" and items[2]["lastDeltaAt"] is None
    searched = api.get("/dashboard/customers?search=cust_&limit=2", headers=world.auth(tenant, "viewer")).data
    assert [c["customerId"] for c in searched["items"]] == ["cust_a", "cust_b"] and searched["nextCursor"]
    second = api.get("/dashboard/customers?search=cust_&limit=2&page=2", headers=admin).data["items"]
    assert [c["customerId"] for c in second] == ["cust_m"]
    assert api.get("/dashboard/customers", headers={**admin, "X-Environment": "sandbox"}).data["items"] == []
    assert api.get("/dashboard/customers", headers=world.auth(world.tenant("Globex"), "admin")).data["items"] == []
    assert api.get("/dashboard/customers?limit=0", headers=admin).status == 400
    assert api.get("/dashboard/customers").status == 401


# --- the dashboard customer detail ----------------------------------------------------------------------

DETAIL = "/dashboard/customers/cust_a"


def test_detail_shows_counters_checkpoint_and_activity_pages(api, admin, key, tenant, clock):
    ids = [submit(api, key, amount=a) for a in (5, -1, 2, 7)]
    verify(tenant, ids[:2], clock)
    api.post(f"{DETAIL}/checkpoint", headers=admin, json_body={})
    data = api.get(f"{DETAIL}?deltaLimit=3", headers=admin).data
    assert (data["balance"], data["deltaCount"], data["lastSequenceNumber"]) == (13, 4, 4)
    assert data["latestCheckpoint"]["treeSize"] == 2
    assert [d["sequenceNumber"] for d in data["activity"]["items"]] == [4, 3, 2] and data["activity"]["hasMore"]
    ascending = api.get(f"{DETAIL}?deltaLimit=3&deltaPage=2&sortOrder=asc", headers=admin).data["activity"]
    assert [d["sequenceNumber"] for d in ascending["items"]] == [4] and ascending["hasMore"] is False


def test_detail_filters_and_sorts(api, admin, key, tenant, clock):
    ids = [submit(api, key, amount=a) for a in (5, -1, 2)]
    verify(tenant, ids[:1], clock)
    clock.advance(days=1)
    reply = api.post("/api/v1/balance/delta", headers=key,
                     json_body={"customerId": "cust_a", "delta": 9, "reason": "refund", "referenceId": "inv-42"})
    late = reply.data["recordId"]

    def seqs(query: str) -> list[int]:
        activity = api.get(f"{DETAIL}?{query}", headers=admin).data["activity"]
        return [d["sequenceNumber"] for d in activity["items"]]

    assert seqs("status=verified") == [1]
    assert seqs("status=QUEUED&sortOrder=asc") == [2, 3, 4]
    assert seqs("reason=refund") == [4]
    assert seqs("startDate=2026-04-16&endDate=2026-04-17") == [4]
    assert seqs("search=inv-4") == [4] and seqs(f"search={late[:12]}") == [4]
    assert seqs("sortBy=delta") == [4, 1, 3, 2] and seqs("sortBy=delta&sortOrder=asc") == [2, 3, 1, 4]
    assert api.get(f"{DETAIL}?status=queued&deltaLimit=1", headers=admin).data["activity"]["total"] == 3


@pytest.mark.parametrize("query", ["status=done", "sortBy=reason", "sortOrder=up", "deltaLimit=101",
                                   "deltaPage=0", "startDate=2026-04-01"])
def test_detail_bad_queries_are_400(api, admin, key, query):
    submit(api, key)
    assert api.get(f"{DETAIL}?{query}", headers=admin).status == 400


def test_detail_unknown_customer_other_tenant_and_environment_are_404(api, world, admin, key):
    submit(api, key)
    assert api.get("/dashboard/customers/cust_zz", headers=admin).status == 404
    assert api.get(DETAIL, headers=world.auth(world.tenant("Globex"), "admin")).status == 404
    assert api.get(DETAIL, headers={**admin, "X-Environment": "sandbox"}).status == 404
