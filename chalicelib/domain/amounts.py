"""Exact decimal amounts in their plain written form."""

from __future__ import annotations

from decimal import Decimal


def plain(value: Decimal) -> Decimal:
    """Same value, no exponent and no trailing zeros: ``0.000`` → ``0``, ``1.50`` → ``1.5``, ``1E+2`` → ``100``."""
    text = format(value.normalize(), "f")
    return Decimal("0" if text in ("-0", "0") else text)
