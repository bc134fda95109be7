"""Make moto's DynamoDB behave (and perform) like DynamoDB for the local stack and the tests.

Development tooling only; the Lambda bundle never imports moto.

:func:`install` puts every table's items in SQLite (:mod:`chalicelib.cli.sqlite_dynamodb`) and
makes each DynamoDB request one atomic unit:

* one lock around moto's DynamoDB request handling: real DynamoDB applies every write and
  TransactWriteItems atomically, moto's threaded server does not;
* what a request writes is staged and committed only when it succeeds, so a cancelled
  transaction is rolled back by forgetting its staged items (moto copies every touched table);
* ``Item`` construction checks the 400 KB limit once per item (moto re-sums the item on every
  attribute it adds: quadratic in the attribute count).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from chalicelib.cli.sqlite_dynamodb import SqliteTable, Store

_installed: dict[str, Any] = {}


def _patch(owner: Any, name: str, make: Any) -> None:
    original = getattr(owner, name)
    if getattr(original, "_tally_patched", False):
        return
    patched = make(original)
    patched._tally_patched = True
    setattr(owner, name, patched)


class _NoTableCopies:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: the whole-table backups that
    TransactWriteItems takes become the table itself (the store rolls back by discarding)."""

    def deepcopy(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, SqliteTable):
            return value
        return copy.deepcopy(value, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def install(path: str | Path = ":memory:") -> Store:
    """Back moto's DynamoDB with a SQLite store at ``path`` (replacing any earlier one)."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize
    from moto.dynamodb.responses import DynamoHandler

    previous = _installed.get("store")
    if previous is not None:
        previous.close()
    store = Store(path)
    SqliteTable.store = store
    _installed["store"] = store
    models.Table = SqliteTable  # what DynamoDBBackend.create_table instantiates
    models.copy = _NoTableCopies()
    backend = models.DynamoDBBackend

    def call_action(original: Any) -> Any:
        def run(self: Any) -> Any:
            current = SqliteTable.store
            with current.lock:
                current.begin()
                ok = False
                try:
                    result = original(self)
                    ok = int(result[0]) < 400
                    return result
                finally:
                    current.end(ok)
        return run

    def update_item(original: Any) -> Any:
        def run(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
            item = original(self, table_name, *args, **kwargs)  # moto changes the stored object in place
            table = self.get_table(table_name)
            table.store.stage(table, item.hash_key, item.range_key, item)
            return item
        return run

    def delete_table(original: Any) -> Any:
        def run(self: Any, name: str) -> Any:
            table = original(self, name)
            if isinstance(table, SqliteTable):
                table.store.drop(table.store_name)
            return table
        return run

    def update_table_global_indexes(original: Any) -> Any:
        def run(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            result = original(self, name, *args, **kwargs)
            table = self.get_table(name)
            if isinstance(table, SqliteTable):
                table.store.attach(table)
            return result
        return run

    def reset(original: Any) -> Any:
        def run(self: Any) -> Any:  # a fresh moto world (mock_aws) starts with empty tables
            for table in list(getattr(self, "tables", {}).values()):
                if isinstance(table, SqliteTable):
                    table.store.drop(table.store_name)
            return original(self)
        return run

    def item_init(original: Any) -> Any:
        def run(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
            from moto.dynamodb.exceptions import ItemSizeTooLarge

            self.hash_key, self.range_key = hash_key, range_key
            values = LimitedSizeDict.__new__(LimitedSizeDict)
            dict.__init__(values)
            total = 0
            for key, value in attrs.items():
                typed = DynamoType(value)
                total += bytesize(key) + typed.size()
                dict.__setitem__(values, key, typed)
            if total > 405000:  # moto's limit, checked as it would after each attribute
                raise ItemSizeTooLarge
            self.attrs = values
        return run

    _patch(DynamoHandler, "call_action", call_action)
    _patch(backend, "update_item", update_item)
    _patch(backend, "delete_table", delete_table)
    _patch(backend, "update_table_global_indexes", update_table_global_indexes)
    _patch(backend, "reset", reset)
    _patch(Item, "__init__", item_init)
    return store


def store() -> Store | None:
    """The installed store, if any."""
    return _installed.get("store")
