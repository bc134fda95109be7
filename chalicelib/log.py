"""Structured JSON logging with the request id on every line.

A small stdlib formatter in the Powertools style: one JSON object per line, the
current request id taken from a context variable the HTTP middleware sets.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line (level, message, logger, request_id, extras)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_configured = False


def get_logger(name: str = "tally") -> logging.Logger:
    """Return a logger under the ``tally`` hierarchy, configuring the root handler once."""
    global _configured
    if not _configured:
        from chalicelib.settings import get_settings

        root = logging.getLogger("tally")
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        root.handlers[:] = [handler]
        root.setLevel(get_settings().log_level)
        root.propagate = False
        _configured = True
    return logging.getLogger(name if name.startswith("tally") else f"tally.{name}")
