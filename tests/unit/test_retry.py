"""The one conflict-retry loop: a storage race is retried, a business 409 never is."""

from __future__ import annotations

import pytest

from chalicelib.api.errors import status_for
from chalicelib.domain.errors import ConcurrentWriteError, ConflictError, ServiceUnavailableError
from chalicelib.services.retry import backoff, retry_on_conflict
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
