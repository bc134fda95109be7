"""Checks request inputs against the JSON Schemas that document them, so one declaration both refuses a bad
request and describes it in ``GET /openapi.json`` (the router calls :func:`read_inputs`; no view parses).

A validator for the subset of JSON Schema 2020-12 the request schemas use, loaded on the first request rather
than in the cold start, with no third-party import (``jsonschema`` costs ~75 ms to import; fastjsonschema adds
~2.5 ms plus ~7 ms to compile a batch schema, and it cannot do exact decimal ``multipleOf``). Exact where money
is: numbers arrive as ``int``/``Decimal`` and ``multipleOf`` takes powers of ten only, by exponent, so a hostile
``1e100000000`` costs nothing. ``pattern`` searches with ``$`` meaning the very end, as in JSON Schema (Python's
``$`` also matches before a final newline). A keyword outside :data:`SUPPORTED` fails loudly at first use
instead of being ignored, so the document never promises a check the server skips.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from chalicelib.api.inputs import Param, ParamGroup
from chalicelib.api.request import json_body
from chalicelib.domain.errors import ValidationError

#: Assertions implemented here. Annotations (ANNOTATIONS) are documentation only.
SUPPORTED = frozenset({
    "$ref", "type", "enum", "const", "minLength", "maxLength", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "items", "minItems", "maxItems", "uniqueItems",
    "properties", "required", "additionalProperties", "minProperties", "maxProperties", "dependentRequired",
    "dependentSchemas", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
})
#: ``x-error``: what a failure anywhere in the schema says (after the field's name, or alone at the root);
#: ``x-error-code``: its code instead of VALIDATION_ERROR; ``x-error-field``: the field it names.
ANNOTATIONS = frozenset({"description", "title", "default", "examples", "deprecated", "$comment",
                         "x-error", "x-error-code", "x-error-field"})
_INTEGER = re.compile(r"-?[0-9]{1,300}\Z")  # ASCII digits only: int() also takes "٣", " 3" and "+3"
_NUMBER = re.compile(r"-?[0-9]{1,300}(\.[0-9]{1,300})?([eE][-+]?[0-9]{1,4})?\Z")
_KINDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
          "array": "an array", "object": "an object", "null": "null"}
_patterns: dict[str, re.Pattern[str]] = {}
_schemas: dict[str, Any] | None = None


class _Failure(Exception):
    def __init__(self, where: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.where, self.message, self.code = where, message, code


def component(name: str) -> dict[str, Any]:
    """A request body schema by its component name (bodies.py loads with the first body, not at cold start)."""
    global _schemas
    if _schemas is None:
        from chalicelib.api.bodies import REQUESTS

        _schemas = REQUESTS
    return _schemas[name]


def _resolve(ref: str) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}")
    return component(ref[len(prefix):])


def _pattern(source: str) -> re.Pattern[str]:
    compiled = _patterns.get(source)
    if compiled is None:
        anchored = source[:-1] + r"\Z" if source.endswith("$") and not source.endswith(r"\$") else source
        compiled = _patterns[source] = re.compile(anchored)
    return compiled


def _is_number(value: Any) -> bool:
    return isinstance(value, int | Decimal | float) and not isinstance(value, bool)


def _exponent(number: Decimal) -> int:
    """The power of ten of a finite decimal's last significant digit, exactly (``normalize`` would round)."""
    _sign, digits, exponent = number.as_tuple()
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return int(exponent) + trailing


def _is_integral(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, Decimal | float):
        number = Decimal(value)
        return number.is_finite() and (number.is_zero() or _exponent(number) >= 0)
    return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``1 != true``; arrays and objects element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return Decimal(a) == Decimal(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return type(a) is type(b) and a == b


def _multiple_of(value: Any, step: Any) -> bool:
    unit = Decimal(str(step))
    if unit <= 0 or "".join(map(str, unit.as_tuple().digits)).rstrip("0") != "1":
        raise ValueError(f"multipleOf {step!r}: only powers of ten are supported")
    number = Decimal(value)
    return number.is_zero() or _exponent(number) >= _exponent(unit)


def _show(value: Any) -> str:
    return str(value) if not isinstance(value, str) else repr(value)


def _label(where: str) -> str:
    return where or "the body"


def _child(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class _Check:
    """One validation: ``run`` returns the value (integers as ``int``) or raises :class:`_Failure`."""

    def run(self, schema: Mapping[str, Any] | bool, value: Any, where: str) -> Any:
        if schema is True:
            return value
        if schema is False:
            raise _Failure(where, f"{_label(where)} is not allowed")
        try:
            return self._run(schema, value, where)
        except _Failure as failure:
            if not schema.keys() & {"x-error", "x-error-code", "x-error-field"}:
                raise
            message = failure.message
            if "x-error" in schema:
                message = f"{where} {schema['x-error']}" if where else schema["x-error"]
            raise _Failure(schema.get("x-error-field", where if "x-error" in schema else failure.where), message,
                           schema.get("x-error-code", failure.code)) from None

    def passes(self, schema: Mapping[str, Any] | bool, value: Any, where: str) -> bool:
        try:
            self.run(schema, value, where)
        except _Failure:
            return False
        return True

    def _run(self, schema: Mapping[str, Any], value: Any, where: str) -> Any:
        unknown = schema.keys() - SUPPORTED - ANNOTATIONS
        if unknown:
            raise ValueError(f"schema keywords {sorted(unknown)} are not supported by the request validator")
        if "$ref" in schema:
            value = self.run(_resolve(schema["$ref"]), value, where)
        if "type" in schema:
            value = self._type(schema["type"], value, where)
        if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
            options = ", ".join(_show(o) for o in schema["enum"])
            raise _Failure(where, f"{_label(where)} must be one of {options}")
        if "const" in schema and not _same(value, schema["const"]):
            raise _Failure(where, f"{_label(where)} must be {_show(schema['const'])}")
        if isinstance(value, str):
            self._string(schema, value, where)
        elif _is_number(value):
            self._number(schema, value, where)
        elif isinstance(value, list):
            value = self._array(schema, value, where)
        elif isinstance(value, dict):
            value = self._object(schema, value, where)
        for branch in schema.get("allOf", ()):
            value = self.run(branch, value, where)
        # A branch of annotations only takes anything: the others need not be tried (a batch's items each
        # have their own check in the view).
        if "anyOf" in schema and not any(set(b) <= ANNOTATIONS for b in schema["anyOf"]) \
                and not any(self.passes(b, value, where) for b in schema["anyOf"]):
            raise _Failure(where, f"{_label(where)} matches none of the allowed forms")
        if "oneOf" in schema and sum(self.passes(b, value, where) for b in schema["oneOf"]) != 1:
            raise _Failure(where, f"{_label(where)} must match exactly one of the allowed forms")
        if "not" in schema and self.passes(schema["not"], value, where):
            raise _Failure(where, f"{_label(where)} is not allowed in this form")
        if "if" in schema:
            branch = schema.get("then" if self.passes(schema["if"], value, where) else "else")
            if branch is not None:
                value = self.run(branch, value, where)
        return value

    @staticmethod
    def _type(expected: str | list[str], value: Any, where: str) -> Any:
        names = [expected] if isinstance(expected, str) else expected
        actual = _json_type(value)
        if actual in names:
            return value
        if "integer" in names and _is_integral(value):
            return int(value)
        wanted = " or ".join(_KINDS.get(name, name) for name in names)
        raise _Failure(where, f"{_label(where)} must be {wanted}")

    @staticmethod
    def _string(schema: Mapping[str, Any], value: str, where: str) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise _Failure(where, f"{_label(where)} must be at least {schema['minLength']} characters long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise _Failure(where, f"{_label(where)} must be at most {schema['maxLength']} characters long")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            raise _Failure(where, f"{_label(where)} must match the pattern {schema['pattern']}")

    @staticmethod
    def _number(schema: Mapping[str, Any], value: Any, where: str) -> None:
        number = Decimal(value)
        if "minimum" in schema and number < Decimal(str(schema["minimum"])):
            raise _Failure(where, f"{_label(where)} must be at least {schema['minimum']}")
        if "maximum" in schema and number > Decimal(str(schema["maximum"])):
            raise _Failure(where, f"{_label(where)} must be at most {schema['maximum']}")
        if "exclusiveMinimum" in schema and number <= Decimal(str(schema["exclusiveMinimum"])):
            raise _Failure(where, f"{_label(where)} must be greater than {schema['exclusiveMinimum']}")
        if "exclusiveMaximum" in schema and number >= Decimal(str(schema["exclusiveMaximum"])):
            raise _Failure(where, f"{_label(where)} must be less than {schema['exclusiveMaximum']}")
        if "multipleOf" in schema and not _multiple_of(number, schema["multipleOf"]):
            raise _Failure(where, f"{_label(where)} must be a multiple of {schema['multipleOf']}")

    def _array(self, schema: Mapping[str, Any], value: list, where: str) -> list:
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise _Failure(where, f"{_label(where)} must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise _Failure(where, f"{_label(where)} must have at most {schema['maxItems']} items")
        if "items" in schema:
            value = [self.run(schema["items"], item, f"{where}[{i}]") for i, item in enumerate(value)]
        if schema.get("uniqueItems"):
            for i, item in enumerate(value):
                if any(_same(item, other) for other in value[:i]):
                    raise _Failure(where, f"{_label(where)} lists {_show(item)} more than once")
        return value

    def _object(self, schema: Mapping[str, Any], value: dict, where: str) -> dict:
        for name in schema.get("required", ()):
            if name not in value:
                raise _Failure(_child(where, name), f"{_child(where, name)} is required")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            raise _Failure(where, f"{_label(where)} must have at least {schema['minProperties']} properties")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise _Failure(where, f"{_label(where)} must have at most {schema['maxProperties']} properties")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        checked = {}
        for name, item in value.items():
            if name in properties:
                checked[name] = self.run(properties[name], item, _child(where, name))
            elif extra is False:
                raise _Failure(_child(where, name), f"{_label(where)} has an unexpected property {name!r}")
            else:
                checked[name] = self.run(extra, item, _child(where, name))
        for name, needed in schema.get("dependentRequired", {}).items():
            missing = [n for n in needed if n not in value]
            if name in value and missing:
                raise _Failure(_child(where, missing[0]), f"{_child(where, name)} needs {', '.join(missing)}")
        for name, dependent in schema.get("dependentSchemas", {}).items():
            if name in value:
                checked = self.run(dependent, checked, where)
        return checked


def check(schema: Mapping[str, Any], value: Any, where: str = "") -> Any:
    """``value`` as ``schema`` accepts it (integral numbers of integer fields as ``int``), else a
    ValidationError naming the field (``deltas[3].customerId``; the body itself is ``body``)."""
    try:
        return _Check().run(schema, value, where)
    except _Failure as failure:
        raise ValidationError(failure.message, code=failure.code, field=failure.where or "body") from None


def _from_text(schema: Mapping[str, Any], text: str, where: str) -> Any:
    """A query or header value in the type its schema names (ASCII digits for integers)."""
    kind = schema.get("type")
    if kind == "integer":
        if not _INTEGER.match(text):
            raise _Failure(where, f"{where} must be an integer")
        return int(text)
    if kind == "number":
        if not _NUMBER.match(text):
            raise _Failure(where, f"{where} must be a number")
        return Decimal(text)
    if kind == "boolean":
        if text not in ("true", "false"):
            raise _Failure(where, f"{where} must be true or false")
        return text == "true"
    return text


def _text(request: Any, param: Param, path_values: Mapping[str, str]) -> str | None:
    if param.location == "path":
        return path_values.get(param.name)
    if param.location == "header":
        return (request.headers or {}).get(param.name)
    query = request.query_params
    values = query.getlist(param.name) if query and param.name in query else []
    if len(values) > 1:
        raise _Failure(param.name, f"{param.name} must be given once")
    return values[0] if values else None


_ABSENT = object()


def _one(request: Any, param: Param, path_values: Mapping[str, str]) -> Any:
    """The checked value as sent (``_ABSENT`` when not sent); a value the schema refuses raises."""
    text = _text(request, param, path_values)
    if text is None:
        if param.required:
            raise _Failure(param.name, f"{param.name} is required")
        return _ABSENT
    return _Check().run(param.schema, _from_text(param.schema, text, param.name), param.name)


def _meant(param: Param, sent: Any) -> Any:
    """What the view gets: the default when nothing was sent, or an empty query value the schema takes
    (``?search=`` is no search, as clients that always send every key expect)."""
    return param.default if sent is _ABSENT or (sent == "" and param.location == "query") else sent


def read_inputs(request: Any, params: tuple[Param | ParamGroup, ...], body: str | None, *, body_required: bool,
                path_values: Mapping[str, str]) -> dict[str, Any]:
    """Every declared input of a request, checked: the view's keyword arguments (``body`` for the JSON body)."""
    values: dict[str, Any] = {}
    try:
        for declared in params:
            group = declared if isinstance(declared, ParamGroup) else None
            sent, meant = {}, {}
            for param in group.params if group else (declared,):
                value = _one(request, param, path_values)
                if value is not _ABSENT:
                    sent[param.name] = value
                meant[param.name] = _meant(param, value)
                if param.arg and not (group and group.arg):
                    values[param.arg] = meant[param.name]
            if group:
                _Check().run(group.rules, sent, "")  # the rules read the request as sent, as the document does
                if group.arg:
                    values[group.arg] = {k: v for k, v in meant.items() if v is not None}
    except _Failure as failure:
        message = next((p.message for p in _flat(params) if p.name == failure.where and p.message), None)
        raise ValidationError(message or failure.message, code=failure.code, field=failure.where or None) from None
    if body is not None:
        values["body"] = check(component(body), json_body(request, required=body_required))
    return values


def _flat(params: tuple[Param | ParamGroup, ...]) -> list[Param]:
    return [p for d in params for p in (d.params if isinstance(d, ParamGroup) else (d,))]


def unsupported(schema: Any, resolve: Callable[[str], Any] = _resolve) -> set[str]:
    """Keywords of ``schema`` (and what it refers to) that the validator would refuse: for the test that keeps
    every request schema checkable."""
    found: set[str] = set()
    stack, visited = [schema], set()
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            found |= node.keys() - SUPPORTED - ANNOTATIONS - {"properties", "dependentSchemas"}
            if "$ref" in node and node["$ref"] not in visited:
                visited.add(node["$ref"])
                stack.append(resolve(node["$ref"]))
            for key, sub in node.items():
                if key in ("properties", "dependentSchemas"):
                    stack.extend(sub.values())
                elif key in ("items", "additionalProperties", "not", "if", "then", "else"):
                    stack.append(sub)
                elif key in ("allOf", "anyOf", "oneOf"):
                    stack.extend(sub)
    return found
