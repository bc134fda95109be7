"""One DynamoDB connection per process, shared by every model and transaction.

PynamoDB gives each model class its own botocore session and client; each one
loads the service model again (~20 ms). Binding all models to one connection
keeps cold starts and tests fast. botocore clients are thread-safe.
"""

from __future__ import annotations

import threading

from pynamodb.connection import Connection

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
                for model in ALL_MODELS:
                    table = model._get_connection()
                    meta = table.connection.get_meta_table(table.table_name)
                    if meta.table_name not in connection._tables:  # several models share a table
                        connection.add_meta_table(meta)
                    table.connection = connection
                _shared = connection
    return _shared


def reset() -> None:
    """Forget the connection (after the endpoint or region changes)."""
    global _shared
    with _lock:
        _shared = None
        for model in ALL_MODELS:
            model._connection = None
