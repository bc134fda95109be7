"""One DynamoDB connection per process, shared by every read, write and transaction.

A model left to its own devices (``Model.get``, ``.query``, ``.save`` …) opens a botocore session of its
own, and a fresh session loads the DynamoDB service model again (~100 ms for its first client, ~4 ms for
another client of the same session): with ~26 models, seconds of cold start. So nothing calls those; every
call goes through this one public ``pynamodb.connection.Connection`` (see ``tables.py``), which knows each
table's keys and indexes from the models' public attributes. botocore clients are thread-safe.
"""

from __future__ import annotations

import threading
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.connection import Connection
from pynamodb.connection.base import MetaTable
from pynamodb.constants import (
    ATTR_DEFINITIONS,
    ATTR_NAME,
    ATTR_TYPE,
    GLOBAL_SECONDARY_INDEXES,
    INDEX_NAME,
    KEY_SCHEMA,
    KEY_TYPE,
    TABLE_NAME,
)
from pynamodb.indexes import GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.types import HASH, RANGE

from chalicelib.adapters.dynamodb import merged
from chalicelib.adapters.dynamodb.models import ALL_MODELS
from chalicelib.settings import get_settings

_lock = threading.Lock()
_shared: Connection | None = None


def _key_schema(attributes: dict[str, Attribute]) -> list[dict[str, str]]:
    return [{ATTR_NAME: a.attr_name, KEY_TYPE: HASH if a.is_hash_key else RANGE}
            for a in sorted(attributes.values(), key=lambda a: not a.is_hash_key)
            if a.is_hash_key or a.is_range_key]


def _indexes_of(model: type[Model]) -> list[GlobalSecondaryIndex]:
    """The model's global secondary indexes (class attributes, as declared in models.py)."""
    return list(dict.fromkeys(value for klass in model.__mro__ for value in vars(klass).values()
                              if isinstance(value, GlobalSecondaryIndex)))


def meta_tables(models: tuple[type[Model], ...] = ALL_MODELS) -> list[MetaTable]:
    """Each table's keys, key attribute types and indexes: the union over the models stored in it."""
    tables: dict[str, dict[str, Any]] = {}
    for model in models:
        table = tables.setdefault(model.Meta.table_name, {
            TABLE_NAME: model.Meta.table_name, KEY_SCHEMA: _key_schema(model.get_attributes()),
            ATTR_DEFINITIONS: [], GLOBAL_SECONDARY_INDEXES: []})
        keyed = [model.get_attributes()]
        for index in _indexes_of(model):
            keyed.append(index.Meta.attributes)
            definition = {INDEX_NAME: index.Meta.index_name, KEY_SCHEMA: _key_schema(index.Meta.attributes)}
            if definition not in table[GLOBAL_SECONDARY_INDEXES]:
                table[GLOBAL_SECONDARY_INDEXES].append(definition)
        for attributes in keyed:
            for attribute in attributes.values():
                definition = {ATTR_NAME: attribute.attr_name, ATTR_TYPE: attribute.attr_type}
                if (attribute.is_hash_key or attribute.is_range_key) and definition not in table[ATTR_DEFINITIONS]:
                    table[ATTR_DEFINITIONS].append(definition)
    return [MetaTable(data) for data in tables.values()]


def shared_connection() -> Connection:
    """The process's connection (its botocore client is made on first use, by ``Connection.client``)."""
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                settings = get_settings()
                connection = Connection(region=settings.region,
                                        connect_timeout_seconds=settings.dynamodb_connect_timeout_seconds,
                                        read_timeout_seconds=settings.dynamodb_read_timeout_seconds,
                                        max_retry_attempts=settings.dynamodb_max_attempts - 1,
                                        # a listing's shard queries all at once, beside other calls in flight
                                        max_pool_connections=merged.WORKERS + 8)
                for meta in meta_tables():
                    connection.add_meta_table(meta)
                _shared = connection
    return _shared


def reset() -> None:
    """Forget the connection (after the endpoint or region changes)."""
    global _shared
    with _lock:
        _shared = None
