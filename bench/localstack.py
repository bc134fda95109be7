"""Local stack at volume (`make bench`): what a user sees running `make run` with real work.

Over HTTP with the public SDK (pacspace-sdk's own HTTP client), against `tally dev up` on a fresh
TALLY_HOME:
1. single-emit latency p50/p95 with nothing stored;
2. cost of one batch of 100 at ~1,000 stored deltas (median of sequential batches, verifier idle);
3. ingest of 50,000 deltas in batches of 100 from 4 threads, while the verifier runs. Whether the verifier
   keeps up is asked two ways, as a verifier that keeps up can only verify what has arrived (its rate over
   a window equals ingest's, so their ratio is ~1.00 whether it has capacity to spare or none):
   a. the first 55%, verifier live: the backlog (accepted, not yet VERIFIED) sampled over the middle 60%
      of that stretch, and its least-squares trend in deltas/s (bounded: ~0 or negative; short of
      capacity: ingest rate minus verifier rate);
   b. its capacity: the job environments are stopped (SIGSTOP) from 55% to 70% of the deltas, so a
      standing backlog builds, then resumed while ingest goes on; from then until the backlog is down
      to one queue batch (or ingest ends) the verifier is never short of work, so deltas it verifies per
      second there are its capacity while sharing the machine with ingest, set against the deltas accepted
      per second in the same window (the goal, >= 1.0x: a standing backlog shrinks while ingest goes on).
      Ingest is slower there than in 3a, as the verifier's requests go first; capacity over 3a's ingest is
      printed too, but compares two windows and so moves with whatever else loads the machine;
4. the same batch cost and single-emit latency at 50,000 stored, and their ratios to 2 and 1;
5. peak RSS of the whole stack (sum over its processes, sampled every 0.25 s) and per process;
6. stop time (SIGTERM until every process is gone) and restart time with 50,000 stored deltas.

Prints figures, asserts nothing. `python bench/localstack.py --deltas 5000` for a quick run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TALLY = str(Path(sys.executable).with_name("tally"))
sys.path.insert(0, str(ROOT))

from chalicelib.cli.devstack import free_port  # noqa: E402


class Stack:
    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "AWS_"))}
        self.env["TALLY_HOME"] = str(home)
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        began = time.monotonic()
        log = (self.home / "stack.log").open("a")
        self.proc = subprocess.Popen([TALLY, "dev", "up", "--port", str(self.port)], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("the local stack failed to start:\n" + (self.home / "stack.log").read_text())
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2) as response:
                    if response.status == 200 and (self.home / "state.json").exists():
                        return time.monotonic() - began
            except OSError:
                time.sleep(0.1)

    def stop(self) -> float:
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return time.monotonic() - began

    def pids(self) -> dict[str, int]:
        state = json.loads((self.home / "state.json").read_text())
        processes = state["processes"]
        found = {"supervisor": state["pid"], "emulator": processes["emulator"]}
        found.update({f"jobs {i + 1}": pid for i, pid in enumerate(processes["jobs"])})
        found.update({f"environment {i + 1}": pid for i, pid in enumerate(processes["environments"])})
        return found

    def tally(self, *args: str) -> str:
        return subprocess.run([TALLY, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def bench_tenant(self, name: str = "Bench Inc") -> tuple[str, str]:
        """A new tenant on the scale plan: (a production API key, an admin dashboard JWT valid a day)."""
        tenant = json.loads(self.tally("tenants", "create", "--name", name, "--plan", "scale", "--json"))
        key = json.loads(self.tally("dev", "api-key", "--tenant", tenant["id"], "--environment", "production",
                                    "--json"))["fullKey"]
        jwt = self.tally("dev", "token", "--tenant", tenant["id"], "--role", "admin", "--ttl", "86400").strip()
        return key, jwt

    def verified(self, jwt: str) -> int:
        """Deltas VERIFIED in the JWT's tenant (the dashboard's customer summary)."""
        request = urllib.request.Request(f"{self.base}/dashboard/customers/summary",
                                         headers={"Authorization": f"Bearer {jwt}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]["deltas"]["verified"]


class RssSampler(threading.Thread):
    """Peak of the summed RSS of the stack's processes, and each process's own peak."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.peak_total = 0
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()

    @staticmethod
    def rss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                pids = self.stack.pids()
            except (OSError, ValueError, KeyError):
                continue
            sizes = {name: self.rss(pid) for name, pid in pids.items()}
            self.peak_total = max(self.peak_total, sum(sizes.values()))
            for name, size in sizes.items():
                self.peaks[name] = max(self.peaks.get(name, 0), size)

    def stop(self) -> None:
        self._stop.set()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deltas", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--customers", type=int, default=1_000)
    args = parser.parse_args()

    from pacspace_sdk import PacSpace

    home = Path(tempfile.mkdtemp(prefix="tally-bench-localstack-"))
    stack = Stack(home, free_port())
    first_start = stack.start()
    key, jwt = stack.bench_tenant()
    client = PacSpace(key, base_url=stack.base)
    sampler = RssSampler(stack)
    sampler.start()

    def verified() -> int:
        return stack.verified(jwt)

    sent = 0
    accepted: list[tuple[float, int]] = []  # (when a batch was answered, deltas accepted so far)
    lock = threading.Lock()

    def batch(size: int = 100) -> float:
        nonlocal sent
        with lock:
            start = sent
            sent += size
        deltas = [{"customerId": f"bench_{((start + i) // 10) % args.customers:05d}", "delta": 1 + (start + i) % 7,
                   "reason": "bench usage", "referenceId": f"b-{start + i}"} for i in range(size)]
        began = time.perf_counter()
        answer = client.balance._client.post("/api/v1/balance/delta/batch", {"deltas": deltas}, {})
        took = time.perf_counter() - began
        assert answer["totalQueued"] == size, answer
        with lock:
            accepted.append((time.monotonic(), (accepted[-1][1] if accepted else 0) + size))
        return took

    def singles(n: int, tag: str) -> list[float]:
        times = []
        for i in range(n):
            began = time.perf_counter()
            client.balance.emit(f"single_{i % 50}", 1, "single emit", {"referenceId": f"s-{tag}-{i}"})
            times.append(time.perf_counter() - began)
        return times

    def settle(target: int, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while verified() < target:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {verified()} of {target} verified after {timeout:.0f} s")
            time.sleep(0.5)

    def signal_jobs(signum: int) -> None:
        for pid in [pid for name, pid in stack.pids().items() if name.startswith("jobs")]:
            os.kill(pid, signum)

    @contextlib.contextmanager
    def verifier_paused() -> Iterator[None]:
        """The cost of a request on its own: the job environments are stopped (SIGSTOP) while it is measured,
        then resumed to verify what was sent meanwhile."""
        signal_jobs(signal.SIGSTOP)
        try:
            yield
        finally:
            signal_jobs(signal.SIGCONT)

    with verifier_paused():
        single_0 = singles(200, "0")
    while sent < 1_000:
        batch()
    with verifier_paused():
        batch_1k = [batch() for _ in range(30)]
    settle(sent + 200)

    # Ingest to the target from several threads while the verifier works; watch both counts. The verifier is
    # stopped from 55% to 70% of the deltas, so that it then works through a standing backlog (see 3b).
    marks: list[tuple[float, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            began = time.monotonic()
            count = verified()
            marks.append(((began + time.monotonic()) / 2, count))  # the count was read during the request
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    base_verified = verified()
    base_accepted = sent
    remaining = (args.deltas - sent) // 100
    pause_at, resume_at = base_accepted + round(0.55 * remaining) * 100, base_accepted + round(0.70 * remaining) * 100
    paused_at = resumed_at = 0.0

    ingest_over = threading.Event()

    def pause_and_resume() -> None:
        nonlocal paused_at, resumed_at
        for threshold, signum in ((pause_at, signal.SIGSTOP), (resume_at, signal.SIGCONT)):
            while not ingest_over.is_set() and (accepted[-1][1] if accepted else 0) < threshold:
                time.sleep(0.02)
            signal_jobs(signum)
            if signum == signal.SIGSTOP:
                paused_at = time.monotonic()
            else:
                resumed_at = time.monotonic()

    controller = threading.Thread(target=pause_and_resume, daemon=True)
    ingest_began = time.monotonic()
    watcher.start()
    controller.start()
    try:
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(lambda _i: batch(), range(remaining)))
    finally:  # a failed batch must not leave the job environments stopped, nor the controller waiting
        ingest_ended = time.monotonic()
        ingest_over.set()
        controller.join()
        signal_jobs(signal.SIGCONT)
    ingested = remaining * 100
    settle(sent + 200, timeout=3600)
    done.set()
    watcher.join()
    marks.append((time.monotonic(), verified()))
    first_move = next(t for t, v in marks if v > base_verified)
    last_needed = next(t for t, v in marks if v >= base_verified + ingested)
    ingest_rate = ingested / (ingest_ended - ingest_began)
    verify_rate = ingested / max(1e-9, last_needed - first_move)
    backlog_at_end = base_verified + ingested - next(v for t, v in marks if t >= ingest_ended)
    drain_seconds = last_needed - ingest_ended

    def at(samples: list[tuple[float, int]], when: float) -> float:
        """The count at ``when``, interpolated between the samples around it."""
        before = max((p for p in samples if p[0] <= when), default=(ingest_began, 0))
        after = min((p for p in samples if p[0] >= when), default=samples[-1])
        if after[0] == before[0]:
            return before[1]
        return before[1] + (after[1] - before[1]) * (when - before[0]) / (after[0] - before[0])

    def backlog(when: float) -> float:
        """Accepted during this ingest but not yet counted VERIFIED at ``when``."""
        return (at(accepted, when) - base_accepted) - (at(marks, when) - base_verified)

    # 3a. Steady state, verifier live: both rates and the backlog over the same middle 60% of the stretch before
    # the pause (pipeline fill excluded). The rates match whenever it keeps up; the backlog's trend tells.
    begin_w = ingest_began + 0.2 * (paused_at - ingest_began)
    end_w = ingest_began + 0.8 * (paused_at - ingest_began)
    ingest_steady = (at(accepted, end_w) - at(accepted, begin_w)) / (end_w - begin_w)
    verify_steady = (at(marks, end_w) - at(marks, begin_w)) / (end_w - begin_w)
    steady = [(t, backlog(t)) for t, _v in marks if begin_w <= t <= end_w]
    times, sizes = [t for t, _b in steady], [b for _t, b in steady]
    backlog_trend = statistics.linear_regression(times, sizes).slope if len(steady) >= 3 else float("nan")
    backlog_mean = statistics.fmean(b for _t, b in steady) if steady else float("nan")  # a run too short
    backlog_max = max((b for _t, b in steady), default=float("nan"))

    # 3b. Capacity: from the resume until the backlog is down to one queue batch (10 messages of 100) or ingest
    # ended, the verifier always had work waiting, so it verified as fast as it could beside the ingest.
    floor = 1_000
    standing = backlog(resumed_at)
    end_s = next((t for t, _v in marks if resumed_at < t <= ingest_ended and backlog(t) <= floor), ingest_ended)
    saturated_seconds = end_s - resumed_at
    verify_capacity = (at(marks, end_s) - at(marks, resumed_at)) / saturated_seconds
    ingest_beside = (at(accepted, end_s) - at(accepted, resumed_at)) / saturated_seconds
    ingest_alone = (resume_at - pause_at) / max(1e-9, resumed_at - paused_at)

    with verifier_paused():
        batch_50k = [batch() for _ in range(30)]
        single_50k = singles(200, "50k")
    settle(sent + 400)
    stored = sent + 400
    sampler.stop()
    stop_seconds = stack.stop()
    restart = Stack(home, stack.port)
    restart_seconds = restart.start()
    after_restart = RssSampler(restart)
    pids = restart.pids()
    restart_rss = sum(after_restart.rss(pid) for pid in pids.values())
    restart_stop = restart.stop()

    mb = 1024 * 1024
    print(f"local stack, {stored:,} deltas stored (a fresh TALLY_HOME, {args.threads} ingest threads, "
          f"{args.customers:,} customers)")
    print(f"  first start (demo data seeded): {first_start:.1f} s")
    print(f"  single emit at 0 stored:        p50 {statistics.median(single_0) * 1000:.1f} ms, "
          f"p95 {pct(single_0, 0.95) * 1000:.1f} ms")
    print(f"  single emit at {stored:,}:     p50 {statistics.median(single_50k) * 1000:.1f} ms, "
          f"p95 {pct(single_50k, 0.95) * 1000:.1f} ms  (p50 ratio "
          f"{statistics.median(single_50k) / statistics.median(single_0):.2f}x)")
    print(f"  batch of 100 at ~1,000 stored:  median {statistics.median(batch_1k) * 1000:.1f} ms")
    print(f"  batch of 100 at {stored:,}:   median {statistics.median(batch_50k) * 1000:.1f} ms  (ratio "
          f"{statistics.median(batch_50k) / statistics.median(batch_1k):.2f}x, goal <= 1.5x)")
    print(f"  ingest {ingested:,} deltas:        {ingest_rate:.0f} deltas/s over {ingest_ended - ingest_began:.0f} s")
    print(f"  verifier, steady state:         {verify_steady:.0f} deltas/s vs ingest {ingest_steady:.0f} deltas/s "
          f"over the middle 60% of the first 55% of the ingest ({verify_steady / ingest_steady:.2f}x: it can only "
          "verify what has arrived)")
    print(f"  backlog, same window:           mean {backlog_mean:,.0f}, max {backlog_max:,.0f} deltas, trend "
          f"{backlog_trend:+.1f} deltas/s ({backlog_trend / ingest_steady:+.1%} of ingest) over {len(steady)} "
          "samples (a verifier short of capacity grows it by ingest's rate minus its own)")
    print(f"  verifier capacity beside ingest: {verify_capacity:.0f} deltas/s over {saturated_seconds:.1f} s with a "
          f"standing backlog ({standing:,.0f} deltas when it resumed after {resumed_at - paused_at:.1f} s stopped, "
          f"{backlog(end_s):,.0f} at the end) vs ingest {ingest_beside:.0f} deltas/s meanwhile: "
          f"{verify_capacity / ingest_beside:.2f}x (goal >= 1.0x); {verify_capacity / ingest_steady:.2f}x the "
          f"steady-state ingest; ingest with the verifier stopped {ingest_alone:.0f} deltas/s")
    print(f"  verifier, end to end:           {verify_rate:.0f} deltas/s from its first to its last verification "
          f"({verify_rate / ingest_rate:.2f}x ingest, stop included); {backlog_at_end:,} in flight when ingest ended, "
          f"all verified {drain_seconds:.1f} s later")
    print(f"  peak RSS, whole stack:          {sampler.peak_total / mb:.0f} MB (goal <= 1536 MB)")
    print("  peak RSS per process:           " + ", ".join(f"{name} {size / mb:.0f} MB"
                                                            for name, size in sampler.peaks.items()))
    print(f"  stop (SIGTERM, all processes):  {stop_seconds:.2f} s")
    print(f"  restart with {stored:,} stored: {restart_seconds:.1f} s to the first answer "
          f"(RSS after restart {restart_rss / mb:.0f} MB); stop again {restart_stop:.2f} s")
    size = sum(f.stat().st_size for f in (home / "data").iterdir())
    print(f"  data on disk:                   {size / mb:.0f} MB in {home / 'data'}")

    from bench.report import record

    median = statistics.median
    record("localstack", "deltas stored", stored, "")
    record("localstack", "first start (demo data seeded)", first_start, "s")
    for label, times in (("0", single_0), (f"{stored:,}", single_50k)):
        record("localstack", f"single emit at {label} stored, p50", median(times) * 1000, "ms")
        record("localstack", f"single emit at {label} stored, p95", pct(times, 0.95) * 1000, "ms")
    record("localstack", "single emit p50 ratio", median(single_50k) / median(single_0), "x")
    record("localstack", "batch of 100 at ~1,000 stored, median", median(batch_1k) * 1000, "ms")
    record("localstack", f"batch of 100 at {stored:,} stored, median", median(batch_50k) * 1000, "ms")
    record("localstack", "batch of 100 ratio", median(batch_50k) / median(batch_1k), "x", goal=("<=", 1.5))
    record("localstack", "ingest", ingest_rate, "deltas/s")
    record("localstack", "verifier, steady state", verify_steady, "deltas/s")
    record("localstack", "ingest, steady state", ingest_steady, "deltas/s")
    record("localstack", "verifier / ingest, steady state", verify_steady / ingest_steady, "x")
    record("localstack", "backlog, steady state, mean", backlog_mean, "deltas")
    record("localstack", "backlog, steady state, max", backlog_max, "deltas")
    record("localstack", "backlog trend, steady state", backlog_trend, "deltas/s")
    record("localstack", "verifier capacity beside ingest (standing backlog)", verify_capacity, "deltas/s")
    record("localstack", "standing backlog window", saturated_seconds, "s")
    record("localstack", "ingest beside the verifier's backlog", ingest_beside, "deltas/s")
    record("localstack", "verifier capacity / ingest, same window", verify_capacity / ingest_beside, "x",
           goal=(">=", 1.0))
    record("localstack", "verifier capacity / ingest, steady state", verify_capacity / ingest_steady, "x")
    record("localstack", "ingest, verifier stopped", ingest_alone, "deltas/s")
    record("localstack", "verifier, end to end", verify_rate, "deltas/s")
    record("localstack", "in flight when ingest ended", backlog_at_end, "deltas")
    record("localstack", "all verified after ingest ended", drain_seconds, "s")
    record("localstack", "peak RSS, whole stack", sampler.peak_total / mb, "MB", goal=("<=", 1536))
    for prefix, label in (("supervisor", "supervisor"), ("emulator", "emulator"),
                          ("jobs", "largest job environment"), ("environment", "largest API environment")):
        peak = max((size for name, size in sampler.peaks.items() if name.startswith(prefix)), default=0)
        record("localstack", f"peak RSS, {label}", peak / mb, "MB")
    record("localstack", "stop (SIGTERM, all processes)", stop_seconds, "s")
    record("localstack", "restart to the first answer", restart_seconds, "s")
    record("localstack", "RSS after restart", restart_rss / mb, "MB")
    record("localstack", "stop again", restart_stop, "s")
    record("localstack", "data on disk", size / mb, "MB")


if __name__ == "__main__":
    main()
