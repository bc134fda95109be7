"""One sorted listing over the partitions of a sharded index key.

A key every write of a tenant would land on is spread over shards; a listing then queries every shard
(concurrently: one round trip of latency) and merges the answers by sort key, and its cursor holds each
shard's position (``cursors.encode_merged_cursor``). Sort keys are unique across the shards, so the
merged order is total and a page resumes exactly where it stopped.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.adapters.dynamodb.cursors import EXHAUSTED, Position, is_exhausted, key_of

#: ``run(partition, exclusive start key, limit)``: the query's records, iterated (a ``ResultIterator``).
Run = Callable[[str, dict[str, Any] | None, int], Any]

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    """Made on first use (not at cold start); botocore clients are thread-safe."""
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="shard-query")
    return _pool


class _Shard:
    def __init__(self, partition: str, position: Position) -> None:
        self.partition = partition
        done = is_exhausted(position)
        self.resume = None if done else position  # where the next query starts (exclusive)
        self.buffer: deque[Any] = deque()
        self.read_all = done

    def fetch(self, run: Run, chunk: int) -> None:
        results = run(self.partition, self.resume, chunk)
        records = list(results)
        self.buffer.extend(records)
        self.resume = results.last_evaluated_key
        self.read_all = not self.resume or len(records) < chunk

    @property
    def waiting(self) -> bool:
        return not self.buffer and not self.read_all


class MergedQuery:
    """The records of every shard in one order. ``take`` hands them out; ``positions`` says, for the records
    a caller actually used, where each shard resumes."""

    def __init__(self, run: Run, partitions: list[str], positions: list[Position], *,
                 sort_key: str, descending: bool, chunk: int, key_names: tuple[str, ...]) -> None:
        self._run, self._chunk, self._sort_key, self._descending = run, chunk, sort_key, descending
        self._key_names = key_names
        self._shards = [_Shard(p, start) for p, start in zip(partitions, positions, strict=True)]
        self._starts = list(positions)

    def _fill(self) -> None:
        """Query every shard whose buffer ran dry: all at once on the first call, one at a time later."""
        waiting = [shard for shard in self._shards if shard.waiting]
        if len(waiting) == 1:
            waiting[0].fetch(self._run, self._chunk)
        elif waiting:
            pool = _executor()
            futures = [pool.submit(contextvars.copy_context().run, shard.fetch, self._run, self._chunk)
                       for shard in waiting]
            for future in futures:
                future.result()

    def take(self, count: int) -> list[tuple[int, Any]]:
        """The next ``count`` records in sort order (fewer at the end), each with its shard's number."""
        taken: list[tuple[int, Any]] = []
        while len(taken) < count:
            self._fill()
            heads = [(getattr(shard.buffer[0], self._sort_key), number)
                     for number, shard in enumerate(self._shards) if shard.buffer]
            if not heads:
                break
            _, number = max(heads) if self._descending else min(heads)
            taken.append((number, self._shards[number].buffer.popleft()))
        return taken

    def positions(self, used: list[tuple[int, Any]], unused: list[tuple[int, Any]]) -> list[Position]:
        """Each shard's position after ``used`` (records taken and kept or examined, in order); ``unused``
        are records taken but handed back, so their shards are not finished."""
        positions = list(self._starts)
        for number, record in used:
            positions[number] = key_of(record, self._key_names)
        pending = {number for number, _ in unused}
        for number, shard in enumerate(self._shards):
            if shard.read_all and not shard.buffer and number not in pending:
                positions[number] = EXHAUSTED
        return positions
