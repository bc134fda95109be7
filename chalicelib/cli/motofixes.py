"""Make moto's DynamoDB behave (and perform) like DynamoDB for the local stack and the tests.

Development tooling only; the Lambda bundle never imports moto.

* ``serialize_dynamodb``: real DynamoDB applies every write and TransactWriteItems
  atomically; moto's threaded server does not (a cancelled transaction restores a
  stale copy of a table over other threads' writes). One lock around moto's
  DynamoDB request handling restores that atomicity; other services stay parallel.
* ``copy_tables_once_per_transaction``: moto deep-copies a table once per
  transaction *item* to roll back on failure; the copies are identical (all are
  taken before any item is applied), so one copy per table per transaction keeps
  the semantics and turns O(items * table size) into O(table size).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

_dynamodb_lock = threading.RLock()


def serialize_dynamodb() -> None:
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_tally_patched", False):
        return
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _dynamodb_lock:
            return original(self)

    call_action._tally_patched = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action


class _CopyOncePerTransaction:
    """Stands in for the ``copy`` module inside moto's DynamoDB models."""

    def __init__(self) -> None:
        self._memo = threading.local()

    def deepcopy(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        memo = getattr(self._memo, "tables", None)
        if memo is None or type(value).__name__ != "Table":  # only the rollback backups of whole tables
            return copy.deepcopy(value, *args, **kwargs)
        if id(value) not in memo:
            memo[id(value)] = copy.deepcopy(value, *args, **kwargs)
        return memo[id(value)]

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    def transaction(self, run: Any) -> Any:
        self._memo.tables = {}
        try:
            return run()
        finally:
            self._memo.tables = None


def copy_tables_once_per_transaction() -> None:
    import moto.dynamodb.models as models

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "_tally_patched", False):
        return
    shim = _CopyOncePerTransaction()
    models.copy = shim  # the module's `copy.deepcopy(...)` calls now go through the shim
    original = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> Any:
        return shim.transaction(lambda: original(self, transact_items))

    transact_write_items._tally_patched = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items
