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


def encode_merged_cursor(after: str | None, read_all: set[int], page: int, *, partitions: list[str],
                         sort_prefix: tuple[str, str] | None = None, order: str | None = None) -> str | None:
    """A cursor over several partitions read as one listing (sharded keys, ``merged.py``): the sort key of the
    last record used (every partition resumes after it; the caller rebuilds the rest of the key, so a cursor
    stays short whatever the partitions and table keys) and which partitions hold nothing more (a bit each);
    bound to the partitions and the search. None when none holds anything more."""
    if len(read_all) >= len(partitions):
        return None
    return _encoded({"a": after, "x": sum(1 << number for number in read_all), "p": page,
                     "q": _query_tag(partitions, sort_prefix)} | ({"o": order} if order else {}))


#: DynamoDB's limit on a sort key's size.
SORT_KEY_BYTES = 1024


def decode_merged_cursor(
    cursor: str | None,
    *,
    partitions: list[str],
    sort_prefix: tuple[str, str] | None = None,
    order: str | None = None,
) -> tuple[str | None, set[int], int]:
    """Return (the sort key to resume after, the partitions read to their end, page number of the page it
    starts); a forged sort key (empty, past DynamoDB's size, outside the search) is a 400 like any bad cursor."""
    if not cursor:
        return None, set(), 1
    try:
        data = _decoded(cursor, order)
        after, bits = data["a"], data["x"]
        if data["q"] != _query_tag(partitions, sort_prefix):
            raise ValueError("cursor belongs to another query")
        if type(bits) is not int or not 0 <= bits < (1 << len(partitions)) - 1:
            raise ValueError("bad partitions read")
        if after is not None and (not isinstance(after, str) or not after
                                  or len(after.encode()) > SORT_KEY_BYTES):
            raise ValueError("bad sort key")
        if after is not None and sort_prefix and not after.startswith(sort_prefix[1]):
            raise ValueError("cursor belongs to another query")
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise ValidationError("cursor is invalid or expired", field="cursor") from exc
    return after, {number for number in range(len(partitions)) if bits >> number & 1}, data["p"] + 1


def _encoded(body: dict[str, Any]) -> str:
    # As UTF-8: escaped, a non-ASCII letter would take 6 to 12 characters.
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
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
