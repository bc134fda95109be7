"""The one conflict-retry loop: read, stage, commit; on a storage race, back off and do it all again.

Every write path that reads state, decides, and commits conditioned on what it read runs through
:func:`retry_on_conflict`. It catches only :class:`ConcurrentWriteError` (a failed write condition or a
``TransactionConflict``, raised by the unit of work's commit), never a business :class:`ConflictError`
such as a duplicate, so a 409 the client must see is never retried away as if it were a race.

The other transient failures — throttling, timeouts, AWS 5xx — are botocore's to retry (standard mode,
capped exponential backoff with jitter, per call; ``adapters/faults.py``): a race needs the state read again
and the writes planned anew, a throttled call only needs sending again, so each is retried where it can be.

Within one process, :class:`Turns` makes writers of the same thing wait for each other instead of racing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from logging import Logger
from typing import Any, TypeVar

from chalicelib.domain.errors import ConcurrentWriteError
from chalicelib.services.ports import UnitOfWork

T = TypeVar("T")

_NOT_DONE = object()


def best_effort(send: Callable[[], object], log: Logger, warning: str, **extra: Any) -> None:
    """A hand-off after a commit whose loss a sweep makes good (waking a worker through SQS): sent once, a
    failure logged as ``warning`` and never raised into the request, whose writes already stand."""
    try:
        send()
    except Exception:
        log.warning(warning, exc_info=True, extra=extra or None)


def backoff(attempt: int, *, base: float = 0.002, cap: float = 0.05) -> float:
    """Full jitter (uniform in ``[0, min(cap, base·2^attempt)]``): racers that collided spread out instead
    of colliding again in step."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 10)))


def retry_on_conflict(uow: UnitOfWork, attempt: Callable[[int], T], *, attempts: int, message: str,
                      on_conflict: Callable[[int], object] | None = None, base: float = 0.002,
                      cap: float = 0.05) -> T:
    """Run ``attempt(n)`` (which reads, stages and commits on ``uow``) until it commits without a race.

    After a race the staged writes are dropped and, when given, ``on_conflict(n)`` may settle the matter
    (return a value to end with it, e.g. "another writer already did this"; ``None`` to try again).
    When every attempt raced, :class:`ConcurrentWriteError` with ``message``: a 503 ``CONCURRENT_WRITE``
    with ``Retry-After`` (the SDK retries it), and whatever did commit stands whole.
    """
    for n in range(attempts):
        try:
            return attempt(n)
        except ConcurrentWriteError:
            uow.rollback()
            if on_conflict is not None:
                settled = on_conflict(n)
                if settled is not None:
                    return settled  # type: ignore[return-value]
            if n + 1 < attempts:
                time.sleep(backoff(n, base=base, cap=cap))
    raise ConcurrentWriteError(message)


class _Turn:
    """One key's lock and how many threads hold it or wait for it (the entry goes when that is none)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class Turns:
    """In-process turns per key (a customer): a race two writers of one process would lose in storage
    becomes a wait.

    Two threads of one process (the threaded local server, a threaded deployment) writing the same customer
    would read the same row, both plan, and one would fail its condition, roll back, back off and read again.
    Taking turns, the second reads what the first committed and its condition holds. Across processes (Lambda:
    one request per execution environment) nothing changes: DynamoDB's conditions and
    :func:`retry_on_conflict` still decide, so a turn is an optimisation, never what keeps data correct.

    :meth:`taken` acquires the keys in sorted order (two batches over overlapping customers cannot deadlock)
    and a thread already inside :meth:`taken` passes a nested call through without waiting (it would
    otherwise wait for itself, or take keys out of order). A key's lock exists only while some thread holds
    or waits for it, so the table stays as small as the number of writers.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._turns: dict[tuple[str, ...], _Turn] = {}
        self._inside = threading.local()

    def __len__(self) -> int:
        """Keys held or waited for right now."""
        with self._mutex:
            return len(self._turns)

    @contextmanager
    def taken(self, keys: Iterable[tuple[str, ...]]) -> Iterator[None]:
        """Hold the turns of ``keys`` (duplicates allowed) for the ``with`` block, waiting for them in order."""
        if getattr(self._inside, "active", False):
            yield
            return
        ordered = sorted(set(keys))
        with self._mutex:
            turns = [self._turns.get(key) or self._turns.setdefault(key, _Turn()) for key in ordered]
            for turn in turns:
                turn.users += 1
        held = 0
        self._inside.active = True
        try:
            for turn in turns:
                turn.lock.acquire()
                held += 1
            yield
        finally:
            self._inside.active = False
            for turn in reversed(turns[:held]):
                turn.lock.release()
            with self._mutex:
                for key, turn in zip(ordered, turns, strict=True):
                    turn.users -= 1
                    if not turn.users:
                        del self._turns[key]
