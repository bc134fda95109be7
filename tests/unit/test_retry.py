"""The one conflict-retry loop: a storage race is retried, a business 409 never is; in-process turns."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.api.errors import status_for
from chalicelib.domain.errors import ConcurrentWriteError, ConflictError, ServiceUnavailableError
from chalicelib.services.retry import Turns, backoff, retry_on_conflict
from tests.fakes import FakeUnitOfWork


def test_a_race_is_retried_with_the_staged_writes_dropped() -> None:
    uow = FakeUnitOfWork()
    seen: list[int] = []

    def attempt(n: int) -> str:
        seen.append(n)
        uow.stage(object())  # type: ignore[arg-type]  - whatever was staged must not leak into the next pass
        if n < 2:
            raise ConcurrentWriteError()
        return "done"

    assert retry_on_conflict(uow, attempt, attempts=5, message="busy", base=0) == "done"
    assert seen == [0, 1, 2]
    assert len(uow._staged) == 1  # only the winning pass's write


def test_a_business_conflict_is_not_retried() -> None:
    calls = []

    def attempt(n: int) -> None:
        calls.append(n)
        raise ConflictError("Customer 'x' already exists.", code="CUSTOMER_EXISTS")

    with pytest.raises(ConflictError) as caught:
        retry_on_conflict(FakeUnitOfWork(), attempt, attempts=5, message="busy")
    assert caught.value.code == "CUSTOMER_EXISTS" and calls == [0]


def test_running_out_of_attempts_is_a_concurrent_write_503_with_retry_after() -> None:
    def attempt(_n: int) -> None:
        raise ConcurrentWriteError()

    with pytest.raises(ConcurrentWriteError) as caught:
        retry_on_conflict(FakeUnitOfWork(), attempt, attempts=3, message="The account is busy; retry.", base=0)
    assert caught.value.code == "CONCURRENT_WRITE" and caught.value.message == "The account is busy; retry."
    assert isinstance(caught.value, ServiceUnavailableError) and caught.value.details == {"retryAfterSeconds": 1}
    assert status_for(caught.value) == 503  # a conflict to the code, never a 409 a client would not retry


def test_on_conflict_can_settle_the_matter() -> None:
    def attempt(_n: int) -> str:
        raise ConcurrentWriteError()

    assert retry_on_conflict(FakeUnitOfWork(), attempt, attempts=3, message="busy",
                             on_conflict=lambda n: "applied by the other writer" if n == 1 else None,
                             base=0) == "applied by the other writer"


def test_backoff_is_bounded_full_jitter() -> None:
    assert all(0 <= backoff(n) <= 0.05 for n in range(40))
    assert all(0 <= backoff(0) <= 0.002 for _ in range(50))


# --- Turns: in-process waits instead of storage races -------------------------------------------------------

A, B, C = ("t1", "production", "a"), ("t1", "production", "b"), ("t1", "production", "c")


def _in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_a_second_writer_of_the_same_key_waits_for_the_first() -> None:
    turns = Turns()
    events: list[str] = []

    def second() -> None:
        with turns.taken([A]):
            events.append("second")

    with turns.taken([A]):
        thread = _in_thread(second)
        thread.join(timeout=0.2)
        assert thread.is_alive() and events == []  # still waiting: the first holds A
        events.append("first")
    thread.join(timeout=5)
    assert not thread.is_alive() and events == ["first", "second"]


def test_writers_of_different_keys_do_not_wait_for_each_other() -> None:
    turns = Turns()
    done = threading.Event()

    def other() -> None:
        with turns.taken([B]):
            done.set()

    with turns.taken([A]):
        _in_thread(other)
        assert done.wait(timeout=5)


def test_overlapping_sets_given_in_opposite_orders_complete() -> None:
    """Sorted acquisition: [A, B, C] and [C, B, A] taken over and over by two threads never deadlock."""
    turns = Turns()
    counts = {"forward": 0, "backward": 0}

    def take(name: str, keys: list[tuple[str, ...]]) -> None:
        for _ in range(300):
            with turns.taken(keys):
                counts[name] += 1
                time.sleep(0)  # let the other thread in while this one holds its turns

    threads = [_in_thread(take, "forward", [A, B, C]), _in_thread(take, "backward", [C, B, B, A])]
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads), "deadlocked"
    assert counts == {"forward": 300, "backward": 300}


def test_a_turn_excludes_every_other_holder_of_its_key() -> None:
    turns = Turns()
    holders, most = [0], [0]
    guard = threading.Lock()

    def writer() -> None:
        for _ in range(200):
            with turns.taken([A, (f"t{threading.get_ident()}", "production", "own")]):
                with guard:
                    holders[0] += 1
                    most[0] = max(most[0], holders[0])
                time.sleep(0)
                with guard:
                    holders[0] -= 1

    threads = [_in_thread(writer) for _ in range(6)]
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert most[0] == 1


def test_turns_are_dropped_when_no_one_holds_or_waits_for_them() -> None:
    turns = Turns()
    with turns.taken([A, B]):
        assert len(turns) == 2
    assert len(turns) == 0
    with pytest.raises(RuntimeError), turns.taken([C]):
        raise RuntimeError("the write path failed")
    assert len(turns) == 0
    with turns.taken([C]):  # and the failed holder released C
        pass


def test_a_nested_take_on_the_same_thread_passes_through() -> None:
    turns = Turns()
    with turns.taken([B]), turns.taken([A, B]):
        assert len(turns) == 1  # the nested call took nothing (waiting for B would wait for itself)
    assert len(turns) == 0
