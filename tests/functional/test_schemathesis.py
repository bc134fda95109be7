"""Schemathesis against the in-process app (issue 13, deliver 4): every operation of ``GET /openapi.json``, its
examples, coverage and fuzzing phases, valid and invalid data, with each credential kind — a dashboard JWT and
API key and platform token in one run, the dashboard session cookie in a second. The test fails on any 5xx,
any response whose status, media type, headers or body the document does not promise, any valid request
refused and any invalid one taken.

Bounded: a fixed seed and a fixed number of examples per operation (~2,400 requests, under two minutes on
two cores). The app is called in-process through a WSGI adapter over Chalice's local gateway, which decodes
path parameters as API Gateway does.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import pytest

from chalicelib.adapters.stripe_config import StripeConfig
from chalicelib.api.routing import OPERATIONS
from chalicelib.domain.identity import Ability
from tests.helpers import overriding, platform_operator, submit, verify

SEED = 13
EXAMPLES = 10  # fuzzing-phase cases per operation (the coverage phase derives its own ~45 from each schema)
COOKIE_EXAMPLES = 6
MINIMUM_CASES = 2000
SECRET = "whsec_schemathesis_0123456789abcdef0123"
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "positive_data_acceptance",
          "negative_data_rejection", "missing_required_header", "unsupported_method", "use_after_free",
          "ensure_resource_availability")
#: Schema-valid requests the API refuses by a rule no JSON Schema can state: what exists, what time it is, or a
#: relation between two values. A 400 with one of these (code, field) pairs is not a contract breach; any other
#: refusal of valid data is.
SEMANTIC_REFUSALS = {
    ("VALIDATION_ERROR", "cursor"): "a cursor is a token only the server mints",
    ("validation_failed", "cursor"): "the same, on the platform API (422)",
    ("VALIDATION_ERROR", "endDate"): "endDate must be after startDate",
    ("VALIDATION_ERROR", "fromSequence"): "fromSequence must not pass toSequence",
    ("SCOPE_TOO_WIDE", "*"): "a time scope of at most 366 days, exactly one month where one is signed, at most "
                             "10,000 sequence numbers or 50,000 deltas a request",
    ("CONFIRMATION_MISMATCH", "confirmation"): "deleting the account takes its exact name",
    ("WEBHOOK_LIMIT_REACHED", "url"): "at most 20 endpoints per environment",
    ("VALIDATION_ERROR", "period"): "close packages are made of closed months or the current one",
}
#: Hypothesis warns when it prints a large generated value; under `-W error` that would abort the run's case.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
#: Operations a second credential would only repeat or break: logging the cookie out ends the cookie run.
COOKIE_RUN_SKIPS = ("DELETE /dashboard/session",)


def gateway_app(clock: Any, calls: Counter) -> Callable[..., Iterator[bytes]]:
    """A WSGI app over Chalice's local gateway: each request advances the frozen clock by a second (so the
    platform token's per-minute window turns over), the API key's rate limit (wall clock) never trips, path
    parameters arrive decoded (API Gateway's way), and a request marked ``X-Test-Sign-Stripe`` gets a valid
    ``Stripe-Signature`` over its exact body."""
    import stripe
    from chalice.config import Config

    from app import app
    from chalicelib.api import ratelimit
    from chalicelib.cli.local_gateway import TallyLocalGateway

    gateway = TallyLocalGateway(app, Config.create(chalice_stage="test", app_name="tally", chalice_app=app))
    convert = gateway.event_converter.create_lambda_event

    def decoded(*args: Any, **kwargs: Any) -> dict:
        event = convert(*args, **kwargs)
        event["pathParameters"] = {k: unquote(v) for k, v in (event.get("pathParameters") or {}).items()}
        return event

    gateway.event_converter.create_lambda_event = decoded

    def wsgi(environ: dict, start_response: Callable) -> Iterator[bytes]:
        clock.advance(seconds=1)
        ratelimit.reset()  # the API key's token bucket runs on the wall clock: keep the run deterministic
        path = (environ.get("RAW_URI") or environ["PATH_INFO"]).split("?", 1)[0]
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if headers.pop("x-test-sign-stripe", None):
            headers["stripe-signature"] = stripe.WebhookSignature.generate_signature_header(
                body.decode("utf-8", "surrogatepass"), SECRET, timestamp=int(clock().timestamp()))
        answer = gateway.handle_request(environ["REQUEST_METHOD"], path, headers, body)
        calls[answer["statusCode"]] += 1
        payload = answer.get("body") or b""
        if answer.get("isBase64Encoded"):
            payload = base64.b64decode(payload)
        elif isinstance(payload, str):
            payload = payload.encode("utf-8", "surrogatepass")
        pairs = list(answer.get("headers", {}).items())
        pairs += [(k, v) for k, values in (answer.get("multiValueHeaders") or {}).items() for v in values]
        start_response(f"{answer['statusCode']} -", pairs)
        return iter([payload])

    return wsgi


def _semantic(failure: Any, response: Any, seen: Counter) -> bool:
    from schemathesis.openapi.checks import RejectedPositiveData

    if not isinstance(failure, RejectedPositiveData) or response.status_code not in (400, 422):
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    if "error" in body:  # tenant routes: {"error": {"code", "field"}}
        code, fields = body["error"].get("code"), [body["error"].get("field")]
    else:  # platform routes: {"code", "errors": {field: [...]}}
        code, fields = body.get("code"), list(body.get("errors") or {}) or [None]
    if not all((code, field) in SEMANTIC_REFUSALS or (code, "*") in SEMANTIC_REFUSALS for field in fields):
        return False
    seen[f"{code}:{fields[0]}"] += 1
    return True


def _run(schema: Any) -> tuple[list[str], Counter, set[str]]:
    """Execute the engine over ``schema``; (one line per distinct failure, cases run by phase, operations
    that got at least one)."""
    from schemathesis.engine import events, from_schema

    failures: dict[tuple[str, str, str], str] = {}
    cases: Counter = Counter()
    tested: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases[str(event.phase)] += len(event.recorder.interactions)
            if event.recorder.interactions:
                tested.add(event.recorder.label)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    key = (event.recorder.label, check.name, failure.title)
                    if key not in failures:
                        interaction = event.recorder.interactions.get(case_id)
                        answer = interaction.response if interaction else None
                        failures[key] = (f"{key[0]} | {check.name} | {failure.title}\n"
                                         f"    {check.failure_info.code_sample}\n"
                                         f"    -> {answer.status_code if answer else '-'} "
                                         f"{(answer.content[:300] if answer else b'')!r}\n"
                                         f"    {str(getattr(failure, 'message', ''))[:400]}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures[("error", str(event), "")] = f"engine error: {getattr(event, 'info', event)}"
    return list(failures.values()), cases, tested


def _config(auth: dict[str, dict[str, str]], *, examples: int, coverage: bool) -> Any:
    import schemathesis

    return schemathesis.Config.from_dict({
        "seed": SEED,
        "workers": 1,
        # Credentials come from `auth` only: generated ones would spend the run on 401s the functional tests cover.
        "generation": {"max-examples": examples, "mode": "all", "database": "none",
                       "with-security-parameters": False},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": coverage},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        "checks": {name: {"enabled": True} for name in CHECKS},
        # API Gateway sends only POST /stripe/webhook to its function and answers other methods itself (404, as
        # for any unknown route, infra/resources.json); no function of ours sees them to answer 405.
        "operations": [{"include-path": "/stripe/webhook", "checks": {"unsupported_method": {"enabled": False}}}],
        "auth": {"openapi": auth},
        "suppress-health-check": ["all"],
    })


def _load(wsgi: Any, auth: dict[str, dict[str, str]], semantic: Counter, *, examples: int = EXAMPLES,
          coverage: bool = True) -> Any:
    import schemathesis

    schema = schemathesis.openapi.from_wsgi("/openapi.json", wsgi, config=_config(auth, examples=examples,
                                                                                   coverage=coverage))

    @schema.hook
    def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
        return not _semantic(failure, response, semantic)

    return schema


def before_call(context: Any, case: Any, kwargs: dict) -> None:
    """Stripe signs what it sends: a valid event carries a valid signature (an invalid one keeps its own)."""
    if case.operation.path == "/stripe/webhook" and case.meta and case.meta.generation.mode.is_positive:
        case.headers = {**(case.headers or {}), "X-Test-Sign-Stripe": "1"}


@pytest.fixture
def in_process_transport(monkeypatch) -> None:
    """Schemathesis 4.32.5's engine hands socket options (``max_redirects``, ``verify``, ...) to its WSGI
    transport, which passes them on to werkzeug unless the session is a ``requests`` one; an in-process call
    has no sockets, so they are dropped."""
    from schemathesis.transport.wsgi import WSGITransport

    send = WSGITransport.send

    def without_socket_options(self: Any, case: Any, *, session: Any = None, **kwargs: Any) -> Any:
        for name in ("max_redirects", "verify", "cert", "proxies"):
            kwargs.pop(name, None)
        return send(self, case, session=session, **kwargs)

    monkeypatch.setattr(WSGITransport, "send", without_socket_options)


@pytest.fixture
def signing_stripe_events() -> Iterator[None]:
    """``before_call`` exists only as a process-wide hook: registered for this test, removed after it."""
    import schemathesis
    from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

    schemathesis.hook(before_call)
    try:
        yield
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)


@pytest.fixture
def seeded(world, clock, api):
    """A paid tenant with a Stripe customer, its four credentials, and a customer (``cust_123``, the documented
    example) with verified deltas and a checkpoint, so valid requests reach real records."""
    platform_operator(world)
    tenant = world.tenant("Acme Inc", plan="scale", stripe_customer_id="cus_acme")
    jwt = world.jwt(tenant, "admin")
    key = {"X-Api-Key": world.api_key(tenant)[1]}
    verify(tenant, [submit(api, key, "cust_123", amount) for amount in (5, -2, 7)], clock)
    submit(api, key, "cust_123", 1)  # one still awaiting verification
    admin = {"Authorization": f"Bearer {jwt}"}
    assert api.post("/dashboard/customers/cust_123/checkpoint", headers=admin, json_body={}).status == 201
    return {"jwt": jwt, "cookie": world.session_cookie(tenant, "admin"), "key": key["X-Api-Key"],
            "platform": world.platform_token(*Ability)}


def test_every_operation_conforms_to_the_document_with_every_credential(seeded, clock, in_process_transport,
                                                                         signing_stripe_events):
    calls: Counter = Counter()
    semantic: Counter = Counter()  # valid requests refused by a rule no schema states, by code:field
    with overriding(stripe_config=StripeConfig(api_key="", webhook_secret=SECRET)):
        wsgi = gateway_app(clock, calls)
        started = time.perf_counter()
        tokens = {"apiKey": {"api_key": seeded["key"]}, "platformToken": {"bearer": seeded["platform"]},
                  "bearerJwt": {"bearer": seeded["jwt"]}}
        failures, cases, tested = _run(_load(wsgi, tokens, semantic))
        # The cookie run repeats the dashboard operations with the other dashboard credential: examples and
        # fuzzing (the coverage phase's matrix of every keyword's edge values does not depend on the credential).
        cookie = _load(wsgi, {"sessionCookie": {"api_key": seeded["cookie"]}}, semantic, examples=COOKIE_EXAMPLES,
                       coverage=False).include(path_regex="^/dashboard/")
        for skipped in COOKIE_RUN_SKIPS:
            method, path = skipped.split(" ")
            cookie = cookie.exclude(method=method, path=path)
        more, cookie_cases, _ = _run(cookie)
        elapsed = time.perf_counter() - started
    failures += more
    total = sum(cases.values()) + sum(cookie_cases.values())
    print(f"\nschemathesis: {total} cases ({dict(cases)} + cookie {dict(cookie_cases)}), {sum(calls.values())} "
          f"requests in {elapsed:.0f} s, statuses {dict(sorted(calls.items()))}, semantic refusals "
          f"{dict(semantic)}, {len(failures)} failures")
    assert not failures, "\n".join(failures)
    assert total >= MINIMUM_CASES
    # Schemathesis loads the document from GET /openapi.json and does not fuzz that operation itself.
    assert tested == {f"{op.method} {op.path}" for op in OPERATIONS} - {"GET /openapi.json"}
    assert not any(status >= 500 for status in calls)
