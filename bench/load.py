"""Load (`make bench`): 16 concurrent SDK clients against the local stack for 60 s, mixed traffic.

Starts `tally dev up` on a fresh TALLY_HOME and a free port (``bench/localstack.py``'s Stack), makes a
tenant on the scale plan, and runs 16 threads, each with its own official ``pacspace-sdk`` client
(``PacSpace(key, base_url=...)``: what a user changes to move to Tally), on loopback only. A client
waiting on one of its deltas reads its status (``delta_status``) each turn until it is VERIFIED;
otherwise a call is, at random (seeded per client): 50 % a single emit (``balance.emit``), 10 % a
batch of 25 deltas (the SDK's public batch path, ``queue_summaries`` + ``flush_summaries``), 40 % a
read — a customer's detail, the customer list, the plan usage or the status of an earlier delta.

Printed and recorded (``bench/report.py``):
* errors (goal 0): every SDK call that raised or did not get what it asked for (the clients are made
  with ``max_retries=0``, so no non-2xx answer is hidden by a retry); a batch with a refused item;
* throughput: SDK calls/s and deltas accepted/s over the run;
* latency p50/p95/p99 of every call, and per kind of call;
* accept → VERIFIED: each client watches one accepted single emit at a time (the next one once the
  last is VERIFIED): the time from its 202 to the first status read that says VERIFIED, an upper
  bound within the printed resolution (from sending the last read that did not say it); and the
  server's own ``verifiedAt - createdAt`` of the same deltas (each stamped as its step begins, before
  its commit: not a bound either way); after the run the deltas still watched are read until VERIFIED;
* how long after the run every accepted delta was verified (the dashboard's summary);
* RSS of the whole stack (every process) before and after the run, and its peak during it.

Before the clock starts each client makes one untimed read, all at once (the execution environments'
first requests), after the RSS "before" is taken. Every loop is bounded in count and time; the script
stops the stack it started, even on failure.
`python bench/load.py --seconds 10 --clients 4` for a quick run.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.localstack import RssSampler, Stack, pct  # noqa: E402
from bench.report import record  # noqa: E402
from chalicelib.cli.devstack import free_port  # noqa: E402

SINGLE_SHARE, BATCH_SHARE = 0.5, 0.1  # the rest are reads
BATCH_SIZE = 25
CUSTOMERS_PER_CLIENT = 25
WATCHED_PER_CLIENT = 1  # accepted deltas a client waits on at once
POLL_EVERY = 0.1  # seconds at least between two status reads of one watched delta
MAX_CALLS_PER_SECOND = 500  # per client: a bound on the loop's count, far above what the stack answers
DRAIN_TIMEOUT = 180.0  # seconds after the run to wait for the watched deltas and for every accepted delta
EMIT, BATCH, STATUS = "POST /delta (emit)", "POST /delta/batch (flush_summaries)", "GET /delta/{id} (status)"
CUSTOMER, CUSTOMERS, USAGE = "GET /customers/{id}", "GET /customers", "GET /usage"
MB = 1024 * 1024


@dataclass
class Watch:
    record_id: str
    accepted_at: float  # monotonic, when the 202 arrived
    due: float = 0.0
    last_sent: float = 0.0  # when the last status read that did not say VERIFIED was sent


@dataclass
class ClientRun:
    """One client's figures."""

    index: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # kind -> seconds
    errors: Counter[str] = field(default_factory=Counter)
    refused_items: int = 0
    accepted: int = 0
    watching: list[Watch] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)  # accept → first status read saying VERIFIED
    server: list[float] = field(default_factory=list)  # verifiedAt - createdAt of the same deltas
    resolution: list[float] = field(default_factory=list)  # last read not saying VERIFIED sent → one saying it back
    record_ids: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)

    def call(self, kind: str, send: Callable[[], Any], timed: bool = True) -> Any:
        """``send()``'s answer, or None when it raised (counted as an error of ``kind``)."""
        began = time.perf_counter()
        try:
            answer = send()
        except Exception as exc:  # every failure the SDK raises, network ones included
            self.errors[f"{kind}: {getattr(exc, 'status_code', '')} {getattr(exc, 'code', type(exc).__name__)}"] += 1
            return None
        finally:
            if timed:
                self.latencies[kind].append(time.perf_counter() - began)
        return answer


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def poll(run: ClientRun, sdk: Any, watch: Watch, *, timed: bool = True) -> None:
    """Read a watched delta's status; when VERIFIED, its accept → VERIFIED times are kept and it is dropped."""
    sent = time.monotonic()
    data = run.call(STATUS, lambda: sdk.balance.delta_status(watch.record_id), timed)
    now = time.monotonic()
    status = (data or {}).get("status")
    if status == "VERIFIED":
        run.observed.append(now - watch.accepted_at)
        run.resolution.append(now - (watch.last_sent or watch.accepted_at))
        run.server.append((_instant(data["verifiedAt"]) - _instant(data["createdAt"])).total_seconds())
    elif status == "FAILED":
        run.errors[f"{STATUS}: delta FAILED"] += 1
    else:
        watch.due, watch.last_sent = sent + POLL_EVERY, sent
        return
    run.watching.remove(watch)


def drive(run: ClientRun, sdk: Any, deadline: float, max_calls: int, window_start: datetime) -> None:
    """One client's loop until ``deadline`` or ``max_calls`` calls; a crash of the loop is an error too."""
    try:
        calls(run, sdk, deadline, max_calls, window_start)
    except Exception as exc:
        run.errors[f"client loop crashed: {exc!r}"] += 1


def calls(run: ClientRun, sdk: Any, deadline: float, max_calls: int, window_start: datetime) -> None:
    rng = random.Random(run.index)
    for n in range(max_calls):
        now = time.monotonic()
        if now >= deadline:
            return
        due = next((w for w in run.watching if w.due <= now), None)
        if due is not None:
            poll(run, sdk, due)
            continue
        roll = rng.random()
        customer = f"load_{run.index:02d}_{rng.randrange(CUSTOMERS_PER_CLIENT):02d}"
        if roll < SINGLE_SHARE:
            data = run.call(EMIT, lambda c=customer, n=n: sdk.balance.emit(
                c, 1 + n % 5, "load bench", {"referenceId": f"ld-{run.index}-{n}"}))
            if data is None:
                continue
            if data.get("status") != "QUEUED" or not data.get("recordId"):
                run.errors[f"{EMIT}: answered {data.get('status')}"] += 1
                continue
            run.accepted += 1
            run.record_ids.append(data["recordId"])
            if customer not in run.customers:
                run.customers.append(customer)
            if len(run.watching) < WATCHED_PER_CLIENT:
                run.watching.append(Watch(data["recordId"], time.monotonic(), time.monotonic() + POLL_EVERY))
        elif roll < SINGLE_SHARE + BATCH_SHARE:
            # Whole seconds: the SDK compares its own normalised timestamps as text.
            windows = [window_start + timedelta(seconds=n * BATCH_SIZE + i) for i in range(BATCH_SIZE + 1)]
            summaries = [{"customerId": f"load_{run.index:02d}_{(n + i) % CUSTOMERS_PER_CLIENT:02d}",
                          "delta": 1 + i % 3, "reason": "load bench batch", "referenceId": f"lb-{run.index}-{n}-{i}",
                          "windowStart": windows[i].isoformat(), "windowEnd": windows[i + 1].isoformat()}
                         for i in range(BATCH_SIZE)]
            result = run.call(BATCH, lambda s=summaries: (sdk.balance.queue_summaries(s),
                                                          sdk.balance.flush_summaries())[1])
            if result is None:
                continue
            run.accepted += result["submitted"] - result["replayed"]  # the SDK sends a refused item again
            if result["failed"]:
                run.refused_items += result["failed"]
                run.errors[f"{BATCH}: {result['failures'][0]['error']}"] += 1
        else:  # a read, of what this client has written once it has
            kind = rng.choice((USAGE, CUSTOMER, CUSTOMERS, STATUS)) if run.customers else USAGE
            reads = {USAGE: sdk.balance.usage, CUSTOMERS: lambda: sdk.balance.customers({"limit": 25}),
                     CUSTOMER: lambda: sdk.balance.customer(rng.choice(run.customers), {"deltaLimit": 20}),
                     STATUS: lambda: sdk.balance.delta_status(rng.choice(run.record_ids))}
            run.call(kind, reads[kind])


def client(base: str, key: str) -> Any:
    from pacspace_sdk import PacSpace

    return PacSpace(key, base_url=base, max_retries=0,
                    submission={"autoStart": False, "autoFlushOnShutdown": False, "maxRequestsPerMinute": 60_000})


def ms(values: list[float], q: float) -> float:
    return pct(values, q) * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="tally-bench-load-"))
    stack = Stack(home, free_port())
    stack.start()
    sampler = RssSampler(stack)
    try:
        key, jwt = stack.bench_tenant("Load Inc")
        sdks = [client(stack.base, key) for _ in range(args.clients)]
        runs = [ClientRun(i) for i in range(args.clients)]
        verified_before = stack.verified(jwt)  # 0: a new tenant
        rss_before = {name: RssSampler.rss(pid) for name, pid in stack.pids().items()}
        with ThreadPoolExecutor(args.clients) as pool:  # warm-up, untimed: one read each, all at once
            list(pool.map(lambda pair: pair[0].call(USAGE, pair[1].balance.usage, timed=False),
                          zip(runs, sdks, strict=True)))
        sampler.start()
        window_start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        cpu_began = resource.getrusage(resource.RUSAGE_SELF)
        began = time.monotonic()
        deadline = began + args.seconds
        max_calls = int(args.seconds * MAX_CALLS_PER_SECOND)
        threads = [threading.Thread(target=drive, args=(run, sdk, deadline, max_calls, window_start), daemon=True)
                   for run, sdk in zip(runs, sdks, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 120)
        ended = time.monotonic()
        cpu_ended = resource.getrusage(resource.RUSAGE_SELF)
        if any(thread.is_alive() for thread in threads):
            raise SystemExit("a client did not finish within 120 s of the end of the run")
        sampler.stop()
        rss_after = {name: RssSampler.rss(pid) for name, pid in stack.pids().items()}

        # After the run: the deltas still watched, until VERIFIED; then every accepted delta.
        drain_deadline = ended + DRAIN_TIMEOUT
        while any(run.watching for run in runs) and time.monotonic() < drain_deadline:
            for run, sdk in zip(runs, sdks, strict=True):
                for watch in [w for w in run.watching if w.due <= time.monotonic()]:
                    poll(run, sdk, watch, timed=False)
            time.sleep(0.05)
        unresolved = sum(len(run.watching) for run in runs)
        accepted = sum(run.accepted for run in runs)
        verified = stack.verified(jwt)
        while verified < verified_before + accepted and time.monotonic() < drain_deadline:
            time.sleep(0.5)
            verified = stack.verified(jwt)
        all_verified = time.monotonic() - ended if verified >= verified_before + accepted else None
    finally:
        sampler.stop()
        stop_seconds = stack.stop() if stack.proc is not None and stack.proc.poll() is None else float("nan")

    seconds = ended - began
    latencies: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for kind, values in run.latencies.items():
            latencies[kind] += values
    every = [value for values in latencies.values() for value in values]
    errors = sum((run.errors for run in runs), Counter())
    observed = [value for run in runs for value in run.observed]
    server = [value for run in runs for value in run.server]
    refused = sum(run.refused_items for run in runs)
    resolution = [value for run in runs for value in run.resolution]
    client_cpu = (cpu_ended.ru_utime + cpu_ended.ru_stime - cpu_began.ru_utime - cpu_began.ru_stime) / seconds

    def show(name: str, value: float | int, unit: str, text: str, goal: tuple[str, float] | None = None) -> None:
        print(f"  {name + ':':<44}{text}")
        record("load", name, value, unit, goal=goal)

    print(f"load: {args.clients} SDK clients (pacspace-sdk, max_retries=0) for {seconds:.1f} s against the local "
          f"stack on 127.0.0.1:{stack.port}; {SINGLE_SHARE:.0%} single emits, {BATCH_SHARE:.0%} batches of "
          f"{BATCH_SIZE}, {1 - SINGLE_SHARE - BATCH_SHARE:.0%} reads")
    show("errors", sum(errors.values()), "", f"{sum(errors.values())} (goal 0)"
         + "".join(f"\n      {n} x {what}" for what, n in errors.most_common()), goal=("==", 0))
    show("calls", len(every), "", f"{len(every):,}")
    show("throughput", len(every) / seconds, "calls/s", f"{len(every) / seconds:.1f} calls/s")
    show("deltas accepted", accepted, "", f"{accepted:,} ({refused} batch items refused)")
    show("ingest rate", accepted / seconds, "deltas/s", f"{accepted / seconds:.1f} deltas/s")
    for q in (0.50, 0.95, 0.99):
        show(f"latency p{q * 100:.0f}, all calls", ms(every, q), "ms", f"{ms(every, q):.1f} ms")
    for kind, values in sorted(latencies.items()):
        print(f"    {kind:<40}{len(values):>7,} calls  p50 {ms(values, 0.5):7.1f}  p95 {ms(values, 0.95):7.1f}  "
              f"p99 {ms(values, 0.99):7.1f} ms")
        for q in (0.50, 0.95, 0.99):
            record("load", f"latency p{q * 100:.0f}, {kind}", ms(values, q), "ms")
    show("accept->VERIFIED sampled", len(observed), "deltas",
         f"{len(observed):,} single emits watched ({unresolved} not VERIFIED within {DRAIN_TIMEOUT:.0f} s)")
    if observed:
        for q in (0.50, 0.95):
            show(f"accept->VERIFIED p{q * 100:.0f}, status reads", pct(observed, q), "s",
                 f"{pct(observed, q):.2f} s (202 to the first status read saying VERIFIED; an upper bound)")
            show(f"accept->VERIFIED p{q * 100:.0f}, server clock", pct(server, q), "s",
                 f"{pct(server, q):.2f} s (verifiedAt - createdAt of the same deltas: the server's stamps)")
        show("accept->VERIFIED resolution p50", pct(resolution, 0.5), "s",
             f"{pct(resolution, 0.5):.2f} s (from sending the last read not saying VERIFIED to the answer of "
             "the one saying it)")
    if all_verified is not None:
        show("all accepted verified after the run", all_verified, "s",
             f"{all_verified:.1f} s after the last call ({verified:,} verified)")
    else:
        print(f"  all accepted verified after the run:        NO, {verified:,} of {accepted:,} within "
              f"{DRAIN_TIMEOUT:.0f} s")
        record("load", "accepted deltas not verified", verified_before + accepted - verified, "deltas", goal=("==", 0))
    total_before, total_after = sum(rss_before.values()), sum(rss_after.values())
    show("RSS whole stack, before", total_before / MB, "MB", f"{total_before / MB:.0f} MB "
         f"(emulator {rss_before.get('emulator', 0) / MB:.0f} MB)")
    show("RSS whole stack, after", total_after / MB, "MB", f"{total_after / MB:.0f} MB "
         f"(emulator {rss_after.get('emulator', 0) / MB:.0f} MB; {(total_after - total_before) / MB:+.0f} MB)")
    show("RSS whole stack, peak", sampler.peak_total / MB, "MB", f"{sampler.peak_total / MB:.0f} MB during the run "
         "(goal <= 1536 MB)", goal=("<=", 1536))
    show("client process CPU", client_cpu * 100, "% of a core",
         f"{client_cpu:.0%} of a core (the {args.clients} clients' own process, beside the stack)")
    print(f"  stop (SIGTERM, all processes):              {stop_seconds:.2f} s")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
