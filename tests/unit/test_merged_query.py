"""The merged listing over a sharded index key (``adapters/dynamodb/merged.py``), over in-memory shards that
page as DynamoDB queries do: whatever the shard contents, chunk size and stopping points, resuming from
the positions gives every record once, in order."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.adapters.dynamodb.merged import MergedQuery

KEYS = ("pk", "sk")


@dataclass(frozen=True)
class Entry:
    pk: str
    sk: str


class Results(list):
    last_evaluated_key: dict | None = None


def shards_of(values: list[tuple[int, int]], count: int) -> dict[str, list[Entry]]:
    shards: dict[str, list[Entry]] = {f"p{n}": [] for n in range(count)}
    for value, shard in values:
        shards[f"p{shard % count}"].append(Entry(f"p{shard % count}", f"{value:04d}"))
    return shards


def runner(shards: dict[str, list[Entry]], descending: bool, queries: list[str]):
    def run(partition: str, start: dict | None, limit: int) -> Results:
        queries.append(partition)
        rows = sorted(shards[partition], key=lambda e: e.sk, reverse=descending)
        if start is not None:
            after = start["sk"]["S"]
            rows = [e for e in rows if (e.sk < after if descending else e.sk > after)]
        page = Results(rows[:limit])
        if len(rows) >= limit and page:
            page.last_evaluated_key = {"pk": {"S": page[-1].pk}, "sk": {"S": page[-1].sk}}
        return page
    return run


def listing(shards, partitions, descending, queries, after, read_all, wanted):
    return MergedQuery(runner(shards, descending, queries), partitions, after, read_all, partition_name="pk",
                       sort_key="sk", descending=descending, wanted=wanted, key_names=KEYS)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.tuples(st.integers(0, 999), st.integers(0, 40)), unique_by=lambda v: v[0], max_size=60),
       count=st.integers(1, 33), wanted=st.integers(1, 12), descending=st.booleans(),
       steps=st.lists(st.tuples(st.integers(1, 7), st.integers(0, 7)), min_size=1, max_size=30))
def test_resuming_from_the_resume_point_lists_every_record_once_in_order(values, count, wanted, descending, steps):
    """Whatever the spread over the shards, the first ask, and where a caller stops: the last key used and the
    shards read to their end say where every shard resumes."""
    shards = shards_of(values, count)
    expected = sorted((e.sk for rows in shards.values() for e in rows), reverse=descending)
    partitions = list(shards)
    after, read_all = None, set()
    seen: list[str] = []
    queries: list[str] = []
    for take, keep in steps:
        if len(read_all) == count:
            break
        merged = listing(shards, partitions, descending, queries, after, read_all, wanted)
        taken = merged.take(take)
        used, unused = taken[:keep], taken[keep:]  # a caller may stop part-way through what it took
        seen += [record.sk for _, record in used]
        after, read_all = merged.resume_point(used, unused)
    else:
        while len(read_all) < count:
            merged = listing(shards, partitions, descending, queries, after, read_all, wanted)
            taken = merged.take(5)
            seen += [record.sk for _, record in taken]
            after, read_all = merged.resume_point(taken, [])
    assert seen == expected


def test_an_exhausted_shard_is_not_queried_again():
    shards = {"p0": [Entry("p0", "0001")], "p1": [Entry("p1", f"{n:04d}") for n in range(2, 12)]}
    queries: list[str] = []
    merged = listing(shards, ["p0", "p1"], False, queries, None, set(), 4)
    taken = merged.take(2)
    assert merged.resume_point(taken, []) == ({"sk": {"S": "0002"}}, {0})
    queries.clear()
    listing(shards, ["p0", "p1"], False, queries, {"sk": {"S": "0002"}}, {0}, 3).take(3)
    assert queries == ["p1"]


def test_a_shard_is_first_asked_for_twice_its_share_and_then_for_twice_as_many():
    """32 shards and a page of 10: each shard is asked for 4 (not 11), one holding the whole page is asked
    again with 8, then 10; a page spread evenly takes one query a shard."""
    asked: list[tuple[str, int]] = []
    lopsided = {f"p{n}": [] for n in range(32)} | {"p0": [Entry("p0", f"{n:04d}") for n in range(20)]}

    def run(partition: str, start: dict | None, limit: int) -> Results:
        asked.append((partition, limit))
        return runner(lopsided, False, [])(partition, start, limit)

    merged = MergedQuery(run, list(lopsided), None, set(), partition_name="pk", sort_key="sk", descending=False,
                         wanted=10, key_names=KEYS)
    assert [r.sk for _, r in merged.take(10)] == [f"{n:04d}" for n in range(10)]
    assert sorted(limit for _, limit in asked[:32]) == [4] * 32
    assert asked[32:] == [("p0", 8)]
    merged.take(5)
    assert asked[32:] == [("p0", 8), ("p0", 10)]  # capped at what the caller wants
    even = {f"p{n}": [Entry(f"p{n}", f"{n:04d}")] for n in range(32)}
    queries: list[str] = []
    listing(even, list(even), False, queries, None, set(), 10).take(10)
    assert sorted(queries) == sorted(even)


def test_more_reads_only_when_no_shard_has_a_record_in_hand():
    """After a full page: a record in hand answers without a query; a shard that answered a whole ask is asked
    once more, so a listing that ended exactly at the page's end gets no cursor to an empty page."""
    shards = {"p0": [Entry("p0", f"{n:04d}") for n in range(6)], "p1": []}
    queries: list[str] = []
    merged = listing(shards, ["p0", "p1"], False, queries, None, set(), 4)
    used = merged.take(3)
    count = len(queries)
    assert merged.more() and len(queries) == count
    exact = {"p0": [Entry("p0", f"{n:04d}") for n in range(4)], "p1": []}
    merged = listing(exact, ["p0", "p1"], False, queries, None, set(), 4)
    used = merged.take(4)
    count = len(queries)
    assert not merged.more() and queries[count:] == ["p0"]
    assert merged.resume_point(used, []) == ({"sk": {"S": "0003"}}, {0, 1})


def test_a_shard_that_runs_dry_is_asked_again_with_every_shard_running_low():
    """Shards spread evenly run dry together: one round trip asks all of them again, not one after another."""
    shards = {f"p{n}": [Entry(f"p{n}", f"{4 * i + n:04d}") for i in range(30)] for n in range(4)}
    asked: list[str] = []
    merged = listing(shards, list(shards), False, asked, None, set(), 20)  # 10 each first (twice 20 / 4)
    assert [r.sk for _, r in merged.take(40)] == [f"{n:04d}" for n in range(40)]
    assert sorted(asked[:4]) == sorted(asked[4:]) == sorted(shards)  # two waves of four
