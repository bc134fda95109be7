"""Tenant isolation over real HTTP, concurrently: the matrix of tests/isolation.py against the local stack
(`tally dev up` in a subprocess, as `make run` starts it), from 16 client threads.

A is the stack's demo tenant (its owner's `tally dev token`); B is a tenant created with the operator CLI
(credits billing, a Stripe customer) and its owner's token. Both are seeded through the API — their four
environments side by side, each delta verified by the stack's own verifier — then the matrix runs over
keep-alive HTTP connections, phase by phase (reads and foreign-id writes; then A's customers named after
B's ids; then A's deltas naming them), while two more threads keep reading B's own state as B, which must
come back unchanged every time (a request answered with another request's principal or data would show
there, or as a canary in A's answers). Checks as in process, except that the status is checked against the
served document's list rather than the full schema (the in-process run does that).

To stay within its time budget the run samples credential kinds, never operations or substitutions: every
substitution runs with one accepted kind in turn (all of them where an operation has fewer substitutions
than kinds), and each refused kind once per operation and environment. Size when written: 70 operations x
2 environments x id substitutions = 464 cases, x sampled kinds = 962 requests (546 accepted, 416 refused),
about 9 s of a ~40 s test (stack start ~12 s, CLI ~7 s, seeding ~9 s on a busy 2-core machine); the test
prints the current figures and timings.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests import isolation
from tests.integration.localstack import local_stack, tally

THREADS = 16
BRAVO_THREADS = 2  # B's own traffic alongside
PHASE_BUDGET = 40.0  # seconds; each phase must end well within the file's minute


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict]:
    yield from local_stack(tmp_path_factory, "tally-isolation", fresh=True)


def parallel(*jobs: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(len(jobs)) as pool:
        return [f.result() for f in [pool.submit(job) for job in jobs]]


def settle_over_http(send: isolation.Send, waited: list[float], timeout: float = 45.0) -> isolation.Settle:
    """Wait until the stack's verifier has verified these deltas (polled with the tenant's own key)."""

    def settle(seed: isolation.TenantSeed, environment: str, record_ids: list[str]) -> None:
        began = time.monotonic()
        deadline, waiting = began + timeout, list(record_ids)
        while waiting:
            waiting = [r for r in waiting if isolation.call(send, "GET", f"/api/v1/balance/delta/{r}",
                                                            seed.key(environment)).data()["status"] != "VERIFIED"]
            assert time.monotonic() < deadline, f"{len(waiting)} deltas of {seed.label} never verified"
            if waiting:
                time.sleep(0.1)
        waited.append(time.monotonic() - began)

    return settle


def seed_both(stack: dict, send: isolation.Send,
              lap: Callable[[str], None]) -> tuple[isolation.TenantSeed, isolation.TenantSeed, str]:
    """A: the demo tenant (its owner's `tally dev token`); B: a new tenant billing by credits."""
    alpha_jwt, created, platform = parallel(
        lambda: tally(stack, "dev", "token", "--role", "owner").strip(),
        lambda: json.loads(tally(stack, "tenants", "create", "--name", "Bravo Canary Holdings", "--billing-mode",
                                 "credits", "--stripe-customer", "cus_bravo_canary_0001", "--json")),
        lambda: tally(stack, "platform", "token", "create", "--abilities", "tenants:read",
                      "--name", "isolation").strip().splitlines()[-1],
    )
    bravo_id = created["id"]
    bravo_jwt, _topup = parallel(
        lambda: tally(stack, "dev", "token", "--tenant", bravo_id, "--role", "owner",
                      "--user", "usr_bravo_owner").strip(),
        lambda: tally(stack, "credits", "topup", "--tenant", bravo_id, "--amount", "500"),
    )
    lap("cli")
    alpha = isolation.call(send, "GET", "/dashboard/tenant", {"Authorization": f"Bearer {alpha_jwt}"}).data()
    a = isolation.new_seed(send, label="alpha", tenant_id=alpha["id"], name=alpha["companyName"],
                           user_id="usr_dev_owner", jwt=alpha_jwt, stripe_customer="cus_demo")  # A: no canaries
    b = isolation.new_seed(send, label="bravo", tenant_id=bravo_id, name="Bravo Canary Holdings",
                           user_id="usr_bravo_owner", jwt=bravo_jwt, stripe_customer="cus_bravo_canary_0001")
    waited: list[float] = []
    settle = settle_over_http(send, waited)
    parallel(*[lambda s=s, e=e: isolation.seed_environment(send, s, e, settle)
               for s in (a, b) for e in isolation.ENVIRONMENTS])
    lap(f"seed environments (verifier waits {sum(waited):.1f} s in {len(waited)} calls)")
    parallel(*[lambda s=s: isolation.seed_tenant_wide(send, s) for s in (a, b)])
    # The stack verifies every delta within seconds: "pending" ones too, before the state is read.
    parallel(*[lambda s=s, e=e: settle(s, e, s.envs[e].pending) for s in (a, b) for e in isolation.ENVIRONMENTS])
    lap("seed tenant-wide")
    return a, b, platform


def states(send: isolation.Send, a: isolation.TenantSeed, b: isolation.TenantSeed,
           *more: Callable[[], Any]) -> list[Any]:
    return parallel(lambda: isolation.tenant_state(send, a, full=False),
                    lambda: isolation.tenant_state(send, b, full=True), *more)


def test_no_credential_of_tenant_a_reads_or_changes_tenant_b_concurrently_over_http(stack, capsys):
    send = isolation.HttpSend(stack["base"])
    clock = [time.monotonic()]
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        now = time.monotonic()
        timings[name], clock[0] = round(now - clock[0], 1), now

    a, b, platform_token = seed_both(stack, send, lap)
    document = isolation.call(send, "GET", "/openapi.json").json()
    parallel(*[lambda s=s: isolation.harvest_cursors(send, document, s) for s in (a, b)])
    before = states(send, a, b)
    cases = isolation.build_matrix(document, a, b, platform_token=platform_token,
                                   fresh_cookie=lambda: isolation.open_session(send, a.jwt), sample=True)
    checker = isolation.Checker(a, b)
    lap("cursors, state, build")

    outcomes: list[isolation.Outcome] = []
    done = threading.Event()

    def bravo_meanwhile() -> int:
        """B's own reads, side by side with A's matrix: each must see exactly B's state (a request answered
        with another one's principal or data — aws/chalice#759 on a shared app — shows up here or as a
        canary in A's answers)."""
        rounds = 0
        while not done.is_set():
            assert isolation.tenant_state(send, b, full=True) == before[1], "B's own read saw another state"
            rounds += 1
        return rounds

    with ThreadPoolExecutor(THREADS + BRAVO_THREADS) as pool:
        bravo = [pool.submit(bravo_meanwhile) for _ in range(BRAVO_THREADS)]
        try:
            for phase in sorted({c.phase for c in cases}):
                started = time.monotonic()
                batch = [c for c in cases if c.phase == phase]
                outcomes += pool.map(lambda c: isolation.run_case(send, checker, c), batch, timeout=PHASE_BUDGET)
                assert time.monotonic() - started < PHASE_BUDGET, f"phase {phase} took too long"
        finally:
            done.set()
        bravo_rounds = sum(f.result(timeout=PHASE_BUDGET) for f in bravo)
    lap(f"matrix (and {bravo_rounds} rounds of B's own reads)")
    took = timings[next(k for k in timings if k.startswith("matrix"))]
    *after, shown = states(send, a, b, lambda: json.loads(tally(stack, "tenants", "show", b.tenant_id, "--json")))
    lap("state after")

    with capsys.disabled():
        print("\n" + isolation.summary(cases, took, f"local stack over HTTP, {THREADS} threads") + f"; {timings}")
    assert {c.op.key for c in cases} == {op.key for op in isolation.operations(document)}
    found = isolation.failures(outcomes)
    assert not found, f"{len(found)} of {len(cases)} cases failed:\n" + "\n".join(found[:60])
    assert after == before
    assert shown["has_unpaid_invoices_at"] is None  # no platform request marked B
