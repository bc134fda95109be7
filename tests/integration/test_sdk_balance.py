"""Wire compatibility with the official `pacspace-sdk` (0.7.0): the SDK, pointed at the real local stack
(`tally dev up`) by `base_url` alone, emits deltas, reads their status and the usage, replays idempotent
writes and raises its own error classes for Tally's 400/401/402/404/409 answers.

One stack for the module; every test uses its own customer ids, so the tests do not depend on each
other's order except through the demo tenant's usage counter, which they only compare before/after."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from pacspace_sdk import (
    InsufficientCreditsError,
    InvalidApiKeyError,
    NotFoundError,
    PacSpace,
    PacSpaceError,
)

from tests.integration.localstack import Recorder, local_stack, tally

DELTA = "/api/v1/balance/delta"
BATCH = "/api/v1/balance/delta/batch"
USAGE = "/api/v1/balance/usage"
ACCEPTED_FIELDS = {"recordId", "receiptId", "status", "customerId", "delta", "sequenceNumber"}


# --- the local stack (the pattern of test_local_stack.py, one stack for this module) ---------------------


def raw(method: str, url: str, headers: dict | None = None, body: str | dict | None = None) -> tuple[int, dict, str]:
    """One plain HTTP request; the body is sent as given when it is text (exact numbers), else as JSON."""
    data = None
    if body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for info in local_stack(tmp_path_factory, "tally-sdk-home"):
        info["creds"] = json.loads(tally(info, "dev", "credentials", "--json"))
        yield info


def new_key(stack: dict, tenant_id: str, environment: str = "production") -> dict:
    return json.loads(tally(stack, "dev", "api-key", "--tenant", tenant_id, "--environment", environment, "--json"))


def sdk(stack: dict, api_key: str, transport: Recorder | None = None) -> PacSpace:
    return PacSpace(api_key, base_url=stack["base"], max_retries=0, transport=transport)


def delta_text(customer: str, number: str) -> str:
    """A delta body with the number written exactly as given (no float in between)."""
    return '{"customerId": "' + customer + '", "delta": ' + number + ', "reason": "exact"}'


def cust(label: str) -> str:
    return f"{label}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def prod_key(stack) -> str:
    return stack["creds"]["apiKeys"]["production"]


@pytest.fixture(scope="module")
def sandbox_key(stack) -> str:
    return stack["creds"]["apiKeys"]["sandbox"]


@pytest.fixture(scope="module")
def free_key(stack) -> str:
    """A production key of tenant "3" (Globex Free: 100 deltas per UTC month, hard cap)."""
    return new_key(stack, "3")["fullKey"]


@pytest.fixture
def client(stack, prod_key) -> PacSpace:
    return sdk(stack, prod_key)


def consumed(client: PacSpace) -> int:
    return client.balance.usage()["consumed"]


# --- emit ------------------------------------------------------------------------------------------------


def test_emit_answers_the_sdk_shape_with_gap_free_sequence_numbers(client):
    customer = cust("emit")
    answers = [client.balance.emit(customer, amount, "usage") for amount in (10, -2.5, 3)]
    for expected_seq, (answer, amount) in enumerate(zip(answers, (10, -2.5, 3), strict=True), start=1):
        assert set(answer) >= ACCEPTED_FIELDS
        assert answer["status"] == "QUEUED" and answer["customerId"] == customer
        assert answer["delta"] == amount and answer["sequenceNumber"] == expected_seq
        assert answer["recordId"] and answer["receiptId"]
    assert len({a["recordId"] for a in answers}) == 3 and len({a["receiptId"] for a in answers}) == 3


@pytest.mark.parametrize(("amount", "text"), [(0.000001, "0.000001"), (-123456789.123456, "-123456789.123456"),
                                              (999999999.999999, "999999999.999999"), (1000000000, "1000000000")])
def test_exact_decimals_round_trip_through_the_sdk(stack, prod_key, amount, text):
    recorder = Recorder()
    client = sdk(stack, prod_key, recorder)
    customer = cust("exact")
    accepted = client.balance.emit(customer, amount, "exact")
    assert accepted["delta"] == amount
    assert json.loads(recorder.last_text)["data"]["delta"] == amount
    assert f'"delta":{text}' in recorder.last_text.replace(" ", "")
    status = client.balance.delta_status(accepted["recordId"])
    assert status["delta"] == amount
    assert f'"delta":{text}' in recorder.last_text.replace(" ", "")


def test_exact_decimal_text_round_trips_over_raw_http(stack, prod_key):
    customer = cust("rawexact")
    body = delta_text(customer, "-123456789.123456")
    status, _h, text = raw("POST", stack["base"] + DELTA, {"X-Api-Key": prod_key}, body)
    assert status == 202, text
    assert '"delta":-123456789.123456' in text.replace(" ", "")
    record_id = json.loads(text)["data"]["recordId"]
    status, _h, text = raw("GET", f"{stack['base']}{DELTA}/{record_id}", {"X-Api-Key": prod_key})
    assert status == 200 and '"delta":-123456789.123456' in text.replace(" ", "")
    # Exponent notation (what json.dumps writes for 1e-06) is the same exact number, written plainly.
    body = delta_text(customer, "1E-6")
    status, _h, text = raw("POST", stack["base"] + DELTA, {"X-Api-Key": prod_key}, body)
    assert status == 202 and '"delta":0.000001' in text.replace(" ", "")


# --- delta_status ----------------------------------------------------------------------------------------


def test_delta_status_returns_the_accepted_record(client):
    customer = cust("status")
    accepted = client.balance.emit(customer, 42.5, "seat added", {"referenceId": "ref-status",
                                                                    "metadata": {"seat": "s1"}})
    record = client.balance.delta_status(accepted["recordId"])
    for name in ACCEPTED_FIELDS - {"status"}:
        assert record[name] == accepted[name], name
    assert record["status"] in {"QUEUED", "PROCESSING", "VERIFIED"}  # the local verifier runs meanwhile
    assert record["reason"] == "seat added" and record["referenceId"] == "ref-status"
    assert record["metadata"] == {"seat": "s1"}
    assert record["environment"] == "production"
    assert record["period"] == datetime.now(UTC).strftime("%Y-%m")
    assert record["createdAt"].endswith("Z")
    assert client.balance.get_record_status(accepted["recordId"])["recordId"] == accepted["recordId"]


def test_emit_and_wait_reaches_verified_with_a_proof_that_checks_offline(client):
    from chalicelib.domain.merkle import verify_inclusion

    record = client.balance.emit_and_wait(cust("wait"), 7.25, "verified", {"timeout": 20_000, "pollInterval": 200})
    assert record["status"] == "VERIFIED" and record["verifiedAt"].endswith("Z")
    assert len(record["contentHash"]) == 64 and record["batchId"].startswith("bat_")
    proof = [bytes.fromhex(p) for p in record["inclusionProof"]]
    size = client.verify(record["proofRoot"])["summary"]["treeSize"]  # the signed batch names the tree size
    assert verify_inclusion(bytes.fromhex(record["proofHash"]), record["leafIndex"], size, proof,
                            bytes.fromhex(record["proofRoot"]))


def test_sdk_verify_confirms_the_proof_root_of_a_verified_delta(client):
    record = client.balance.emit_and_wait(cust("proof"), 1, "to verify", {"timeout": 20_000, "pollInterval": 200})
    result = client.verify(record["proofRoot"])
    assert result["verified"] is True and result["proofRoot"] == record["proofRoot"]
    assert record["recordId"] in [r["recordId"] for r in result["records"]]
    assert result["recordedAt"].endswith("Z") and result["verification"]["signatureValid"] is True
    assert client.verify("0" * 64)["verified"] is False


def test_delta_status_of_an_unknown_record_is_not_found(client):
    with pytest.raises(NotFoundError) as caught:
        client.balance.delta_status("rec_doesnotexist000000")
    assert caught.value.status_code == 404 and caught.value.code == "NOT_FOUND"


def test_other_environments_and_tenants_cannot_see_a_delta(stack, client, sandbox_key, free_key):
    accepted = client.balance.emit(cust("isolated"), 1, "prod only")
    with pytest.raises(NotFoundError):
        sdk(stack, sandbox_key).balance.delta_status(accepted["recordId"])
    with pytest.raises(NotFoundError):
        sdk(stack, free_key).balance.delta_status(accepted["recordId"])


# --- usage -----------------------------------------------------------------------------------------------


def test_usage_reports_the_credits_plan_and_counts_emits(client, stack, sandbox_key):
    before = client.balance.usage()
    assert before["allowed"] is True
    assert before["period"] == datetime.now(UTC).strftime("%Y-%m")
    assert before["allotment"] == 100_000 and before["plan"] == "starter" and before["billingMode"] == "credits"
    assert isinstance(before["remaining"], int) and before["remaining"] > 0
    customer = cust("usage")
    client.balance.emit(customer, 1, "one")
    client.balance.emit(customer, 2, "two")
    after = client.balance.usage()
    assert after["consumed"] == before["consumed"] + 2
    assert after["remaining"] == before["remaining"] - 2  # one credit reserved per delta
    # Billing counts both environments together.
    sdk(stack, sandbox_key).balance.emit(customer, 1, "sandbox")
    assert consumed(client) == before["consumed"] + 3
    assert sdk(stack, sandbox_key).balance.usage()["consumed"] == before["consumed"] + 3


# --- idempotency -----------------------------------------------------------------------------------------


def test_idempotency_key_replays_the_first_answer_and_stores_nothing_new(stack, prod_key):
    recorder = Recorder()
    client = sdk(stack, prod_key, recorder)
    customer = cust("idem")
    start = consumed(client)
    first = client.balance.emit(customer, 5, "once", {"idempotencyKey": "k-1"})
    first_body = recorder.responses[-1].body
    assert first["sequenceNumber"] == 1
    assert consumed(client) == start + 1
    again = client.balance.emit(customer, 5, "once", {"idempotencyKey": "k-1"})
    assert recorder.responses[-1].headers.get("idempotent-replayed") == "true"
    assert recorder.responses[-1].status_code == 202 and recorder.responses[-1].body == first_body
    assert again["recordId"] == first["recordId"] and again["sequenceNumber"] == first["sequenceNumber"]
    assert again == first
    assert consumed(client) == start + 1
    assert client.balance.emit(customer, 1, "next")["sequenceNumber"] == 2


def test_idempotency_key_reused_with_another_body_is_409(client):
    customer = cust("idem409")
    first = client.balance.emit(customer, 5, "once", {"idempotencyKey": "k-409"})
    start = consumed(client)
    with pytest.raises(PacSpaceError) as caught:
        client.balance.emit(customer, 6, "once", {"idempotencyKey": "k-409"})
    assert caught.value.status_code == 409 and caught.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert consumed(client) == start
    assert client.balance.emit(customer, 1, "next")["sequenceNumber"] == first["sequenceNumber"] + 1


def test_idempotency_keys_are_scoped_to_the_environment(client, stack, sandbox_key):
    customer = cust("idemenv")
    production = client.balance.emit(customer, 5, "once", {"idempotencyKey": "k-env"})
    sandbox = sdk(stack, sandbox_key).balance.emit(customer, 5, "once", {"idempotencyKey": "k-env"})
    assert sandbox["recordId"] != production["recordId"] and sandbox["sequenceNumber"] == 1


def test_reference_id_replays_the_first_delta_per_customer(client):
    customer = cust("ref")
    start = consumed(client)
    first = client.balance.emit(customer, 9, "invoice", {"referenceId": "inv-1"})
    assert first["referenceId"] == "inv-1" and not first.get("idempotent")
    again = client.balance.emit(customer, 9, "invoice", {"referenceId": "inv-1"})
    assert again["idempotent"] is True
    assert again["recordId"] == first["recordId"] and again["sequenceNumber"] == first["sequenceNumber"]
    assert consumed(client) == start + 1
    # Another customer's inv-1 is another delta.
    other = client.balance.emit(cust("ref"), 9, "invoice", {"referenceId": "inv-1"})
    assert other["recordId"] != first["recordId"] and not other.get("idempotent")
    assert client.balance.emit(customer, 1, "next")["sequenceNumber"] == 2


# --- 402 -------------------------------------------------------------------------------------------------


def test_free_plan_stops_at_100_deltas_a_month_and_stores_nothing_more(stack, free_key):
    key = free_key
    client = sdk(stack, key)
    usage = client.balance.usage()
    assert usage["plan"] == "free" and usage["allotment"] == 100 and usage["consumed"] == 0
    assert usage["remaining"] == 100 and usage["allowed"] is True
    customer = cust("free")
    batch = {"deltas": [{"customerId": customer, "delta": 1, "reason": f"d{i}"} for i in range(99)]}
    status, _h, text = raw("POST", stack["base"] + BATCH, {"X-Api-Key": key}, batch)
    assert status == 202 and json.loads(text)["data"]["totalQueued"] == 99, text
    assert client.balance.emit(customer, 1, "the 100th")["sequenceNumber"] == 100
    assert client.balance.usage()["consumed"] == 100

    with pytest.raises(InsufficientCreditsError) as caught:
        client.balance.emit(customer, 1, "the 101st")
    assert caught.value.status_code == 402
    assert caught.value.api_body["code"] == "PLAN_LIMIT_EXCEEDED"
    newcomer = cust("free_new")
    with pytest.raises(InsufficientCreditsError):
        client.balance.emit(newcomer, 1, "new customer")
    # The cap is per tenant: the sandbox environment is refused too.
    with pytest.raises(InsufficientCreditsError):
        sdk(stack, new_key(stack, "3", "sandbox")["fullKey"]).balance.emit(newcomer, 1, "sandbox")
    # A batch past the cap, of which nothing can be accepted, is a 402 too, each item's reason in the error.
    status, _h, text = raw("POST", stack["base"] + BATCH, {"X-Api-Key": key},
                           {"deltas": [{"customerId": customer, "delta": 1, "reason": "over"}]})
    error = json.loads(text)["error"]
    assert status == 402 and error["code"] == "PLAN_LIMIT_EXCEEDED" and error["totalQueued"] == 0
    assert error["results"][0]["status"] == "FAILED" and error["results"][0]["code"] == "PLAN_LIMIT_EXCEEDED"

    usage = client.balance.usage()
    assert usage["consumed"] == 100 and usage["remaining"] == 0 and usage["allowed"] is False
    # Nothing was stored: the refused newcomer was never created (a first delta creates its customer).
    assert client.balance.customers({"search": newcomer})["items"] == []
    assert [c["customerId"] for c in client.balance.customers({"search": customer})["items"]] == [customer]


def test_credits_billing_accepts_exactly_as_many_deltas_as_credits(stack):
    tenant = json.loads(tally(stack, "tenants", "create", "--name", "Exact Credits", "--billing-mode", "credits",
                              "--plan", "starter", "--json"))
    tally(stack, "credits", "topup", "--tenant", tenant["id"], "--amount", "3", "--json")
    client = sdk(stack, new_key(stack, tenant["id"])["fullKey"])
    usage = client.balance.usage()
    assert usage["remaining"] == 3 and usage["allowed"] is True and usage["billingMode"] == "credits"
    customer = cust("credits")
    assert [client.balance.emit(customer, 1, "paid")["sequenceNumber"] for _ in range(3)] == [1, 2, 3]
    with pytest.raises(InsufficientCreditsError) as caught:
        client.balance.emit(customer, 1, "unpaid", {"idempotencyKey": "k-402"})
    assert caught.value.status_code == 402 and caught.value.code == "INSUFFICIENT_CREDITS"
    assert caught.value.api_body["code"] == "INSUFFICIENT_CREDITS"
    usage = client.balance.usage()
    assert usage["consumed"] == 3 and usage["remaining"] == 0 and usage["allowed"] is False
    # The three are reserved, or already settled by the local verifier: nothing is left to spend either way.
    assert usage["credits"]["availableBalance"] == 0
    assert usage["credits"]["reserved"] == usage["credits"]["creditBalance"] <= 3

    tally(stack, "credits", "topup", "--tenant", tenant["id"], "--amount", "1", "--json")
    # Nothing was stored at 402, and the refused request released its Idempotency-Key: the retry runs anew.
    retried = client.balance.emit(customer, 1, "unpaid", {"idempotencyKey": "k-402"})
    assert retried["sequenceNumber"] == 4
    assert client.balance.usage()["consumed"] == 4


# --- 401 -------------------------------------------------------------------------------------------------


def test_a_revoked_key_is_rejected(stack):
    key = new_key(stack, "2")
    client = sdk(stack, key["fullKey"])
    assert client.balance.usage()["plan"] == "starter"
    status, _h, text = raw("POST", f"{stack['base']}/dashboard/api-keys/{key['id']}/revoke",
                           {"Authorization": f"Bearer {stack['creds']['jwt']}", "X-Environment": "production"})
    assert status == 200, text
    with pytest.raises(InvalidApiKeyError) as caught:
        client.balance.emit(cust("revoked"), 1, "nope")
    assert caught.value.status_code == 401 and caught.value.code == "INVALID_API_KEY"
    with pytest.raises(InvalidApiKeyError):
        client.balance.usage()


@pytest.mark.parametrize("api_key", ["pk_live_madeup.secret", "pk_test_x", "not-a-key"])
def test_made_up_keys_are_rejected(stack, prod_key, api_key):
    with pytest.raises(InvalidApiKeyError) as caught:
        sdk(stack, api_key).balance.emit(cust("madeup"), 1, "nope")
    assert caught.value.api_body["code"] == "INVALID_API_KEY"
    # A real key's prefix with a wrong secret.
    with pytest.raises(InvalidApiKeyError):
        sdk(stack, prod_key.rsplit(".", 1)[0] + ".wrongsecret").balance.usage()


def test_a_missing_key_answers_the_401_envelope(stack):
    status, _h, text = raw("GET", stack["base"] + USAGE)
    body = json.loads(text)
    assert status == 401 and body["success"] is False and body["error"]["code"] == "INVALID_API_KEY"


# --- 400 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("customer_id", "amount", "reason"), [
    ("cust_ok", 0, "zero"),
    ("cust_ok", 1, ""),
    ("cust_ok", 1, "   "),
    ("cust_ok", 1, "x" * 501),
    ("has space", 1, "space"),
    ("", 1, "empty id"),
    ("c" * 129, 1, "long id"),
    ("cust/slash", 1, "slash"),
    ("cust_ok", 0.0000001, "seven fractional digits"),
    ("cust_ok", 1000000000.5, "too large"),
    ("cust_ok", -1000000001, "too small"),
])
def test_bad_inputs_raise_validation_errors(client, customer_id, amount, reason):
    start = consumed(client)
    with pytest.raises(PacSpaceError) as caught:
        client.balance.emit(customer_id, amount, reason)
    assert caught.value.status_code == 400 and caught.value.code == "VALIDATION_ERROR"
    assert caught.value.api_body["message"]
    assert consumed(client) == start


@pytest.mark.parametrize(("delta", "code"), [
    ('"5"', "VALIDATION_ERROR"), ("true", "VALIDATION_ERROR"), ("null", "VALIDATION_ERROR"),
    ("[1]", "VALIDATION_ERROR"), ("1e400", "VALIDATION_ERROR"), ("1E-7", "VALIDATION_ERROR"),
    # Not JSON at all (Python's json.dumps writes them, strict parsers refuse them): the body is malformed.
    ("NaN", "INVALID_JSON"), ("Infinity", "INVALID_JSON"), ("-Infinity", "INVALID_JSON"),
])
def test_non_numeric_deltas_over_raw_http_are_400(stack, prod_key, delta, code):
    body = delta_text("cust_raw", delta)
    status, _h, text = raw("POST", stack["base"] + DELTA, {"X-Api-Key": prod_key}, body)
    payload = json.loads(text)
    assert status == 400, text
    assert payload == {"statusCode": 400, "success": False, "error": {**payload["error"], "code": code}}
    assert payload["error"]["message"] and "Traceback" not in text


@pytest.mark.parametrize(("body", "code"), [("not json", "INVALID_JSON"), ("[]", "VALIDATION_ERROR"),
                                            ("{}", "VALIDATION_ERROR"),
                                            ('{"customerId": "c", "reason": "r"}', "VALIDATION_ERROR")])
def test_malformed_bodies_are_400_not_500(stack, prod_key, body, code):
    status, _h, text = raw("POST", stack["base"] + DELTA, {"X-Api-Key": prod_key}, body)
    assert status == 400, text
    assert json.loads(text)["error"]["code"] == code


# --- batch (raw HTTP: the SDK's batch transport is internal) ---------------------------------------------


def test_batch_answers_per_item(stack, prod_key):
    customer = cust("batch")
    deltas = [
        {"customerId": customer, "delta": 1.5, "reason": "ok"},
        {"customerId": customer, "delta": 0, "reason": "zero"},
        {"customerId": customer, "delta": "3", "reason": "string"},
        {"customerId": customer, "delta": 2, "reason": "ok", "referenceId": "b-1"},
        {"customerId": "bad id", "delta": 1, "reason": "space"},
        {"customerId": customer, "delta": 2, "reason": "ok", "referenceId": "b-1"},
        {"customerId": customer, "delta": -0.000001, "reason": ""},
        {"customerId": customer, "delta": -0.000001, "reason": "tiny"},
    ]
    client = sdk(stack, prod_key)
    start = consumed(client)
    status, _h, text = raw("POST", stack["base"] + BATCH, {"X-Api-Key": prod_key}, {"deltas": deltas})
    assert status == 202, text
    body = json.loads(text)
    assert body["success"] is True and body["statusCode"] == 202
    data = body["data"]
    assert data["totalQueued"] == 4 and data["totalFailed"] == 4
    results = data["results"]
    assert [r["index"] for r in results] == list(range(8))
    assert [r["status"] for r in results] == ["QUEUED", "FAILED", "FAILED", "QUEUED", "FAILED", "QUEUED",
                                              "FAILED", "QUEUED"]
    for index in (1, 2, 4, 6):
        assert isinstance(results[index]["error"], str) and results[index]["error"]
        assert results[index]["code"] == "VALIDATION_ERROR"
    assert [results[i]["sequenceNumber"] for i in (0, 3, 7)] == [1, 2, 3]
    assert results[5]["idempotent"] is True and results[5]["recordId"] == results[3]["recordId"]
    assert not results[0].get("idempotent")
    assert '"delta":-0.000001' in text.replace(" ", "")
    assert consumed(client) == start + 3
    assert client.balance.delta_status(results[7]["recordId"])["delta"] == -0.000001


@pytest.mark.parametrize("body", [{"deltas": []}, {"deltas": "x"}, {},
                                  {"deltas": [{"customerId": "c", "delta": 1, "reason": "r"}] * 101}])
def test_batch_envelope_errors_are_400(stack, prod_key, body):
    status, _h, text = raw("POST", stack["base"] + BATCH, {"X-Api-Key": prod_key}, body)
    assert status == 400 and json.loads(text)["error"]["code"] == "VALIDATION_ERROR", text


def test_batch_idempotency_key_replays_the_whole_answer(stack, prod_key):
    customer = cust("batchidem")
    body = {"deltas": [{"customerId": customer, "delta": 1, "reason": "a"},
                       {"customerId": customer, "delta": 2, "reason": "b"}]}
    headers = {"X-Api-Key": prod_key, "Idempotency-Key": "batch-k-1"}
    first = raw("POST", stack["base"] + BATCH, headers, body)
    again = raw("POST", stack["base"] + BATCH, headers, body)
    assert first[0] == again[0] == 202
    assert json.loads(again[2]) == json.loads(first[2])
    assert again[1].get("Idempotent-Replayed") == "true"
    body["deltas"][1]["delta"] = 3
    status, _h, text = raw("POST", stack["base"] + BATCH, headers, body)
    assert status == 409 and json.loads(text)["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert sdk(stack, prod_key).balance.emit(customer, 1, "next")["sequenceNumber"] == 3


# --- concurrency: the local stack serialises moto's DynamoDB like DynamoDB's own atomicity -----------------


def test_concurrent_emits_get_gap_free_sequence_numbers(stack, prod_key):
    client = sdk(stack, prod_key)
    for _round in range(4):  # the race needs contention: repeat so a fixed stack passes every round
        customer = cust("race")
        start = consumed(client)

        def emit(i: int, customer: str = customer) -> dict | PacSpaceError:
            try:
                return sdk(stack, prod_key).balance.emit(customer, i + 1, "race")
            except PacSpaceError as exc:
                return exc

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(emit, range(24)))
        errors = [f"{a.status_code} {a.code}: {a.message}" for a in answers if isinstance(a, PacSpaceError)]
        assert errors == []
        assert sorted(a["sequenceNumber"] for a in answers) == list(range(1, 25))
        assert len({a["recordId"] for a in answers}) == 24
        assert consumed(client) == start + 24
