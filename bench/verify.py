"""Verification benchmark (`make bench`): Merkle trees at scale and verifier throughput.

1. RFC 6962 root + every inclusion proof for 1,000,000 leaves: seconds and the process's
   peak resident memory, with a sample of proofs verified.
2. Verifier throughput in-process against moto, as a ratio to the ingest rate measured
   in the same process on the same deltas (so the figure holds on a busy machine).
Prints; asserts nothing.
"""

from __future__ import annotations

import hashlib
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.conftest  # noqa: E402,F401,I001  - test environment, set before moto and the models import
from moto import mock_aws  # noqa: E402


def merkle(n: int = 1_000_000) -> None:
    from chalicelib.domain.merkle import MerkleTree, leaf_hash, verify_inclusion

    leaves = [leaf_hash(hashlib.sha256(i.to_bytes(8, "big")).digest()) for i in range(n)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    tree = MerkleTree(leaves)
    built = time.perf_counter() - started
    proofs = [tree.inclusion_proof(i) for i in range(n)]
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    checked = all(verify_inclusion(leaves[i], i, n, proofs[i], tree.root) for i in range(0, n, n // 1000))
    print(f"Merkle tree of {n:,} leaves: root in {built:.2f} s, root + all {n:,} proofs in {elapsed:.2f} s; "
          f"peak RSS {peak:.0f} MiB ({peak - rss_before:.0f} MiB above the leaves); "
          f"1,000 sampled proofs verify: {checked}")
    from bench.report import record

    record("verify", f"Merkle root of {n:,} leaves", built, "s")
    record("verify", f"Merkle root + all {n:,} proofs", elapsed, "s")
    record("verify", "Merkle peak RSS", peak, "MiB")
    record("verify", "Merkle peak RSS above the leaves", peak - rss_before, "MiB")
    record("verify", "1,000 sampled proofs verify", checked, goal=("==", True))


def verifier(count: int = 540, rounds: int = 3) -> None:
    """Ingest and verification of the same deltas, alternated for ``rounds`` rounds after an untimed warm-up
    (the signer's key, the first calls): the queue path (references with ingest's seal candidates) and the
    sweep's path (bare references, the deltas read back). Rates are per second of this process's CPU time:
    everything (moto included) runs on it, so the ratios hold however busy the machine is; wall-clock
    rates are printed beside them."""
    with mock_aws():
        import boto3

        from chalicelib import bootstrap
        from chalicelib.cli.resources import provision
        from chalicelib.domain.clock import utcnow
        from chalicelib.domain.deltas import DeltaInput
        from chalicelib.domain.identity import ApiKeyPrincipal, Environment
        from chalicelib.services import credits, ingest, verification
        from tests.factories import World

        provision(boto3.session.Session(), stack_name="tally-test", region="us-east-1")
        world = World(utcnow)
        world.tenant("Platform")
        tenant = world.tenant("Bench Inc", billing_mode="credits", plan="scale")
        credits.topup(bootstrap.unit_of_work(), tenant.id, 1_000_000, actor="bench", now=utcnow())
        principal = ApiKeyPrincipal(tenant.id, Environment.PRODUCTION, "bench")
        signer = bootstrap.signer()
        elapsed = {"ingest": 0.0, "queue": 0.0, "sweep": 0.0}
        wall = dict(elapsed)
        done = {"ingest": 0, "queue": 0, "sweep": 0}
        batches = 0

        def ingest_round(n: int) -> list[tuple]:
            items = [DeltaInput(customer_id=f"cust_{i % 30}", delta=Decimal(1), reason="bench") for i in range(n)]
            started, clock = time.process_time(), time.perf_counter()
            refs: list[tuple] = []
            for start in range(0, n, 90):
                outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, items[start:start + 90],
                                                now=utcnow())
                refs += ingest.accepted_refs(principal, outcomes)  # what the route sends to the queue
            elapsed["ingest"] += time.process_time() - started
            wall["ingest"] += time.perf_counter() - clock
            done["ingest"] += n
            return refs

        def verify_round(path: str, refs: list[tuple]) -> None:
            nonlocal batches
            started, clock = time.process_time(), time.perf_counter()
            report = verification.verify_records(bootstrap.unit_of_work(), refs, now=utcnow(), signer=signer)
            elapsed[path] += time.process_time() - started
            wall[path] += time.perf_counter() - clock
            done[path] += len(report.verified)
            batches += len(report.batches)

        for path in ("queue", "sweep"):  # warm-up, untimed
            refs = ingest_round(90)
            verification.verify_records(bootstrap.unit_of_work(), refs if path == "queue" else [r[:3] for r in refs],
                                        now=utcnow(), signer=signer)
        for key in elapsed:
            elapsed[key], wall[key], done[key] = 0.0, 0.0, 0
        for _round in range(rounds):
            verify_round("queue", ingest_round(count))
            verify_round("sweep", [ref[:3] for ref in ingest_round(count)])
        ingest_rate = done["ingest"] / elapsed["ingest"]
        verify_rate = done["queue"] / elapsed["queue"]
        sweep_rate = done["sweep"] / elapsed["sweep"]
        walls = {key: done[key] / wall[key] for key in wall}
    print(f"per second of CPU time ({rounds} rounds of {count} deltas for 30 customers, after a warm-up); "
          f"wall clock: ingest {walls['ingest']:.0f}/s, verifier {walls['queue']:.0f}/s, sweep {walls['sweep']:.0f}/s")
    print(f"ingest (batches of 90, in-process):   {ingest_rate:8.1f} deltas/s  (1.00x; {done['ingest']:,} deltas)")
    print(f"verifier (batches of 90, in-process): {verify_rate:8.1f} deltas/s  ({verify_rate / ingest_rate:.2f}x of "
          f"ingest; the queue's references with seal candidates; {done['queue']:,} deltas)")
    print(f"verifier, bare references (sweep):    {sweep_rate:8.1f} deltas/s  ({sweep_rate / ingest_rate:.2f}x of "
          f"ingest; deltas read back; {done['sweep']:,} deltas; {batches} signed batches in all)")
    from bench.report import record

    record("verify", "ingest, batches of 90 (in-process)", ingest_rate, "deltas/s")
    record("verify", "verifier, batches of 90 (in-process)", verify_rate, "deltas/s")
    record("verify", "verifier / ingest", verify_rate / ingest_rate, "x", goal=(">=", 1.0))
    record("verify", "verifier, bare references (sweep)", sweep_rate, "deltas/s")
    record("verify", "verifier (sweep) / ingest", sweep_rate / ingest_rate, "x")


if __name__ == "__main__":
    merkle()
    verifier()
