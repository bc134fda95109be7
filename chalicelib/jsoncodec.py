"""JSON with exact decimals: Decimal values are written with their digits, never via float."""

from __future__ import annotations

import hashlib
from typing import Any

import simplejson


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def loads(text: str) -> Any:
    return simplejson.loads(text, use_decimal=True)


def fingerprint(value: Any) -> str:
    """SHA-256 of the canonical (key-sorted, compact) form: equal content, equal hash."""
    return hashlib.sha256(dumps(value, sort_keys=True).encode()).hexdigest()
