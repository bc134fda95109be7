"""Counting (and crashing) the DynamoDB calls a piece of code makes, through botocore's ``before-call`` and
``after-call`` events on the shared connection's client. Used by the crash-safety tests (a crash at every
DynamoDB call k, before it reaches DynamoDB or after it has been applied) and by the round-trip counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.adapters.dynamodb.connection import shared_connection


class CrashError(BaseException):
    """A simulated crash of the process. A BaseException, not an Exception: no ``except Exception`` in the
    product (a job's per-tenant error handling, a handler's catch-all) can swallow it, so the code under
    test stops right there, as a killed process would."""


class DynamoCalls:
    """Counts DynamoDB calls while armed; with ``crash_at=k`` raises CrashError before or after call k.

    ``attach()`` … ``run()`` … ``detach()`` for several runs on one instance, or ``DynamoCalls.recording()``
    for one run."""

    UID = "test-dynamo-calls"

    def __init__(self) -> None:
        self.events = shared_connection().client.meta.events
        self.uid = f"{self.UID}-{id(self)}"  # two instances attached at once both count
        self.operations: list[str] = []
        self.armed = False
        self.crash_at: int | None = None
        self.phase = "before"

    @classmethod
    @contextmanager
    def recording(cls) -> Iterator[DynamoCalls]:
        """Attached and armed for the ``with`` block: ``operations`` lists the calls made in it, in order."""
        calls = cls().attach()
        try:
            with calls.run():
                yield calls
        finally:
            calls.detach()

    def attach(self) -> DynamoCalls:
        self.events.register("before-call.dynamodb", self._before, unique_id=f"{self.uid}-before")
        self.events.register("after-call.dynamodb", self._after, unique_id=f"{self.uid}-after")
        return self

    def detach(self) -> None:
        self.events.unregister("before-call.dynamodb", unique_id=f"{self.uid}-before")
        self.events.unregister("after-call.dynamodb", unique_id=f"{self.uid}-after")

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
