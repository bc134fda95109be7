"""Sealed batch statements: what the signature commits to, on the first chain and off it."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.signing import Signer, verify_signature
from chalicelib.domain import batches
from chalicelib.domain.batches import SealedBatch
from chalicelib.domain.fingerprints import canonical
from tests.unit.builders import NOW

SIGNER = Signer(b"\x07" * 32)
BATCH = SealedBatch(batch_id="bat_1", tenant_id="2", environment="production", root="ab" * 32, tree_size=3,
                    sequence=7, previous_root="cd" * 32, sealed_at=NOW, key_id="k1", record_ids=("r1", "r2", "r3"),
                    leaf_hashes=("00" * 32,) * 3)
# What a batch signed before there were several chains: its statement's bytes, and SIGNER's signature of them.
BEFORE_CHAINS = (b'{"batchId":"bat_1","environment":"production","keyId":"k1","previousRoot":"' + b"cd" * 32
                 + b'","root":"' + b"ab" * 32 + b'","sealedAt":"2026-04-15T12:00:00.000Z","sequence":7,'
                 b'"tenantId":"2","treeSize":3,"type":"tally.batch/v1"}')
SIGNED_BEFORE_CHAINS = "CUJjMrsd0jeWJqGR2dYypVJHq4+hzGoYL3A++x54TA+K4/uKOzOpFSRQj8bG+LRiJE7HgVhSi4a4dNOpLKCfAQ=="


def test_a_batch_on_the_first_chain_signs_the_very_bytes_batches_signed_before_chains():
    assert BATCH.chain == 0 and "chain" not in BATCH.statement()
    assert canonical(BATCH.statement()) == BEFORE_CHAINS
    assert SIGNER.sign(canonical(BATCH.statement())) == SIGNED_BEFORE_CHAINS


def test_a_batch_off_the_first_chain_signs_its_chain():
    on_3 = replace(BATCH, chain=3)
    assert on_3.statement() == {**BATCH.statement(), "chain": 3}
    assert canonical(on_3.statement()) == BEFORE_CHAINS.replace(b'"environment"', b'"chain":3,"environment"')
    signature = SIGNER.sign(canonical(on_3.statement()))
    assert verify_signature(SIGNER.public_key.raw, canonical(on_3.statement()), signature)
    for other in (BATCH, replace(BATCH, chain=4)):  # its signature holds for no other chain
        assert not verify_signature(SIGNER.public_key.raw, canonical(other.statement()), signature)


def test_chain_0_keeps_the_one_chain_key_and_each_chain_has_its_own():
    assert list(keys.CHAINS) == list(range(batches.CHAINS))
    assert keys.chain_pk("2", "production") == keys.chain_pk("2", "production", 0) == "T#2#E#production#CHAIN"
    assert keys.chain_pk("2", "production", 3) == "T#2#E#production#CHAIN#3"
    assert len({keys.chain_pk("2", "production", chain) for chain in keys.CHAINS}) == batches.CHAINS
