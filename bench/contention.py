"""Write-contention benchmark (`make bench`): what concurrent writers cost the ingest path.

In-process against moto, for each billing mode (monthly on the scale plan; credits, topped up),
the same number of deltas is submitted by 1 writer thread, then by 8 (each writer on its own
customers), then by 8 sharing a few customers. Each writer calls ``ingest.submit_deltas`` with one
delta at a time, as ``POST /api/v1/balance/delta`` does; a delta refused for contention
(``CONCURRENT_WRITE``) is submitted again, as a client would.

Printed, with ``bench/dynamo_writes.py`` counting the calls: transaction attempts per accepted delta
(TransactWriteItems plus conditional single-item writes; goal ≤ 1.2), failed attempts by reason,
throughput for 1 and 8 writers and their ratio (goal ≥ 0.9x). moto applies one request at a time,
so more writers cannot go faster here; the goal is that they do not go much slower (lost races are
re-read, re-planned and re-sent). The writers are threads of one process, so writers of one customer
take turns in the process (``ingest.TURNS``) rather than race in storage: the shared configuration
measures those waits (attempts per delta stay 1.00, and with 8 writers on 4 customers at most 4 are
under way at once), not the storage races of separate processes (Lambda), which go through DynamoDB's
conditions and the retry loop as before (``tests/integration/test_ingest_concurrency.py`` runs them
both ways). Run as a script, the process is pinned to one CPU: it can only run
on one at a time anyway (one interpreter holds the product and moto), and letting the scheduler move 8
GIL-bound threads between the cores adds a hand-off cost that varies from run to run (the 8 / 1 ratio
ranged 0.69-0.93x unpinned on the same machine within an hour) and that Lambda, one request per
environment, never pays. The goals are reported, not asserted; the run exits non-zero only
if a delta is lost or accepted twice (accepted ≠ asked, or a customer's stored sequence numbers are
not exactly 1..n, or the stored deltas are not exactly the accepted ones).
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.conftest  # noqa: E402,F401,I001  - test environment, set before moto and the models import
from moto import mock_aws  # noqa: E402

from bench.dynamo_writes import WriteRecorder  # noqa: E402

ATTEMPTS_GOAL = 1.2  # transaction attempts per accepted delta
RATIO_GOAL = 0.9  # throughput with many writers ÷ with one
CLIENT_RETRIES = 10  # resubmissions of a delta refused with CONCURRENT_WRITE
CUSTOMERS = 32  # the pool writers with their own customers share out
SHARED_CUSTOMERS = 4  # the pool every writer uses in the shared configuration


@dataclass
class Run:
    """One configuration's figures."""

    mode: str
    writers: int
    customers: str  # "own" | "shared"
    asked: int = 0
    accepted: int = 0
    seconds: float = 0.0
    attempts: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # lost or doubly accepted deltas, crashes
    rates: list[float] = field(default_factory=list)  # deltas/s of each round

    @property
    def rate(self) -> float:
        """The median round's deltas/s: a burst of load on the machine moves one round, not the figure."""
        return statistics.median(self.rates) if self.rates else 0.0

    def add(self, other: Run) -> None:
        """Fold another round of the same configuration in."""
        self.asked += other.asked
        self.accepted += other.accepted
        self.seconds += other.seconds
        self.attempts += other.attempts
        self.calls.update(other.calls)
        self.failures.update(other.failures)
        self.problems += other.problems
        self.rates += other.rates

    @property
    def attempts_per_delta(self) -> float:
        return self.attempts / self.accepted if self.accepted else float("inf")


@dataclass
class Report:
    runs: list[Run]
    baseline: dict[int, float] = field(default_factory=dict)  # writers → raw transactions/s (median round)

    @property
    def ok(self) -> bool:
        """No delta lost or accepted twice, in any run."""
        return not any(run.problems for run in self.runs)


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def _run(mode: str, writers: int, shared: bool, deltas: int, time_cap: float, world: Any) -> Run:
    from chalicelib import bootstrap
    from chalicelib.domain.clock import utcnow
    from chalicelib.domain.deltas import DeltaInput
    from chalicelib.domain.identity import ApiKeyPrincipal, Environment
    from chalicelib.services import credits, ingest

    run = Run(mode, writers, "shared" if shared else "own")
    tenant = world.tenant(f"Contention {mode} {writers} {run.customers}", billing_mode=mode, plan="scale")
    if mode == "credits":
        credits.topup(bootstrap.unit_of_work(), tenant.id, 1_000_000, actor="bench", now=utcnow())
    principal = ApiKeyPrincipal(tenant.id, Environment.PRODUCTION, "bench")
    # Writer w takes deltas w, w + writers, …; on its own customers (CUSTOMERS in all) or on the shared few.
    own = max(1, CUSTOMERS // writers)
    plan = {w: [(i, f"s{i % SHARED_CUSTOMERS}" if shared else f"w{w}-c{(i // writers) % own}")
                for i in range(w, deltas, writers)] for w in range(writers)}
    accepted: list[tuple[str, str, int]] = []  # (customer, record id, sequence number)
    lock = threading.Lock()
    deadline = time.perf_counter() + time_cap

    def writer(w: int) -> None:
        for i, customer in plan[w]:
            if time.perf_counter() > deadline:
                return
            with lock:
                run.asked += 1
            try:
                for _attempt in range(CLIENT_RETRIES + 1):
                    item = DeltaInput(customer_id=customer, delta=Decimal("1.25"), reason=f"contention {i}")
                    outcome = ingest.submit_deltas(bootstrap.unit_of_work(), principal, [item], now=utcnow())[0]
                    if outcome.status == "QUEUED" and outcome.data:
                        with lock:
                            accepted.append((customer, outcome.data["recordId"], outcome.data["sequenceNumber"]))
                        break
                    code = outcome.error.code if outcome.error else "FAILED"
                    with lock:
                        run.failures[f"submit refused: {code} (resubmitted)"] += 1
                    if code != "CONCURRENT_WRITE":
                        break
            except Exception as exc:  # a crash is a finding: reported, not raised in a thread
                with lock:
                    run.problems.append(f"writer {w} crashed on delta {i}: {type(exc).__name__}: {exc}")
                return

    recorder = WriteRecorder(measure=False)
    threads = [threading.Thread(target=writer, args=(w,), name=f"writer-{w}") for w in range(writers)]
    with recorder.recording():
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        run.seconds = time.perf_counter() - started
    run.accepted = len(accepted)
    run.rates = [run.accepted / run.seconds] if run.seconds else []
    run.attempts = recorder.attempts()
    run.calls = Counter(recorder.calls)
    run.failures.update(recorder.failures)
    run.problems += _integrity(principal, accepted, run.asked)
    return run


def _baseline(threads: int, count: int) -> float:
    """Raw deltas/s of ``threads`` threads making ``count`` times the calls a single submit makes (a 2-key
    consistent BatchGetItem, the snapshot of a paid monthly tenant, then a 4-item TransactWriteItems), with no
    product code, no conditions and no conflicts: what the harness and the storage stand-in lose with more
    threads. Each call is a hand-off between threads on the stand-in's lock, so the calls per delta matter."""
    from chalicelib.adapters.dynamodb.connection import shared_connection
    from chalicelib.adapters.dynamodb.models import TABLES

    client = shared_connection().client
    table = TABLES["idempotency"]

    def sender(t: int) -> None:
        for i in range(t, count, threads):
            client.batch_get_item(RequestItems={table: {"ConsistentRead": True, "Keys": [
                {"pk": {"S": f"BENCH#{threads}#{i - threads}"}, "sk": {"S": f"B{n}"}} for n in range(2)]}})
            client.transact_write_items(TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": f"BENCH#{threads}#{i}"}, "sk": {"S": f"B{n}"},
                                                         "state": {"S": "baseline"}}}} for n in range(4)])

    workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return count / (time.perf_counter() - started)


def _integrity(principal: Any, accepted: list[tuple[str, str, int]], asked: int) -> list[str]:
    """What went wrong with the stored deltas: none lost, none accepted twice, sequences gap-free."""
    from chalicelib import bootstrap

    problems = []
    if len(accepted) != asked:
        problems.append(f"accepted {len(accepted)} of {asked} deltas asked")
    ids = [record_id for _c, record_id, _s in accepted]
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} record ids answered twice")
    uow = bootstrap.unit_of_work()
    stored: set[str] = set()
    for customer in sorted({c for c, _r, _s in accepted}):
        deltas = uow.deltas.customer_range(principal.tenant_id, principal.environment, customer, 1, 10**11)
        sequence = [d.sequence_number for d in deltas]
        if sequence != list(range(1, len(sequence) + 1)):
            problems.append(f"customer {customer}: stored sequence numbers {sequence} are not 1..{len(sequence)}")
        answered = sorted(s for c, _r, s in accepted if c == customer)
        if answered != sequence:
            problems.append(f"customer {customer}: answered sequence numbers {answered}, stored {sequence}")
        stored |= {d.record_id for d in deltas}
    if stored != set(ids):
        problems.append(f"stored deltas differ from the accepted ones: {len(stored - set(ids))} stored but not "
                        f"answered, {len(set(ids) - stored)} answered but not stored")
    return problems


def report(result: Report, out: TextIO) -> None:
    """Per billing mode: one line per configuration, the 8/1 ratios, failures, and any integrity problem."""
    runs, base = result.runs, result.baseline
    if len(base) > 1:
        one, many = base[min(base)], base[max(base)]
        print(f"\nharness baseline (a single submit's raw calls: 2-key BatchGetItem + 4-item TransactWriteItems; no "
              f"product code, no conflicts): {min(base)} thread "
              f"{one:.1f}/s, {max(base)} threads {many:.1f}/s: {many / one:.2f}x (threads alone, no product logic)",
              file=out)
    for mode in dict.fromkeys(r.mode for r in runs):
        mine = [r for r in runs if r.mode == mode]
        label = "monthly billing, scale plan" if mode == "monthly" else "credits billing, scale plan, topped up"
        print(f"\n== {label}", file=out)
        print(f"   {'writers':>7}  {'customers':<12} {'asked':>5} {'accepted':>8} {'seconds':>8} {'deltas/s':>9}  "
              f"attempts/delta (goal <= {ATTEMPTS_GOAL})  calls", file=out)
        for r in mine:
            pool = SHARED_CUSTOMERS if r.customers == "shared" else CUSTOMERS
            calls = ", ".join(f"{op} {n}" for op, n in sorted(r.calls.items()))
            print(f"   {r.writers:>7}  {f'{r.customers} ({pool})':<12} {r.asked:>5} {r.accepted:>8} {r.seconds:>8.2f} "
                  f"{r.rate:>9.1f}  {r.attempts_per_delta:>5.2f} {_verdict(r.attempts_per_delta <= ATTEMPTS_GOAL)}"
                  f"{'':<24}  {calls}", file=out)
        single = next((r for r in mine if r.writers == 1), None)
        for r in mine:
            if single is not None and r is not single and single.rate:
                ratio = r.rate / single.rate
                harness = (f"; {ratio / (base[r.writers] / base[1]):.2f}x of the harness baseline's ratio"
                           if r.writers in base and 1 in base else "")
                print(f"   throughput {r.writers} writers ({r.customers} customers) / 1 writer: {ratio:.2f}x "
                      f"(goal >= {RATIO_GOAL}x) {_verdict(ratio >= RATIO_GOAL)}{harness}", file=out)
        for r in mine:
            failures = ", ".join(f"{reason} x{n}" for reason, n in sorted(r.failures.items())) or "none"
            print(f"   failures, {r.writers} writer(s) ({r.customers} customers): {failures}", file=out)
            for problem in r.problems:
                print(f"   LOST OR DOUBLE-ACCEPTED, {r.writers} writer(s) ({r.customers} customers): {problem}",
                      file=out)


def main(deltas: int = 240, writers: tuple[int, ...] = (1, 8), *, shared: bool = True, rounds: int = 3,
         time_cap: float = 20.0, modes: tuple[str, ...] = ("monthly", "credits"), provisioned: bool = False,
         out: TextIO | None = None) -> Report:
    """Run every configuration ``rounds`` times, interleaved, and print the figures; returns them.
    ``deltas``: per configuration and round, each round on a fresh tenant; ``time_cap``: seconds per round
    after which writers start no new delta; ``shared``: also run the largest writer count on shared customers;
    ``provisioned``: the caller already set up AWS (a test's moto fixture)."""
    out = out or sys.stdout
    print(f"Write contention (in-process moto, the real ingest service): {deltas} deltas per configuration and "
          f"round, {rounds} rounds interleaved,\neach round on a fresh tenant and capped at {time_cap:.0f} s; "
          f"deltas/s is the median round's. moto applies one request at a time:\nmore writers cannot go faster "
          f"here, the goal is that they do not go slower. Attempts = TransactWriteItems + conditional\n"
          f"single-item writes, per accepted delta. Goals are reported, not asserted.", file=out)

    def runs() -> Report:
        from chalicelib.domain.clock import utcnow
        from tests.factories import World

        world = World(utcnow)
        world.tenant("Platform")
        configurations = [(mode, w, False) for mode in modes for w in writers]
        configurations += [(mode, max(writers), True) for mode in modes] if shared else []
        configurations.sort(key=lambda c: modes.index(c[0]))
        merged: dict[tuple[str, int, bool], Run] = {}
        base: dict[int, list[float]] = {w: [] for w in sorted({1, max(writers)})}
        for _round in range(rounds):
            for w in base:
                base[w].append(_baseline(w, 2 * deltas))
            for mode, w, s in configurations:
                run = _run(mode, w, s, deltas, time_cap, world)
                if (mode, w, s) in merged:
                    merged[(mode, w, s)].add(run)
                else:
                    merged[(mode, w, s)] = run
        return Report(list(merged.values()), {w: statistics.median(rates) for w, rates in base.items()})

    if provisioned:
        result = runs()
    else:
        with mock_aws():
            import boto3

            from chalicelib.cli.resources import provision

            provision(boto3.session.Session(), stack_name="tally-test", region="us-east-1")
            result = runs()
    report(result, out)
    if not result.ok:
        print("\nFAILED: deltas were lost or accepted twice (see above).", file=out)
    return result


def record_figures(result: Report) -> None:
    """What ``report`` prints, for the summary (``bench/report.py``): per configuration its rate, attempts per
    delta and lost or double-accepted deltas; per billing mode the many-writers / one-writer ratios."""
    from bench.report import record

    base = result.baseline
    if len(base) > 1:
        record("contention", f"harness baseline, {max(base)} / {min(base)} threads", base[max(base)] / base[min(base)],
               "x")
    for r in result.runs:
        name = f"{r.mode}, {r.writers} writer(s), {r.customers} customers"
        record("contention", f"{name}: deltas/s", r.rate, "deltas/s")
        record("contention", f"{name}: attempts per delta", r.attempts_per_delta, "", goal=("<=", ATTEMPTS_GOAL))
        record("contention", f"{name}: lost or double-accepted", len(r.problems), "", goal=("==", 0))
        single = next((s for s in result.runs if s.mode == r.mode and s.writers == 1), None)
        if single is not None and r is not single and single.rate:
            record("contention", f"{name}: throughput / 1 writer", r.rate / single.rate, "x",
                   goal=(">=", RATIO_GOAL))


def pin_to_one_cpu() -> str:
    """Run on the first CPU this process may use (see the module docstring); what was done, for the report."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[0]})
    return f"pinned to CPU {allowed[0]} of {len(allowed)}"


if __name__ == "__main__":
    print(f"process {pin_to_one_cpu()}")
    outcome = main()
    record_figures(outcome)
    sys.exit(0 if outcome.ok else 1)
