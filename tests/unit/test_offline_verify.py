"""Offline proof checks (`tally verify`): bundles and batch documents built as the API builds them."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.adapters.signing import Signer
from chalicelib.cli.main import main
from chalicelib.domain.batches import SealedBatch
from chalicelib.domain.deltas import Delta
from chalicelib.domain.fingerprints import CONTENT_VERSION, canonical, content_hash, delta_content
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import MerkleTree, leaf_hash
from chalicelib.jsoncodec import dumps
from chalicelib.offline_verify import CONTENT, DocumentError, check, loads
from chalicelib.offline_verify import CONTENT_VERSION as CHECKER_VERSION
from tests.unit.builders import NOW

SIGNER = Signer(b"\x07" * 32)
OTHER = Signer(b"\x08" * 32)
METADATA = {"rate": Decimal("0.30000000000000004"), "tiny": Decimal("2.5E-7"), "n": [1, Decimal("1.0")],
            "note": 'café "q" \\ \n ✓'}


def _delta(i: int) -> Delta:
    return Delta(tenant_id="2", environment=Environment.PRODUCTION, record_id=f"rec_{i:04d}", receipt_id=f"rcpt_{i}",
                 customer_id=f"cust_{i % 3}", sequence_number=i + 1, delta=Decimal("10.5") * (i + 1),
                 reason="API calls", period="2026-04", created_at=NOW + timedelta(seconds=i),
                 reference_id=None if i % 2 else f"inv-{i}", metadata=METADATA if i == 0 else None)


def _envelope(data: Any) -> dict:
    return {"statusCode": 200, "success": True, "data": data}


def build(size: int, signer: Signer = SIGNER, key_id: str | None = None, chain: int = 0) -> tuple[list[dict], dict]:
    """Bundles for every leaf of one signed batch of ``size`` deltas on ``chain``, and the batch's verify answer
    (``key_id``: the id the batch and key carry, when not the key's own)."""
    key_id = key_id or signer.key_id
    contents = [delta_content(_delta(i)) for i in range(size)]
    hashes = [content_hash(c) for c in contents]
    tree = MerkleTree([leaf_hash(bytes.fromhex(h)) for h in hashes])
    batch = SealedBatch(batch_id="bat_1", tenant_id="2", environment="production", root=tree.root.hex(),
                        tree_size=size, sequence=1, previous_root=None, sealed_at=NOW, key_id=key_id,
                        record_ids=tuple(c["recordId"] for c in contents),
                        leaf_hashes=tuple(h.hex() for h in tree.levels[0]), chain=chain)
    batch = replace(batch, signature=signer.sign(canonical(batch.statement())))
    key = {"keyId": key_id, "algorithm": "Ed25519", "publicKey": base64.b64encode(signer.public_key.raw).decode()}
    bundles = [{
        "type": "tally.delta-proof/v1", "recordId": c["recordId"], "content": c, "contentHash": hashes[i],
        "leafHash": batch.leaf_hashes[i], "leafIndex": i, "treeSize": size,
        "inclusionProof": [p.hex() for p in tree.inclusion_proof(i)], "proofRoot": batch.root,
        "batch": {"statement": batch.statement(), "signature": batch.signature}, "publicKey": key,
    } for i, c in enumerate(contents)]
    verify = {
        "verified": True, "proofRoot": batch.root, "recordedAt": batch.statement()["sealedAt"],
        "summary": {"batchId": "bat_1", "treeSize": size, "chain": chain, "sequence": 1, "environment": "production",
                    "previousRoot": None},
        "records": [{"recordId": r, "leafIndex": i, "leafHash": h}
                    for i, (r, h) in enumerate(zip(batch.record_ids, batch.leaf_hashes, strict=True))],
        "verification": {"algorithm": "Ed25519", "keyId": key_id, "publicKey": key["publicKey"],
                         "signature": batch.signature, "statement": batch.statement(), "signatureValid": True,
                         "rootValid": True},
    }
    return bundles, verify


def keys_doc(signer: Signer = SIGNER) -> dict:
    return _envelope({"keys": [signer.public_key.view()]})


def verdict(raw: bytes, keys: Any = None) -> bool:
    try:
        return check(loads(raw), keys=keys).ok
    except DocumentError:
        return False


def test_the_checker_reads_the_content_the_fingerprint_commits_to():
    assert CHECKER_VERSION == CONTENT_VERSION
    assert set(CONTENT) == set(delta_content(_delta(0)))


def test_the_checker_imports_nothing_from_aws_chalice_or_the_service_layers():
    probe = ("import sys, chalicelib.offline_verify\n"
             "bad = [m for m in sys.modules if m.split('.')[0] in {'boto3', 'botocore', 'chalice', 'pynamodb'}\n"
             "       or m.startswith(('chalicelib.adapters', 'chalicelib.services', 'chalicelib.api'))]\n"
             "print(bad)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 17])
def test_every_leaf_of_trees_of_several_sizes_verifies(size):
    bundles, verify = build(size)
    for bundle in bundles:
        report = check(loads(dumps(_envelope(bundle))), keys=keys_doc())
        assert report.ok, [c for c in report.checks if not c.ok]
        assert report.kind == "delta proof bundle"
    assert check(verify).ok and check(_envelope(verify), keys=keys_doc()).ok


def test_flipping_any_byte_of_a_bundle_fails():
    bundle = dumps(_envelope(build(3)[0][0])).encode()
    assert verdict(bundle)
    survivors = [i for i in range(len(bundle)) if verdict(bundle[:i] + bytes([bundle[i] ^ 1]) + bundle[i + 1:])]
    assert survivors == []


def test_each_named_check_catches_its_own_fault():
    bundle = build(3)[0][1]

    def failing(**changes: Any) -> set[str]:
        doc = json.loads(json.dumps(bundle))
        for path, value in changes.items():
            target = doc
            *parents, last = path.split("__")
            for p in parents:
                target = target[p]
            target[last] = value
        return {c.name for c in check(doc).checks if not c.ok}

    assert failing(content__reason="other") == {"content hash"}
    assert failing(leafIndex=0) == {"inclusion proof"}
    assert failing(treeSize=4) == {"root and size"}  # leaf 1's path is the same in trees of 3 and 4
    assert failing(recordId="rec_0000") == {"record"}
    assert failing(publicKey__keyId="k2") == {"key id"}
    assert failing(batch__statement__sequence=2) == {"signature"}
    assert failing(contentHash="A" * 64) == {"structure"}
    assert failing(content__extra=1) == {"structure"}
    assert failing(leafIndex=True) == {"structure"}


def test_a_batch_document_verifies_and_a_changed_leaf_or_statement_fails():
    verify = build(7)[1]
    raw = dumps(_envelope(verify)).encode()
    assert verdict(raw, keys_doc())
    leaf = verify["records"][3]["leafHash"]
    assert not verdict(raw.replace(leaf.encode(), (leaf[:-1] + ("0" if leaf[-1] != "0" else "1")).encode()))
    assert not verdict(raw.replace(b'"treeSize":7', b'"treeSize":6'))
    assert not verdict(raw.replace(b'"leafIndex":1', b'"leafIndex":2', 1))
    assert not verdict(raw.replace(b'"verified":true', b'"verified":false'))
    notes = check(verify).notes
    assert any("not covered by the signature" in n for n in notes)


def _failing(document: dict, **changes: Any) -> set[str]:
    """The checks that fail once ``changes`` are made (``a__b``: member ``b`` of ``a``; None: removed)."""
    doc = json.loads(json.dumps(document))
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for p in parents:
            target = target[p]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return {c.name for c in check(doc).checks if not c.ok}


def test_a_batch_off_the_first_chain_verifies_and_its_chain_is_signed():
    bundles, verify = build(3, chain=3)
    assert bundles[0]["batch"]["statement"]["chain"] == 3 and verify["summary"]["chain"] == 3
    assert all(check(bundle, keys=keys_doc()).ok for bundle in bundles) and check(verify, keys=keys_doc()).ok
    assert _failing(bundles[1], batch__statement__chain=4) == {"signature"}
    assert _failing(bundles[1], batch__statement__chain=None) == {"signature"}  # passed off as chain 0's
    assert _failing(verify, verification__statement__chain=4, summary__chain=4) == {"signature"}
    assert _failing(verify, summary__chain=2) == {"summary"}
    assert _failing(verify, summary__chain=None) == {"summary"}  # no chain in the summary is chain 0
    for wrong in (0, -1, True, 1.5, "3"):  # chain 0 is never named; a chain is an integer
        assert _failing(bundles[0], batch__statement__chain=wrong) == {"structure"}


def test_a_batch_answer_saved_before_there_were_chains_still_verifies():
    verify = build(2)[1]
    assert "chain" not in verify["verification"]["statement"] and verify["summary"]["chain"] == 0
    assert check(verify).ok and not _failing(verify, summary__chain=None)
    assert _failing(verify, summary__chain=1) == {"summary"}
    assert _failing(verify, verification__statement__chain=1, summary__chain=1) == {"signature"}


def test_the_published_key_pins_the_embedded_one():
    bundle = build(2)[0][0]
    assert check(bundle, keys=keys_doc()).ok
    failed = [c for c in check(bundle, keys=keys_doc(OTHER)).checks if not c.ok]
    assert [c.name for c in failed] == ["published key"] and "not published" in failed[0].detail
    assert not check(bundle, keys=_envelope({"keys": []})).ok
    # A bundle re-signed with another key is self-consistent, but not by the published key.
    forged = build(2, OTHER)[0][0]
    assert check(forged).ok and not check(forged, keys=keys_doc()).ok
    with pytest.raises(DocumentError):
        check(bundle, keys={"keys": [{"keyId": "k1"}]})


def test_a_retired_key_listed_in_the_keys_answer_still_pins_what_it_signed():
    bundle, verify = build(2, OTHER)
    keys = _envelope({"keys": [SIGNER.public_key.view(), OTHER.public_key.view("retired")]})
    assert check(bundle[0], keys=keys).ok and check(verify, keys=keys).ok


def test_key_ids_commit_to_their_key():
    bundle, verify = build(2, SIGNER, key_id=OTHER.key_id)  # signed by SIGNER under OTHER's id
    for doc in (bundle[0], verify):
        assert [c.name for c in check(doc).checks if not c.ok] == ["key id"]
    # Documents signed before ids were derived carry another kind of id: compared, not recomputed.
    legacy_bundle, legacy_verify = build(2, SIGNER, key_id="k1")
    assert check(legacy_bundle[1]).ok and check(legacy_verify).ok


def test_strict_json_refuses_what_could_hide_a_change():
    with pytest.raises(DocumentError, match="not written canonically"):
        loads('{"a": 0.30000000000000005}')  # the same double as 0.30000000000000004
    with pytest.raises(DocumentError, match="duplicate key"):
        loads('{"a": 1, "a": 2}')
    for bad in ('{"a": NaN}', '{"a": -0}', '{"a": 1.50}', '{"a": 1E5}', b'{"a": "\xff"}', "not json"):
        with pytest.raises(DocumentError):
            loads(bad)
    assert loads('{"a": 2.5e-07, "b": 2.5e-7, "c": 0.30000000000000004}')["c"] == 0.30000000000000004
    # Base64 with spare bits set decodes to the same bytes; it is refused all the same.
    bundle = build(1)[0][0]
    signature = bundle["batch"]["signature"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sloppy = signature[:-3] + alphabet[alphabet.index(signature[-3]) ^ 1] + "=="
    assert base64.b64decode(sloppy) == base64.b64decode(signature)
    bundle["batch"]["signature"] = sloppy
    assert [c.name for c in check(bundle).checks if not c.ok] == ["structure"]


def test_unknown_documents_are_refused():
    for doc in ({}, [], {"type": "tally.delta-proof/v2"}, _envelope({"keys": []}),
                {"statusCode": 200, "success": True, "data": build(1)[0][0], "extra": 1}):
        with pytest.raises(DocumentError):
            check(doc)


def test_the_cli_reports_and_exits_0_1_or_2(tmp_path, capsys, monkeypatch):
    bundle = build(3)[0][2]
    good, keys = tmp_path / "proof.json", tmp_path / "keys.json"
    good.write_text(dumps(_envelope(bundle)))
    keys.write_text(dumps(keys_doc()))
    assert main(["verify", str(good), "--keys", str(keys)]) == 0
    out = capsys.readouterr().out
    assert "✓ signature" in out and "✓ published key" in out and out.rstrip().endswith("\nVERIFIED")

    bad = tmp_path / "bad.json"
    bad.write_text(dumps(_envelope({**bundle, "leafIndex": 0})))
    assert main(["verify", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "✗ inclusion proof" in out and out.rstrip().endswith("NOT VERIFIED")
    assert main(["verify", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True

    other_keys = tmp_path / "other.json"
    other_keys.write_text(dumps(keys_doc(OTHER)))
    assert main(["verify", str(good), "--keys", str(other_keys)]) == 1
    capsys.readouterr()

    garbage = tmp_path / "garbage.json"
    garbage.write_text("{nope")
    for argv in (["verify", str(tmp_path / "missing.json")], ["verify", str(garbage)],
                 ["verify", str(keys)], ["verify", str(good), "--keys", str(garbage)]):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("error: ")

    monkeypatch.setattr(sys, "stdin", type("In", (), {"buffer": good.open("rb")})())
    assert main(["verify", "-"]) == 0
