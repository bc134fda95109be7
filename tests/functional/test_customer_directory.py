"""Seed 001 directory (`include=directory`: display-name index, filters, sorting, derived fields) and the
customer summary (totals kept current by every write path, never counted from rows)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import DELTA, submit, verify

LIST = "/dashboard/customers"
DIRECTORY = "/dashboard/customers?include=directory"
SUMMARY = "/dashboard/customers/summary"


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def create(api, admin, customer_id: str, name: str, **fields) -> None:
    reply = api.post(LIST, headers=admin, json_body={"customerId": customer_id, "displayName": name, **fields})
    assert reply.status == 201, reply


def ids(reply) -> list[str]:
    assert reply.status == 200, reply
    return [c["customerId"] for c in reply.data["items"]]


def walk(api, admin, url: str) -> tuple[list[str], int]:
    """Every id a listing gives, following cursors; and the number of pages."""
    seen, cursor, pages = [], None, 0
    while True:
        reply = api.get(url + (f"&cursor={cursor}" if cursor else ""), headers=admin)
        seen += ids(reply)
        pages += 1
        cursor = reply.data["nextCursor"]
        if not cursor:
            return seen, pages


def failing(api, key, customer: str, amount: float = 4) -> str:
    """A delta whose metadata RFC 8785 cannot canonicalise: the verifier fails it terminally."""
    reply = api.post(DELTA, headers=key, json_body={"customerId": customer, "delta": amount, "reason": "r",
                                                    "metadata": {"huge": 2 ** 60}})
    assert reply.status == 202, reply
    return reply.data["recordId"]


# --- summary ---------------------------------------------------------------------------------------------


def test_the_summary_counts_customers_deltas_balances_and_verification(api, world, tenant, admin, key, clock):
    empty = api.get(SUMMARY, headers=admin)
    assert empty.status == 200 and empty.data["customers"] == {"total": 0, "manual": 0, "integration": 0}
    assert empty.data["verification"] == {"verifiedRate": None, "failedRate": None}

    create(api, admin, "cust_m", "Manual Co")
    good = [submit(api, key, "cust_a", 10), submit(api, key, "cust_a", -2.5), submit(api, key, "cust_b", 3),
            submit(api, key, "cust_m", 1)]
    bad = failing(api, key, "cust_b")
    report = verify(tenant, [*good[:3], bad], clock)
    assert len(report.failed) == 1

    data = api.get(SUMMARY, headers=world.auth(tenant, "viewer")).data
    assert data["customers"] == {"total": 3, "manual": 1, "integration": 2}
    assert data["deltas"] == {"total": 5, "verified": 3, "awaitingVerification": 1, "failed": 1}
    assert data["balances"] == {"total": 11.5}  # 10 - 2.5 + 3 + 1; the failed 4 is out
    assert data["verification"] == {"verifiedRate": 0.75, "failedRate": 0.25}
    assert data["currentPeriod"] == {"period": "2026-04", "acceptedDeltas": 4}  # the failure is released
    # the totals agree with the rows they summarise
    items = api.get(LIST, headers=admin).data["items"]
    assert sum(c["balance"] for c in items) == data["balances"]["total"]
    assert sum(c["deltaCount"] for c in items) == data["deltas"]["total"]


def test_the_summary_is_per_environment_and_per_tenant(api, world, tenant, admin, key):
    submit(api, key, "cust_a")
    sandbox = api.get(SUMMARY, headers={**admin, "X-Environment": "sandbox"}).data
    assert sandbox["environment"] == "sandbox" and sandbox["deltas"]["total"] == 0
    other = api.get(SUMMARY, headers=world.auth(world.tenant("Globex"), "admin")).data
    assert other["customers"]["total"] == 0
    assert api.get(SUMMARY).status == 401


def test_a_customer_is_counted_once_however_it_arrives(api, admin, key):
    create(api, admin, "cust_m", "Manual Co")
    for customer in ("cust_m", "cust_m", "cust_new", "cust_new"):
        submit(api, key, customer)
    api.post("/api/v1/balance/delta/batch", headers=key, json_body={"deltas": [
        {"customerId": "cust_new", "delta": 1, "reason": "r"}, {"customerId": "cust_x", "delta": 1, "reason": "r"},
        {"customerId": "cust_x", "delta": 1, "reason": "r"}]})
    assert api.post(LIST, headers=admin, json_body={"customerId": "cust_m", "displayName": "Again"}).status == 409
    data = api.get(SUMMARY, headers=admin).data
    assert data["customers"] == {"total": 3, "manual": 1, "integration": 2}
    assert data["deltas"]["total"] == 7


# --- directory ---------------------------------------------------------------------------------------------


def test_the_directory_sorts_by_display_name_from_the_index(api, admin, key):
    create(api, admin, "c1", "beta Labs")
    create(api, admin, "c2", "Alpha")
    create(api, admin, "c3", "alpha corp")
    submit(api, key, "b_integration")  # integration customers are named by their id
    assert ids(api.get(DIRECTORY, headers=admin)) == ["c2", "c3", "b_integration", "c1"]
    assert ids(api.get(f"{DIRECTORY}&sortOrder=desc", headers=admin)) == ["c1", "b_integration", "c3", "c2"]
    assert ids(api.get(f"{DIRECTORY}&search=ALPHA", headers=admin)) == ["c2", "c3"]
    assert ids(api.get(f"{DIRECTORY}&sortBy=customerId", headers=admin)) == ["b_integration", "c1", "c2", "c3"]
    assert ids(api.get(f"{LIST}?sortBy=displayName&sortOrder=desc", headers=admin)) == [
        "c1", "b_integration", "c3", "c2"]
    first = api.get(f"{DIRECTORY}&limit=3", headers=admin).data
    assert [c["customerId"] for c in first["items"]] == ["c2", "c3", "b_integration"] and first["nextCursor"]
    rest = api.get(f"{DIRECTORY}&limit=3&cursor={first['nextCursor']}", headers=admin).data
    assert [c["customerId"] for c in rest["items"]] == ["c1"] and rest["nextCursor"] is None
    assert ids(api.get(f"{DIRECTORY}&limit=3&page=2", headers=admin)) == ["c1"]


def test_directory_records_carry_the_derived_fields(api, admin, key, tenant, clock):
    create(api, admin, "cust_a", "Acme", eventCadence="DAILY", sharingStateHint="SHARED", policy="GATED",
           unitLabel="records")
    verified = [submit(api, key, "cust_a", 5), submit(api, key, "cust_a", -1)]
    submit(api, key, "cust_a", 2)
    verify(tenant, verified, clock)
    entry = api.get(DIRECTORY, headers=admin).data["items"][0]
    assert entry["displayName"] == "Acme" and entry["source"] == "manual" and entry["unitLabel"] == "records"
    assert (entry["sharingState"], entry["policy"], entry["eventCadence"]) == ("SHARED", "GATED", "DAILY")
    assert entry["cycleSummary"] == {"period": "2026-04", "deltaCount": 3, "netChange": 6, "checkpointed": False,
                                     "latestCheckpointPeriod": None}
    assert entry["counts"] == {"deltas": 3, "verified": 2, "awaitingVerification": 1, "failed": 0}
    assert entry["verificationState"] == "PENDING"
    assert entry["nextCloseDate"] == "2026-05-01T00:00:00.000Z"
    assert entry["freshness"] == {"lastDeltaAt": "2026-04-15T12:00:00.000Z", "ageSeconds": 0,
                                  "expectedWithinSeconds": 86400, "health": "HEALTHY"}
    assert entry["balance"] == 6 and entry["lastSequenceNumber"] == 3


def test_a_failure_leaves_the_cycle_and_marks_the_customer_for_attention(api, admin, key, tenant, clock):
    good = submit(api, key, "cust_a", 5)
    verify(tenant, [good, failing(api, key, "cust_a", 7)], clock)
    entry = api.get(DIRECTORY, headers=admin).data["items"][0]
    assert entry["cycleSummary"]["deltaCount"] == 1 and entry["cycleSummary"]["netChange"] == 5
    assert entry["counts"] == {"deltas": 2, "verified": 1, "awaitingVerification": 0, "failed": 1}
    assert entry["verificationState"] == "ATTENTION" and entry["balance"] == 5


def test_health_follows_freshness_against_cadence(api, admin, key, clock):
    create(api, admin, "hourly", "Hourly", eventCadence="HOURLY")
    create(api, admin, "daily", "Daily", eventCadence="DAILY")
    create(api, admin, "quiet", "Quiet", eventCadence="DAILY")
    submit(api, key, "hourly")
    submit(api, key, "daily")
    submit(api, key, "loose")  # no cadence: unmonitored
    clock.advance(hours=1, minutes=30)

    def health(value: str) -> list[str]:
        return ids(api.get(f"{DIRECTORY}&health={value}&sortBy=customerId", headers=admin))

    assert (health("HEALTHY"), health("LATE"), health("STALE")) == (["daily"], ["hourly"], [])
    assert (health("NO_ACTIVITY"), health("UNMONITORED")) == (["quiet"], ["loose"])
    clock.advance(hours=1)
    assert health("STALE") == ["hourly"]


def test_filters_on_stored_enums(api, admin, key):
    create(api, admin, "s1", "Shared one", sharingStateHint="SHARED", policy="OPEN", eventCadence="WEEKLY")
    create(api, admin, "p1", "Private one", sharingStateHint="PRIVATE", eventCadence="WEEKLY")
    submit(api, key, "i1")  # integration defaults: INHERIT, TWO_TIER, no cadence
    assert ids(api.get(f"{DIRECTORY}&sharingState=SHARED", headers=admin)) == ["s1"]
    assert ids(api.get(f"{DIRECTORY}&sharingState=INHERIT", headers=admin)) == ["i1"]
    assert ids(api.get(f"{DIRECTORY}&policy=TWO_TIER", headers=admin)) == ["i1", "p1"]
    assert ids(api.get(f"{DIRECTORY}&eventCadence=WEEKLY&policy=OPEN", headers=admin)) == ["s1"]
    assert ids(api.get(f"{DIRECTORY}&eventCadence=WEEKLY&search=p", headers=admin)) == ["p1"]


def test_cycle_close_window_finds_customers_with_unclosed_activity(api, admin, key, tenant, clock):
    create(api, admin, "idle", "Idle")
    records = [submit(api, key, "open_a"), submit(api, key, "closed_b")]
    verify(tenant, records, clock)
    created = api.post("/dashboard/customers/closed_b/checkpoint", headers=admin, json_body={"period": "2026-04"})
    assert created.status == 201

    def window(value: str) -> list[str]:
        return ids(api.get(f"{DIRECTORY}&cycleCloseWindow={value}&sortBy=customerId", headers=admin))

    assert window("30d") == ["open_a"]  # April 15 → closes May 1, 15.5 days away
    assert window("14d") == [] and window("IDLE") == ["idle"]
    clock.advance(days=10)
    assert window("7d") == ["open_a"]
    submit(api, key, "closed_b")  # new activity after its checkpoint reopens the cycle
    assert window("7d") == ["closed_b", "open_a"]
    entry = next(c for c in api.get(DIRECTORY, headers=admin).data["items"] if c["customerId"] == "closed_b")
    assert entry["cycleSummary"]["latestCheckpointPeriod"] == "2026-04" and not entry["cycleSummary"]["checkpointed"]
    clock.advance(days=10)  # May: every April cycle is behind; nobody has activity this month
    assert window("30d") == [] and window("IDLE") == ["closed_b", "idle", "open_a"]


def test_a_filtered_page_stops_at_its_budget_and_resumes_by_cursor(api, admin, key, monkeypatch):
    from chalicelib.adapters.dynamodb import customer_repository
    from chalicelib.services import customers

    monkeypatch.setattr(customers, "FILTER_BUDGET", 4)
    monkeypatch.setattr(customer_repository, "DIRECTORY_PAGE", 3)
    for n in range(10):
        create(api, admin, f"c{n}", f"Name {n}", policy="OPEN" if n in (1, 7, 8) else "GATED")
    seen, pages = walk(api, admin, f"{DIRECTORY}&policy=OPEN&limit=2")
    assert seen == ["c1", "c7", "c8"] and pages >= 3  # examined 4 per request at most


@pytest.mark.parametrize("query", ["include=everything", "include=directory&health=FINE",
                                   "include=directory&policy=two_tier", "include=directory&sortBy=balance",
                                   "include=directory&sortOrder=up", "include=directory&cycleCloseWindow=3d",
                                   "include=directory&sharingState=PUBLIC", "include=directory&eventCadence=YEARLY",
                                   "include=directory&cursor=bm9wZQ", "include=directory&policy=OPEN&page=2"])
def test_bad_directory_queries_are_400(api, admin, query):
    reply = api.get(f"{LIST}?{query}", headers=admin)
    assert reply.status == 400


def test_the_directory_is_scoped_to_tenant_and_environment(api, world, admin, key):
    create(api, admin, "c1", "One")
    submit(api, key, "c2")
    assert ids(api.get(DIRECTORY, headers={**admin, "X-Environment": "sandbox"})) == []
    assert ids(api.get(DIRECTORY, headers=world.auth(world.tenant("Globex"), "admin"))) == []
    assert api.get(DIRECTORY).status == 401


def test_a_cursor_from_one_order_is_refused_by_the_other(api, admin):
    for n in range(3):
        create(api, admin, f"c{n}", f"N{n}")
    cursor = api.get(f"{DIRECTORY}&limit=1", headers=admin).data["nextCursor"]
    assert api.get(f"{LIST}?limit=1&cursor={cursor}", headers=admin).status == 400  # name order vs id order
    assert api.get(f"{DIRECTORY}&limit=1&sortOrder=desc&cursor={cursor}", headers=admin).status == 400
    assert api.get(f"{DIRECTORY}&limit=1&policy=TWO_TIER&sortOrder=desc&cursor={cursor}",
                   headers=admin).status == 400
    seen, _pages = walk(api, admin, f"{DIRECTORY}&limit=2&sortOrder=desc")  # every customer once, newest first
    assert seen == ["c2", "c1", "c0"]



# --- the sharded list indexes ------------------------------------------------------------------------------


def test_the_list_indexes_spread_a_tenants_customers_and_list_them_as_one(api, admin, key):
    """New customers are written under 32 index partitions (1,000 new customers/s each on DynamoDB); every
    listing merges them: each order, direction, search and page size gives exactly the sorted customers,
    each once, in pages of exactly ``limit`` and no empty last page."""
    from chalicelib.adapters.dynamodb import keys

    names = {f"c{n:02d}": f"{'ab'[n % 2]}{(n * 7) % 23:02d} Co" for n in range(21)}
    for customer_id, name in names.items():
        create(api, admin, customer_id, name)
    crowded = keys.customer_list_pk("t", "production", "c00")  # 6 more there: a shard asked again for more
    same = [f"z{n}" for n in range(400) if keys.customer_list_pk("t", "production", f"z{n}") == crowded][:6]
    for customer_id in same:
        create(api, admin, customer_id, f"z {customer_id}")
    names |= {f"i{n}": f"i{n}" for n in range(2)} | {c: f"z {c}" for c in same}
    for customer_id in ("i0", "i1"):
        submit(api, key, customer_id)  # created by a delta: the same spread
    shards = Counter(keys.customer_list_pk("t", "production", customer_id) for customer_id in names)
    assert len(keys.CUSTOMER_LIST_SHARDS) == 32 and len(shards) == 22 and shards[crowded] == 7
    by_name = sorted(names, key=lambda c: (names[c].casefold(), c))
    for url, expected in [(LIST + "?sortBy=customerId", sorted(names)), (DIRECTORY, by_name),
                          (LIST + "?sortBy=customerId&search=c1", sorted(c for c in names if c.startswith("c1"))),
                          (DIRECTORY + "&search=A", [c for c in by_name if names[c].startswith("a")])]:
        for order in ("asc", "desc"):
            want = expected if order == "asc" else expected[::-1]
            for limit in (1, 4, len(want), 25):
                seen, pages = walk(api, admin, f"{url}&sortOrder={order}&limit={limit}")
                assert seen == want, (url, order, limit)
                assert pages == max(1, -(-len(want) // limit)), (url, order, limit)
    numbered = [ids(api.get(f"{DIRECTORY}&limit=5&page={page}", headers=admin)) for page in (1, 2, 5)]
    assert numbered == [by_name[:5], by_name[5:10], by_name[20:25]]


def test_a_filtered_listing_resumes_in_every_shard_where_it_stopped(api, admin, monkeypatch):
    from chalicelib.adapters.dynamodb import customer_repository
    from chalicelib.services import customers

    monkeypatch.setattr(customers, "FILTER_BUDGET", 5)
    monkeypatch.setattr(customer_repository, "DIRECTORY_PAGE", 2)
    for n in range(17):
        create(api, admin, f"c{n:02d}", f"Name {n:02d}", policy="OPEN" if n % 3 == 0 else "GATED")
    for order in ("asc", "desc"):
        seen, pages = walk(api, admin, f"{DIRECTORY}&policy=OPEN&limit=2&sortOrder=order".replace("order", order))
        want = [f"c{n:02d}" for n in range(0, 17, 3)]
        assert seen == (want if order == "asc" else want[::-1]) and pages >= 4


def test_a_directory_page_is_one_query_per_shard_and_one_batch_read(api, admin):
    """32 queries at once (one round trip of latency), each for a few keys, then the rows in one read."""
    from tests.dynamo_calls import AwsCalls

    for n in range(12):
        create(api, admin, f"c{n:02d}", f"N{n}")
    api.get(DIRECTORY, headers=admin)  # warm: first-use writes out of the count
    with AwsCalls.recording() as calls:
        assert len(ids(api.get(f"{DIRECTORY}&limit=5", headers=admin))) == 5
    reads = [c for c in calls.calls if c.target.startswith("tally-test-customers")
             and c.operation in ("Query", "BatchGetItem")]
    assert sorted(c.operation for c in reads) == ["BatchGetItem"] + ["Query"] * 32


def test_a_numbered_page_passes_over_the_earlier_ones_in_the_same_queries(api, admin):
    """``page=N`` reads the earlier pages' index keys in the same queries as the page's, and the rows of
    that page only: one BatchGetItem, and no more queries than the first page makes."""
    from tests.dynamo_calls import AwsCalls

    for n in range(30):
        create(api, admin, f"c{n:02d}", f"N{n:02d}")
    api.get(DIRECTORY, headers=admin)  # warm
    every = ids(api.get(f"{DIRECTORY}&limit=30", headers=admin))
    for page in (1, 3, 6, 7, 9):
        with AwsCalls.recording() as calls:
            reply = api.get(f"{DIRECTORY}&limit=5&page={page}", headers=admin)
        assert ids(reply) == every[(page - 1) * 5:page * 5] and reply.data["page"] == page
        reads = [c.operation for c in calls.calls if c.target.startswith("tally-test-customers")]
        assert reads.count("BatchGetItem") == (1 if page <= 6 else 0) and reads.count("Query") == 32, page
        if page < 6:  # the cursor of a numbered page goes on from it
            following = api.get(f"{DIRECTORY}&limit=5&cursor={reply.data['nextCursor']}", headers=admin)
            assert ids(following) == every[page * 5:(page + 1) * 5] and following.data["page"] == page + 1
        else:
            assert reply.data["nextCursor"] is None


def test_a_merged_cursor_is_bound_to_its_tenant_and_search(api, world, admin, tenant):
    for n in range(3):
        create(api, admin, f"c{n}", f"N{n}")
    cursor = api.get(f"{LIST}?limit=1", headers=admin).data["nextCursor"]
    assert api.get(f"{LIST}?limit=1&cursor={cursor}", headers=admin).status == 200
    assert api.get(f"{LIST}?limit=1&search=c&cursor={cursor}", headers=admin).status == 400
    assert api.get(f"{LIST}?limit=1&cursor={cursor}", headers={**admin, "X-Environment": "sandbox"}).status == 400
    assert api.get(f"{LIST}?limit=1&cursor={cursor}", headers=world.auth(world.tenant("Globex"), "admin")).status == 400

def test_customers_with_the_longest_names_and_ids_page_through_by_cursor(api, admin):
    """A cursor holds one sort key as UTF-8: 200-character names in any script with 128-character ids stay
    under the 2,048 characters a cursor may have (escaped as JSON, CJK names ran past it)."""
    names = {("x" * 126) + f"{n:02d}": chr(0x4E00 + n) * 200 if n % 2 else chr(0x1F600 + n) * 200 for n in range(4)}
    for customer_id, name in names.items():
        create(api, admin, customer_id, name)
    for url in (f"{DIRECTORY}&limit=1", f"{DIRECTORY}&limit=1&sortOrder=desc", f"{LIST}?limit=1&sortBy=customerId"):
        seen, pages = walk(api, admin, url)
        assert sorted(seen) == sorted(names) and pages == 4, url


@pytest.mark.parametrize("after", ["no tab here", "acme\tbad id!", "acme\t", "bad id!"])
def test_a_merged_cursor_naming_no_customer_is_a_400(api, admin, tenant, after):
    from chalicelib.adapters.dynamodb import keys
    from chalicelib.adapters.dynamodb.cursors import encode_merged_cursor

    create(api, admin, "c0", "N0")
    by_id = after == "bad id!"
    cursor = encode_merged_cursor(after, set(), 1, partitions=keys.customer_list_pks(tenant.id, "production"))
    url = f"{LIST}?limit=1&sortBy=customerId" if by_id else f"{DIRECTORY}&limit=1"
    reply = api.get(f"{url}&cursor={cursor}", headers=admin)
    assert reply.status == 400 and reply.error["field"] == "cursor"


# --- the totals never drift from the rows they summarise ------------------------------------------------

NAMES = itertools.count()
OPERATIONS = st.lists(st.tuples(st.sampled_from(["c0", "c1", "c2", "m0"]), st.integers(-5, 9).filter(bool),
                                st.booleans(), st.booleans()), min_size=1, max_size=12)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS, manual=st.booleans())
def test_summary_totals_equal_the_sum_of_customer_rows(api, world, clock, operations, manual):
    """Whatever mix of manual creation, accepted, verified and failed deltas: the summary's counters (moved at
    write time) equal what the customer rows add up to, and the balances only count deltas that did not fail."""
    tenant = world.tenant(f"Prop {next(NAMES)}")
    admin = world.auth(tenant, "admin")
    key = {"X-Api-Key": world.api_key(tenant, "production")[1]}
    if manual:
        create(api, admin, "m0", "Manual")
    verified, expected_balance = [], 0
    for customer, amount, will_fail, settle in operations:
        record = failing(api, key, customer, amount) if will_fail else submit(api, key, customer, amount)
        if settle or will_fail:
            verified.append(record)
        expected_balance += 0 if will_fail else amount
    verify(tenant, verified, clock)
    data = api.get(SUMMARY, headers=admin).data
    rows = api.get(f"{DIRECTORY}&limit=100", headers=admin).data["items"]
    assert data["customers"]["total"] == len(rows)
    assert data["customers"]["manual"] == sum(r["source"] == "manual" for r in rows) == int(manual)
    assert data["deltas"]["total"] == sum(r["counts"]["deltas"] for r in rows) == len(operations)
    for name in ("verified", "failed", "awaitingVerification"):
        assert data["deltas"][name] == sum(r["counts"][name] for r in rows)
    assert data["deltas"]["failed"] == sum(1 for op in operations if op[2])
    assert data["balances"]["total"] == sum(r["balance"] for r in rows) == expected_balance
    assert sum(r["cycleSummary"]["netChange"] for r in rows) == expected_balance
    assert sum(r["cycleSummary"]["deltaCount"] for r in rows) == len(operations) - data["deltas"]["failed"]


# --- the checkpoint marker and the month counters never move backwards ------------------------------------


def test_a_later_checkpoint_of_an_older_month_does_not_move_the_marker_back(api, admin, key, tenant, clock):
    clock.advance(days=-31)  # March 15
    march = submit(api, key, "cust_a")
    verify(tenant, [march], clock)
    clock.advance(days=31)  # April 15
    verify(tenant, [submit(api, key, "cust_a")], clock)
    assert api.post(f"{LIST}/cust_a/checkpoint", headers=admin, json_body={"period": "2026-04"}).status == 201
    # March sealed afterwards, through the close-package export (a path that builds its own scopes)
    exported = api.post(f"{LIST}/bulk/close-package-export", headers={**admin, "Accept": "application/zip"},
                        json_body={"customerIds": ["cust_a"], "period": "2026-03"})
    assert exported.status == 200
    assert api.get(f"{LIST}/cust_a/checkpoints?period=2026-03", headers=admin).data["items"]
    entry = api.get(DIRECTORY, headers=admin).data["items"][0]
    assert entry["cycleSummary"]["latestCheckpointPeriod"] == "2026-04" and entry["cycleSummary"]["checkpointed"]


def test_failures_after_a_checkpoint_close_the_cycle_on_the_next_request(api, admin, key, tenant, clock):
    verify(tenant, [submit(api, key, "cust_a")], clock)
    assert api.post(f"{LIST}/cust_a/checkpoint", headers=admin, json_body={}).status == 201
    verify(tenant, [failing(api, key, "cust_a")], clock)
    assert not api.get(DIRECTORY, headers=admin).data["items"][0]["cycleSummary"]["checkpointed"]
    again = api.post(f"{LIST}/cust_a/checkpoint", headers=admin, json_body={})
    assert again.status == 200 and again.data["created"] is False  # nothing new to sign ...
    assert api.get(DIRECTORY, headers=admin).data["items"][0]["cycleSummary"]["checkpointed"]  # ... yet settled


def test_a_late_commit_from_the_old_month_leaves_the_new_months_counters(api, key, tenant, clock):
    from chalicelib import bootstrap
    from chalicelib.domain.identity import Environment

    clock.advance(days=16)  # May 1, 12:00
    submit(api, key, "cust_a", 5)
    clock.advance(hours=-12, seconds=-1)  # a request whose clock read April 30, 23:59:59, committing later
    submit(api, key, "cust_a", 2)
    customer = bootstrap.unit_of_work().customers.get(tenant.id, Environment.PRODUCTION, "cust_a")
    assert (customer.cycle_period, customer.cycle_count, customer.cycle_net, customer.balance) == (
        "2026-05", 1, 5, 7)
