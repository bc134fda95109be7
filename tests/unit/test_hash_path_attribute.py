"""The inclusion proof's storage form: one binary value, read back as the hex hashes it was given."""

from __future__ import annotations

import hashlib

from chalicelib.adapters.dynamodb.models import DeltaRecord, HashPathAttribute

HASHES = [hashlib.sha256(bytes([i])).hexdigest() for i in range(7)]


def test_a_proof_is_stored_as_32_bytes_a_hash_and_read_back_as_hex():
    attribute = HashPathAttribute()
    stored = attribute.serialize(HASHES)
    assert isinstance(stored, bytes) and len(stored) == 32 * len(HASHES)
    assert attribute.deserialize(attribute.get_value({"B": stored})) == HASHES
    assert attribute.deserialize(attribute.get_value({"B": attribute.serialize([])})) == []  # a tree of one leaf


def test_a_delta_stored_with_the_earlier_list_of_hex_strings_still_reads():
    raw = {"pk": {"S": "T#t#E#production#D#rec_1"}, "sk": {"S": "DELTA"},
           "proof": {"L": [{"S": h} for h in HASHES]}}
    assert DeltaRecord.from_raw_data(raw).proof == HASHES
    assert DeltaRecord.from_raw_data({**raw, "proof": {"B": bytes.fromhex("".join(HASHES))}}).proof == HASHES
