"""Delta fingerprints: RFC 8785 canonical JSON, SHA-256, exact decimals."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.domain.deltas import Delta
from chalicelib.domain.fingerprints import canonical, content_hash, delta_content
from chalicelib.domain.identity import Environment

DELTA = Delta(tenant_id="2", environment=Environment.PRODUCTION, record_id="rec_1", receipt_id="rcpt_1",
              customer_id="cust_123", sequence_number=7, delta=Decimal("10.50"), reason="API calls",
              period="2026-04", created_at=datetime(2026, 4, 15, 12, 0, tzinfo=UTC), reference_id="inv-1",
              metadata={"b": 1, "a": "x"})


def test_content_carries_the_exact_decimal_as_its_canonical_string():
    content = delta_content(DELTA)
    assert content["delta"] == "10.5" and content["createdAt"] == "2026-04-15T12:00:00.000Z"
    assert delta_content(replace(DELTA, delta=Decimal("-0.000001")))["delta"] == "-0.000001"


def test_the_hash_is_sha256_of_the_rfc8785_form():
    content = delta_content(DELTA)
    # For ASCII strings and integers, JCS equals key-sorted compact JSON.
    expected = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    assert canonical(content) == expected
    assert content_hash(content) == hashlib.sha256(expected).hexdigest()


def test_key_order_does_not_change_the_hash():
    content = delta_content(DELTA)
    assert content_hash(dict(reversed(list(content.items())))) == content_hash(content)


@pytest.mark.parametrize("change", [
    {"delta": Decimal("10.51")}, {"customer_id": "cust_124"}, {"sequence_number": 8}, {"reason": "API call"},
    {"reference_id": None}, {"metadata": {"b": 2, "a": "x"}}, {"record_id": "rec_2"}, {"tenant_id": "3"},
    {"environment": Environment.SANDBOX},
])
def test_every_committed_field_changes_the_hash(change):
    assert content_hash(delta_content(replace(DELTA, **change))) != content_hash(delta_content(DELTA))


def test_metadata_decimals_hash_as_json_numbers():
    content = delta_content(replace(DELTA, metadata={"rate": Decimal("1.25"), "n": Decimal(3)}))
    assert b'"metadata":{"n":3,"rate":1.25}' in canonical(content)
