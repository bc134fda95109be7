"""Exact decimal amounts in their plain written form."""

from __future__ import annotations

from decimal import Decimal


def plain(value: Decimal) -> Decimal:
    """Same value, no exponent and no trailing zeros: ``0.000`` → ``0``, ``1.50`` → ``1.5``, ``1E+2`` → ``100``.

    Works on the digits directly: ``Decimal.normalize`` would round to the context's 28 digits.
    """
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return value  # NaN / Infinity: callers reject these
    figures = list(digits)
    while exponent < 0 and len(figures) > 1 and figures[-1] == 0:
        figures.pop()
        exponent += 1
    if exponent > 0:
        figures += [0] * exponent
        exponent = 0
    if not any(figures):
        return Decimal(0)
    return Decimal((sign, tuple(figures), exponent))


def fraction_digits(value: Decimal) -> int:
    """Digits after the point once trailing zeros are dropped (exact, no rounding)."""
    exponent = plain(value).as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0
