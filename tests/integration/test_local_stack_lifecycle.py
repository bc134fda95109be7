"""The local stack's lifecycle: it stops within 5 seconds under load, replaces a job environment that ends,
and ``tally dev reset`` starts from nothing (the restart guarantees are in test_local_stack_restarts.py)."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from tests.integration.localstack import (
    STOP_BUDGET,
    Stack,
    call,
    credentials,
    emit,
    run,
    seeded_home,
    status_of,
    wait_verified,
)


@pytest.fixture
def home(tmp_path_factory):
    return seeded_home(tmp_path_factory, "tally-home")


def test_a_stop_under_load_takes_under_five_seconds(home):
    stack = Stack(home).start()
    key = credentials(stack)["apiKeys"]["production"]
    stop = threading.Event()

    def writer(worker: int) -> None:
        while not stop.is_set():
            try:
                call("POST", f"{stack.base}/api/v1/balance/delta/batch",
                     {"X-Api-Key": key, "Content-Type": "application/json"},
                     {"deltas": [{"customerId": f"load_{worker}_{i % 7}", "delta": 1, "reason": "load"}
                                 for i in range(100)]})
            except OSError:
                return

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    took = stack.stop(signal.SIGTERM)
    stop.set()
    assert took < STOP_BUDGET
    assert stack.children_alive() == []
    assert "Stopped in" in stack.log_text


def test_reset_starts_from_nothing_and_refuses_while_running(home):
    stack = Stack(home).start()
    key = credentials(stack)["apiKeys"]["production"]
    record = emit(stack, key, "cust_reset", 1)[1]["data"]["recordId"]
    refused = run(stack.info(), "dev", "reset")
    assert refused.returncode == 1 and "stop it first" in refused.stdout
    stack.stop()
    assert run(stack.info(), "dev", "reset").returncode == 0
    again = Stack(home, stack.port).start()
    try:
        assert status_of(again, key, record)[0] == 404
        status, _h, body = call("GET", f"{again.base}/api/v1/balance/customers", {"X-Api-Key": key})
        assert status == 200 and "cust_reset" not in [c["customerId"] for c in body["data"]["items"]]
    finally:
        again.stop()


def test_a_job_environment_that_dies_is_replaced(home):
    import os

    stack = Stack(home).start()
    try:
        key = credentials(stack)["apiKeys"]["production"]
        state = json.loads((home / "state.json").read_text())
        for pid in state["processes"]["jobs"]:
            os.kill(pid, signal.SIGKILL)
        time.sleep(1.5)
        record = emit(stack, key, "cust_after_crash", 1)[1]["data"]["recordId"]
        wait_verified(stack, key, [record], timeout=30)
    finally:
        assert stack.stop() < STOP_BUDGET
