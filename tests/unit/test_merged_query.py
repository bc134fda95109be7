"""The merged listing over a sharded index key (``adapters/dynamodb/merged.py``), over in-memory shards that
page as DynamoDB queries do: whatever the shard contents, chunk size and stopping points, resuming from
the positions gives every record once, in order."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.adapters.dynamodb.cursors import EXHAUSTED
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


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.tuples(st.integers(0, 999), st.integers(0, 7)), unique_by=lambda v: v[0], max_size=40),
       count=st.integers(1, 4), chunk=st.integers(1, 6), descending=st.booleans(),
       steps=st.lists(st.tuples(st.integers(1, 7), st.integers(0, 7)), min_size=1, max_size=30))
def test_resuming_from_the_positions_lists_every_record_once_in_order(values, count, chunk, descending, steps):
    shards = shards_of(values, count)
    expected = sorted((e.sk for rows in shards.values() for e in rows), reverse=descending)
    partitions = list(shards)
    positions: list = [None] * count
    seen: list[str] = []
    queries: list[str] = []
    for take, keep in steps:
        if all(p == EXHAUSTED and type(p) is int for p in positions):
            break
        merged = MergedQuery(runner(shards, descending, queries), partitions, positions, sort_key="sk",
                             descending=descending, chunk=chunk, key_names=KEYS)
        taken = merged.take(take)
        used, unused = taken[:keep], taken[keep:]  # a caller may stop part-way through what it took
        seen += [record.sk for _, record in used]
        positions = merged.positions(used, unused)
    else:
        while not all(p == EXHAUSTED and type(p) is int for p in positions):
            merged = MergedQuery(runner(shards, descending, queries), partitions, positions, sort_key="sk",
                                 descending=descending, chunk=chunk, key_names=KEYS)
            taken = merged.take(5)
            seen += [record.sk for _, record in taken]
            positions = merged.positions(taken, [])
    assert seen == expected


def test_an_exhausted_shard_is_not_queried_again():
    shards = {"p0": [Entry("p0", "0001")], "p1": [Entry("p1", f"{n:04d}") for n in range(2, 9)]}
    queries: list[str] = []
    merged = MergedQuery(runner(shards, False, queries), ["p0", "p1"], [None, None], sort_key="sk",
                         descending=False, chunk=3, key_names=KEYS)
    taken = merged.take(2)
    positions = merged.positions(taken, [])
    assert positions[0] == EXHAUSTED and positions[1] == {"pk": {"S": "p1"}, "sk": {"S": "0002"}}
    queries.clear()
    MergedQuery(runner(shards, False, queries), ["p0", "p1"], positions, sort_key="sk", descending=False,
                chunk=3, key_names=KEYS).take(3)
    assert queries == ["p1"]
