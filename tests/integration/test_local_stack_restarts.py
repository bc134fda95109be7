"""The local stack keeps what it acknowledged: across a stop, across a kill in the middle of ingest,
with the same published signing keys; it stops within 5 seconds under load and starts again after
a kill; ``tally dev reset`` starts from nothing."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.localstack import Stack, call, run, seeded_home, tally

STOP_BUDGET = 5.0


def _credentials(stack: Stack) -> dict:
    return json.loads(tally(stack.info(), "dev", "credentials", "--json"))


def _emit(stack: Stack, key: str, customer: str, n: int) -> tuple[int, dict]:
    status, _h, body = call("POST", f"{stack.base}/api/v1/balance/delta",
                            {"X-Api-Key": key, "Content-Type": "application/json"},
                            {"customerId": customer, "delta": n, "reason": f"unit {n}", "referenceId": f"r-{n}"})
    return status, body


def _status(stack: Stack, key: str, record_id: str) -> tuple[int, dict]:
    status, _h, body = call("GET", f"{stack.base}/api/v1/balance/delta/{record_id}", {"X-Api-Key": key})
    return status, body


def _keys(stack: Stack) -> dict:
    status, _h, body = call("GET", f"{stack.base}/api/v1/verification-keys")
    assert status == 200
    return body


def _wait_verified(stack: Stack, key: str, record_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(record_ids)
    while pending and time.monotonic() < deadline:
        pending = [r for r in pending if _status(stack, key, r)[1]["data"]["status"] != "VERIFIED"]
        if pending:
            time.sleep(0.5)
    assert pending == [], f"{len(pending)} deltas never verified"


@pytest.fixture
def home(tmp_path_factory):
    return seeded_home(tmp_path_factory, "tally-home")


def test_everything_acknowledged_survives_a_stop_and_a_start(home):
    stack = Stack(home).start()
    key = _credentials(stack)["apiKeys"]["production"]
    accepted = [_emit(stack, key, "cust_restart", n)[1]["data"]["recordId"] for n in range(1, 6)]
    _wait_verified(stack, key, accepted)
    proof = call("GET", f"{stack.base}/api/v1/balance/delta/{accepted[0]}/proof", {"X-Api-Key": key})[2]
    keys_before = _keys(stack)
    assert stack.stop(signal.SIGTERM) < STOP_BUDGET
    assert stack.children_alive() == []

    again = Stack(home, stack.port).start()
    try:
        assert _credentials(again)["apiKeys"]["production"] == key
        assert [_status(again, key, r)[1]["data"]["status"] for r in accepted] == ["VERIFIED"] * 5
        assert _keys(again) == keys_before
        root = proof["data"]["proofRoot"]
        verified = call("GET", f"{again.base}/api/v1/verify/{root}")[2]["data"]
        assert verified["verified"] is True
        # the customer continues its sequence where it stopped: the counters came back too
        status, body = _emit(again, key, "cust_restart", 6)
        assert status == 202 and body["data"]["sequenceNumber"] == 6
    finally:
        again.stop()


def test_a_kill_in_the_middle_of_ingest_loses_nothing_acknowledged(home):
    stack = Stack(home).start()
    key = _credentials(stack)["apiKeys"]["production"]
    keys_before = _keys(stack)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                status, body = _emit(stack, key, f"cust_kill_{worker}", worker * 100_000 + n)
            except OSError:
                return  # the stack died under us
            if status == 202:
                with lock:
                    acknowledged.append(body["data"]["recordId"])

    with ThreadPoolExecutor(8) as pool:
        for worker in range(8):
            pool.submit(writer, worker)
        deadline = time.monotonic() + 30
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        stack.kill()
        stop.set()
    assert len(acknowledged) >= 150
    time.sleep(1.0)
    assert stack.children_alive() == [], "the stack's processes outlived its supervisor"

    again = Stack(home, stack.port).start()  # the lock died with the killed stack: no "already running"
    try:
        assert _keys(again) == keys_before
        missing = [r for r in acknowledged if _status(again, key, r)[0] != 200]
        assert missing == []
        _wait_verified(again, key, acknowledged, timeout=120)  # the sweep and the queue finish the job
        for worker in range(8):
            status, _h, body = call("GET", f"{again.base}/api/v1/balance/gaps/cust_kill_{worker}",
                                    {"X-Api-Key": key})
            assert status in (200, 404)
            # Nothing half-written: no sequence number without its delta. A delta committed in the instant before
            # the kill, whose 202 never left, may still await the verifier's sweep; it is there all the same.
            if status == 200:
                assert [g for g in body["data"]["gaps"] if g["reason"] != "awaiting_verification"] == [], body
    finally:
        again.stop()


def test_a_stop_under_load_takes_under_five_seconds(home):
    stack = Stack(home).start()
    key = _credentials(stack)["apiKeys"]["production"]
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
    key = _credentials(stack)["apiKeys"]["production"]
    record = _emit(stack, key, "cust_reset", 1)[1]["data"]["recordId"]
    refused = run(stack.info(), "dev", "reset")
    assert refused.returncode == 1 and "stop it first" in refused.stdout
    stack.stop()
    assert run(stack.info(), "dev", "reset").returncode == 0
    again = Stack(home, stack.port).start()
    try:
        assert _status(again, key, record)[0] == 404
        status, _h, body = call("GET", f"{again.base}/api/v1/balance/customers", {"X-Api-Key": key})
        assert status == 200 and "cust_reset" not in [c["customerId"] for c in body["data"]["items"]]
    finally:
        again.stop()


def test_a_job_environment_that_dies_is_replaced(home):
    import os

    stack = Stack(home).start()
    try:
        key = _credentials(stack)["apiKeys"]["production"]
        state = json.loads((home / "state.json").read_text())
        for pid in state["processes"]["jobs"]:
            os.kill(pid, signal.SIGKILL)
        time.sleep(1.5)
        record = _emit(stack, key, "cust_after_crash", 1)[1]["data"]["recordId"]
        _wait_verified(stack, key, [record], timeout=30)
    finally:
        assert stack.stop() < STOP_BUDGET
