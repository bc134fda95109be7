"""Outgoing webhooks over real HTTP: the real local stack (`tally dev up`, whose job runner sends deliveries
in-process) POSTs to a loopback receiver in this process, and the official `pacspace-sdk` verifier accepts
what it receives.

Proves that a verified delta is announced with `delta.verified` (with its usage block) and
`verification.completed`, signed so that `Webhooks(secret).verify_from_headers` accepts the genuine bytes and
refuses tampered ones or a wrong secret; that a failing receiver is retried with backoff, each attempt signed
afresh, until one 2xx, and the delivery history (dashboard and SDK) records every attempt; that the SDK's
`retry_webhook` re-sends a delivered event; that a dashboard-created customer sends `customer.created`; and that
only loopback may be plain http on the local stack.

One stack and one receiver for the module; every test registers its own endpoint on its own receiver path
(deleted afterwards) and looks only at its own events, so the tests do not depend on each other."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pacspace_sdk import PacSpace, Webhooks, WebhookVerificationError

from tests.integration.localstack import Recorder, call, local_stack, tally

WEBHOOKS = "/dashboard/webhooks"


# --- the loopback receiver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One POST the receiver got, and the status it answered."""

    path: str
    headers: Message  # case-insensitive, as the SDK verifier expects of a header mapping
    body: str
    status: int

    @property
    def event_id(self) -> str:
        return self.headers["X-Event-ID"]

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        status = self.server.record(self.path, self.headers, body)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


class Receiver(ThreadingHTTPServer):
    """Records every POST; each event sent to a path is answered with that path's script, then 200."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self._hits: list[Hit] = []
        self.scripts: dict[str, list[int]] = {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"

    def record(self, path: str, headers: Message, body: str) -> int:
        with self._lock:
            seen = sum(1 for h in self._hits if h.path == path and h.event_id == headers["X-Event-ID"])
            script = self.scripts.get(path, [])
            status = script[seen] if seen < len(script) else 200
            self._hits.append(Hit(path, headers, body, status))
            return status

    def hits(self, path: str, match: Callable[[dict], bool] = lambda _payload: True) -> list[Hit]:
        with self._lock:
            return [h for h in self._hits if h.path == path and match(h.payload)]


def eventually(probe: Callable[[], object], what: str, timeout: float = 20.0):
    """Poll ``probe`` until it answers something truthy (deliveries happen in the stack's own time)."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)
    return value


# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for info in local_stack(tmp_path_factory, "tally-webhooks-home"):
        info["creds"] = json.loads(tally(info, "dev", "credentials", "--json"))
        yield info


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def dashboard(stack: dict, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    """The demo tenant's owner ("Acme Inc", credits billing), production scope."""
    return call(method, stack["base"] + path, {"Authorization": f"Bearer {stack['creds']['jwt']}",
                                               "X-Environment": "production",
                                               "Content-Type": "application/json"}, body)


@pytest.fixture
def endpoint(stack, receiver):
    """Register a loopback endpoint on its own receiver path; each is deleted after the test."""
    made: list[str] = []

    def register(path: str, *, statuses: tuple[int, ...] = (), events: list[str] | None = None) -> dict:
        receiver.scripts[path] = list(statuses)
        body = {"url": receiver.url(path), "description": f"test {path}"}
        if events is not None:
            body["events"] = events
        status, _h, answer = dashboard(stack, "POST", WEBHOOKS, body)
        assert status == 201, answer
        made.append(answer["data"]["id"])
        return answer["data"]

    yield register
    for endpoint_id in made:
        status, _h, answer = dashboard(stack, "DELETE", f"{WEBHOOKS}/{endpoint_id}")
        assert status == 200, answer


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(stack, recorder) -> PacSpace:
    return PacSpace(stack["creds"]["apiKeys"]["production"], base_url=stack["base"], max_retries=0,
                    transport=recorder)


def send_test_event(stack: dict, hook: dict) -> str:
    status, _h, answer = dashboard(stack, "POST", f"{WEBHOOKS}/{hook['id']}/test")
    assert status == 202 and answer["data"]["status"] == "PENDING", answer
    assert answer["data"]["event"] == "webhook.test" and answer["data"]["endpointId"] == hook["id"]
    return answer["data"]["eventId"]


def history(stack: dict, hook: dict, event_id: str) -> list[dict]:
    status, _h, answer = dashboard(stack, "GET", f"{WEBHOOKS}/{hook['id']}/deliveries?limit=100")
    assert status == 200, answer
    return [d for d in answer["data"]["items"] if d["eventId"] == event_id]


def delivered(stack: dict, hook: dict, event_id: str, attempts: int) -> dict:
    """The event's one delivery to ``hook``, once it is DELIVERED after ``attempts`` attempts."""
    def done() -> list[dict]:
        found = history(stack, hook, event_id)
        return [d for d in found if d["status"] == "DELIVERED" and d["attemptCount"] == attempts]

    found = eventually(done, f"{event_id} delivered in {attempts} attempt(s)")
    assert len(history(stack, hook, event_id)) == 1
    return found[0]


def cust(label: str) -> str:
    return f"{label}_{uuid.uuid4().hex[:10]}"


# --- tests -------------------------------------------------------------------------------------------------


def test_a_verified_delta_sends_signed_delta_verified_and_verification_completed(stack, client, endpoint,
                                                                                 receiver):
    hook = endpoint("/verified")
    assert hook["secret"].startswith("whsec_")
    record_id = client.balance.emit(cust("hook"), 3, "webhook")["recordId"]

    hit = eventually(lambda: receiver.hits("/verified", lambda p: p["event"] == "delta.verified"
                                           and p["data"]["recordId"] == record_id), "delta.verified")[0]
    payload = Webhooks(hook["secret"]).verify_from_headers(hit.headers, hit.body)
    assert payload == hit.payload and payload["event"] == "delta.verified"
    assert hit.headers["X-Webhook-Event"] == payload["event"] and hit.headers["X-Event-ID"] == payload["id"]
    assert payload["id"].startswith("evt_") and payload["tenantId"] == stack["creds"]["tenantId"]
    assert isinstance(payload["timestamp"], int) and payload["createdAt"].endswith("Z")
    data = payload["data"]
    assert data["recordId"] == record_id and data["receiptId"] and data["delta"] == 3
    assert len(data["proofRoot"]) == 64 and data["batchId"].startswith("bat_")
    usage = data["usage"]
    assert usage["plan"] == "starter" and usage["includedDeltas"] == 100_000
    assert set(usage) == {"plan", "periodId", "includedDeltas", "consumedDeltas", "remainingDeltas", "overageRate"}

    hit = eventually(lambda: receiver.hits("/verified", lambda p: p["event"] == "verification.completed"
                                           and record_id in p["data"]["recordIds"]), "verification.completed")[0]
    completed = Webhooks(hook["secret"]).verify_from_headers(hit.headers, hit.body)
    assert hit.headers["X-Webhook-Event"] == "verification.completed"
    assert completed["data"]["batchId"] == data["batchId"] and completed["data"]["proofRoot"] == data["proofRoot"]
    consumed, remaining = completed["data"]["creditsConsumed"], completed["data"]["remainingBalance"]
    assert type(consumed) is int and consumed >= 1
    assert type(remaining) is int and remaining >= 0


def test_a_tampered_body_or_a_wrong_secret_fails_verification(stack, endpoint, receiver):
    hook = endpoint("/signed")
    event_id = send_test_event(stack, hook)
    hit = eventually(lambda: receiver.hits("/signed", lambda p: p["id"] == event_id), "the test event")[0]
    verifier = Webhooks(hook["secret"])
    assert verifier.verify_from_headers(hit.headers, hit.body)["event"] == "webhook.test"

    at = hit.body.index("Test event")
    tampered = hit.body[:at] + "B" + hit.body[at + 1:]
    assert len(tampered) == len(hit.body) and tampered != hit.body
    with pytest.raises(WebhookVerificationError):
        verifier.verify_from_headers(hit.headers, tampered)
    with pytest.raises(WebhookVerificationError):
        Webhooks("whsec_" + "0" * 32).verify_from_headers(hit.headers, hit.body)


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers_2xx(stack, client, recorder, endpoint,
                                                                         receiver):
    hook = endpoint("/flaky", statuses=(500, 500))  # every event: 500, 500, then 200
    event_id = send_test_event(stack, hook)

    eventually(lambda: [h for h in receiver.hits("/flaky", lambda p: p["id"] == event_id) if h.status == 200],
               "the third attempt (retries after 2 s, then 10 s)", timeout=30)
    delivery = delivered(stack, hook, event_id, attempts=3)
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 500, 200]
    assert [a["number"] for a in delivery["attempts"]] == [1, 2, 3]
    assert delivery["lastStatusCode"] == 200 and delivery["deliveredAt"] and delivery["nextAttemptAt"] is None

    hits = receiver.hits("/flaky", lambda p: p["id"] == event_id)
    assert [h.status for h in hits] == [500, 500, 200]
    assert len({h.body for h in hits}) == 1  # every attempt sends the same bytes …
    stamps = [int(h.headers["X-PacSpace-Timestamp"]) for h in hits]
    assert stamps == sorted(stamps) and stamps[2] - stamps[0] >= 10  # … signed at its own time
    assert len({h.headers["X-PacSpace-Signature"] for h in hits}) == 3
    for hit in hits:
        assert Webhooks(hook["secret"]).verify_from_headers(hit.headers, hit.body)["id"] == event_id
        assert hit.headers["X-Event-ID"] == event_id and hit.headers["X-Webhook-Event"] == "webhook.test"

    # The Balance API's history (the SDK), filtered on DELIVERED server-side.
    page = client.balance.list_webhook_deliveries({"status": "DELIVERED", "limit": 100})
    mine = [d for d in page["items"] if d["eventId"] == event_id]
    assert len(mine) == 1 and mine[0]["endpointId"] == hook["id"] and mine[0]["attemptCount"] == 3
    assert mine[0]["delivered"] is True  # what SDK users read: the SDK rewrites `status`
    assert [a["statusCode"] for a in mine[0]["attempts"]] == [500, 500, 200]
    wire = [d for d in recorder.last_json["data"]["items"] if d["eventId"] == event_id]
    assert wire[0]["status"] == "DELIVERED"  # on the wire (the SDK reports it as QUEUED)
    pending = client.balance.list_webhook_deliveries({"status": "PENDING", "limit": 100})
    assert event_id not in [d["eventId"] for d in pending["items"]]


def test_sdk_retry_webhook_resends_a_delivered_event(stack, client, recorder, endpoint, receiver):
    hook = endpoint("/retry")
    event_id = send_test_event(stack, hook)
    delivered(stack, hook, event_id, attempts=1)
    first = receiver.hits("/retry", lambda p: p["id"] == event_id)
    assert len(first) == 1

    answer = client.balance.retry_webhook(event_id)
    assert answer["eventId"] == event_id and [d["eventId"] for d in answer["deliveries"]] == [event_id]
    assert recorder.last_json["data"]["status"] == "PENDING"  # on the wire (the SDK reports it as QUEUED)
    assert recorder.responses[-1].status_code == 202

    again = eventually(lambda: receiver.hits("/retry", lambda p: p["id"] == event_id)[1:], "the re-sent event")
    assert again[0].headers["X-Event-ID"] == event_id and again[0].body == first[0].body
    assert Webhooks(hook["secret"]).verify_from_headers(again[0].headers, again[0].body)["id"] == event_id
    delivery = delivered(stack, hook, event_id, attempts=2)
    assert [a["statusCode"] for a in delivery["attempts"]] == [200, 200]


def test_a_dashboard_created_customer_sends_customer_created(stack, endpoint, receiver):
    hook = endpoint("/customers", events=["customer.created"])
    assert hook["events"] == ["customer.created"]
    customer_id = cust("manual")
    status, _h, answer = dashboard(stack, "POST", "/dashboard/customers",
                                   {"displayName": "Webhook Customer", "customerId": customer_id})
    assert status == 201, answer

    hit = eventually(lambda: receiver.hits("/customers", lambda p: p["data"].get("customerId") == customer_id),
                     "customer.created")[0]
    payload = Webhooks(hook["secret"]).verify_from_headers(hit.headers, hit.body)
    assert payload["event"] == "customer.created" and hit.headers["X-Webhook-Event"] == "customer.created"
    assert payload["data"]["displayName"] == "Webhook Customer" and payload["data"]["source"] == "manual"
    assert payload["data"]["environment"] == "production"
    assert len(receiver.hits("/customers", lambda p: p["data"].get("customerId") == customer_id)) == 1


def test_plain_http_is_accepted_only_for_loopback(stack, endpoint, receiver):
    status, _h, answer = dashboard(stack, "POST", WEBHOOKS, {"url": "http://example.com/hook"})
    assert status == 400 and answer["error"]["code"] == "VALIDATION_ERROR", answer
    assert "https" in answer["error"]["message"]
    hook = endpoint("/loopback")
    assert hook["url"] == receiver.url("/loopback") and hook["status"] == "active"
