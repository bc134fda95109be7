"""Opaque paging cursors over DynamoDB keys.

A cursor is bound to the query it was issued for: its partition, when the query
narrows the sort key by prefix, that prefix, and its direction (``order``: a
descending query tags its cursors). A cursor pointing anywhere else (another
tenant's partition, another search, the other direction) is a 400, never a start
key handed to DynamoDB.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from chalicelib.domain.errors import ValidationError


def encode_cursor(last_key: dict[str, Any] | None, page: int, order: str | None = None) -> str | None:
    if not last_key:
        return None
    body = {"k": last_key, "p": page} | ({"o": order} if order else {})
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


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
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        last_key, page = data["k"], data["p"]
        if type(page) is not int or not 1 <= page < 1_000_000:
            raise ValueError("bad page number")
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
        if data.get("o") != order:
            raise ValueError("cursor belongs to the other direction")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError("cursor is invalid or expired", field="cursor") from exc
    return last_key, page + 1
