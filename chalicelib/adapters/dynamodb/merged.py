"""One sorted listing over the partitions of a sharded index key.

A key every write of a tenant would land on is spread over shards; a listing then queries every shard
(concurrently: one round trip of latency) and merges the answers by sort key. Sort keys are unique across
the shards, so the merged order is total and one key says where a listing stopped in every shard: the
last record used. Each shard resumes after it (a start key made of that record's key and the shard's
partition: DynamoDB reads a start key as a position, the item need not be in that shard), except the
shards known to be read to their end. So the cursor stays one key however many shards there are.

Each shard is first asked for about twice its share of what the caller wants (records spread evenly by
hash), and a shard that runs dry before the page is full is asked again for twice as many: reading
``shards * limit`` records for a page of ``limit`` would cost 32 times the reads at 32 shards.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.adapters.dynamodb.cursors import key_of

#: ``run(partition, exclusive start key, limit)``: the query's records, iterated (a ``ResultIterator``).
Run = Callable[[str, dict[str, Any] | None, int], Any]

#: Shard queries in flight at once: every shard of a listing in one round trip.
WORKERS = 32
FIRST_ASK = 4  # the fewest records a shard is first asked for

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    """Made on first use (not at cold start); botocore clients are thread-safe."""
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="shard-query")
    return _pool


class _Shard:
    def __init__(self, partition: str, resume: dict[str, Any] | None, read_all: bool, ask: int) -> None:
        self.partition = partition
        self.resume = resume  # where the next query starts (exclusive); None: from the start
        self.buffer: deque[Any] = deque()
        self.read_all = read_all
        self.ask = ask
        self.asked = 0  # what the last query asked for

    def fetch(self, run: Run, most: int) -> None:
        results = run(self.partition, self.resume, self.ask)
        records = list(results)
        self.buffer.extend(records)
        self.resume = results.last_evaluated_key
        self.read_all = not self.resume or len(records) < self.ask
        self.asked, self.ask = self.ask, min(2 * self.ask, most)  # asked again: its share was bigger

    @property
    def waiting(self) -> bool:
        return not self.buffer and not self.read_all

    @property
    def running_low(self) -> bool:
        """Less than half of its last answer left: it will run dry soon, so it is asked along with one that
        did (one round trip for both, not one each)."""
        return not self.read_all and 2 * len(self.buffer) < self.asked


class MergedQuery:
    """The records of every shard in one order. ``take`` hands them out; ``resume_point`` says, for the
    records a caller actually used, where the listing goes on."""

    def __init__(self, run: Run, partitions: list[str], after: dict[str, Any] | None, read_all: set[int], *,
                 partition_name: str, sort_key: str, descending: bool, wanted: int,
                 key_names: tuple[str, ...]) -> None:
        """``after``: the key (without the partition) of the last record used so far, None at the start;
        ``read_all``: the shards known to hold nothing after it; ``wanted``: about how many records the
        caller will take (it sizes the queries)."""
        self._run, self._wanted, self._sort_key, self._descending = run, max(1, wanted), sort_key, descending
        self._after, self._read_all = after, set(read_all)
        self._own_names = tuple(name for name in key_names if name != partition_name)
        live = max(1, len(partitions) - len(self._read_all))
        ask = min(self._wanted, max(FIRST_ASK, -(-2 * self._wanted // live)))
        self._shards = [_Shard(p, None if after is None else {**after, partition_name: {"S": p}},
                               number in self._read_all, ask)
                        for number, p in enumerate(partitions)]

    def _fill(self) -> None:
        """When a shard's buffer ran dry, query it and every shard running low, all at once."""
        if not any(shard.waiting for shard in self._shards):
            return
        waiting = [shard for shard in self._shards if shard.waiting or shard.running_low]
        if len(waiting) == 1:
            waiting[0].fetch(self._run, self._wanted)
        else:
            pool = _executor()
            futures = [pool.submit(contextvars.copy_context().run, shard.fetch, self._run, self._wanted)
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

    def more(self) -> bool:
        """Whether any record follows what was taken (a query only when no shard has one in hand): a full
        page then gets no cursor to an empty one."""
        if not any(shard.buffer for shard in self._shards):
            self._fill()
        return any(shard.buffer for shard in self._shards)

    def resume_point(self, used: list[tuple[int, Any]], unused: list[tuple[int, Any]]) -> tuple[
            dict[str, Any] | None, set[int]]:
        """Where the listing goes on after ``used`` (records taken and kept or examined, in order): the last
        used record's key, and the shards read to their end; ``unused`` are records taken but handed back,
        so their shards are not finished. Every shard is in the set when nothing follows."""
        after = key_of(used[-1][1], self._own_names) if used else self._after
        pending = {number for number, _ in unused}
        done = {number for number, shard in enumerate(self._shards)
                if shard.read_all and not shard.buffer and number not in pending}
        return after, done
