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


def verifier(count: int = 270) -> None:
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
        items = [DeltaInput(customer_id=f"cust_{i % 30}", delta=1, reason="bench") for i in range(count)]

        started = time.perf_counter()
        outcomes = []
        for start in range(0, count, 90):
            outcomes += ingest.submit_deltas(bootstrap.unit_of_work(), principal, items[start:start + 90], now=utcnow())
        ingest_rate = count / (time.perf_counter() - started)
        refs = [(tenant.id, Environment.PRODUCTION, o.data["recordId"]) for o in outcomes]

        started = time.perf_counter()
        report = verification.verify_records(bootstrap.unit_of_work(), refs, now=utcnow(), signer=bootstrap.signer())
        verify_rate = len(report.verified) / (time.perf_counter() - started)
    print(f"ingest (batches of 90, in-process):   {ingest_rate:8.1f} deltas/s  (1.00x)")
    print(f"verifier (batches of 90, in-process): {verify_rate:8.1f} deltas/s  ({verify_rate / ingest_rate:.2f}x of "
          f"ingest; {len(report.batches)} signed batches, {len(report.verified)} deltas)")


if __name__ == "__main__":
    merkle()
    verifier()
