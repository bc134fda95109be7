"""Wire formats of time, and the opaque paging cursors bound to their partition."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.adapters.dynamodb.cursors import (
    decode_cursor,
    decode_merged_cursor,
    encode_cursor,
    encode_merged_cursor,
)
from chalicelib.domain.clock import iso_ms, iso_us, parse_iso, period_of, utcnow
from chalicelib.domain.errors import ValidationError

PLUS_TWO = timezone(timedelta(hours=2))

# --- clock ---------------------------------------------------------------------------------


@pytest.mark.parametrize("moment, expected", [
    (datetime(2025, 1, 15, 10, 30, tzinfo=UTC), "2025-01-15T10:30:00.000Z"),
    (datetime(2025, 1, 15, 10, 30, 5, 123456, tzinfo=UTC), "2025-01-15T10:30:05.123Z"),
    (datetime(2025, 1, 15, 10, 30, 5, 999999, tzinfo=UTC), "2025-01-15T10:30:05.999Z"),  # truncated, not rounded
    (datetime(2025, 1, 15, 12, 30, tzinfo=PLUS_TWO), "2025-01-15T10:30:00.000Z"),
    (None, None),
])
def test_iso_ms_is_utc_with_milliseconds(moment, expected):
    assert iso_ms(moment) == expected


@pytest.mark.parametrize("moment, expected", [
    (datetime(2026, 5, 5, 12, 21, 32, tzinfo=UTC), "2026-05-05T12:21:32.000000Z"),
    (datetime(2026, 5, 5, 12, 21, 32, 7, tzinfo=UTC), "2026-05-05T12:21:32.000007Z"),
    (datetime(2026, 5, 5, 14, 21, 32, tzinfo=PLUS_TWO), "2026-05-05T12:21:32.000000Z"),
    (None, None),
])
def test_iso_us_is_utc_with_microseconds(moment, expected):
    assert iso_us(moment) == expected


def test_iso_us_strings_sort_chronologically():
    base = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [base + timedelta(microseconds=n) for n in (0, 1, 10, 999_999, 1_000_000)] + [
        base + timedelta(days=40), base + timedelta(days=400)]
    assert sorted(moments, key=iso_us) == moments


def test_parse_iso_reads_both_formats_back():
    moment = datetime(2026, 5, 5, 12, 21, 32, 123000, tzinfo=UTC)
    assert parse_iso(iso_us(moment)) == moment
    assert parse_iso(iso_ms(moment)) == moment
    assert parse_iso("2026-05-05T14:21:32+02:00") == datetime(2026, 5, 5, 12, 21, 32, tzinfo=UTC)


def test_period_of_is_the_utc_month():
    assert period_of(datetime(2026, 4, 30, 23, 59, tzinfo=UTC)) == "2026-04"
    assert period_of(datetime(2026, 5, 1, 1, 0, tzinfo=PLUS_TWO)) == "2026-04"


def test_utcnow_is_timezone_aware_utc():
    assert utcnow().utcoffset() == timedelta(0)


# --- cursors -------------------------------------------------------------------------------

PARTITION = ("pk", "T#2#E#production")
KEYS = ("pk", "sk")
LAST_KEY = {"pk": {"S": "T#2#E#production"}, "sk": {"S": "KEY#abc"}}


def _raw(payload: object) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str | None, **kw):
    kw.setdefault("partition", PARTITION)
    kw.setdefault("key_names", KEYS)
    return decode_cursor(cursor, **kw)


def test_cursor_round_trips_to_the_key_and_the_next_page_number():
    cursor = encode_cursor(LAST_KEY, 3)
    assert cursor is not None and "=" not in cursor
    assert _decode(cursor) == (LAST_KEY, 4)


def test_index_cursor_round_trips_with_all_four_keys():
    last_key = {"pk": {"S": "T#9"}, "sk": {"S": "TENANT"}, "directory_pk": {"S": "TENANTS"},
                "directory_sk": {"S": "00000000000000000009"}}
    cursor = encode_cursor(last_key, 1)
    assert _decode(cursor, partition=("directory_pk", "TENANTS"), key_names=tuple(last_key)) == (last_key, 2)


@pytest.mark.parametrize("last_key", [None, {}])
def test_no_last_key_means_no_cursor(last_key):
    assert encode_cursor(last_key, 1) is None


@pytest.mark.parametrize("cursor", [None, ""])
def test_no_cursor_starts_at_page_one(cursor):
    assert _decode(cursor) == (None, 1)


@pytest.mark.parametrize("cursor", [
    "!!!",
    "not-a-cursor",
    _raw("not json"),
    _raw([1, 2]),
    _raw({"p": 1}),
    _raw({"k": LAST_KEY}),
    _raw({"k": LAST_KEY, "p": "two"}),
    _raw({"k": LAST_KEY, "p": None}),
    _raw({"k": LAST_KEY, "p": 1.0}),
    _raw({"k": LAST_KEY, "p": True}),
    _raw({"k": "T#2#E#production", "p": 1}),
    _raw({"k": {"sk": {"S": "KEY#abc"}}, "p": 1}),
    _raw({"k": {"pk": "T#2#E#production"}, "p": 1}),
    _raw({"k": {"pk": {"N": "2"}}, "p": 1}),
    base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
], ids=lambda c: c[:24])
def test_garbage_cursors_are_a_validation_error(cursor):
    with pytest.raises(ValidationError) as caught:
        _decode(cursor)
    assert caught.value.details == {"field": "cursor"}


@pytest.mark.parametrize("foreign", [
    {"pk": {"S": "T#3#E#production"}, "sk": {"S": "KEY#abc"}},  # another tenant
    {"pk": {"S": "T#2#E#sandbox"}, "sk": {"S": "KEY#abc"}},  # another environment
    {"pk": {"S": "T#2"}, "sk": {"S": "2026-01-01T00:00:00.000000Z#aud_x"}},  # another listing
])
def test_a_cursor_from_another_partition_is_refused(foreign):
    with pytest.raises(ValidationError):
        _decode(encode_cursor(foreign, 1))


@pytest.mark.parametrize("page", ["Infinity", "-Infinity", "NaN", "0", "-1", "-5", "1000000", "1e400"])
def test_cursor_page_numbers_must_be_sane_positive_integers(page):
    # Crafted pages once escaped as an OverflowError (a 500) or echoed back as page <= 0.
    cursor = _raw('{"k": {"pk": {"S": "T#2#E#production"}, "sk": {"S": "KEY#abc"}}, "p": ' + page + "}")
    with pytest.raises(ValidationError):
        _decode(cursor)


@pytest.mark.parametrize("last_key", [
    {"pk": {"S": "T#2#E#production"}},
    {"pk": {"S": "T#2#E#production"}, "sk": {"N": "1"}},
    {"pk": {"S": "T#2#E#production"}, "sk": "KEY#abc"},
    {"pk": {"S": "T#2#E#production"}, "sk": {"S": 7}},
    {"pk": {"S": "T#2#E#production"}, "sk": {"S": "KEY#abc", "N": "1"}},
    {"pk": {"S": "T#2#E#production"}, "sk": {"S": "KEY#abc"}, "x": {"S": "y"}},
], ids=["no-sort-key", "number-sort-key", "bare-sort-key", "int-string", "two-types", "extra-attribute"])
def test_cursor_keys_must_hold_exactly_the_query_keys_as_strings(last_key):
    # These once reached DynamoDB as a malformed ExclusiveStartKey (ValidationException, a 500).
    with pytest.raises(ValidationError):
        _decode(encode_cursor(last_key, 1))


def test_a_cursor_is_bound_to_the_search_prefix_it_was_issued_for():
    last_key = {"pk": {"S": "T#2#E#production"}, "sk": {"S": "C#cus-b"}}
    cursor = encode_cursor(last_key, 1)
    assert _decode(cursor, sort_prefix=("sk", "C#cus-")) == (last_key, 2)
    assert _decode(cursor, sort_prefix=("sk", "C#")) == (last_key, 2)
    with pytest.raises(ValidationError):
        _decode(cursor, sort_prefix=("sk", "C#acct"))


# --- merged cursors (one listing over sharded partitions) -----------------------------------------------

SHARDS = [f"T#2#E#production#CUSTOMERS#{n}" for n in range(32)]
AFTER = "acme\tc7"  # a name-order sort key: the case-folded name, a tab, the id


def _decode_merged(cursor: str | None, **kw):
    kw.setdefault("partitions", SHARDS)
    return decode_merged_cursor(cursor, **kw)


def test_a_merged_cursor_is_one_sort_key_and_a_bit_per_finished_shard_however_many_shards():
    cursor = encode_merged_cursor(AFTER, {0, 5, 31}, 2, partitions=SHARDS)
    assert cursor is not None and len(cursor) < 200
    assert _decode_merged(cursor) == (AFTER, {0, 5, 31}, 3)
    assert _decode_merged(None) == (None, set(), 1)
    assert encode_merged_cursor(AFTER, set(range(32)), 2, partitions=SHARDS) is None  # every shard read


def test_the_longest_sort_key_in_any_script_makes_a_cursor_the_api_takes():
    """The longest name key (800 bytes of case-folded name: 200 astral characters) and the longest id, in a
    descending search: well under the 2,048 characters a cursor may have (escaped, it would not be)."""
    longest = "\U0001F600" * 200 + "\t" + "c" * 128
    cursor = encode_merged_cursor(longest, set(range(31)), 999_998, partitions=SHARDS, order="desc",
                                  sort_prefix=("name_key", "\U0001F600"))
    assert cursor is not None and len(cursor) < 1_500
    assert _decode_merged(cursor, order="desc", sort_prefix=("name_key", "\U0001F600"))[0] == longest


@pytest.mark.parametrize("body", [
    {"a": AFTER, "x": -1},  # bits out of range
    {"a": AFTER, "x": 1 << 32},
    {"a": AFTER, "x": (1 << 32) - 1},  # every shard finished: never issued
    {"a": AFTER, "x": "3"},
    {"a": "", "x": 0},  # an empty sort key
    {"a": "x" * 1025, "x": 0},  # past DynamoDB's 1,024 bytes
    {"a": "\ud800", "x": 0},  # not encodable
    {"a": {"S": AFTER}, "x": 0},
    {"a": [AFTER], "x": 0},
    {"x": 0},
    {"a": AFTER},
], ids=lambda b: json.dumps(b)[:40])
def test_a_forged_merged_cursor_is_a_validation_error(body):
    good = json.loads(base64.urlsafe_b64decode(encode_merged_cursor(AFTER, set(), 1, partitions=SHARDS) + "=="))
    forged = {k: v for k, v in good.items() if k not in ("a", "x")} | body
    with pytest.raises(ValidationError):
        _decode_merged(_raw(forged))


def test_a_merged_cursor_is_bound_to_its_partitions_and_search():
    cursor = encode_merged_cursor(AFTER, set(), 1, partitions=SHARDS, sort_prefix=("name_key", "a"))
    assert _decode_merged(cursor, sort_prefix=("name_key", "a"))[0] == AFTER
    for other in ({"partitions": [s.replace("T#2", "T#3") for s in SHARDS]}, {"sort_prefix": ("name_key", "ac")},
                  {"sort_prefix": ("name_key", "b")}, {}):
        with pytest.raises(ValidationError):
            _decode_merged(cursor, **other)
