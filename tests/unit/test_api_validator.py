"""The request validator: the JSON Schema subset the API documents, checked exactly as documented."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from chalicelib.api.validator import check, unsupported
from chalicelib.domain.errors import ValidationError


def refused(schema: dict, value: object, where: str = "") -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        check(schema, value, where)
    return caught.value


def parsed(text: str) -> object:
    """A body as the router parses it: floats as Decimal."""
    return json.loads(text, parse_float=Decimal)


@pytest.mark.parametrize(("value", "ok"), [
    (parsed("0.000001"), True), (parsed("123.456789"), True), (parsed("1e-6"), True), (parsed("5"), True),
    (parsed("1.0000000"), True), (parsed("0.0000001"), False), (parsed("123.4567891"), False),
    (parsed("0.1234567890123456789012345678901"), False),  # more digits than Decimal's context keeps
])
def test_multiple_of_is_exact_decimal_arithmetic(value, ok):
    schema = {"type": "number", "multipleOf": 0.000001}
    if ok:
        assert check(schema, value) == value
    else:
        assert "multiple of" in refused(schema, value, "delta").message


def test_a_huge_exponent_costs_nothing():
    started = time.perf_counter()
    refused({"type": "number", "multipleOf": 0.000001, "maximum": 10**9}, parsed("1e100000000"), "delta")
    refused({"type": "number", "multipleOf": 0.000001}, parsed("1e-100000000"), "delta")
    assert time.perf_counter() - started < 0.05


def test_integers_are_whole_numbers_not_booleans():
    assert check({"type": "integer"}, parsed("7.0")) == 7 and type(check({"type": "integer"}, parsed("7.0"))) is int
    assert refused({"type": "integer"}, True, "limit").message == "limit must be an integer"
    assert refused({"type": "integer"}, parsed("7.5"), "limit").details["field"] == "limit"
    assert refused({"type": "number"}, "7", "delta").message == "delta must be a number"


def test_enum_and_const_compare_as_json_does():
    assert check({"enum": [1, "a"]}, parsed("1.0")) == Decimal("1.0")
    refused({"enum": [1]}, True)
    refused({"const": False}, 0)


def test_a_pattern_is_searched_and_its_dollar_ends_the_text():
    assert check({"type": "string", "pattern": "b"}, "abc") == "abc"
    refused({"type": "string", "pattern": "^[0-9]{4}$"}, "2026\n", "period")


def test_objects_name_the_field_that_fails():
    schema = {"type": "object", "required": ["a"], "additionalProperties": False,
              "properties": {"a": {"type": "array", "items": {"type": "string", "maxLength": 2}}}}
    assert refused(schema, {}).details["field"] == "a"
    assert refused(schema, {"a": ["ok", "long"]}).details["field"] == "a[1]"
    assert refused(schema, {"a": [], "b": 1}).details["field"] == "b"
    assert refused(schema, [], "").details["field"] == "body"


def test_x_error_words_the_failure_and_x_error_code_and_field_classify_it():
    schema = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^x", "x-error": "must start x"}},
              "dependentSchemas": {"a": {"not": {"required": ["b"]}, "x-error": "a and b exclude each other",
                                         "x-error-code": "INVALID_SCOPE_COMBINATION", "x-error-field": "b"}}}
    error = refused(schema, {"id": "y"})
    assert (error.message, error.details["field"], error.code) == ("id must start x", "id", "VALIDATION_ERROR")
    error = refused(schema, {"a": 1, "b": 2})
    assert (error.message, error.details["field"]) == ("a and b exclude each other", "b")
    assert error.code == "INVALID_SCOPE_COMBINATION"
    assert check(schema, {"a": 1}) == {"a": 1}


def test_combinators():
    assert check({"anyOf": [{"type": "string"}, {"type": "null"}]}, None) is None
    refused({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 3)
    assert check({"if": {"required": ["p"]}, "then": {"required": ["q"]}}, {"q": 1}) == {"q": 1}
    refused({"if": {"required": ["p"]}, "then": {"required": ["q"]}}, {"p": 1})
    refused({"type": "array", "uniqueItems": True}, [1, parsed("1.0")], "ids")


def test_a_keyword_the_validator_does_not_check_fails_loudly():
    with pytest.raises(ValueError, match="format"):
        check({"type": "string", "format": "uri"}, "x")
    assert unsupported({"properties": {"url": {"format": "uri"}}, "items": {"minContains": 1}}) == {"format",
                                                                                                    "minContains"}
