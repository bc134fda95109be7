"""moto's DynamoDB on SQLite (chalicelib/cli/sqlite_dynamodb.py) and its fast paths, held to moto itself:

* key encodings sort like DynamoDB (numbers by value, strings by UTF-8 bytes);
* Query (table and index, every key condition, both directions, limits, exclusive start keys, filters)
  answers what moto's own whole-table algorithm answers over the same items;
* simple update expressions applied from a compiled plan end exactly as moto's general path ends them,
  including the errors;
* the fair lock keeps arrival order within a class and shares its time between classes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

from chalicelib.cli import fast_updates
from chalicelib.cli.sqlite_dynamodb import FairLock, SqliteTable, key_bytes

SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
ATTRS = [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"},
         {"AttributeName": "g", "AttributeType": "S"}, {"AttributeName": "n", "AttributeType": "N"}]
INDEXES = [{"IndexName": "by-n", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                               {"AttributeName": "n", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

numbers = st.decimals(min_value=Decimal("-1e30"), max_value=Decimal("1e30"), allow_nan=False, allow_infinity=False,
                      places=6)


# --- encodings --------------------------------------------------------------------------------------------------

@given(st.lists(numbers, min_size=2, max_size=30))
@settings(max_examples=200, deadline=None)
def test_number_keys_sort_by_value(values):
    encoded = sorted(values, key=lambda v: key_bytes(DynamoType({"N": str(v)})))
    assert [Decimal(v) for v in encoded] == sorted(Decimal(v) for v in values)


@pytest.mark.parametrize("same", [("1", "1.0", "1E0", "10E-1", "0001.000"), ("0", "-0", "0.000", "0E5"),
                                  ("-2.5", "-2.50", "-25E-1")])
def test_equal_numbers_have_one_key(same):
    assert len({key_bytes(DynamoType({"N": text})) for text in same}) == 1


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1), min_size=2, max_size=30))
@settings(max_examples=200, deadline=None)
def test_string_keys_sort_by_utf8_bytes(values):
    encoded = sorted(values, key=lambda v: key_bytes(DynamoType({"S": v})))
    assert encoded == sorted(values, key=lambda v: v.encode("utf-8"))


# --- query: the store against moto's own algorithm --------------------------------------------------------------

@pytest.fixture(scope="module")
def tables() -> Iterator[tuple[Table, SqliteTable]]:
    plain = Table("plain", account_id="123456789012", region="us-east-1", schema=SCHEMA, attr=ATTRS,
                  global_indexes=INDEXES)
    stored = SqliteTable("store-vs-moto", account_id="123456789012", region="us-east-1", schema=SCHEMA, attr=ATTRS,
                         global_indexes=INDEXES)
    for i in range(120):
        item = {"pk": {"S": f"p{i % 3}"}, "sk": {"S": f"s{i:03d}" if i % 7 else f"s{i:03d}/x"},
                "v": {"N": str(i)}}
        if i % 4:  # sparse index: a quarter of the items are not in it
            item.update({"g": {"S": f"g{i % 2}"}, "n": {"N": str((i * 37) % 50 - 25)}})
        plain.put_item(item)
        stored.put_item(item)
    yield plain, stored
    stored.store.drop(stored.store_name)


def _all_pages(table: Table, **query: Any) -> list[dict]:
    """Every item of the query, following LastEvaluatedKey; each page holds at most Limit items and, on the
    store, carries a LastEvaluatedKey exactly when it is full (DynamoDB's rule; moto looks ahead instead)."""
    found, start = [], None
    for _ in range(200):
        items, _scanned, last = table.query(exclusive_start_key=start, **query)
        limit = query.get("limit")
        assert limit is None or len(items) <= limit
        if isinstance(table, SqliteTable):
            assert (last is not None) == (limit is not None and len(items) == limit)
        found += [i.to_json()["Attributes"] for i in items]
        if last is None:
            return found
        start = {k: v.to_json() if isinstance(v, DynamoType) else v for k, v in last.items()}
    raise AssertionError("paging did not end")


key_conditions = st.sampled_from([None, ("<", 1), ("<=", 1), (">", 1), (">=", 1), ("=", 1), ("BETWEEN", 2),
                                  ("BEGINS_WITH", 1)])


@given(partition=st.integers(0, 2), condition=key_conditions, bounds=st.lists(st.integers(0, 125), min_size=2,
                                                                              max_size=2),
       forward=st.booleans(), limit=st.sampled_from([None, 1, 7, 50]))
@SETTINGS
def test_table_queries_answer_what_moto_answers(tables, partition, condition, bounds, forward, limit):
    plain, stored = tables
    low, high = sorted(bounds)
    query: dict[str, Any] = {"hash_key": DynamoType({"S": f"p{partition}"}), "range_comparison": None,
                             "range_objs": [], "limit": limit, "scan_index_forward": forward,
                             "projection_expressions": None,
                             "hash_key_conditions": [("pk", DynamoType({"S": f"p{partition}"}))]}
    if condition:
        operator, count = condition
        texts = [f"s{low:03d}", f"s{high:03d}"] if operator != "BEGINS_WITH" else [f"s{low:03d}"[:3]]
        query.update(range_comparison=operator, range_objs=[DynamoType({"S": t}) for t in texts[:count]])
    assert _all_pages(stored, **query) == _all_pages(plain, **query)


@given(group=st.integers(0, 1), condition=key_conditions, bounds=st.lists(st.integers(-26, 26), min_size=2,
                                                                          max_size=2),
       forward=st.booleans(), limit=st.sampled_from([None, 1, 4, 30]))
@SETTINGS
def test_index_queries_answer_what_moto_answers(tables, group, condition, bounds, forward, limit):
    plain, stored = tables
    if condition and condition[0] == "BEGINS_WITH":
        return  # not defined on numbers
    low, high = sorted(bounds)
    query: dict[str, Any] = {"hash_key": DynamoType({"S": f"g{group}"}), "range_comparison": None,
                             "range_objs": [], "limit": limit, "scan_index_forward": forward,
                             "projection_expressions": None, "index_name": "by-n",
                             "hash_key_conditions": [("g", DynamoType({"S": f"g{group}"}))]}
    if condition:
        operator, count = condition
        query.update(range_comparison=operator,
                     range_objs=[DynamoType({"N": str(v)}) for v in (low, high)[:count]])
    ours = _all_pages(stored, **query)
    assert ours == _all_pages(plain, **query)
    flat = [Decimal(i["n"]["N"]) for i in ours]
    assert flat == sorted(flat, reverse=not forward)


def test_index_entries_follow_updates_and_deletes(tables):
    _plain, stored = tables
    store = stored.store
    store.begin()
    item = stored.get_item(DynamoType({"S": "p1"}), DynamoType({"S": "s001"}))
    dict.__setitem__(item.attrs, "n", DynamoType({"N": "999"}))
    store.stage(stored, item.hash_key, item.range_key, item)
    store.end(True)
    top = stored.query(DynamoType({"S": "g1"}), None, [], 1, None, False, None, index_name="by-n")[0]
    assert top[0].attrs["sk"].value == "s001"
    stored.delete_item(DynamoType({"S": "p1"}), DynamoType({"S": "s001"}))
    top = stored.query(DynamoType({"S": "g1"}), None, [], 1, None, False, None, index_name="by-n")[0]
    assert top[0].attrs["n"].value != "999"


# --- fast update plans against moto's general path ---------------------------------------------------------------

UPDATES = [
    "SET #a = :v",
    "SET #a = :v, #b = :w",
    "SET #a = if_not_exists(#a, :v)",
    "SET #a = if_not_exists(#b, :w)",
    "SET #a = #b + :v",
    "SET #a = #a - :v",
    "SET #a = #b",
    "ADD #a :v",
    "ADD #b :w, #a :v",
    "REMOVE #a",
    "REMOVE #a, #b",
    "SET #a = :v REMOVE #b",
    "SET #a = :v ADD #b :w REMOVE #c",
    "SET #a = :v, #a = :w",
    "SET #k = :v",
    "SET #g = :v",
    "SET #a = #missing + :v",
    "SET #a = :undefined",
]
values = st.sampled_from([{"N": "1"}, {"N": "-2.5"}, {"S": ""}, {"S": "x"}, {"SS": ["a", "b"]}, {"NS": ["1"]},
                          {"BOOL": True}, {"L": [{"N": "1"}]}, {"M": {"k": {"S": "v"}}}])
existing = st.dictionaries(st.sampled_from(["a", "b", "c"]), values, max_size=3)


def _outcome(run: Any) -> Any:
    try:
        item = run()
    except Exception as exc:  # the errors are part of what must match
        return type(exc).__name__
    return {k: v.to_json() for k, v in sorted(item.attrs.items())}


@given(expression=st.sampled_from(UPDATES), v=values, w=values, start=st.one_of(st.none(), existing))
@example(expression="SET #g = :v", v={"N": "1"}, w={"N": "1"}, start=None)
@example(expression="SET #g = :v", v={"S": ""}, w={"N": "1"}, start=None)
@example(expression="ADD #b :w, #a :v", v={"SS": ["a", "b"]}, w={"N": "1"}, start={"a": {"SS": ["b", "c"]}})
@SETTINGS
def test_compiled_updates_end_as_moto_ends_them(moto_world, expression, v, w, start):
    import moto.dynamodb.models as models
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    backend = models.dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    names = {"#a": "a", "#b": "b", "#c": "c", "#k": "sk", "#g": "g", "#missing": "nothing_here"}
    plan = fast_updates.compile_plan(UpdateExpressionParser.make(expression))
    assert plan is not None
    outcomes = []
    key = {"pk": {"S": "p"}, "sk": {"S": expression}}
    for table_name, fast in (("fast-updates-a", True), ("fast-updates-b", False)):
        if table_name not in backend.tables:
            backend.create_table(table_name, schema=SCHEMA, throughput=None, attr=ATTRS,
                                 global_indexes=INDEXES, indexes=None, streams=None, billing_mode="PAY_PER_REQUEST",
                                 sse_specification=None, tags=[], deletion_protection_enabled=False,
                                 warm_throughput=None)
        backend.delete_item(table_name, key)
        if start is not None:
            backend.put_item(table_name, {**key, **start})
        update = type(backend).update_item.__wrapped__ if not fast else None

        def run(table_name: str = table_name, update: Any = update) -> Any:
            arguments = {"update_expression": expression, "expression_attribute_names": names,
                         "expression_attribute_values": {":v": v, ":w": w}}
            if update is None:
                return fast_updates.update_item(backend, table_name, key, plan, names, arguments[
                    "expression_attribute_values"], None, None)
            return update(backend, table_name, key, **arguments)

        outcomes.append(_outcome(run))
    fast, general = outcomes
    if expression == "SET #g = :v" and (v.get("S") is None or v == {"S": ""}):
        # An index key of another type, or empty: DynamoDB refuses it; moto checks only literal names.
        assert fast == ("EmptyKeyAttributeException" if v == {"S": ""} else "InvalidAttributeTypeError")
        assert isinstance(general, dict)
        return
    assert fast == general


def test_plans_are_only_made_for_the_simple_forms():
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    for general in ("SET a = :v", "SET #a.#b = :v", "SET #a[0] = :v", "SET #a = list_append(#a, :v)",
                    "DELETE #a :v", "SET #a = :v SET #b = :w"):
        try:
            tree = UpdateExpressionParser.make(general)
        except Exception:
            continue
        assert fast_updates.compile_plan(tree) is None, general


# --- the fair lock -----------------------------------------------------------------------------------------------

def test_the_lock_is_reentrant_and_first_come_first_served_within_a_class():
    lock = FairLock()
    order: list[int] = []
    lock.acquire("api")
    lock.acquire("api")  # re-entrant
    threads = []
    for n in range(5):
        thread = threading.Thread(target=lambda n=n: (lock.acquire("api"), order.append(n), lock.release()))
        thread.start()
        threads.append(thread)
        time.sleep(0.02)  # arrive in order
    lock.release()
    assert order == []
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]


def _contend(lock: FairLock, clients: list[tuple[str, float]], seconds: float = 1.5) -> dict[str, float]:
    held: dict[str, float] = {kind: 0.0 for kind, _hold in clients}
    stop = threading.Event()

    def client(kind: str, hold: float) -> None:
        while not stop.is_set():
            lock.acquire(kind)
            began = time.monotonic()
            time.sleep(hold)
            held[kind] += time.monotonic() - began
            lock.release()
            time.sleep(0.0005)  # between requests, as a client is

    threads = [threading.Thread(target=client, args=client_args) for client_args in clients]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(5)
    return held


def test_classes_of_equal_rank_share_the_lock_time():
    held = _contend(FairLock(), [("api", 0.004)] * 4 + [("other", 0.004)])
    assert 0.35 < held["other"] / (held["api"] + held["other"]) < 0.65  # one client against four: about half


def test_a_waiting_background_request_goes_before_waiting_api_requests():
    lock = FairLock()
    order: list[str] = []
    lock.acquire("tally-api")
    threads = []
    for name, kind in (("api-1", "tally-api"), ("api-2", "tally-api"), ("verifier", FairLock.BACKGROUND),
                       ("api-3", "tally-api")):
        thread = threading.Thread(target=lambda name=name, kind=kind: (lock.acquire(kind), order.append(name),
                                                                       lock.release()))
        thread.start()
        threads.append(thread)
        time.sleep(0.02)
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == ["verifier", "api-1", "api-2", "api-3"]
