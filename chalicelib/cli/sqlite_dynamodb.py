"""moto's DynamoDB with its items in SQLite: bounded memory, O(touched) transactions, key-range
queries, and data that survives a restart or a kill.

moto keeps every item as Python objects (~6 KB each), copies whole tables to roll a transaction
back, and answers each Query by sorting the whole table. Here moto keeps parsing requests and
evaluating condition, update, filter and projection expressions, while its tables store items in
one SQLite database:

* ``items(tbl, h, r, image, size)``: the item as DynamoDB JSON under its primary key;
* ``idx(tbl, name, ih, ir, h, r)``: one row per secondary-index entry (sparse, as DynamoDB's).

Key columns hold an order-preserving byte encoding (S as UTF-8, N as a sign/exponent/digits code,
B raw), so SQLite's byte order is DynamoDB's order and a Query is an index range scan.

Every DynamoDB request is one unit: moto's request handler runs under one lock, the items it
writes are staged, and when it answers with a success they are committed in one SQLite
transaction; any error discards them (a cancelled TransactWriteItems never reaches the disk, so
rollback costs nothing). In WAL mode a commit survives the process being killed.

Development tooling (the local stack and the tests); the Lambda bundle never imports moto.
"""

from __future__ import annotations

import base64
import collections
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (tbl TEXT NOT NULL, h BLOB NOT NULL, r BLOB NOT NULL, image BLOB NOT NULL,
                                  size INTEGER NOT NULL, PRIMARY KEY (tbl, h, r)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idx (tbl TEXT NOT NULL, name TEXT NOT NULL, ih BLOB NOT NULL, ir BLOB NOT NULL,
                                h BLOB NOT NULL, r BLOB NOT NULL, PRIMARY KEY (tbl, name, ih, ir, h, r)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_by_item ON idx (tbl, h, r);
CREATE TABLE IF NOT EXISTS tables (tbl TEXT PRIMARY KEY, indexes TEXT NOT NULL) WITHOUT ROWID;
"""
_PAGE = 64  # rows fetched from SQLite at a time while a Query fills its page

# Key conditions as moto hands them over (expression operators, or the legacy KeyConditions names).
_OPERATORS = {"=": "=", "EQ": "=", "<": "<", "LT": "<", "<=": "<=", "LE": "<=", ">": ">", "GT": ">",
              ">=": ">=", "GE": ">=", "BETWEEN": "BETWEEN", "BEGINS_WITH": "BEGINS_WITH"}


# --- encodings -------------------------------------------------------------------------------------

def _number_key(text: str) -> bytes:
    """Bytes that sort like the numbers: sign, then decimal exponent, then the significant digits."""
    sign, digits, exponent = Decimal(text).as_tuple()
    digits_text = "".join(map(str, digits)).lstrip("0")
    if not digits_text:
        return b"\x01"  # zero: after every negative, before every positive
    stripped = digits_text.rstrip("0")
    magnitude = int(exponent) + len(digits_text)  # the value is 0.d1d2... x 10^magnitude
    body = stripped.encode()
    scaled = (magnitude + 4096).to_bytes(2, "big")
    if not sign:
        return b"\x02" + scaled + body
    return b"\x00" + bytes(255 - b for b in scaled) + bytes(255 - b for b in body) + b"\xff"


def key_bytes(value: DynamoType) -> bytes:
    """The order-preserving encoding of a key attribute (S, N or B)."""
    if value.type == "S":
        return value.value.encode("utf-8", "surrogatepass")
    if value.type == "N":
        return _number_key(value.value)
    if value.type == "B":
        raw = value.value
        return raw if isinstance(raw, bytes) else base64.b64decode(raw)
    raise ValueError(f"a key attribute cannot be of type {value.type}")


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _to_json(value: DynamoType) -> Any:
    kind = value.type
    if kind == "M":
        return {"M": {k: _to_json(v) for k, v in value.value.items()}}
    if kind == "L":
        return {"L": [_to_json(v) for v in value.value]}
    if kind == "B" and isinstance(value.value, bytes):
        return {"B": base64.b64encode(value.value).decode()}
    return {kind: value.value}


def _from_json(data: dict[str, Any]) -> DynamoType:
    """DynamoType without its generic constructor's overhead (a stored image is already valid)."""
    ((kind, raw),) = data.items()
    result = DynamoType.__new__(DynamoType)
    result.type = kind
    if kind == "M":
        raw = {k: _from_json(v) for k, v in raw.items()}
    elif kind == "L":
        raw = [_from_json(v) for v in raw]
    result.value = raw
    return result


def dump_item(item: Item) -> bytes:
    return json.dumps({k: _to_json(v) for k, v in item.attrs.items()}, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8", "surrogatepass")


def load_item(image: bytes, hash_attr: str, range_attr: str | None) -> Item:
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.__init__(attrs)
    for name, value in json.loads(image.decode("utf-8", "surrogatepass")).items():
        dict.__setitem__(attrs, name, _from_json(value))
    item = Item.__new__(Item)
    item.attrs = attrs
    item.hash_key = attrs[hash_attr]
    item.range_key = attrs[range_attr] if range_attr else None
    return item


# --- the store -------------------------------------------------------------------------------------

class FairLock:
    """A re-entrant lock for one DynamoDB request at a time: background functions first, then fair time
    shares between the other classes of clients, first come first served within a class.

    moto's server runs each request on a thread, and Python's locks let a newly arrived request overtake
    one that waited. On AWS the background functions (the verifier, the webhook sender, the schedules) never
    wait behind the API's DynamoDB calls; here they share one emulator, so a waiting background request
    goes before any API request. That cannot starve the API: background work only follows from what the
    API accepted. Classes of equal rank take turns by the time each held the lock lately."""

    BACKGROUND = "tally-jobs"
    WINDOW = 1.0  # seconds of lock time a class may be ahead before the other gets its turn regardless

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._owner_class = ""
        self._since = 0.0
        self._depth = 0
        self._waiting: dict[str, collections.deque[tuple[int, threading.Lock]]] = {}
        self._used: dict[str, float] = {}

    def acquire(self, kind: str = "") -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None and not any(self._waiting.values()):
                self._grant(me, kind)
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.setdefault(kind, collections.deque()).append((me, turn))
        turn.acquire()  # released by the holder handing the lock over (see release)

    def _grant(self, owner: int, kind: str) -> None:
        self._owner, self._owner_class, self._depth, self._since = owner, kind, 1, time.monotonic()

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth:
                return
            used = self._used
            used[self._owner_class] = used.get(self._owner_class, 0.0) + time.monotonic() - self._since
            ready = [k for k, queue in self._waiting.items() if queue]
            if not ready:
                self._owner = None
                return
            kind = min(ready, key=lambda k: (k != self.BACKGROUND, used.get(k, 0.0)))
            floor = min(used.get(k, 0.0) for k in ready)
            for k in list(used):  # only recent differences count
                used[k] = min(used[k] - floor, self.WINDOW)
            owner, turn = self._waiting[kind].popleft()
            self._grant(owner, kind)
            turn.release()

    def holding(self, kind: str = "") -> _Holding:
        return _Holding(self, kind)

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Holding:
    __slots__ = ("kind", "lock")

    def __init__(self, lock: FairLock, kind: str) -> None:
        self.lock, self.kind = lock, kind

    def __enter__(self) -> None:
        self.lock.acquire(self.kind)

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class Store:
    """The SQLite database behind every table, and the writes of the request in progress."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-131072", "temp_store=MEMORY"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(_SCHEMA)
        self.lock = FairLock()  # one DynamoDB request at a time; background functions first
        self._depth = 0
        self._staged: dict[tuple[str, bytes, bytes], tuple[SqliteTable, Item | None]] = {}
        self._loaded: dict[tuple[str, bytes, bytes], Item] = {}

    # request scope ----------------------------------------------------------------------------
    def begin(self) -> None:
        self._depth += 1

    def end(self, ok: bool) -> None:
        """Commit what the request staged when it succeeded; forget it otherwise."""
        self._depth -= 1
        if self._depth:
            return
        try:
            if ok and self._staged:
                self._commit()
        finally:
            self._staged.clear()
            self._loaded.clear()

    def _commit(self) -> None:
        rows: list[tuple] = []
        entries: list[tuple] = []
        touched: list[tuple] = []
        gone: list[tuple] = []
        for (tbl, h, r), (table, item) in self._staged.items():
            touched.append((tbl, h, r))
            if item is None:
                gone.append((tbl, h, r))
                continue
            rows.append((tbl, h, r, dump_item(item), item_size(item)))
            entries.extend((tbl, name, ih, ir, h, r) for name, ih, ir in table.index_keys(item))
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany("DELETE FROM idx WHERE tbl = ? AND h = ? AND r = ?", touched)
            if gone:
                db.executemany("DELETE FROM items WHERE tbl = ? AND h = ? AND r = ?", gone)
            if rows:
                db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)", rows)
            if entries:
                db.executemany("INSERT OR REPLACE INTO idx VALUES (?, ?, ?, ?, ?, ?)", entries)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # items ------------------------------------------------------------------------------------
    def stage(self, table: SqliteTable, hash_key: DynamoType, range_key: DynamoType | None,
              item: Item | None) -> None:
        key = (table.store_name, key_bytes(hash_key), key_bytes(range_key) if range_key is not None else b"")
        self._staged[key] = (table, item)
        if item is not None:
            self._loaded[key] = item
        if not self._depth:  # a write outside any request (a direct backend call): commit it now
            self.begin()
            self.end(True)

    def get(self, table: SqliteTable, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
        key = (table.store_name, key_bytes(hash_key), key_bytes(range_key) if range_key is not None else b"")
        staged = self._staged.get(key)
        if staged is not None:
            return staged[1]
        item = self._loaded.get(key)
        if item is None:
            row = self.db.execute("SELECT image FROM items WHERE tbl = ? AND h = ? AND r = ?", key).fetchone()
            if row is None:
                return None
            item = table.load(row[0])
            if self._depth:  # the request may change it in place (UpdateItem): keep one object per key
                self._loaded[key] = item
        return item

    def rows(self, sql: str, args: tuple) -> Iterator[tuple]:
        cursor = self.db.execute(sql, args)
        while batch := cursor.fetchmany(_PAGE):
            yield from batch

    def count(self, tbl: str) -> int:
        return self.db.execute("SELECT count(*) FROM items WHERE tbl = ?", (tbl,)).fetchone()[0]

    # tables -----------------------------------------------------------------------------------
    def attach(self, table: SqliteTable) -> None:
        """Bind a (re)created table to its stored items; rebuild its index entries if the indexes changed."""
        definition = json.dumps(sorted((i.name, i.schema) for i in table.all_indexes()), sort_keys=True)
        row = self.db.execute("SELECT indexes FROM tables WHERE tbl = ?", (table.store_name,)).fetchone()
        if row is not None and row[0] == definition:
            return
        db = self.db
        db.execute("BEGIN")
        db.execute("DELETE FROM idx WHERE tbl = ?", (table.store_name,))
        entries = []
        for h, r, image in db.execute("SELECT h, r, image FROM items WHERE tbl = ?", (table.store_name,)):
            entries.extend((table.store_name, name, ih, ir, h, r)
                           for name, ih, ir in table.index_keys(table.load(image)))
        db.executemany("INSERT OR REPLACE INTO idx VALUES (?, ?, ?, ?, ?, ?)", entries)
        db.execute("INSERT OR REPLACE INTO tables VALUES (?, ?)", (table.store_name, definition))
        db.execute("COMMIT")

    def drop(self, tbl: str) -> None:
        with self.lock:
            for statement in ("DELETE FROM idx WHERE tbl = ?", "DELETE FROM items WHERE tbl = ?",
                              "DELETE FROM tables WHERE tbl = ?"):
                self.db.execute(statement, (tbl,))

    def clear(self) -> None:
        """Every item of every table gone (tests reset the world between cases)."""
        with self.lock:
            self.db.execute("DELETE FROM idx")
            self.db.execute("DELETE FROM items")

    def close(self) -> None:
        with self.lock:
            self.db.close()


def value_size(value: DynamoType) -> int:
    """``DynamoType.size()``, without its generic methods: bytes of strings and binaries, digits of numbers,
    1 for booleans and nulls, the sum of the members of sets, lists and maps (map keys included)."""
    kind, raw = value.type, value.value
    if kind == "S" or kind == "B":
        return len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if kind == "N":
        return len(str(raw))
    if kind == "M":
        return sum(len(k.encode("utf-8", "surrogatepass")) + value_size(v) for k, v in raw.items())
    if kind == "L":
        return sum(value_size(v) for v in raw)
    if kind == "NS":
        return sum(len(str(v)) for v in raw)
    if kind in ("SS", "BS"):
        return sum(len(v.encode("utf-8", "surrogatepass")) if isinstance(v, str) else len(v) for v in raw)
    return 1 if isinstance(raw, bool) else len(str(raw).encode())


def item_size(item: Item) -> int:
    """moto's item size (what its 1 MB page limit counts), computed once per write."""
    return item.size()


# --- the table -------------------------------------------------------------------------------------

class _Partition:
    """``table.items[hash]`` for tables with a sort key, as moto's put/get/delete use it."""

    __slots__ = ("hash_key", "table")

    def __init__(self, table: SqliteTable, hash_key: DynamoType) -> None:
        self.table, self.hash_key = table, hash_key

    def __getitem__(self, range_key: DynamoType) -> Item:
        item = self.table.store.get(self.table, self.hash_key, range_key)
        if item is None:
            raise KeyError(range_key)
        return item

    def __setitem__(self, range_key: DynamoType, item: Item) -> None:
        self.table.store.stage(self.table, self.hash_key, range_key, item)

    def pop(self, range_key: DynamoType) -> Item:
        item = self[range_key]
        self.table.store.stage(self.table, self.hash_key, range_key, None)
        return item

    def values(self) -> list[Item]:
        return [self.table.load(image) for (image,) in self.table.store.rows(
            "SELECT image FROM items WHERE tbl = ? AND h = ? ORDER BY r", (self.table.store_name,
                                                                           key_bytes(self.hash_key)))]

    def __len__(self) -> int:
        return len(self.values())


class _Items:
    """Stands in for moto's ``Table.items`` dict, reading and staging through the store."""

    __slots__ = ("table",)

    def __init__(self, table: SqliteTable) -> None:
        self.table = table

    def __getitem__(self, hash_key: DynamoType) -> Any:
        if self.table.has_range_key:
            return _Partition(self.table, hash_key)
        item = self.table.store.get(self.table, hash_key, None)
        if item is None:
            raise KeyError(hash_key)
        return item

    def __setitem__(self, hash_key: DynamoType, item: Item) -> None:
        self.table.store.stage(self.table, hash_key, None, item)

    def __contains__(self, hash_key: DynamoType) -> bool:
        return self.table.store.get(self.table, hash_key, None) is not None

    def pop(self, hash_key: DynamoType) -> Item:
        item = self[hash_key]
        self.table.store.stage(self.table, hash_key, None, None)
        return item

    def values(self) -> Iterator[Any]:
        """Every item (tables without a sort key) or partition (with one): scans only."""
        if not self.table.has_range_key:
            yield from self.table.all_items()
            return
        for (h,) in self.table.store.rows("SELECT DISTINCT h FROM items WHERE tbl = ? ORDER BY h",
                                          (self.table.store_name,)):
            first = next(self.table.store.rows("SELECT image FROM items WHERE tbl = ? AND h = ? LIMIT 1",
                                               (self.table.store_name, h)))
            yield _Partition(self.table, self.table.load(first[0]).hash_key)


class SqliteTable(Table):
    """A moto table whose items live in the store; queries read only the key range they ask for."""

    store: Store  # set by install()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store_name = f"{self.account_id}/{self.region_name}/{self.name}"
        self.items = _Items(self)  # type: ignore[assignment]
        self.store.attach(self)

    def load(self, image: bytes) -> Item:
        return load_item(image, self.hash_key_attr, self.range_key_attr)

    def index_keys(self, item: Item) -> list[tuple[str, bytes, bytes]]:
        """(index, index hash, index range) for every secondary index the item belongs to."""
        keys = []
        for index in self.all_indexes():
            hash_value = range_value = None
            for part in index.schema:
                value = item.attrs.get(part["AttributeName"])
                if value is None or value.type not in ("S", "N", "B"):
                    break
                if part["KeyType"] == "HASH":
                    hash_value = value
                else:
                    range_value = value
            else:
                if hash_value is not None:
                    keys.append((index.name, key_bytes(hash_value),
                                 key_bytes(range_value) if range_value is not None else b""))
        return keys

    def __len__(self) -> int:
        return self.store.count(self.store_name)

    def all_items(self) -> list[Item]:
        return [self.load(image) for (image,) in self.store.rows(
            "SELECT image FROM items WHERE tbl = ? ORDER BY h, r", (self.store_name,))]

    def has_idx_items(self, index_name: str) -> list[Item]:
        return [self.load(image) for (image,) in self.store.rows(
            "SELECT i.image FROM idx x JOIN items i ON i.tbl = x.tbl AND i.h = x.h AND i.r = x.r "
            "WHERE x.tbl = ? AND x.name = ? ORDER BY x.ih, x.ir, x.h, x.r", (self.store_name, index_name))]

    def query(self, hash_key: DynamoType | None, range_comparison: str | None, range_objs: list[DynamoType],
              limit: int, exclusive_start_key: dict[str, Any], scan_index_forward: bool,
              projection_expressions: list[list[str]] | None, index_name: str | None = None,
              consistent_read: bool = False, filter_expression: Any = None,
              hash_key_conditions: list[tuple[str, DynamoType]] | None = None,
              range_key_conditions: list[tuple[str, str, list[DynamoType]]] | None = None,
              **filter_kwargs: Any) -> tuple[list[Item], int, dict[str, Any] | None]:
        index = self.get_index(index_name) if index_name else None
        if (filter_kwargs or hash_key is None or len(hash_key_conditions or ()) > 1
                or len(range_key_conditions or ()) > 1 or (index is not None and len(index.schema) > 2)):
            # Legacy QueryFilter or multi-attribute keys: moto's own (whole-table) algorithm.
            return super().query(hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                                 scan_index_forward, projection_expressions, index_name, consistent_read,
                                 filter_expression, hash_key_conditions=hash_key_conditions,
                                 range_key_conditions=range_key_conditions, **filter_kwargs)
        if index is not None and consistent_read and index in self.global_indexes:
            from moto.dynamodb.exceptions import MockValidationException

            raise MockValidationException("Consistent reads are not supported on global secondary indexes")

        order = "ASC" if scan_index_forward else "DESC"
        if index is None:
            sql = "SELECT image, size FROM items WHERE tbl = ? AND h = ?"
            args: list[Any] = [self.store_name, key_bytes(hash_key)]
            sort_columns = ["r"]
            range_column = "r"
            start_parts = [self.range_key_attr] if self.range_key_attr else []
        else:
            sql = ("SELECT i.image, i.size FROM idx x JOIN items i ON i.tbl = x.tbl AND i.h = x.h AND i.r = x.r "
                   "WHERE x.tbl = ? AND x.name = ? AND x.ih = ?")
            args = [self.store_name, index.name, key_bytes(hash_key)]
            sort_columns = ["x.ir", "x.h", "x.r"]
            range_column = "x.ir"
            index_range = next((p["AttributeName"] for p in index.schema if p["KeyType"] == "RANGE"), None)
            start_parts = [index_range, self.hash_key_attr, self.range_key_attr]
        if range_comparison:
            operator = _OPERATORS[range_comparison.upper()]
            bounds = [key_bytes(v) for v in range_objs]
            if operator == "BETWEEN":
                sql += f" AND {range_column} >= ? AND {range_column} <= ?"
                args += bounds[:2]
            elif operator == "BEGINS_WITH":
                sql += f" AND {range_column} >= ?"
                args.append(bounds[0])
                end = _prefix_end(bounds[0])
                if end is not None:
                    sql += f" AND {range_column} < ?"
                    args.append(end)
            else:
                sql += f" AND {range_column} {operator} ?"
                args.append(bounds[0])
        if exclusive_start_key:
            values = [key_bytes(DynamoType(exclusive_start_key[name])) if name and name in exclusive_start_key
                      else b"" for name in start_parts]
            columns = [c for c, name in zip(sort_columns, start_parts, strict=True) if name]
            values = [v for v, name in zip(values, start_parts, strict=True) if name]
            if columns:
                after = ">" if scan_index_forward else "<"
                sql += f" AND ({', '.join(columns)}) {after} ({', '.join('?' * len(columns))})"
                args += values
        sql += " ORDER BY " + ", ".join(f"{c} {order}" for c in sort_columns)
        if limit:
            sql += f" LIMIT {int(limit)}"

        # As DynamoDB: a page ends at Limit items or 1 MB, and then carries a LastEvaluatedKey whether or
        # not more items follow (moto looks ahead and leaves it out when none do).
        results: list[Item] = []
        result_size = 0
        last_evaluated_key = None
        for image, size in self.store.rows(sql, tuple(args)):
            if results and result_size + size > RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                break
            results.append(self.load(image))
            result_size += size
        if limit and len(results) == limit:
            last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
        scanned_count = len(results)
        if index is not None:
            results = [index.project(r) for r in results]
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        if projection_expressions:
            results = [r.project(projection_expressions) for r in results]
        return results, scanned_count, last_evaluated_key
