"""One DynamoDB connection per process, shared by every model and transaction.

PynamoDB gives each model class its own botocore session and client; each one
loads the service model again (~20 ms). Binding all models to one connection
keeps cold starts and tests fast. botocore clients are thread-safe.
"""

from __future__ import annotations

import json
import threading

from pynamodb.connection import Connection
from pynamodb.connection.base import MetaTable
from pynamodb.constants import ATTR_DEFINITIONS, GLOBAL_SECONDARY_INDEXES

from chalicelib.adapters.dynamodb.models import ALL_MODELS
from chalicelib.settings import get_settings

_lock = threading.Lock()
_shared: Connection | None = None


def shared_connection() -> Connection:
    """The process's connection, binding every model to it on first use."""
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                connection = Connection(region=get_settings().region)
                merged: dict[str, MetaTable] = {}
                for model in ALL_MODELS:
                    table = model._get_connection()
                    meta = table.connection.get_meta_table(table.table_name)
                    if meta.table_name in merged:  # several models share a table: union their indexes
                        known = merged[meta.table_name].data
                        for kind in (GLOBAL_SECONDARY_INDEXES, ATTR_DEFINITIONS):
                            names = {json.dumps(item, sort_keys=True) for item in known.get(kind, [])}
                            known.setdefault(kind, []).extend(
                                item for item in meta.data.get(kind, [])
                                if json.dumps(item, sort_keys=True) not in names)
                    else:
                        merged[meta.table_name] = MetaTable(dict(meta.data))
                    table.connection = connection
                for meta in merged.values():
                    connection.add_meta_table(meta)
                _shared = connection
    return _shared


def reset() -> None:
    """Forget the connection (after the endpoint or region changes)."""
    global _shared
    with _lock:
        _shared = None
        for model in ALL_MODELS:
            model._connection = None
