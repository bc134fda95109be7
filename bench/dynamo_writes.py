"""Recording every DynamoDB write a piece of code makes, with what it would cost on DynamoDB.

Used by ``bench/capacity.py`` (write units per item, partition and index partition) and
``bench/contention.py`` (transaction attempts and their failures). Like ``tests/dynamo_calls.py``
it hooks botocore's ``before-call`` / ``after-call`` events on the shared connection's client, so
it sees exactly the requests the product sends, whichever repository or transaction built them.

With ``measure=True`` the recorder reads each written item just before and just after its
request (one BatchGetItem each, on the same client, not recorded), so it knows the item sizes
and which index entries the write added, changed or removed. The reads make the code under
test slower: contention figures use ``measure=False`` (counts only).

Costs follow DynamoDB's documented rules; the approximations are:

* key attributes are strings (every Tally key is): binary keys would be matched by their base64 text;

* item size: attribute name lengths plus value sizes (strings and binaries by their bytes,
  numbers 1 byte per two significant digits plus 1, lists and maps 3 bytes plus 1 per element);
* a write is billed on the larger of the item before and after it (a delete: the item before;
  a condition check: the item as it is, at least 1 KB);
* an index entry is the item's projected attributes plus the index and table keys plus 100 bytes;
  an update rewrites it when an index key or a projected attribute changed value (compared on
  the before and after images), a put always does; changing an index key costs a delete of the
  old entry plus a put of the new one; a delete (or removing a key attribute) costs the old
  entry's size once; index writes are never doubled by transactions;
* failed writes (a false condition, a cancelled transaction) are counted as attempts but cost
  nothing here (DynamoDB bills some of them; the benches run single-threaded when they price).
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chalicelib.adapters.dynamodb.connection import shared_connection

WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
READ_OPERATIONS = ("GetItem", "BatchGetItem", "TransactGetItems")  # reads by key (a Query reads a range: not
#                                                                   counted per item)
KB = 1024
INDEX_ENTRY_OVERHEAD = 100  # bytes DynamoDB adds to every index entry

Item = dict[str, Any]  # an item in DynamoDB's JSON shape: {name: {"S": "…"}}


@dataclass(frozen=True)
class IndexSchema:
    name: str
    keys: tuple[str, ...]  # hash key, then range key if any
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    included: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    name: str
    keys: tuple[str, ...]
    indexes: tuple[IndexSchema, ...]


@dataclass(frozen=True)
class IndexWrite:
    """One write on a global secondary index's partition (``change``: put | update | delete)."""

    index: str
    partition: str
    change: str
    units: int


class _Keyed:
    """An item's key as text: partition key, then sort key if any."""

    key: tuple[str, ...]

    @property
    def partition(self) -> str:
        return self.key[0]

    @property
    def sort(self) -> str | None:
        return self.key[1] if len(self.key) > 1 else None


@dataclass
class Write(_Keyed):
    """One item written by a successful request (``action``: Put | Update | Delete | ConditionCheck)."""

    operation: str
    action: str
    table: str
    key: tuple[str, ...]  # the key values as text: partition key, then sort key if any
    transactional: bool
    conditional: bool
    size_before: int | None = None
    size_after: int | None = None
    units: int | None = None  # write units on the table (doubled in a transaction)
    index_writes: list[IndexWrite] = field(default_factory=list)


@dataclass(frozen=True)
class Read(_Keyed):
    """One item read by key (GetItem, or one item of a BatchGetItem): read units as DynamoDB charges them,
    one per 4 KB, half that when eventually consistent."""

    table: str
    key: tuple[str, ...]
    units: float


@dataclass
class _Pending:
    operation: str
    writes: list[Write]
    images: dict[int, Item | None]  # write index → item before the request
    keys: list[dict[str, Any]]  # write index → the item's key in DynamoDB's shape


def number_size(text: str) -> int:
    """DynamoDB's size of a number: 1 byte per two significant digits, plus 1."""
    digits = Decimal(text).normalize().as_tuple().digits
    significant = len(digits) or 1
    return math.ceil(significant / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """The size of one attribute value in DynamoDB's JSON shape."""
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(number_size(n) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Item | None) -> int:
    """Attribute names plus values, as DynamoDB sums an item (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def units(size: int) -> int:
    """Write units of one standard write of ``size`` bytes (1 KB each, at least 1)."""
    return max(1, math.ceil(size / KB))


def read_units(size: int) -> int:
    """Read units of one strongly consistent read of ``size`` bytes (4 KB each, at least 1)."""
    return max(1, math.ceil(size / (4 * KB)))


def plain(value: dict[str, Any]) -> str:
    """A key attribute's value as text (keys are strings, numbers or binaries)."""
    (_kind, data), = value.items()
    return data.decode() if isinstance(data, bytes) else str(data)


def _entry(index: IndexSchema, table: TableSchema, item: Item | None) -> Item | None:
    """The item's entry in ``index`` (its projected attributes), or None if it is not in the index."""
    if not item or any(name not in item for name in index.keys):
        return None
    if index.projection == "ALL":
        return item
    names = set(index.keys) | set(table.keys)
    if index.projection == "INCLUDE":
        names |= set(index.included)
    return {name: value for name, value in item.items() if name in names}


def index_writes(table: TableSchema, action: str, before: Item | None, after: Item | None) -> list[IndexWrite]:
    """What one base-table write costs on each global secondary index (see the module docstring)."""
    if action == "ConditionCheck":
        return []
    writes: list[IndexWrite] = []
    for index in table.indexes:
        old, new = _entry(index, table, before), _entry(index, table, after if action != "Delete" else None)
        old_part = plain(old[index.keys[0]]) if old else None
        new_part = plain(new[index.keys[0]]) if new else None
        old_size = item_size(old) + INDEX_ENTRY_OVERHEAD if old else 0
        new_size = item_size(new) + INDEX_ENTRY_OVERHEAD if new else 0
        if old and new:
            if any(old.get(k) != new.get(k) for k in index.keys):
                writes.append(IndexWrite(index.name, old_part or "", "delete", units(old_size)))
                writes.append(IndexWrite(index.name, new_part or "", "put", units(new_size)))
            elif action == "Put" or old != new:
                writes.append(IndexWrite(index.name, new_part or "", "update", units(new_size)))
        elif new:
            writes.append(IndexWrite(index.name, new_part or "", "put", units(new_size)))
        elif old:
            writes.append(IndexWrite(index.name, old_part or "", "delete", units(old_size)))
    return writes


class WriteRecorder:
    """Records the DynamoDB writes made while attached (every thread), and counts every call.

    ``calls``: every DynamoDB call by operation; ``failures``: failed write calls by
    ``"<operation>: <error>[ (<cancellation reasons>)]"``; ``writes``: each item written by a
    successful call, priced when ``measure`` is on; ``attempts()``: the calls that can lose a
    race (transactions and conditional single-item writes).
    """

    UID = "bench-dynamo-writes"

    def __init__(self, *, measure: bool = True) -> None:
        connection = shared_connection()
        self.client = connection.client
        self.events = self.client.meta.events
        self.measure = measure
        self.uid = f"{self.UID}-{id(self)}"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._schemas: dict[str, TableSchema] = {}
        self.reset()

    def reset(self) -> None:
        """Forget what was recorded (the schemas stay)."""
        with self._lock:
            self.calls: Counter[str] = Counter()
            self.failures: Counter[str] = Counter()
            self.conditional_single_writes = 0
            self.writes: list[Write] = []
            self.reads: list[Read] = []

    def attempts(self) -> int:
        """TransactWriteItems calls plus conditional single-item writes: the writes that can lose a race."""
        return self.calls["TransactWriteItems"] + self.conditional_single_writes

    @contextmanager
    def recording(self) -> Iterator[WriteRecorder]:
        """Attached for the ``with`` block."""
        self.attach()
        try:
            yield self
        finally:
            self.detach()

    def attach(self) -> WriteRecorder:
        self.events.register("before-call.dynamodb", self._before, unique_id=f"{self.uid}-before")
        self.events.register("after-call.dynamodb", self._after, unique_id=f"{self.uid}-after")
        self.events.register("after-call-error.dynamodb", self._error, unique_id=f"{self.uid}-error")
        return self

    def detach(self) -> None:
        self.events.unregister("before-call.dynamodb", unique_id=f"{self.uid}-before")
        self.events.unregister("after-call.dynamodb", unique_id=f"{self.uid}-after")
        self.events.unregister("after-call-error.dynamodb", unique_id=f"{self.uid}-error")

    def schema(self, table: str) -> TableSchema:
        """The table's keys and global secondary indexes, as DynamoDB describes them (cached)."""
        if table not in self._schemas:
            described = self._quiet("DescribeTable", {"TableName": table})["Table"]

            def key_names(schema: list[dict]) -> tuple[str, ...]:
                return tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH"))

            indexes = tuple(
                IndexSchema(name=index["IndexName"], keys=key_names(index["KeySchema"]),
                            projection=index.get("Projection", {}).get("ProjectionType", "ALL"),
                            included=tuple(index.get("Projection", {}).get("NonKeyAttributes", ())))
                for index in described.get("GlobalSecondaryIndexes", []))
            self._schemas[table] = TableSchema(table, key_names(described["KeySchema"]), indexes)
        return self._schemas[table]

    # --- hooks -----------------------------------------------------------------------------------

    def _busy(self) -> bool:
        return getattr(self._local, "busy", False)

    def _quiet(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """A call of the recorder's own, made from inside a hook: not recorded."""
        self._local.busy = True
        try:
            return self.client._make_api_call(operation, params)
        finally:
            self._local.busy = False

    def _before(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self._busy():
            return None
        with self._lock:
            self.calls[model.name] += 1
        if self.measure and model.name in READ_OPERATIONS:  # reads are priced for the capacity model only
            context[f"{self.uid}-read"] = json.loads(params.get("body") or b"{}")
        if model.name not in WRITE_OPERATIONS:
            return None
        body = json.loads(params.get("body") or b"{}")
        pending = self._parse(model.name, body)
        if model.name in ("PutItem", "UpdateItem", "DeleteItem") and body.get("ConditionExpression"):
            with self._lock:
                self.conditional_single_writes += 1
        if self.measure:
            pending.images = self._read(pending)
        context[self.uid] = pending
        return None  # before-call handlers that return a value replace the request

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        request = context.pop(f"{self.uid}-read", None)
        if request is not None and http_response.status_code < 300:
            self._record_reads(model.name, request, parsed)
        pending: _Pending | None = context.pop(self.uid, None)
        if pending is None:
            return
        if http_response.status_code >= 300:
            error = parsed.get("Error", {}).get("Code", str(http_response.status_code))
            reasons = [r.get("Code", "?") for r in parsed.get("CancellationReasons") or []]
            detail = ", ".join(sorted({r for r in reasons if r not in ("None", "?")}))
            with self._lock:
                self.failures[f"{pending.operation}: {error}" + (f" ({detail})" if detail else "")] += 1
            return
        writes = list(enumerate(pending.writes))
        unprocessed = parsed.get("UnprocessedItems") or {}
        if unprocessed:  # BatchWriteItem: what DynamoDB left undone was not written
            skipped = {(table, _key_text(self.schema(table), r.get("PutRequest", {}).get("Item")
                                         or r.get("DeleteRequest", {}).get("Key") or {}))
                       for table, requests in unprocessed.items() for r in requests}
            writes = [(i, w) for i, w in writes
                      if (w.table, _key_text(self.schema(w.table), pending.keys[i])) not in skipped]
        if self.measure:
            after = self._read(pending)
            for i, write in writes:
                self._price(write, pending.images.get(i), after.get(i))
        with self._lock:
            self.writes += [w for _i, w in writes]

    def _error(self, context: dict[str, Any], exception: Exception | None = None, **_: Any) -> None:
        pending: _Pending | None = context.pop(self.uid, None)
        if pending is not None and exception is not None:
            with self._lock:
                self.failures[f"{pending.operation}: {type(exception).__name__}"] += 1

    # --- parsing and pricing ---------------------------------------------------------------------

    def _parse(self, operation: str, body: dict[str, Any]) -> _Pending:
        pending = _Pending(operation, [], {}, [])

        def add(action: str, table: str, key: dict[str, Any] | None, item: Item | None, request: dict[str, Any],
                transactional: bool) -> None:
            schema = self.schema(table)
            key = key or {name: item[name] for name in schema.keys if item and name in item}
            pending.writes.append(Write(
                operation=operation, action=action, table=table,
                key=_key_of(schema, key),
                transactional=transactional, conditional=bool(request.get("ConditionExpression")),
            ))
            pending.keys.append(key)

        if operation == "PutItem":
            add("Put", body["TableName"], None, body["Item"], body, False)
        elif operation == "UpdateItem":
            add("Update", body["TableName"], body["Key"], None, body, False)
        elif operation == "DeleteItem":
            add("Delete", body["TableName"], body["Key"], None, body, False)
        elif operation == "TransactWriteItems":
            for entry in body.get("TransactItems", []):
                (action, request), = entry.items()
                add(action, request["TableName"], request.get("Key"), request.get("Item"), request, True)
        elif operation == "BatchWriteItem":
            for table, requests in body.get("RequestItems", {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        add("Put", table, None, request["PutRequest"]["Item"], {}, False)
                    else:
                        add("Delete", table, request["DeleteRequest"]["Key"], None, {}, False)
        return pending

    def _read(self, pending: _Pending) -> dict[int, Item | None]:
        """Every written item as it is now (consistent BatchGetItem, 100 keys a call), by write index."""
        wanted = [(i, w.table, pending.keys[i]) for i, w in enumerate(pending.writes)]
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {}
            for _i, table, key in wanted[start:start + 100]:
                keys = request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"]
                if key not in keys:
                    keys.append(key)
            while request:
                response = self._quiet("BatchGetItem", {"RequestItems": request})
                for table, items in response.get("Responses", {}).items():
                    schema = self.schema(table)
                    for item in items:
                        found[(table, _key_text(schema, item))] = item
                request = response.get("UnprocessedKeys") or {}
        return {i: found.get((table, _key_text(self.schema(table), key))) for i, table, key in wanted}

    def _record_reads(self, operation: str, request: dict[str, Any], parsed: dict[str, Any]) -> None:
        if operation == "TransactGetItems":  # a transactional read: twice a consistent read's units
            reads = [Read(get["Get"]["TableName"], _key_of(self.schema(get["Get"]["TableName"]), answer["Item"]),
                          2 * read_units(item_size(answer["Item"])))
                     for get, answer in zip(request["TransactItems"], parsed.get("Responses") or [], strict=False)
                     if answer.get("Item")]
            with self._lock:
                self.reads += reads
            return
        if operation == "GetItem":
            found = {request["TableName"]: [parsed["Item"]] if parsed.get("Item") else []}
            consistent = {request["TableName"]: bool(request.get("ConsistentRead"))}
        else:
            found = parsed.get("Responses") or {}
            consistent = {table: bool(asked.get("ConsistentRead")) for table, asked in request["RequestItems"].items()}
        reads = [Read(table, _key_of(self.schema(table), item),
                      read_units(item_size(item)) * (1 if consistent.get(table) else 0.5))
                 for table, items in found.items() for item in items]
        with self._lock:
            self.reads += reads

    def _price(self, write: Write, before: Item | None, after: Item | None) -> None:
        schema = self.schema(write.table)
        write.size_before, write.size_after = item_size(before), item_size(after)
        size = write.size_before if write.action in ("Delete", "ConditionCheck") else max(
            write.size_before, write.size_after)
        write.units = units(size) * (2 if write.transactional else 1)
        write.index_writes = index_writes(schema, write.action, before, after)


def _key_of(schema: TableSchema, item: Item) -> tuple[str, ...]:
    """The item's key values as text: partition key, then sort key if any."""
    return tuple(plain(item[name]) for name in schema.keys if name in item)


def _key_text(schema: TableSchema, item: Item) -> str:
    return json.dumps(list(_key_of(schema, item)))
