"""The local gateway under concurrency, as users run it: many threads of two tenants at once over real
HTTP. Every request must see only its own headers, body and principal (on Lambda an execution
environment serves one event at a time), and every answer is the JSON envelope."""

from __future__ import annotations

import http.client
import json
import random
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.localstack import call, local_stack, tally


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "tally-gateway-home")


@pytest.fixture(scope="module")
def tenants(stack) -> dict[str, dict]:
    """Two tenants, each with a production key, a JWT and a customer of its own name."""
    demo = json.loads(tally(stack, "dev", "credentials", "--json"))
    other = json.loads(tally(stack, "tenants", "create", "--name", "Umbrella Corp", "--plan", "growth", "--json"))
    key_b = json.loads(tally(stack, "dev", "api-key", "--tenant", other["id"], "--environment", "production",
                             "--json"))["fullKey"]
    jwt_b = tally(stack, "dev", "token", "--tenant", other["id"], "--role", "admin").strip()
    found = {
        "A": {"id": demo["tenantId"], "key": demo["apiKeys"]["production"], "jwt": demo["jwt"],
              "company": "Acme Inc", "customer": "cust_only_a"},
        "B": {"id": other["id"], "key": key_b, "jwt": jwt_b, "company": "Umbrella Corp", "customer": "cust_only_b"},
    }
    for name, tenant in found.items():
        status, _h, _b = call("POST", f"{stack['base']}/api/v1/balance/delta",
                              {"X-Api-Key": tenant["key"], "Content-Type": "application/json"},
                              {"customerId": tenant["customer"], "delta": 7 if name == "A" else 11,
                               "reason": f"tenant {name}"})
        assert status == 202
    return found


def _request(base: str, method: str, path: str, headers: dict, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(base.split("//", 1)[1], timeout=60)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        if payload is not None:
            headers = {**headers, "Content-Type": "application/json"}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_2000_interleaved_requests_of_two_tenants_never_see_each_other(stack, tenants):
    plan = [(name, kind) for name in ("A", "B") for kind in ("customer", "tenant") for _ in range(500)]
    random.Random(7).shuffle(plan)

    def one(item: tuple[str, str]) -> str | None:
        name, kind = item
        tenant = tenants[name]
        if kind == "customer":
            status, body = _request(stack["base"], "GET", f"/api/v1/balance/customers/{tenant['customer']}",
                                    {"X-Api-Key": tenant["key"]})
            if status != 200 or body["data"]["customerId"] != tenant["customer"]:
                return f"{name} customer: {status} {body}"
            return None
        status, body = _request(stack["base"], "GET", "/dashboard/tenant", {"Authorization": f"Bearer {tenant['jwt']}"})
        if status != 200 or (body["data"]["id"], body["data"]["companyName"]) != (tenant["id"], tenant["company"]):
            return f"{name} tenant: {status} {body}"
        return None

    with ThreadPoolExecutor(16) as pool:
        wrong = [answer for answer in pool.map(one, plan) if answer is not None]
    assert len(plan) == 2000
    assert wrong == []


def test_400_parallel_deltas_to_400_customers_are_each_stored_exactly_once(stack, tenants):
    key = tenants["B"]["key"]
    customers = [f"par_{n:03d}" for n in range(400)]

    def emit(customer: str) -> tuple[str, int, dict]:
        status, body = _request(stack["base"], "POST", "/api/v1/balance/delta", {"X-Api-Key": key},
                                {"customerId": customer, "delta": 1, "reason": f"for {customer}",
                                 "referenceId": f"ref-{customer}"})
        return customer, status, body

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(emit, customers))
    assert [(c, s) for c, s, _b in answers if s != 202] == []
    assert all(body["data"]["customerId"] == customer and body["data"]["sequenceNumber"] == 1
               for customer, _s, body in answers), "a 202 named another request's customer"
    assert len({body["data"]["recordId"] for _c, _s, body in answers}) == 400

    def stored(customer: str) -> tuple[str, int, list]:
        status, body = _request(stack["base"], "GET", f"/api/v1/balance/customers/{customer}", {"X-Api-Key": key})
        assert status == 200, body
        items = body["data"]["recentActivity"]["items"]
        return customer, body["data"]["totalDeltas"], [i["referenceId"] for i in items]

    with ThreadPoolExecutor(16) as pool:
        rows = list(pool.map(stored, customers))
    assert [r for r in rows if r[1:] != (1, [f"ref-{r[0]}"])] == []


def _raw(stack: dict, payload: bytes) -> tuple[int, dict, bytes]:
    host, port = stack["base"].split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(payload)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(rest) >= length:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(("payload", "status", "code"), [
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n", 431,
     "REQUEST_HEADER_FIELDS_TOO_LARGE"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 11_000 + b"\r\n\r\n", 431,
     "REQUEST_HEADER_FIELDS_TOO_LARGE"),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI_TOO_LONG"),
    (b"TRACE /health HTTP/1.1\r\nHost: x\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
    (b"BREW /api/v1/balance/usage HTTP/1.1\r\nHost: x\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
    (b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 505, "HTTP_VERSION_NOT_SUPPORTED"),
    (b"GARBAGE\r\n\r\n", 400, "BAD_REQUEST"),
    (b"POST /api/v1/balance/delta HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n", 413,
     "PAYLOAD_TOO_LARGE"),
])
def test_every_answer_is_the_json_envelope(stack, payload, status, code):
    got, headers, body = _raw(stack, payload)
    assert got == status
    assert headers["Content-Type"] == "application/json" and headers.get("X-Request-Id")
    assert json.loads(body) == {"statusCode": status, "success": False,
                                "error": {"code": code, "message": json.loads(body)["error"]["message"]}}


def test_a_chunked_body_is_read_like_a_sized_one(stack, tenants):
    body = json.dumps({"customerId": "cust_chunked", "delta": 2, "reason": "chunked"}).encode()
    payload = (b"POST /api/v1/balance/delta HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"X-Api-Key: " + tenants["A"]["key"].encode() + b"\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + f"{len(body):x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
    status, _headers, answer = _raw(stack, payload)
    assert status == 202 and json.loads(answer)["data"]["customerId"] == "cust_chunked"


def test_keep_alive_connections_carry_many_requests(stack):
    conn = http.client.HTTPConnection(stack["base"].split("//", 1)[1], timeout=30)
    for _ in range(20):
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["success"] is True
    conn.close()


def test_an_environment_that_dies_is_replaced_and_no_request_fails(stack):
    import os
    import signal
    import time

    state = json.loads((stack["home"] / "state.json").read_text())
    victim = state["processes"]["environments"][0]
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.3)
    statuses = [call("GET", f"{stack['base']}/health")[0] for _ in range(30)]
    assert statuses == [200] * 30
