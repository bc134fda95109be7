"""Reads and writes of PynamoDB records through the process's one connection (``connection.py``).

What ``Model.get/query/count/save/update/delete`` do, built on public PynamoDB API only: the low-level
``Connection`` operations, ``ResultIterator`` for paging, ``Model.from_raw_data`` to make records, and the
``get_*_kwargs_from_instance`` requests (the ones ``TransactWrite`` uses: version attributes handled as
``save``/``update``/``delete`` handle them). Same requests, same errors (``PutError``, ``UpdateError``,
``DeleteError``), one botocore client.
"""

from __future__ import annotations

from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.constants import ALL_NEW, ATTRIBUTES, COUNT, DELETE_ITEM, ITEM, PUT_ITEM, UPDATE_ITEM
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import Index
from pynamodb.models import Model
from pynamodb.pagination import ResultIterator

from chalicelib.adapters.dynamodb.connection import shared_connection

M = TypeVar("M", bound=Model)


def _hash_key(attributes: dict[str, Any], value: Any) -> Any:
    return next(a for a in attributes.values() if a.is_hash_key).serialize(value)


def get(model: type[M], hash_key: str, range_key: str, *, consistent_read: bool = True) -> M | None:
    """GetItem (strongly consistent unless told otherwise); None when there is no such item."""
    attributes = model.get_attributes()
    range_attribute = next(a for a in attributes.values() if a.is_range_key)
    data = shared_connection().get_item(model.Meta.table_name, _hash_key(attributes, hash_key),
                                        range_key=range_attribute.serialize(range_key),
                                        consistent_read=consistent_read)
    item = data.get(ITEM) if data else None
    return model.from_raw_data(item) if item else None


def query(model: type[M], hash_key: str, range_key_condition: Condition | None = None, *,
          index: Index | None = None, filter_condition: Condition | None = None, consistent_read: bool = False,
          scan_index_forward: bool | None = None, limit: int | None = None, page_size: int | None = None,
          last_evaluated_key: dict[str, Any] | None = None,
          attributes_to_get: list[str] | None = None) -> ResultIterator[M]:
    """Query the model's table, or one of its indexes: records, read page by page as iterated
    (``last_evaluated_key`` on the iterator says where to resume)."""
    return _pages(model, hash_key, range_key_condition, index, filter_condition, consistent_read,
                  exclusive_start_key=last_evaluated_key, scan_index_forward=scan_index_forward,
                  limit=page_size if page_size is not None else limit, attributes_to_get=attributes_to_get,
                  map_fn=model.from_raw_data, total=limit)


def count(model: type[Model], hash_key: str, range_key_condition: Condition | None = None, *,
          index: Index | None = None, filter_condition: Condition | None = None,
          consistent_read: bool = False) -> int:
    """How many items a query matches (``Select=COUNT``, every page)."""
    pages: ResultIterator[Any] = _pages(model, hash_key, range_key_condition, index, filter_condition,
                                        consistent_read, select=COUNT)
    for _ in pages:
        pass
    return pages.total_count


def _pages(model: type[Model], hash_key: str, range_key_condition: Condition | None, index: Index | None,
           filter_condition: Condition | None, consistent_read: bool, *, map_fn: Any = None,
           total: int | None = None, **query: Any) -> ResultIterator[Any]:
    """The one Query both :func:`query` and :func:`count` page through (on an index: its key attributes)."""
    keyed = index.Meta.attributes if index is not None else model.get_attributes()
    kwargs = dict(range_key_condition=range_key_condition, filter_condition=filter_condition,
                  index_name=index.Meta.index_name if index is not None else None,
                  consistent_read=consistent_read, **query)
    return ResultIterator(shared_connection().query, (model.Meta.table_name, _hash_key(keyed, hash_key)), kwargs,
                          map_fn=map_fn, limit=total)


def _dispatch(operation: str, request: dict[str, Any], error: type[Exception]) -> dict[str, Any]:
    """As ``Connection.put_item`` & co. dispatch: botocore's errors raised as PynamoDB's ``error``."""
    try:
        return shared_connection().dispatch(operation, request)
    except (BotoCoreError, ClientError) as exc:
        raise error(f"Failed to {operation}: {exc}", exc) from exc


def put(record: Model, condition: Condition | None = None) -> None:
    """PutItem, as ``record.save(condition)``: a version attribute is conditioned on and incremented."""
    _dispatch(PUT_ITEM, record.get_save_kwargs_from_instance(condition=condition), PutError)
    record.update_local_version_attribute()


def update(record: Model, actions: list, condition: Condition | None = None) -> None:
    """UpdateItem, as ``record.update(actions, condition)``: ``record`` then holds the item as written."""
    if not actions:
        raise TypeError("an update needs at least one action")
    request = record.get_update_kwargs_from_instance(actions, condition=condition)
    request.update(shared_connection().get_return_values_map(ALL_NEW))
    record.deserialize(_dispatch(UPDATE_ITEM, request, UpdateError)[ATTRIBUTES])


def delete(record: Model, condition: Condition | None = None) -> None:
    """DeleteItem, as ``record.delete(condition)``."""
    _dispatch(DELETE_ITEM, record.get_delete_kwargs_from_instance(condition=condition), DeleteError)
