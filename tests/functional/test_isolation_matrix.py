"""Tenant isolation, in process: the whole matrix of tests/isolation.py, one request at a time.

Every operation of the served ``GET /openapi.json`` x each credential kind of tenant A (each kind the
operation accepts — bearer JWT, session cookie with its CSRF headers, A's JWT carrying B's cookie, API key,
a platform token without tenant abilities — and, conversely, each tenant kind it does not accept, a
cross-site cookie write and two forged hybrids) x both environments x every substitution of B's ids (both
environments) and A's other-environment ids into path parameters, id query parameters, Idempotency-Key
and bodies. Each answer is checked against its expected status (a foreign id is 404, never a 5xx) and the
document (schemas included), and for canaries of B (and of A's other environment); B's state and A's
seeded state are read back afterwards. B is tenant "20", so A's id "2" is a prefix of B's.

Size when written: 70 operations x 2 environments x id substitutions = 464 (operation, environment,
substitution) cases, x credential kinds = 2,400 requests (914 with an accepted credential, 1,486 with a
refused one), about 10 s of a ~15 s test; the test prints the current figures.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from types import SimpleNamespace

import pytest

from chalicelib import bootstrap
from chalicelib.domain.identity import Environment
from chalicelib.services import credits as credit_service
from tests import isolation
from tests.contract import ContractClient, Reply, check_contract
from tests.helpers import platform_operator, verify


class Exchange(ContractClient):
    """The test client as an ``isolation.Send``: every answer is kept, and its contract violation (an
    undocumented status, a body off its schema) becomes a finding instead of stopping the matrix."""

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> isolation.Answer:
        raw = self._client.http.request(method, path, headers=headers, body=body or b"")
        reply = Reply(raw)
        answer = isolation.Answer(reply.status, reply.headers, raw.body)
        try:
            check_contract(method, path, reply)
        except AssertionError as exc:
            answer.contract_error = f"contract: {str(exc).splitlines()[0]}"
        return answer


def seed_both(world, clock, send):
    platform_operator(world)  # tenant "1": A and B are ordinary tenants (tenant 1's admins may top up others)
    alpha = world.tenant("Alpha Matrix Co", stripe_customer_id="cus_alpha_canary_0001")
    while int(world.tenant("Filler Co").id) < 19:
        pass  # B becomes tenant "20": A's id "2" is a prefix of B's, as a key prefix match would confuse them
    bravo = world.tenant("Bravo Canary Holdings", billing_mode="credits", stripe_customer_id="cus_bravo_canary_0001")
    assert bravo.id.startswith(alpha.id) and bravo.id != alpha.id
    credit_service.topup(bootstrap.unit_of_work(), bravo.id, 500, actor="test", now=clock())

    def settle(seed: isolation.TenantSeed, environment: str, record_ids: list[str]) -> None:
        verify(SimpleNamespace(id=seed.tenant_id), record_ids, clock, Environment(environment))

    seeds = []
    for tenant, label in ((alpha, "alpha"), (bravo, "bravo")):
        user = f"usr_{label}_owner"
        seeds.append(isolation.seed_tenant(
            send, settle, label=label, tenant_id=tenant.id, name=tenant.company_name, user_id=user,
            jwt=world.jwt(tenant, "owner", user), stripe_customer=tenant.stripe_customer_id))
    return seeds


def test_no_credential_of_tenant_a_reads_or_changes_tenant_b_on_any_operation(world, clock, capsys):
    send = Exchange()
    a, b = seed_both(world, clock, send)
    document = send("GET", "/openapi.json", {}, None).json()
    for seed in (a, b):
        isolation.harvest_cursors(send, document, seed)
    before = {"A": isolation.tenant_state(send, a, full=False), "B": isolation.tenant_state(send, b, full=True)}
    cases = isolation.build_matrix(document, a, b, platform_token=world.platform_token("tenants:read"),
                                   fresh_cookie=lambda: isolation.open_session(send, a.jwt))
    checker = isolation.Checker(a, b)

    began = time.monotonic()
    outcomes = [isolation.run_case(send, checker, case) for case in sorted(cases, key=lambda c: c.phase)]
    took = time.monotonic() - began
    after = {"A": isolation.tenant_state(send, a, full=False), "B": isolation.tenant_state(send, b, full=True)}

    with capsys.disabled():
        print("\n" + isolation.summary(cases, took, "in process, sequential"))
    assert {c.op.key for c in cases} == {op.key for op in isolation.operations(document)}
    found = isolation.failures(outcomes)
    assert not found, f"{len(found)} of {len(cases)} cases failed:\n" + "\n".join(found[:60])
    assert after == before
    assert bootstrap.unit_of_work().tenants.get(b.tenant_id).has_unpaid_invoices_at is None


def test_the_checker_flags_a_planted_leak_and_an_unexpected_status(world, clock):
    """The matrix's oracle itself: a canary of B in an answer, B's tenant id in a field, a 200 where 404 is
    due, and a 500 are each a finding; the echo of what the request sent is not."""
    send = Exchange()
    a, b = seed_both(world, clock, send)
    document = send("GET", "/openapi.json", {}, None).json()
    for seed in (a, b):
        isolation.harvest_cursors(send, document, seed)
    checker = isolation.Checker(a, b)
    cases = isolation.build_matrix(document, a, b, platform_token="ptk_x|y", fresh_cookie=lambda: a.cookie)
    listing = next(c for c in cases if c.op.key == "GET /dashboard/customers" and c.kind == "jwt")
    foreign = next(c for c in cases if c.op.key == "GET /dashboard/customers/{customerId}" and c.kind == "jwt"
                   and c.expect == isolation.NOT_FOUND)

    def answer(status: int, data: object) -> isolation.Answer:
        body = json.dumps({"statusCode": status, "success": status < 400, "data": data}).encode()
        return isolation.Answer(status, {"content-type": "application/json"}, body)

    other = b.envs["sandbox"].customers[1]
    assert any("LEAK" in p for p in checker(listing, answer(200, {"items": [{"customerId": other}]})))
    assert any("LEAK" in p for p in checker(listing, answer(200, {"items": [{"tenantId": b.tenant_id}]})))
    assert any("expected [404]" in p for p in checker(foreign, answer(200, {})))
    assert any("server error" in p for p in checker(foreign, answer(500, {})))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as packed:
        packed.writestr("cust/activity.csv", f"recordId\n{b.envs['production'].verified[0]}\n")
    zipped = isolation.Answer(200, {"content-type": "application/zip"}, archive.getvalue())
    assert any("LEAK" in p for p in checker(listing, zipped))  # compressed members are searched too
    echoed = foreign.path.rsplit("/", 1)[1]
    assert checker(foreign, answer(404, {"message": f"Customer {echoed} not found"})) == []


@pytest.mark.parametrize("operation, missing", [
    ({"parameters": [{"name": "widgetId", "in": "path", "required": True}]}, "path parameter 'widgetId'"),
    ({"parameters": [{"name": "sku", "in": "query", "required": True}]}, "required query parameter 'sku'"),
    ({"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}}}},
     "request body 'Widget'"),
    ({"security": [{"mutualTls": []}]}, "security scheme 'mutualTls'"),
])
def test_an_operation_the_matrix_cannot_cover_stops_it(operation, missing):
    """A new route whose ids the matrix has no generator for fails the build instead of going untested."""
    spec = {"security": [{"bearerJwt": []}], "parameters": [], "responses": {"200": {}}, **operation}
    document = {"paths": {"/dashboard/widgets/{widgetId}": {"post": spec}}}
    with pytest.raises(isolation.MatrixError, match=re.escape(missing)):
        isolation.build_matrix(document, None, None, platform_token="", fresh_cookie=str)
