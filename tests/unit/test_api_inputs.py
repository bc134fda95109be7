"""Every input is declared once: the declaration the router checks is the one the document publishes."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import app  # noqa: F401 - registers every operation
from chalicelib.api.inputs import ParamGroup
from chalicelib.api.openapi import build_document
from chalicelib.api.routing import OPERATIONS
from chalicelib.api.validator import component, unsupported
from chalicelib.domain.customers import CUSTOMER_ID_PATTERN

ROUTED = [op for op in OPERATIONS if op.view is not None]


@pytest.mark.parametrize("op", ROUTED, ids=lambda op: f"{op.method} {op.path}")
def test_every_view_takes_exactly_its_declared_inputs(op):
    expected = {"ctx"} | ({"body"} if op.request_body else set())
    for declared in op.params:
        if isinstance(declared, ParamGroup) and declared.arg:
            expected.add(declared.arg)
        else:
            members = declared.params if isinstance(declared, ParamGroup) else (declared,)
            expected |= {p.arg for p in members if p.arg}
    assert set(inspect.signature(op.view).parameters) == expected


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_the_document_promises_only_checks_the_router_makes(op):
    schemas = [p.openapi()["schema"] for p in op.params]
    if op.request_body:
        schemas.append(component(op.request_body))
    assert not any(unsupported(schema) for schema in schemas)


def test_the_document_lists_the_declarations_themselves():
    document = build_document("http://testserver")
    for op in OPERATIONS:
        published = document["paths"][op.path][op.method.lower()]
        assert published["parameters"] == [p.openapi() for p in op.params]
        if op.request_body:
            body = published["requestBody"]
            assert body["required"] is op.body_required
            assert body["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{op.request_body}"}


def _customer_ids(node: object, name: str = "") -> list[dict]:
    found = []
    if isinstance(node, dict):
        if name == "customerId" or name == "customerIds":
            found.append(node.get("items", node))
        for key, value in node.items():
            if key == "properties":
                for prop, schema in value.items():
                    found += _customer_ids(schema, prop)
            elif key != "responses":
                found += _customer_ids(value, node.get("name", "") if key == "schema" else "")
    elif isinstance(node, list):
        for item in node:
            found += _customer_ids(item)
    return found


def test_one_customer_id_rule_everywhere_a_customer_id_is_taken():
    document = build_document("http://testserver")
    requests = {"paths": document["paths"],
                "schemas": {k: v for k, v in document["components"]["schemas"].items() if k.endswith("Request")}}
    rules = _customer_ids(requests)
    assert len(rules) >= 10
    assert {rule["pattern"] for rule in rules} == {CUSTOMER_ID_PATTERN}


def test_the_cold_start_loads_neither_the_validator_nor_the_schemas():
    code = ("import sys, app; print(sorted(m for m in sys.modules if m in ("
            "'chalicelib.api.validator', 'chalicelib.api.bodies', 'chalicelib.api.schemas')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
