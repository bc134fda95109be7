"""Opaque paging cursors over DynamoDB keys.

A cursor is bound to the query it was issued for: its partition, when the query
narrows the sort key by prefix, that prefix, and its direction (``order``: a
descending query tags its cursors). A cursor pointing anywhere else (another
tenant's partition, another search, the other direction) is a 400, never a start
key handed to DynamoDB.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from chalicelib.domain.errors import ValidationError


def encode_cursor(last_key: dict[str, Any] | None, page: int, order: str | None = None) -> str | None:
    if not last_key:
        return None
    return _encoded({"k": last_key, "p": page} | ({"o": order} if order else {}))


def key_of(record: Any, key_names: tuple[str, ...]) -> dict[str, Any]:
    """``record``'s key in DynamoDB's shape (string attributes), as a cursor holds it."""
    return {name: {"S": getattr(record, name)} for name in key_names}


def decode_cursor(
    cursor: str | None,
    *,
    partition: tuple[str, str],
    key_names: tuple[str, ...],
    sort_prefix: tuple[str, str] | None = None,
    order: str | None = None,
) -> tuple[dict[str, Any] | None, int]:
    """Return (ExclusiveStartKey, page number of the page it starts).

    ``key_names`` are exactly the attributes the start key must hold (table keys,
    plus the index keys when querying an index); each must be a string.
    """
    if not cursor:
        return None, 1
    try:
        data = _decoded(cursor, order)
        last_key = data["k"]
        _check_key(last_key, partition=partition, key_names=key_names, sort_prefix=sort_prefix)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError("cursor is invalid or expired", field="cursor") from exc
    return last_key, data["p"] + 1


#: A merged cursor's position of a partition read to its end.
EXHAUSTED = 0
#: Where a partition of a merged listing resumes: after a key, from its start (None), or nowhere (EXHAUSTED).
Position = dict[str, Any] | int | None


def is_exhausted(position: Position) -> bool:
    return type(position) is int and position == EXHAUSTED


def encode_merged_cursor(positions: list[Position], page: int, *, partitions: list[str],
                         sort_prefix: tuple[str, str] | None = None, order: str | None = None) -> str | None:
    """A cursor over several partitions read as one listing (sharded keys): per partition, the last key
    taken, ``None`` (nothing taken yet) or ``EXHAUSTED``; bound to the partitions and the search even when
    it holds no key. None when every partition is exhausted."""
    if all(is_exhausted(position) for position in positions):
        return None
    return _encoded({"m": positions, "p": page, "q": _query_tag(partitions, sort_prefix)}
                    | ({"o": order} if order else {}))


def decode_merged_cursor(
    cursor: str | None,
    *,
    partition_name: str,
    partitions: list[str],
    key_names: tuple[str, ...],
    sort_prefix: tuple[str, str] | None = None,
    order: str | None = None,
) -> tuple[list[Position], int]:
    """Return (each partition's position, page number of the page it starts), checked as
    :func:`decode_cursor` checks one key: each position must belong to its own partition."""
    if not cursor:
        return [None] * len(partitions), 1
    try:
        data = _decoded(cursor, order)
        positions = data["m"]
        if data["q"] != _query_tag(partitions, sort_prefix):
            raise ValueError("cursor belongs to another query")
        if not isinstance(positions, list) or len(positions) != len(partitions):
            raise ValueError("bad positions")
        for position, value in zip(positions, partitions, strict=True):
            if position is not None and not is_exhausted(position):
                _check_key(position, partition=(partition_name, value), key_names=key_names,
                           sort_prefix=sort_prefix)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError("cursor is invalid or expired", field="cursor") from exc
    return positions, data["p"] + 1


def _encoded(body: dict[str, Any]) -> str:
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _query_tag(partitions: list[str], sort_prefix: tuple[str, str] | None) -> str:
    return hashlib.sha256(json.dumps([partitions, sort_prefix]).encode()).hexdigest()[:16]


def _decoded(cursor: str, order: str | None) -> dict[str, Any]:
    padded = cursor + "=" * (-len(cursor) % 4)
    data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(data, dict):
        raise ValueError("not a cursor")
    page = data["p"]
    if type(page) is not int or not 1 <= page < 1_000_000:
        raise ValueError("bad page number")
    if data.get("o") != order:
        raise ValueError("cursor belongs to the other direction")
    return data


def _check_key(last_key: Any, *, partition: tuple[str, str], key_names: tuple[str, ...],
               sort_prefix: tuple[str, str] | None) -> None:
    if not isinstance(last_key, dict) or set(last_key) != set(key_names):
        raise ValueError("bad key shape")
    for value in last_key.values():
        if not isinstance(value, dict) or set(value) != {"S"} or not isinstance(value["S"], str):
            raise ValueError("bad key value")
    name, value = partition
    if last_key[name]["S"] != value:
        raise ValueError("cursor belongs to another partition")
    if sort_prefix and not last_key[sort_prefix[0]]["S"].startswith(sort_prefix[1]):
        raise ValueError("cursor belongs to another query")
