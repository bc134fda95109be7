"""Opaque paging cursors over DynamoDB's LastEvaluatedKey.

A cursor is bound to the partition it was issued for: a cursor pointing into
another tenant's partition is rejected instead of being handed to DynamoDB.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from chalicelib.domain.errors import ValidationError


def encode_cursor(last_key: dict[str, Any] | None, page: int) -> str | None:
    if not last_key:
        return None
    raw = json.dumps({"k": last_key, "p": page}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, partition: tuple[str, str]) -> tuple[dict[str, Any] | None, int]:
    """Return (ExclusiveStartKey, page number of the page it starts); check its partition."""
    if not cursor:
        return None, 1
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        last_key, page = data["k"], int(data["p"])
        name, value = partition
        if last_key[name] != {"S": value}:
            raise ValueError("cursor belongs to another partition")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError("cursor is invalid or expired", field="cursor") from exc
    return last_key, page + 1
