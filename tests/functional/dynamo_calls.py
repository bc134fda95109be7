"""Counting (and crashing) the DynamoDB calls a piece of code makes, through botocore's events on the
shared connection's client (the approach of tests/integration/test_verifier_crash_safety.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.adapters.dynamodb.connection import shared_connection


class CrashError(BaseException):
    """A simulated crash of the process: a BaseException, so no ``except Exception`` in the product
    (a job's per-tenant error handling) can swallow it."""


class DynamoCalls:
    """Counts DynamoDB calls while armed; with ``crash_at=k`` raises CrashError before or after call k."""

    UID = "test-dynamo-calls"

    def __init__(self) -> None:
        self.events = shared_connection().client.meta.events
        self.operations: list[str] = []
        self.armed = False
        self.crash_at: int | None = None
        self.phase = "before"

    def attach(self) -> DynamoCalls:
        self.events.register("before-call.dynamodb", self._before, unique_id=f"{self.UID}-before")
        self.events.register("after-call.dynamodb", self._after, unique_id=f"{self.UID}-after")
        return self

    def detach(self) -> None:
        self.events.unregister("before-call.dynamodb", unique_id=f"{self.UID}-before")
        self.events.unregister("after-call.dynamodb", unique_id=f"{self.UID}-after")

    @contextmanager
    def run(self, *, crash_at: int | None = None, phase: str = "before") -> Iterator[DynamoCalls]:
        self.operations, self.crash_at, self.phase, self.armed = [], crash_at, phase, True
        try:
            yield self
        finally:
            self.armed = False

    def _before(self, model: Any, **_: Any) -> None:
        if self.armed:
            self.operations.append(model.name)
            self._maybe_crash("before")

    def _after(self, model: Any, **_: Any) -> None:
        if self.armed:
            self._maybe_crash("after")  # the call has been applied; its answer is lost

    def _maybe_crash(self, phase: str) -> None:
        if phase == self.phase and len(self.operations) == self.crash_at:
            self.armed = False
            raise CrashError(f"crash {phase} DynamoDB call {self.crash_at} ({self.operations[-1]})")
