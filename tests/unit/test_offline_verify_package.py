"""Offline checks of customer verification packages (`tally verify`), built from real domain objects."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.adapters.signing import Signer
from chalicelib.cli.main import main
from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.deltas import Delta
from chalicelib.domain.fingerprints import canonical, content_hash, delta_content
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import EMPTY_ROOT, MerkleTree, leaf_hash
from chalicelib.offline_verify import DocumentError, check, loads
from tests.unit.builders import NOW

SIGNER = Signer(b"\x07" * 32)
OTHER = Signer(b"\x08" * 32)
METADATA = {"rate": Decimal("0.30000000000000004"), "tiny": Decimal("2.5E-7"), "note": 'café "q" \\ \n ✓'}


def deltas(size: int) -> list[Delta]:
    """One customer's verified deltas of April 2026, with a gap in the sequence (a skipped failed delta)."""
    return [Delta(tenant_id="2", environment=Environment.PRODUCTION, record_id=f"rec_{i:04d}", receipt_id=f"r{i}",
                  customer_id="cust_a", sequence_number=3 + i + (i >= 2), delta=Decimal(2 * i - 3) / 4,
                  reason="API calls", period="2026-04", created_at=NOW + timedelta(hours=i),
                  reference_id=f"inv-{i}" if i % 2 else None, metadata=METADATA if i == 0 else None)
            for i in range(size)]


def key(signer: Signer) -> dict[str, str]:
    return {"keyId": signer.key_id, "algorithm": "Ed25519",
            "publicKey": base64.b64encode(signer.public_key.raw).decode()}


def package(leaves: list[Delta], picks: list[int], signer: Signer = SIGNER,
            checkpoint_signer: Signer | None = None) -> dict[str, Any]:
    """What the server issues: a signed checkpoint over ``leaves`` and the sampled leaves ``picks``; a
    ``checkpoint_signer`` other than ``signer`` is a key retired since it signed the checkpoint."""
    checkpoint_signer = checkpoint_signer or signer
    contents = [delta_content(d) for d in leaves]
    hashes = [content_hash(c) for c in contents]
    tree = MerkleTree([leaf_hash(bytes.fromhex(h)) for h in hashes])
    checkpoint = Checkpoint(
        checkpoint_id="chk_1", tenant_id="2", environment="production", customer_id="cust_a", period="2026-04",
        sequence=2 if leaves else 1, root=tree.root.hex(), tree_size=tree.size,
        first_sequence=leaves[0].sequence_number if leaves else None,
        last_sequence=leaves[-1].sequence_number if leaves else None,
        net_change=sum((d.delta for d in leaves), Decimal(0)), previous_root=EMPTY_ROOT.hex() if leaves else None,
        previous_tree_size=0 if leaves else None, consistency_proof=(), created_at=NOW + timedelta(days=1),
        key_id=checkpoint_signer.key_id)
    return signed({
        "type": "tally.verification-package/v1", "packageId": "pkg_0c3Xk2aQ9rTzW1bLmN4p", "customerId": "cust_a",
        "period": "2026-04", "generatedAt": "2026-04-16T12:00:00.000Z",
        "checkpoint": {"statement": checkpoint.statement(),
                       "signature": checkpoint_signer.sign(canonical(checkpoint.statement())),
                       **({"publicKey": key(checkpoint_signer)} if checkpoint_signer is not signer else {})},
        "publicKey": key(signer),
        "sampleSize": len(picks),
        "samples": [{"recordId": contents[i]["recordId"], "content": contents[i], "contentHash": hashes[i],
                     "leafHash": tree.levels[0][i].hex(), "leafIndex": i,
                     "inclusionProof": [p.hex() for p in tree.inclusion_proof(i)]} for i in picks],
    }, signer)


def signed(doc: dict[str, Any], signer: Signer = SIGNER) -> dict[str, Any]:
    """Sign the whole package as the server does (tests that alter a field re-sign, so only the check that
    the alteration should trip fails)."""
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    return {**unsigned, "signature": signer.sign(canonical(unsigned))}


def raw(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()  # as the server writes it


def keys_doc(signer: Signer, *retired: Signer) -> bytes:
    listed = [signer.public_key.view(), *(r.public_key.view("retired") for r in retired)]
    return raw({"statusCode": 200, "success": True, "data": {"keys": listed}})


def failing(doc: Any, keys: bytes | None = None, signer: Signer = SIGNER) -> set[str]:
    report = check(loads(raw(signed(doc, signer))), keys=loads(keys) if keys else None)
    return {c.name for c in report.checks if not c.ok}


def verdict(data: bytes) -> bool:
    try:
        return check(loads(data)).ok
    except DocumentError:
        return False


@pytest.mark.parametrize("size, picks", [(1, [0]), (2, [1]), (2, [0, 1]), (5, [0, 2, 4]), (5, [3]), (17, [0, 8, 16]),
                                         (17, [5, 6, 7, 15]), (17, list(range(17))), (0, [])])
def test_packages_of_several_sizes_verify(tmp_path, capsys, size, picks):
    doc = package(deltas(size), picks)
    path = tmp_path / "package.json"
    path.write_bytes(raw({"statusCode": 200, "success": True, "data": doc} if size % 2 else doc))
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: verification package\n") and out.rstrip().endswith("\nVERIFIED")
    assert "✓ inclusion proof: " + (f"{len(picks)} sample(s)" if picks else "no samples") in out


def test_flipping_any_byte_of_a_package_fails():
    data = raw(package(deltas(5), [0, 3]))
    assert verdict(data)
    assert not [i for i in range(len(data)) if verdict(data[:i] + bytes([data[i] ^ 1]) + data[i + 1:])]


def test_the_whole_package_is_signed():
    doc = package(deltas(5), [0, 3])
    assert failing(doc) == set()
    relabelled = {**doc, "packageId": "pkg_0c3Xk2aQ9rTzW1bLmN4q", "generatedAt": "2026-04-17T12:00:00.000Z"}
    assert check(loads(raw(relabelled))).ok is False
    assert {c.name for c in check(loads(raw(relabelled))).checks if not c.ok} == {"package signature"}


def test_each_package_check_catches_its_own_fault():
    leaves = deltas(5)
    doc = package(leaves, [0, 3])
    foreign = package([*leaves[:2], replace(leaves[2], customer_id="cust_b"), *leaves[3:]], [1, 2, 4])
    assert failing(foreign) == {"tenant, environment and customer"}
    report = check(foreign)
    assert "sample rec_0002 (leaf 2)" in next(c.detail for c in report.checks if not c.ok)
    may = replace(leaves[4], created_at=datetime(2026, 5, 1, tzinfo=UTC))
    assert failing(package([*leaves[:4], may], [4])) == {"sample period"}
    assert failing({**doc, "samples": [doc["samples"][0], *doc["samples"]], "sampleSize": 3}) == {"leaf order"}
    assert failing({**doc, "samples": doc["samples"][::-1]}) == {"leaf order"}
    assert failing({**doc, "sampleSize": 3}) == {"sample size"}
    assert failing({**doc, "customerId": "cust_b"}) == {"customer and period"}
    assert failing({**doc, "period": "2026-03"}) == {"customer and period"}
    assert failing({**doc, "samples": [{**doc["samples"][0], "recordId": "rec_0003"}, doc["samples"][1]]}) == {
        "record"}
    assert failing(package([leaves[1], leaves[0], *leaves[2:]], [1])) == {"sequence numbers"}
    assert failing({**doc, "publicKey": {**doc["publicKey"], "keyId": "k2"}}) == {"key id"}
    assert failing({**doc, "period": "2026-13"}) == {"structure"}
    assert failing({**doc, "generatedAt": "2026-02-30T12:00:00.000Z"}) == {"structure"}
    with pytest.raises(DocumentError, match="verification package"):
        check({"type": "tally.verification-package/v2"})


def test_the_published_key_pins_the_package_key(tmp_path):
    path, keys, other = tmp_path / "package.json", tmp_path / "keys.json", tmp_path / "other.json"
    path.write_bytes(raw(package(deltas(5), [1, 4])))
    keys.write_bytes(keys_doc(SIGNER))
    other.write_bytes(keys_doc(OTHER))
    assert main(["verify", str(path), "--keys", str(keys)]) == 0
    assert main(["verify", str(path), "--keys", str(other)]) == 1
    assert failing(package(deltas(5), [1, 4]), keys_doc(OTHER)) == {"published key"}
    forged = package(deltas(5), [1, 4], signer=OTHER)  # self-consistent, but not signed by the published key
    assert failing(forged, signer=OTHER) == set()
    assert failing(forged, keys_doc(SIGNER), signer=OTHER) == {"published key"}


def test_a_checkpoint_signed_before_a_rotation_verifies_with_its_retired_key(tmp_path, capsys):
    doc = package(deltas(5), [1, 4], signer=OTHER, checkpoint_signer=SIGNER)  # SIGNER retired, OTHER signs now
    assert doc["checkpoint"]["publicKey"] == key(SIGNER) and doc["publicKey"] == key(OTHER)
    assert failing(doc, signer=OTHER) == set()
    assert failing(doc, keys_doc(OTHER, SIGNER), signer=OTHER) == set()
    assert failing(doc, keys_doc(OTHER), signer=OTHER) == {"published checkpoint key"}
    assert failing(doc, keys_doc(SIGNER), signer=OTHER) == {"published key"}
    path, keys = tmp_path / "package.json", tmp_path / "keys.json"
    path.write_bytes(raw(doc))
    keys.write_bytes(keys_doc(OTHER, SIGNER))
    assert main(["verify", str(path), "--keys", str(keys)]) == 0
    assert "published key (retired)" in capsys.readouterr().out
    # Without the retired key the checkpoint's signature cannot hold; with the wrong one neither.
    bare = {**doc, "checkpoint": {k: v for k, v in doc["checkpoint"].items() if k != "publicKey"}}
    assert failing(bare, signer=OTHER) == {"key id", "signature"}
    swapped = {**doc, "checkpoint": {**doc["checkpoint"], "publicKey": key(OTHER)}}
    assert failing(swapped, signer=OTHER) == {"key id", "signature"}
    assert failing({**doc, "checkpoint": {**doc["checkpoint"], "extra": 1}}, signer=OTHER) == {"structure"}


def test_a_key_id_in_the_derived_format_must_be_the_keys_thumbprint():
    doc = package(deltas(3), [0])
    misnamed = {**doc, "publicKey": {**doc["publicKey"], "keyId": OTHER.key_id}}
    assert failing(misnamed) == {"key id"}
    report = check(loads(raw(signed(misnamed))))
    assert "thumbprint is" in next(c.detail for c in report.checks if c.name == "key id")
