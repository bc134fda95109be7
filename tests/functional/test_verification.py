"""Verification: signed Merkle batches, proofs on the status read, settlement once, public verify."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb.batch_repository import DynamoBatchRepository
from chalicelib.adapters.signing import verify_signature
from chalicelib.domain.batches import CHAINS
from chalicelib.domain.credits import Settled
from chalicelib.domain.deltas import CreditState, DeltaInput, DeltaStatus
from chalicelib.domain.errors import ConcurrentWriteError
from chalicelib.domain.fingerprints import canonical, content_hash, delta_content
from chalicelib.domain.identity import ApiKeyPrincipal, Environment
from chalicelib.domain.merkle import leaf_hash, verify_inclusion
from chalicelib.services import credits as credit_service
from chalicelib.services import ingest, verification
from tests.dynamo_calls import DynamoCalls
from tests.helpers import one_chain, walk_chains

DELTA = "/api/v1/balance/delta"


@pytest.fixture
def credits_tenant(world, clock):
    world.tenant("Platform")
    tenant = world.tenant("Acme", billing_mode="credits", plan="starter")
    credit_service.topup(bootstrap.unit_of_work(), tenant.id, 10, actor="test", now=clock())
    return tenant


@pytest.fixture
def key(world, credits_tenant):
    return {"X-Api-Key": world.api_key(credits_tenant, "production")[1]}


def submit(api, key, customer: str, amount=1, **extra) -> str:
    reply = api.post(DELTA, headers=key, json_body={"customerId": customer, "delta": amount, "reason": "r", **extra})
    assert reply.status == 202, reply
    return reply.data["recordId"]


def verify(tenant, record_ids, clock) -> verification.VerifyReport:
    refs = [(tenant.id, Environment.PRODUCTION, r) for r in record_ids]
    return verification.verify_records(bootstrap.unit_of_work(), refs, now=clock(), signer=bootstrap.signer())


def test_verified_deltas_carry_a_proof_that_checks_against_the_signed_batch(api, key, credits_tenant, clock):
    ids = [submit(api, key, f"cust_{i % 2}", i + 1) for i in range(3)]
    report = verify(credits_tenant, ids, clock)
    assert len(report.verified) == 3 and len(report.batches) == 1
    batch = report.batches[0]
    public = base64.b64decode(api.get("/api/v1/verification-keys").data["keys"][0]["publicKey"])
    assert verify_signature(public, canonical(batch.statement()), batch.signature)
    for record_id in ids:
        data = api.get(f"{DELTA}/{record_id}", headers=key).data
        assert data["status"] == "VERIFIED" and data["batchId"] == batch.batch_id
        stored = bootstrap.unit_of_work().deltas.get(credits_tenant.id, Environment.PRODUCTION, record_id)
        assert data["contentHash"] == content_hash(delta_content(stored))
        assert data["proofHash"] == leaf_hash(bytes.fromhex(data["contentHash"])).hex()
        proof = [bytes.fromhex(p) for p in data["inclusionProof"]]
        assert verify_inclusion(bytes.fromhex(data["proofHash"]), data["leafIndex"], batch.tree_size, proof,
                                bytes.fromhex(batch.root))


def test_settlement_happens_once_and_a_rerun_changes_nothing(api, key, credits_tenant, world, clock):
    ids = [submit(api, key, "cust_a") for _ in range(4)]
    verify(credits_tenant, ids, clock)
    again = verify(credits_tenant, ids, clock)
    assert again.skipped == 4 and not again.verified and not again.batches
    balances = api.get("/dashboard/credit/balances", headers=world.auth(credits_tenant)).data
    assert balances == {"creditBalance": 6, "availableBalance": 6, "reserved": 0}
    items = api.get("/dashboard/credit/entries", headers=world.auth(credits_tenant)).data["items"]
    # The four holds are posted by the seal as one reservation entry, just before its settlement.
    assert [(e["type"], e["amount"], e["balanceAfter"]) for e in items] == [
        ("settlement", -4, 6), ("reservation", -4, 6), ("topup", 10, 10)]
    assert items[1]["description"] == "Credits reserved for pending verifications — 4 deltas"


def test_batches_chain_to_the_previous_root_of_their_chain_and_the_sweep_finds_missed_deltas(api, key,
                                                                                             credits_tenant, clock):
    with one_chain(5):
        first = verify(credits_tenant, [submit(api, key, "cust_a")], clock).batches[0]
        missed = submit(api, key, "cust_b")  # never handed to the verifier: the sweep must find it
        clock.advance(minutes=1)
        report = verification.sweep(bootstrap.unit_of_work(), now=clock(), signer=bootstrap.signer())
    assert [d.record_id for d in report.verified] == [missed]
    second = report.batches[0]
    assert (first.chain, second.chain) == (5, 5)
    assert second.previous_root == first.root and (first.sequence, second.sequence) == (1, 2)
    assert [b.batch_id for b in walk_chains(credits_tenant.id)[5]] == [first.batch_id, second.batch_id]
    assert verification.sweep(bootstrap.unit_of_work(), now=clock() + timedelta(minutes=1),
                              signer=bootstrap.signer()).verified == []


def test_content_that_cannot_be_canonicalised_fails_and_is_refunded(api, key, credits_tenant, world, clock):
    record_id = submit(api, key, "cust_big", metadata={"huge": 2 ** 60})
    report = verify(credits_tenant, [record_id], clock)
    assert [d.record_id for d in report.failed] == [record_id]
    data = api.get(f"{DELTA}/{record_id}", headers=key).data
    assert data["status"] == "FAILED" and "RFC 8785" in data["error"]
    assert api.get("/dashboard/credit/balances", headers=world.auth(credits_tenant)).data == {
        "creditBalance": 10, "availableBalance": 10, "reserved": 0}
    usage = api.get("/dashboard/billing/usage", headers=world.auth(credits_tenant)).data
    assert usage["consumedDeltas"] == 0  # terminal failures are released


def test_public_verify_answers_for_a_root_and_not_for_an_unknown_one(api, key, credits_tenant, clock):
    ids = [submit(api, key, "cust_a"), submit(api, key, "cust_b")]
    batch = verify(credits_tenant, ids, clock).batches[0]
    reply = api.get(f"/api/v1/verify/{batch.root}")
    assert reply.status == 200
    data = reply.data
    assert data["verified"] is True and data["proofRoot"] == batch.root
    assert [r["recordId"] for r in data["records"]] == ids
    assert data["verification"]["signatureValid"] and data["verification"]["rootValid"]
    assert "delta" not in str(data["records"]) and "cust_a" not in reply.body.decode()
    for unknown in ("0" * 64, "not-a-root"):
        answer = api.get(f"/api/v1/verify/{unknown}").data
        assert answer["verified"] is False and answer["records"] == []


# --- the queue path: seal candidates (fingerprint and hold) ride with the references ----------------------


def queued(tenant, customers: list[str], clock) -> tuple[list[tuple], list[str]]:
    """Accept one delta per customer as the route does; (the queue references ingest made, record ids)."""
    principal = ApiKeyPrincipal(tenant.id, Environment.PRODUCTION, "key_test")
    items = [DeltaInput(customer_id=c, delta=Decimal(1), reason="r") for c in customers]
    outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, items, now=clock())
    return ingest.accepted_refs(principal, outcomes), [o.data["recordId"] for o in outcomes]


def verify_refs(refs: list[tuple], clock) -> verification.VerifyReport:
    return verification.verify_records(bootstrap.unit_of_work(), refs, now=clock(), signer=bootstrap.signer())


def entries(tenant) -> list[tuple]:
    items = bootstrap.unit_of_work().credits.entries(tenant.id, 100, None).items
    return [(str(e.entry_type), e.amount, e.balance_after) for e in reversed(items)]


def test_the_queue_path_seals_by_the_candidates_without_reading_the_deltas_back(credits_tenant, clock):
    refs, ids = queued(credits_tenant, ["cust_a", "cust_b", "cust_a"], clock)
    assert [len(ref) for ref in refs] == [4, 4, 4]
    bootstrap.signer()
    with DynamoCalls.recording() as calls:
        report = verify_refs(refs, clock)
    # The credit position (for the event's remaining balance), the chain head, the seal, the posting of its
    # settlement (a snapshot of the position, the account with the entries), the per-customer counts: no delta
    # read.
    assert calls.operations == ["BatchGetItem", "GetItem", "TransactWriteItems", "TransactGetItems",
                                "TransactWriteItems", "TransactWriteItems"]
    assert [c.record_id for c in report.verified] == ids and report.skipped == 0
    uow = bootstrap.unit_of_work()
    for record_id in ids:
        stored = uow.deltas.get(credits_tenant.id, Environment.PRODUCTION, record_id)
        assert stored.status == DeltaStatus.VERIFIED and stored.credit_state == CreditState.SETTLED
        assert stored.content_hash == content_hash(delta_content(stored))  # ingest's fingerprint is the content's


def another_verifier_seals_meanwhile(monkeypatch, clock, other_refs: list[tuple],
                                    check: Callable[[verification.VerifyReport], None]) -> list[list[str]]:
    """Arrange that while the next seal is being staged (at its webhook events, before it reads its chain's
    head), another verifier verifies ``other_refs`` whole, ``check`` seeing its report. Returns the list of the
    record ids the next seal reads again after a lost race (empty if it lost none)."""
    rereads: list[list[str]] = []
    awaiting, stage_events = verification._awaiting, verification.stage_events

    def reread(uow, tenant_id, environment, record_ids):
        rereads.append(record_ids)
        return awaiting(uow, tenant_id, environment, record_ids)

    def meanwhile(*args, **kwargs):
        monkeypatch.setattr(verification, "stage_events", stage_events)
        check(verify_refs(other_refs, clock))
        return stage_events(*args, **kwargs)

    monkeypatch.setattr(verification, "_awaiting", reread)
    monkeypatch.setattr(verification, "stage_events", meanwhile)
    return rereads


def test_a_seal_committed_on_the_chain_while_another_is_staged_costs_that_one_no_retry(world, clock, monkeypatch):
    """Two verifier environments seal one tenant's chain at once: the head is read last, so a seal the other
    commits while this one stages its deltas is chained onto, rather than lost to and redone from a re-read.
    (Both on one chain here, which is the point; on two chains they would not meet at all.)"""
    tenant = world.tenant("Monthly Inc")
    refs, ids = queued(tenant, ["cust_a", "cust_b"], clock)
    other_refs, _other_ids = queued(tenant, ["cust_c"], clock)
    monkeypatch.setattr(verification, "choose_chain", lambda _lost: 0)  # both seals on one chain: the point here

    def check(other: verification.VerifyReport) -> None:
        assert len(other.batches) == 1

    rereads = another_verifier_seals_meanwhile(monkeypatch, clock, other_refs, check)
    report = verify_refs(refs, clock)
    assert rereads == [] and [c.record_id for c in report.verified] == ids
    head = bootstrap.unit_of_work().batches.head(tenant.id, Environment.PRODUCTION, 0)
    assert (report.batches[0].sequence, head.sequence, head.last_root) == (2, 2, report.batches[0].root)


def test_a_repeated_message_changes_nothing(credits_tenant, clock):
    refs, _ids = queued(credits_tenant, ["cust_a", "cust_b"], clock)
    first = verify_refs(refs, clock)
    before = entries(credits_tenant)
    again = verify_refs(refs, clock)  # SQS delivers at least once: the seal's conditions refuse, a read skips
    assert (again.skipped, again.verified, again.batches) == (2, [], [])
    assert entries(credits_tenant) == before == [("topup", 10, 10), ("reservation", -2, 8),
                                                         ("settlement", -2, 8)]
    assert len(first.batches) == 1


def test_a_candidate_that_disagrees_with_the_stored_hold_is_replaced_by_what_is_stored(credits_tenant, clock):
    refs, _ids = queued(credits_tenant, ["cust_a", "cust_b"], clock)
    wrong = [(*ref[:3], [ref[3][0], ref[3][1], 0]) for ref in refs]  # claims no hold: would leave credits held
    report = verify_refs(wrong, clock)
    assert [c.credits_reserved for c in report.verified] == [1, 1]  # re-read after the conditions refused
    assert entries(credits_tenant)[-1] == ("settlement", -2, 8)
    assert credit_service.balances(bootstrap.unit_of_work(), credits_tenant.id).reserved == 0


def test_references_to_unknown_deltas_and_unreadable_candidates(credits_tenant, clock):
    refs, _ids = queued(credits_tenant, ["cust_a"], clock)
    tenant_id, env, record_id, wire = refs[0]
    ghost = (tenant_id, env, "rec_" + "0" * 20, wire)  # no such delta: its seal condition fails, then skipped
    garbled = (tenant_id, env, record_id, ["not-a-hash", 1])  # unreadable: read like a bare reference
    report = verify_refs([ghost, garbled], clock)
    assert [c.record_id for c in report.verified] == [record_id] and report.skipped == 1


# --- several hash chains per tenant environment ---------------------------------------------------------------


def test_concurrent_seals_of_one_environment_spread_over_its_chains_and_each_chain_stays_gap_free(world, clock):
    """Verifiers seal one tenant environment at once: each seal extends a chain picked at random, so they commit
    side by side. Walked from its head, each chain is whole (sequences 1..n, each previous root the root of the
    batch before), and every batch is on exactly one chain. (A monthly tenant: seals share no credit account.)"""
    tenant = world.tenant("Monthly Inc")
    workers, seals = 8, 5
    groups = [queued(tenant, [f"cust_{w}_{n}"], clock)[0] for w in range(workers) for n in range(seals)]
    bootstrap.signer()
    start = threading.Barrier(workers)

    def verifier(worker: int) -> list:
        start.wait()
        return [batch for refs in groups[worker::workers] for batch in verify_refs(refs, clock).batches]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        batches = [batch for run in pool.map(verifier, range(workers)) for batch in run]
    assert len(batches) == workers * seals
    chains = walk_chains(tenant.id)
    assert len(chains) > 1  # 40 seals over 16 chains at random: all on one with probability 16**-39
    assert sorted(b.batch_id for run in chains.values() for b in run) == sorted(b.batch_id for b in batches)
    assert len({(b.chain, b.sequence) for b in batches}) == len(batches)  # no two batches of a chain share a place


def test_a_lost_race_for_a_chain_head_is_retried_once_on_another_chain(world, clock, monkeypatch):
    """Another verifier commits on the chain a seal picked between its read of that head and its commit: the seal
    loses the race and retries on a different chain (where its rival's peers are not racing), once."""
    tenant = world.tenant("Monthly Inc")
    refs, ids = queued(tenant, ["cust_a", "cust_b"], clock)
    rival_refs, _rival_ids = queued(tenant, ["cust_c"], clock)
    picks: list[tuple[int | None, int]] = []  # (the chain just lost on, the chain picked), per seal attempt
    choose, head = verification.choose_chain, DynamoBatchRepository.head

    def first_attempts_on_chain_7(lost: int | None) -> int:
        picks.append((lost, chain := 7 if lost is None else choose(lost)))
        return chain

    def head_then_a_rival_commits_on_it(self, tenant_id, environment, chain=0):
        read = head(self, tenant_id, environment, chain)
        if len(picks) == 1:  # the first attempt has read its head: a rival seals on that chain meanwhile
            assert [b.chain for b in verify_refs(rival_refs, clock).batches] == [7]
        return read

    monkeypatch.setattr(verification, "choose_chain", first_attempts_on_chain_7)
    monkeypatch.setattr(DynamoBatchRepository, "head", head_then_a_rival_commits_on_it)
    report = verify_refs(refs, clock)
    assert [c.record_id for c in report.verified] == ids
    [batch] = report.batches
    assert picks == [(None, 7), (None, 7), (7, batch.chain)] and batch.chain != 7  # the seal, its rival, one retry
    assert (batch.sequence, batch.previous_root) == (1, None)
    chains = {chain: [b.batch_id for b in run] for chain, run in walk_chains(tenant.id).items()}
    assert len(chains[7]) == 1 and chains[batch.chain] == [batch.batch_id] and len(chains) == 2


def test_the_chain_picked_is_random_and_after_a_lost_race_never_the_one_lost_on():
    firsts = {verification.choose_chain(None) for _ in range(2_000)}
    assert firsts == set(range(CHAINS))
    for lost in range(CHAINS):
        retries = {verification.choose_chain(lost) for _ in range(500)}
        assert lost not in retries and len(retries) > 1


def test_seals_of_a_credits_tenant_on_two_chains_commit_side_by_side_and_post_together(credits_tenant, clock,
                                                                                       monkeypatch):
    """A credits tenant's seals do not queue on its account: each ADDs its settlement to an escrow lane, so a
    seal another verifier commits (on another chain) while this one is staged costs this one nothing, and the
    ledger entries come from the postings. The seal's transaction holds no account update."""
    refs, ids = queued(credits_tenant, ["cust_a", "cust_b"], clock)
    other_refs, other_ids = queued(credits_tenant, ["cust_c", "cust_d", "cust_e"], clock)
    chains = iter([0, 1])  # this seal picks first (before its events, where the other one runs): 0; the other 1
    monkeypatch.setattr(verification, "choose_chain", lambda _lost: next(chains))

    def check(other: verification.VerifyReport) -> None:
        assert len(other.batches) == 1 and other.batches[0].chain == 1
        assert entries(credits_tenant)[-2:] == [("reservation", -5, 5), ("settlement", -3, 5)]  # posted at once


    writes: list[str] = []  # what touches the credits, in order
    repository = type(bootstrap.unit_of_work().credits)
    for name in ("settle", "record"):
        original = getattr(repository, name)
        monkeypatch.setattr(repository, name, lambda self, *a, _name=name, _original=original, **k: (
            writes.append(_name), _original(self, *a, **k))[1])
    post = verification.post_settlements
    monkeypatch.setattr(verification, "post_settlements", lambda *a, **k: (writes.append("post"), post(*a, **k))[1])
    rereads = another_verifier_seals_meanwhile(monkeypatch, clock, other_refs, check)
    report = verify_refs(refs, clock)
    assert rereads == [] and [c.record_id for c in report.verified] == ids  # no lost race: nothing read again
    assert [(b.chain, b.sequence) for b in report.batches] == [(0, 1)]
    # the account (``record``) is written by the postings only, never by a seal (``settle``: a lane)
    assert writes == ["settle", "settle", "post", "record", "post", "record"]
    # this seal's posting: the other's was posted already, so one settlement of its own 2
    assert entries(credits_tenant) == [("topup", 10, 10), ("reservation", -5, 5), ("settlement", -3, 5),
                                       ("settlement", -2, 5)]
    live = credit_service.balances(bootstrap.unit_of_work(), credits_tenant.id)
    assert (live.credit_balance, live.reserved, live.available) == (5, 0, 5)
    assert len(other_ids) == 3


def test_a_later_group_that_keeps_losing_leaves_the_committed_seals_posted_and_counted(credits_tenant, clock,
                                                                                      monkeypatch):
    """A run seals 90 deltas, then its second group loses every race: the run fails (the queue redelivers),
    but the first seal's settlement is posted and its counts applied before it does, rather than left to the
    sweep."""
    credit_service.topup(bootstrap.unit_of_work(), credits_tenant.id, 200, actor="test", now=clock())
    refs, ids = queued(credits_tenant, [f"cust_{n % 7}" for n in range(100)], clock)
    seal_once, calls = verification._seal_once, []

    def second_group_always_loses(uow, signer, tenant_id, environment, deltas, *args, **kwargs):
        calls.append(len(deltas))
        if len(calls) > 1:
            raise ConcurrentWriteError()
        return seal_once(uow, signer, tenant_id, environment, deltas, *args, **kwargs)

    monkeypatch.setattr(verification, "_seal_once", second_group_always_loses)
    with pytest.raises(ConcurrentWriteError):
        verify_refs(refs, clock)
    assert calls[0] == 90 and len(calls) == 1 + verification.MAX_ATTEMPTS
    uow = bootstrap.unit_of_work()
    assert entries(credits_tenant)[-2:] == [("settlement", -81, 110), ("release", 9, 119)]  # the 90, posted
    assert uow.customers.stats(credits_tenant.id, Environment.PRODUCTION).verified == 90  # and counted
    assert uow.credits.position(credits_tenant.id).unposted_settled == Settled()
    assert sum(1 for d in uow.deltas.get_many(credits_tenant.id, Environment.PRODUCTION, ids)
               if d.status == DeltaStatus.VERIFIED) == 90
