"""Modules that load on first use, so `import app` (the cold start) stays small.

Route modules must import at cold start (their decorators register the routes);
the services behind them need not until a request reaches them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


def lazy(name: str) -> Any:
    """``lazy("chalicelib.services.webhooks")``: the module, imported when an attribute is first read."""
    return LazyModule(name)
