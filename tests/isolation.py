"""The tenant-isolation matrix (issue 13, deliver item 5), shared by the in-process run
(tests/functional/test_isolation_matrix.py, sequential) and the local-stack run
(tests/integration/test_isolation_http.py, concurrent over HTTP).

Two tenants are seeded through the API with the same shape in both environments: Alpha (A, the caller)
and Bravo (B, the target) — customers (integration and manual), verified and pending deltas (some sent
with an Idempotency-Key, all with reference ids and metadata), checkpoints (two of one customer), a
verification package, two API keys, a webhook endpoint with two deliveries; tenant-wide, audit entries,
credit entries (B bills by credits), a Checkout and a portal session, a close-package export.

The matrix is built from the served OpenAPI document, not from a list of routes: every operation x every
credential kind x both environments x every substitution of a foreign id. The kinds are each one the
operation accepts (bearer JWT; session cookie with same-origin CSRF headers; A's JWT carrying B's session
cookie, which must not change who asks; API key, whose requests name the other environment in
X-Environment, which must not widen them; a platform token without `tenants:write` or `cross-tenant`)
and, conversely, each tenant kind it does not accept, a cross-site cookie write, and two forgeries (A's
cookie relabelled with B's tenant id, A's key secret behind B's key id) — all refused. The substitutions
put B's ids of both environments, and A's own ids of the other environment, into path parameters,
id-bearing query parameters (cursors, searches, customer and checkpoint ids), headers (B's
Idempotency-Key with B's very body) and bodies. An operation whose path parameter, required parameter or
request body has no generator here fails the build (:class:`MatrixError`), so a new route is covered — or
the matrix stops — automatically.

Each answer is checked (:class:`Checker`): the expected status — a foreign id is 404 (SPEC: "another
tenant's resource id answers 404, never its data"; a capability link one character off too), a refused
credential 401, a cross-site cookie write 403, a platform token without the ability 403, an invalid input
400/422 — never a 5xx; a status the document lists; and no canary in its body (zip members unpacked) or
headers: none of B's ids, secrets and distinctive values (amounts, reasons, names, cursors), nor, for an
environment-scoped operation, A's own values of the other environment, unless the request itself carried
that string; B's tenant id in no `tenantId` field. Afterwards each tenant's state is read back and
compared with the state before (:func:`tenant_state`): B's in full, A's seeded records.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

ENVIRONMENTS = ("production", "sandbox")
SESSION_COOKIE = "tally_session"
NOT_FOUND = frozenset({404})
UNAUTHENTICATED = frozenset({401})
FORBIDDEN = frozenset({403})
ACCEPTED = frozenset({202})
#: Input refused as invalid (a cursor of another tenant or environment, a confirmation that is not the
#: caller's company name, an unsigned Stripe event): 400 on tenant routes, 422 in the platform style. The
#: exact validation code may move as input validation changes; what matters is a refusal, not a leak.
INVALID = frozenset({400, 422})
#: OpenAPI security scheme → the credential kind that presents it.
SCHEME_KINDS = {"bearerJwt": "jwt", "sessionCookie": "cookie", "apiKey": "api_key", "platformToken": "platform"}
#: Credential kinds beyond the schemes: A's JWT with B's session cookie attached (the cookie must never
#: change who is asking), and A's cookie on a cross-site write (refused, 403).
JWT_WITH_FOREIGN_COOKIE = "jwt+B_cookie"
CROSS_SITE_COOKIE = "cookie_cross_site"
#: Forged hybrids, always refused (401): A's session cookie relabelled with B's tenant id, and A's API key
#: secret behind B's key id.
COOKIE_AS_B = "cookie_as_B"
API_KEY_AS_B = "api_key_as_B"
TENANT_KINDS = ("jwt", "cookie", "api_key", "platform")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Operations that end the session presenting them: each such case gets a cookie of its own.
SESSION_ENDING = frozenset({("DELETE", "/dashboard/session")})
BOGUS_STRIPE_SIGNATURE = "t=1700000000,v1=" + "0" * 64


def other(environment: str) -> str:
    return "sandbox" if environment == "production" else "production"


class MatrixError(AssertionError):
    """The document has an operation this module cannot build cases for (add a generator)."""


# --- transport ------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    contract_error: str | None = None  # the in-process run checks every answer against the document too

    @property
    def media(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body, parse_float=Decimal)  # amounts print exactly as the server wrote them

    def data(self) -> Any:
        return self.json()["data"]

    def text(self) -> str:
        """Everything readable in the body: a zip's members are unpacked, so a canary cannot hide in one."""
        if self.media == "application/zip" and self.body:
            try:
                with zipfile.ZipFile(io.BytesIO(self.body)) as archive:
                    return "\n".join(archive.read(name).decode("latin-1") for name in archive.namelist())
            except zipfile.BadZipFile:
                pass
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.body[:300]!r}>"


Send = Callable[[str, str, dict[str, str], bytes | None], Answer]


class HttpSend:
    """``Send`` over real HTTP: one keep-alive connection per thread, each request bounded in time."""

    def __init__(self, base_url: str, timeout: float = 20.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self._local = threading.local()

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Answer:
        while True:
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.request(method, path, body=body, headers=headers)
                raw = conn.getresponse()
                payload = raw.read()
                return Answer(raw.status, {k.lower(): v for k, v in raw.getheaders()}, payload)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if not reused:
                    raise  # a fresh connection dropped: the server failed this request (a finding, not retried)
                # else a kept-alive connection the server had closed meanwhile: once more on a new one


def call(send: Send, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None,
         expect: Iterable[int] = (200,)) -> Answer:
    """One seeding or snapshot request; its status must be one of ``expect``."""
    headers = dict(headers or {})
    raw = None
    if body is not None:
        raw = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    answer = send(method, path, headers, raw)
    assert answer.status in set(expect), f"{method} {path} → {answer!r}"
    return answer


# --- the seeded tenants ---------------------------------------------------------------------------


@dataclass
class EnvSeed:
    """One tenant's data in one environment."""

    caller_key: str  # the full key this tenant's own Balance API calls present
    caller_key_id: str
    target_key_id: str  # a second key, only ever a substitution target
    customers: list[str]  # integration customers, the one with two checkpoints first
    manual_customer: str
    display_name: str
    verified: list[str]  # record ids
    pending: list[str]
    receipts: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)  # content hashes and batch roots
    checkpoints: list[str] = field(default_factory=list)
    checkpoint_roots: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    package_id: str = ""
    package_token: str = ""
    webhook_id: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    events: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)  # reasons, reference ids, metadata, amounts, balances
    references: dict[str, str] = field(default_factory=dict)  # reference id → customer id
    idempotent: dict[str, tuple[str, Any]] = field(default_factory=dict)  # path → (Idempotency-Key, body)

    @property
    def records(self) -> list[str]:
        return [*self.verified, *self.pending]


@dataclass
class TenantSeed:
    label: str
    tenant_id: str
    name: str
    user_id: str
    jwt: str
    cookie: str
    stripe_customer: str
    period: str = ""
    envs: dict[str, EnvSeed] = field(default_factory=dict)
    checkout_session: str | None = None
    portal_session: str | None = None
    audit_ids: list[str] = field(default_factory=list)
    credit_entry_ids: list[str] = field(default_factory=list)
    cursors: dict[tuple[str, str], str] = field(default_factory=dict)  # (path template, env) → nextCursor

    def auth(self, environment: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.jwt}"}
        if environment:
            headers["X-Environment"] = environment
        return headers

    def key(self, environment: str) -> dict[str, str]:
        return {"X-Api-Key": self.envs[environment].caller_key}


def open_session(send: Send, jwt: str) -> str:
    """A dashboard session cookie for this JWT (``POST /dashboard/session``)."""
    answer = call(send, "POST", "/dashboard/session", {"Authorization": f"Bearer {jwt}"}, expect=(201,))
    cookie = answer.headers["set-cookie"].split(";", 1)[0]
    name, _, value = cookie.partition("=")
    assert name == SESSION_COOKIE and value, cookie
    return value


def _amount(label: str, n: int) -> Decimal:
    """A distinctive exact amount (six fractional digits, the last never 0, so it prints as written)."""
    base = 31337 if label == "bravo" else 1009
    return Decimal(f"{base + 1000 * n}.{(n * 7919 + len(label)) % 100000:05d}7")


Settle = Callable[["TenantSeed", str, list[str]], None]  # (tenant, environment, record ids) → all verified


def new_seed(send: Send, *, label: str, tenant_id: str, name: str, user_id: str, jwt: str,
             stripe_customer: str) -> TenantSeed:
    return TenantSeed(label=label, tenant_id=tenant_id, name=name, user_id=user_id, jwt=jwt,
                      cookie=open_session(send, jwt), stripe_customer=stripe_customer)


def seed_environment(send: Send, seed: TenantSeed, environment: str, settle: Settle,
                     webhook_base: str = "http://127.0.0.1:9") -> None:
    """One environment of a tenant, through the tenant's own credentials (shape: the module docstring)."""
    label = seed.label
    short = "live" if environment == "production" else "test"
    auth = seed.auth(environment)
    keys = []
    for role in ("caller", "target"):
        created = call(send, "POST", "/dashboard/api-keys", auth,
                       {"name": f"{label} canary {short} {role} key", "environment": environment},
                       expect=(201,)).data()
        keys.append((created["id"], created["fullKey"], created["name"]))
    customers = [f"cust_{label}_{short}_{c}" for c in ("one", "two", "three")]
    env = EnvSeed(caller_key=keys[0][1], caller_key_id=keys[0][0], target_key_id=keys[1][0],
                  customers=customers, manual_customer=f"cust_{label}_{short}_manual",
                  display_name=f"{label.title()} canary display {short}", verified=[], pending=[])
    env.values += [name for _id, _key, name in keys]
    seed.envs[environment] = env
    key = seed.key(environment)
    counter = iter(range(1 if environment == "production" else 501, 10_000))

    def delta(customer: str) -> dict:
        n = next(counter)
        amount = _amount(label, n)
        reference = f"ref_{label}_{short}_{n:03d}"
        body = {"customerId": customer, "delta": float(amount), "reason": f"{label} canary reason {short} {n}",
                "referenceId": reference, "metadata": {"note": f"{label}-canary-meta-{short}-{n}"}}
        env.values.extend([str(amount), body["reason"], reference, body["metadata"]["note"]])
        env.references[reference] = customer
        return body

    def submit(body: dict, idempotency_key: str | None = None) -> str:
        headers = {**key, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        data = call(send, "POST", "/api/v1/balance/delta", headers, body, expect=(202,)).data()
        env.receipts.append(data["receiptId"])
        return data["recordId"]

    def checkpoint(customer: str) -> None:
        made = call(send, "POST", f"/dashboard/customers/{customer}/checkpoint", auth, {}, expect=(201,)).data()
        env.checkpoints.append(made["checkpointId"])
        env.checkpoint_roots.append(made["root"])
        env.signatures.append(made["signature"])
        seed.period = made["period"]

    first = delta(customers[0])
    idem = f"idem_{label}_{short}_single"
    env.idempotent["/api/v1/balance/delta"] = (idem, first)
    batch_body = {"deltas": [delta(customers[1]), delta(customers[2])]}
    batch_idem = f"idem_{label}_{short}_batch"
    env.idempotent["/api/v1/balance/delta/batch"] = (batch_idem, batch_body)
    records = [submit(first, idem), submit(delta(customers[0]))]
    batch = call(send, "POST", "/api/v1/balance/delta/batch", {**key, "Idempotency-Key": batch_idem}, batch_body,
                 expect=(202,)).data()
    records += [r["recordId"] for r in batch["results"]]
    env.receipts += [r["receiptId"] for r in batch["results"] if r.get("receiptId")]

    def verified(*record_ids: str) -> None:
        for record in record_ids:
            shown = call(send, "GET", f"/api/v1/balance/delta/{record}", key).data()
            env.hashes.extend(h for h in (shown["contentHash"], shown["proofRoot"]) if h)

    # What does not wait for the verifier is done while it works (on the local stack it runs alongside).
    call(send, "POST", "/dashboard/customers", auth,
         {"customerId": env.manual_customer, "displayName": env.display_name}, expect=(201,))
    env.webhook_url = f"{webhook_base}/{label}-canary-hook-{short}"
    hook = call(send, "POST", "/dashboard/webhooks", auth, {"url": env.webhook_url}, expect=(201,)).data()
    env.webhook_id, env.webhook_secret = hook["id"], hook["secret"]
    for _ in range(2):
        sent = call(send, "POST", f"/dashboard/webhooks/{env.webhook_id}/test", auth, expect=(202,)).data()
        env.events.append(sent["eventId"])
    settle(seed, environment, records)
    checkpoint(customers[0])
    checkpoint(customers[1])
    later = submit(delta(customers[0]))
    verified(*records)
    settle(seed, environment, [later])
    verified(later)
    checkpoint(customers[0])  # the customer's second checkpoint of the period: its list pages
    env.verified = [*records, later]
    env.pending = [submit(delta(customers[0]))]
    package = call(send, "POST", f"/dashboard/customers/{customers[0]}/verification-package", auth,
                   {"sampleSize": 2}, expect=(201,)).data()
    env.package_id, env.package_token = package["packageId"], package["url"].rsplit("/", 1)[1]
    listed = call(send, "GET", "/dashboard/customers?limit=100", auth).data()["items"]
    env.values += [str(c["balance"]) for c in listed if c["customerId"] in customers]


def seed_tenant_wide(send: Send, seed: TenantSeed) -> None:
    """After both environments: a close-package export, a Checkout and a portal session, and the audit and
    credit entries all of it left."""
    production = seed.auth("production")
    call(send, "POST", "/dashboard/customers/bulk/close-package-export", production,
         {"customerIds": [seed.envs["production"].customers[0]], "period": seed.period}, expect=(200, 303))
    checkout = send("POST", "/dashboard/stripe/create-subscription-session",
                    {**production, "Content-Type": "application/json"}, json.dumps({"tier": "starter"}).encode())
    if checkout.status == 201:
        seed.checkout_session = urlsplit(checkout.data()["url"]).path.rstrip("/").rsplit("/", 1)[1]
    portal = send("POST", "/dashboard/stripe/create-portal-session", production, None)
    if portal.status == 201:
        seed.portal_session = urlsplit(portal.data()["url"]).path.rstrip("/").rsplit("/", 1)[1]
    seed.audit_ids = [e["id"] for e in call(send, "GET", "/dashboard/audit?limit=100", production).data()["items"]]
    entries = call(send, "GET", "/dashboard/credit/entries?limit=100", production).data()["items"]
    seed.credit_entry_ids = [e["id"] for e in entries]


def seed_tenant(send: Send, settle: Settle, **tenant: str) -> TenantSeed:
    """A tenant seeded in full, one request at a time."""
    seed = new_seed(send, **tenant)
    for environment in ENVIRONMENTS:
        seed_environment(send, seed, environment, settle)
    seed_tenant_wide(send, seed)
    return seed


# --- the served document --------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict = field(repr=False, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def accepted(self) -> tuple[str, ...]:
        """Credential kinds this operation accepts (empty: public)."""
        kinds = []
        for requirement in self.spec.get("security", []):
            for scheme in requirement:
                if scheme not in SCHEME_KINDS:
                    raise MatrixError(f"{self.key}: no credential kind for security scheme {scheme!r}")
                kinds.append(SCHEME_KINDS[scheme])
        return tuple(kinds)

    @property
    def refused(self) -> tuple[str, ...]:
        accepted = self.accepted
        return tuple(k for k in TENANT_KINDS if k not in accepted) if accepted else ()

    def params(self, where: str) -> list[dict]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    def query_enum(self, name: str) -> list[str]:
        """The values a query key may take, where the document lists them (else [])."""
        for param in self.params("query"):
            schema = param.get("schema", {})
            if param["name"] == name:
                return list(schema.get("enum", []))
            if schema.get("type") == "object" and name in schema.get("properties", {}):
                return list(schema["properties"][name].get("enum", []))
        return []

    @property
    def query_names(self) -> dict[str, bool]:
        """Every query key the operation reads → whether it is required. A form-exploded object parameter
        (`scope`, …) is its properties, each a key of its own."""
        names: dict[str, bool] = {}
        for param in self.params("query"):
            schema = param.get("schema", {})
            if schema.get("type") == "object" and param.get("style", "form") == "form" and param.get("explode", True):
                required = set(schema.get("required", [])) if param.get("required") else set()
                names.update({name: name in required for name in schema.get("properties", {})})
            else:
                names[param["name"]] = bool(param.get("required"))
        return names

    @property
    def body_schema(self) -> str | None:
        body = self.spec.get("requestBody")
        if not body:
            return None
        ref = body["content"]["application/json"]["schema"].get("$ref", "")
        if not ref.startswith("#/components/schemas/"):
            raise MatrixError(f"{self.key}: request body is not a named schema")
        return ref.rsplit("/", 1)[1]

    @property
    def documented(self) -> frozenset[int]:
        return frozenset(int(s) for s in self.spec["responses"])

    @property
    def env_scoped(self) -> bool:
        """Its data is one environment's: it takes X-Environment, or an API key (whose environment rules)."""
        return "api_key" in self.accepted or any(p["name"] == "X-Environment" for p in self.params("header"))

    @property
    def tenant_scoped(self) -> bool:
        return any(k in ("jwt", "cookie", "api_key") for k in self.accepted)

    @property
    def own_expect(self) -> frozenset[int]:
        """What the caller's own request may answer: a documented status, no 5xx, no 401/429; a read 2xx/3xx.
        A platform operation is 403: the matrix's platform token has neither `tenants:write` nor
        `cross-tenant`."""
        if "platform" in self.accepted:
            return FORBIDDEN
        allowed = {s for s in self.documented if s < 500 and s not in (401, 429)}
        if self.method in SAFE_METHODS:
            allowed = {s for s in allowed if s < 400}
        return frozenset(allowed)


def operations(document: dict) -> list[Operation]:
    return [Operation(method.upper(), path, spec)
            for path, item in document["paths"].items() for method, spec in item.items()]


# --- generators: where ids go ---------------------------------------------------------------------


@dataclass
class Ctx:
    a: TenantSeed
    b: TenantSeed
    op: Operation
    env: str

    @property
    def other(self) -> str:
        return other(self.env)

    def mine(self, environment: str | None = None) -> EnvSeed:
        return self.a.envs[environment or self.env]

    def theirs(self, environment: str | None = None) -> EnvSeed:
        return self.b.envs[environment or self.env]

    def foreign(self, pick: Callable[[EnvSeed], str], what: str) -> list[tuple[str, str]]:
        """B's value in this and the other environment, and A's own in the other environment (only where the
        operation is environment-scoped: elsewhere A's other environment is A's own data)."""
        values = [(f"B {what} ({self.env})", pick(self.theirs())),
                  (f"B {what} ({self.other})", pick(self.theirs(self.other)))]
        if self.op.env_scoped:
            values.append((f"A {what} ({self.other})", pick(self.mine(self.other))))
        return values


@dataclass(frozen=True)
class Choice:
    label: str
    value: Any
    expect: frozenset[int] | None = None  # None: the operation's own answers
    phase: int = 1
    codes: dict[int, frozenset[str]] | None = None  # allowed error codes of a status
    headers: dict[str, str] | None = None  # extra headers this choice needs
    query: dict[str, str] | None = None  # extra query parameters it needs


def _tampered(value: str) -> str:
    """One character off (in the value's own alphabet: hex stays hex)."""
    last = value[-1]
    if last in "0123456789abcdef" and all(ch in "0123456789abcdef" for ch in value):
        return value[:-1] + ("0" if last != "0" else "1")
    return value[:-1] + ("A" if last != "A" else "B")


def _ids(ctx: Ctx, pick: Callable[[EnvSeed], str], what: str, expect: frozenset[int] = NOT_FOUND) -> list[Choice]:
    return [Choice(label, value, expect) for label, value in ctx.foreign(pick, what)]


def _session_choices(ctx: Ctx) -> list[Choice]:
    """The local Stripe stand-in's session ids are capabilities, like the URLs of Stripe's hosted pages: B's
    own session of the kind a route takes opens B's page by design. Never one character off, never a
    session of the other kind (a Checkout session on a portal route, and back), never B's customer id. The
    kind a route takes is the prefix its parameter's description names (`cs_…`, `bps_…`)."""
    param = next(p for p in ctx.op.params("path") if p["name"] == "session")
    prefix = re.search(r"\((\w+?_)…\)", param.get("description", ""))
    sessions = [s for s in (ctx.b.checkout_session, ctx.b.portal_session) if s]
    choices = [Choice("B Stripe customer id", ctx.b.stripe_customer, NOT_FOUND)]
    for session in sessions:
        if prefix and session.startswith(prefix.group(1)):
            choices.append(Choice(f"B {session.split('_')[0]}_ session, tampered", _tampered(session), NOT_FOUND))
        elif prefix:
            choices.append(Choice(f"B {session.split('_')[0]}_ session, of the other kind", session, NOT_FOUND))
    return choices


#: path parameter → (A's own value, foreign values).
PATH_PARAMS: dict[str, tuple[Callable[[Ctx], str], Callable[[Ctx], list[Choice]]]] = {
    "customerId": (lambda c: c.mine().customers[0],
                   lambda c: [*_ids(c, lambda e: e.customers[0], "customer"),
                              Choice(f"B manual customer ({c.env})", c.theirs().manual_customer, NOT_FOUND)]),
    "recordId": (lambda c: c.mine().verified[0],
                 lambda c: [*_ids(c, lambda e: e.verified[0], "verified delta"),
                            Choice(f"B pending delta ({c.env})", c.theirs().pending[0], NOT_FOUND)]),
    "keyId": (lambda c: c.mine().target_key_id,
              lambda c: [*_ids(c, lambda e: e.target_key_id, "API key"),
                         Choice(f"B caller API key ({c.env})", c.theirs().caller_key_id, NOT_FOUND)]),
    "webhookId": (lambda c: c.mine().webhook_id, lambda c: _ids(c, lambda e: e.webhook_id, "webhook endpoint")),
    "eventId": (lambda c: c.mine().events[0], lambda c: _ids(c, lambda e: e.events[0], "webhook event")),
    # Capability links (no login): B's own token opens B's package by design; what is never a capability
    # must not open one — a token one character off, B's package id, B's checkpoint id.
    "token": (lambda c: c.mine().package_token,
              lambda c: [Choice(f"B package token, tampered ({c.env})", _tampered(c.theirs().package_token),
                                NOT_FOUND),
                         Choice(f"B package id ({c.env})", c.theirs().package_id, NOT_FOUND),
                         Choice(f"B checkpoint id ({c.env})", c.theirs().checkpoints[0], NOT_FOUND)]),
    # A batch root is public: whoever holds one (it is in every proof) sees what the signed batch commits to
    # — its record ids and leaf hashes, its tenant id. (So is a checkpoint root that equals one: a
    # checkpoint over exactly one batch's deltas, in order, has that batch's root; equal roots mean equal
    # leaves, which the checkpoint's holder has anyway.) A content hash is never a root, nor is a root one
    # character off: 200 `verified: false`, nothing of B's.
    "proofRoot": (lambda c: c.mine().hashes[1],
                  lambda c: [Choice(f"B content hash ({c.env})", c.theirs().hashes[0], frozenset({200})),
                             Choice(f"B batch root, tampered ({c.env})", _tampered(c.theirs().hashes[1]),
                                    frozenset({200})),
                             Choice(f"B checkpoint root, tampered ({c.env})",
                                    _tampered(c.theirs().checkpoint_roots[0]), frozenset({200}))]),
    "session": (lambda c: c.a.checkout_session or "cs_none", _session_choices),
    "tier": (lambda c: "starter", lambda c: []),
    # Platform routes name a tenant; the matrix's platform token lacks tenants:write, and tenant 1 is
    # never a path target: 403 every time.
    "tenant": (lambda c: c.a.tenant_id,
               lambda c: [Choice("B tenant id", c.b.tenant_id, FORBIDDEN),
                          Choice("A tenant id", c.a.tenant_id, FORBIDDEN),
                          Choice("platform tenant 1", "1", FORBIDDEN)]),
}


def _cursor_choices(ctx: Ctx) -> list[Choice]:
    if not ctx.op.tenant_scoped:
        return []  # platform cursors belong to the token, not to a tenant
    choices = []
    for label, seed, environment in (("B", ctx.b, ctx.env), ("B", ctx.b, ctx.other), ("A", ctx.a, ctx.other)):
        if label == "A" and not ctx.op.env_scoped:
            continue  # a tenant-wide list: A's cursor is A's own in every environment
        cursor = seed.cursors.get((ctx.op.path, environment))
        if cursor is None:
            raise MatrixError(f"{ctx.op.key}: no {label} cursor ({environment}) was harvested; seed more items")
        choices.append(Choice(f"{label} cursor ({environment})", cursor, INVALID))
    return choices


def _search_choices(ctx: Ctx) -> list[Choice]:
    """A prefix search reads an index: B's exact ids, the prefix both tenants' ids share, and B's display name
    in lower case along the display-name order (where the operation sorts by it) must find A's own only."""
    ok = frozenset({200})
    choices = [Choice(f"B customer id ({ctx.env})", ctx.theirs().customers[0], ok),
               Choice(f"B record id ({ctx.env})", ctx.theirs().verified[0], ok),
               Choice("the prefix both tenants' customer ids share", "cust_", ok)]
    if "displayName" in ctx.op.query_enum("sortBy"):
        choices.append(Choice(f"B display name, lower case, by display name ({ctx.env})",
                              ctx.theirs().display_name.lower(), ok, query={"sortBy": "displayName"}))
    return choices


#: id-bearing query parameter → foreign values (path parameters keep A's own values).
QUERY_PARAMS: dict[str, Callable[[Ctx], list[Choice]]] = {
    "cursor": _cursor_choices,
    "search": lambda c: _search_choices(c),
    "customerId": lambda c: _ids(c, lambda e: e.customers[0], "customer"),
    "startingCheckpoint": lambda c: _ids(c, lambda e: e.checkpoints[0], "checkpoint"),
}


def _idempotency_choices(ctx: Ctx) -> list[Choice]:
    """B's Idempotency-Key with B's very body: A's request must run afresh (keys are per tenant and
    environment), never replay B's answer."""
    choices = []
    for label, env_name, env in (("B", ctx.env, ctx.theirs()), ("B", ctx.other, ctx.theirs(ctx.other)),
                                 ("A", ctx.other, ctx.mine(ctx.other))):
        if ctx.op.path not in env.idempotent:
            raise MatrixError(f"{ctx.op.key}: takes Idempotency-Key but no seeded request used one")
        key, body = env.idempotent[ctx.op.path]
        choices.append(Choice(f"Idempotency-Key of {label} ({env_name}) with its body", body, ACCEPTED, 3,
                              headers={"Idempotency-Key": key}))
    return choices


#: header parameter → (value every request carries, or None; foreign choices). X-Environment is the
#: environment dimension itself.
HEADER_PARAMS: dict[str, tuple[Callable[[Ctx], str | None], Callable[[Ctx], list[Choice]]]] = {
    "X-Environment": (lambda c: None, lambda c: []),
    "Idempotency-Key": (lambda c: None, _idempotency_choices),
    "Stripe-Signature": (lambda c: BOGUS_STRIPE_SIGNATURE, lambda c: []),
}


def _customer_bodies(ctx: Ctx, base: dict, key: str = "customerId", expect: frozenset[int] | None = NOT_FOUND,
                     phase: int = 1, codes: dict | None = None) -> list[Choice]:
    return [Choice(f"{key}={label}", {**base, key: value}, expect, phase, codes)
            for label, value in ctx.foreign(lambda e: e.customers[0], "customer")]


def _delta_bodies(ctx: Ctx, which: int = 3) -> list[Choice]:
    """A delta names its customer: B's customer id makes (or feeds) A's own customer of that name, never B's
    (202, a fresh record). B's reference id for B's customer must not replay B's answer. Phase 3: after
    every read that expects those names to be unknown to A. ``which`` picks B's reference: the single and
    the batch route each take another, and neither is in a body the Idempotency-Key choices send (A would
    then replay its own earlier record, B's amount in it)."""
    base = {"customerId": f"cust_{ctx.a.label}_matrix_{which}", "delta": 1, "reason": "isolation matrix"}
    theirs = ctx.theirs()
    reference = list(theirs.references)[which]
    return [Choice("own customer", base, ACCEPTED, 3), *_customer_bodies(ctx, base, expect=ACCEPTED, phase=3),
            Choice(f"B reference id for B's customer ({ctx.env})",
                   {**base, "customerId": theirs.references[reference], "referenceId": reference}, ACCEPTED, 3),
            Choice(f"adjusts=B record ({ctx.env})", {**base, "adjusts": theirs.verified[0]}, ACCEPTED, 3)]


def _batch_bodies(ctx: Ctx) -> list[Choice]:
    return [replace(choice, value={"deltas": [choice.value]}) for choice in _delta_bodies(ctx, which=4)]


def _compare_bodies(ctx: Ctx) -> list[Choice]:
    base = {"customerId": ctx.mine().customers[0], "yourBalance": "0", "theirBalance": "0"}
    return [Choice("own customer", base), *_customer_bodies(ctx, base),
            *[Choice(f"startingCheckpoint={label}", {**base, "startingCheckpoint": value,
                                                     "startingCheckpointType": "checkpoint"}, NOT_FOUND)
              for label, value in ctx.foreign(lambda e: e.checkpoints[0], "checkpoint")]]


def _balance_checkpoint_bodies(ctx: Ctx) -> list[Choice]:
    base = {"customerId": ctx.mine().customers[0]}
    return [Choice("own customer", base), Choice("every own customer", {}), *_customer_bodies(ctx, base),
            Choice(f"fingerprints=B content hash ({ctx.env})", {**base, "fingerprints": [ctx.theirs().hashes[0]]})]


def _close_package_bodies(ctx: Ctx) -> list[Choice]:
    own, period = ctx.mine().customers[0], ctx.a.period
    return [Choice("own customer", {"customerIds": [own], "period": period}),
            *[Choice(f"customerIds=[{label}]", {"customerIds": [value], "period": period}, NOT_FOUND)
              for label, value in ctx.foreign(lambda e: e.customers[0], "customer")],
            Choice(f"customerIds=[own, B customer ({ctx.env})]",
                   {"customerIds": [own, ctx.theirs().customers[0]], "period": period}, NOT_FOUND)]


def _create_customer_bodies(ctx: Ctx) -> list[Choice]:
    """A customer id is a name within the tenant: B's ids are free for A (201, then 409 `CUSTOMER_EXISTS`
    — A's own — for the next credential kind). Never `..._FROM_INTEGRATION`: A has no integration customer
    of those names before phase 3."""
    base = {"displayName": "Isolation matrix customer"}
    return [Choice("generated id", base, None, 2),
            *_customer_bodies(ctx, base, expect=frozenset({201, 409}), phase=2,
                              codes={409: frozenset({"CUSTOMER_EXISTS"})})]


def _webhook_bodies(ctx: Ctx) -> list[Choice]:
    """B's URL is free for A too (phase 2: from then on A's own endpoint carries it)."""
    return [Choice("own URL", {"url": f"http://127.0.0.1:9/{ctx.a.label}-matrix"}),
            Choice(f"B's endpoint URL ({ctx.env})", {"url": ctx.theirs().webhook_url}, None, 2)]


def _stripe_event_bodies(ctx: Ctx) -> list[Choice]:
    """Stripe's webhook authenticates by signature: an unsigned event about B's Stripe customer is 400."""
    event = {"id": "evt_isolation_matrix", "object": "event", "type": "invoice.payment_failed",
             "data": {"object": {"object": "invoice", "id": "in_isolation", "customer": ctx.b.stripe_customer}}}
    return [Choice("B's Stripe customer, bad signature", event, INVALID)]


#: request body schema → choices (the first is the body path substitutions carry).
BODIES: dict[str, Callable[[Ctx], list[Choice]]] = {
    "DeltaRequest": _delta_bodies,
    "BatchRequest": _batch_bodies,
    "CompareRequest": _compare_bodies,
    "BalanceCheckpointRequest": _balance_checkpoint_bodies,
    "ClosePackageExportRequest": _close_package_bodies,
    "CreateCustomerRequest": _create_customer_bodies,
    "CreateWebhookRequest": _webhook_bodies,
    # Top-ups are for platform administrators only: any other tenant's admin is 403, whoever the target.
    "TopupRequest": lambda c: [Choice("tenantId=B", {"tenantId": c.b.tenant_id, "amount": 1}, FORBIDDEN),
                               Choice("tenantId=A", {"tenantId": c.a.tenant_id, "amount": 1}, FORBIDDEN)],
    # The confirmation is the caller's company name; B's name is a mismatch (and A's is never sent).
    "DeleteTenantRequest": lambda c: [Choice("confirmation=B's company name", {"confirmation": c.b.name},
                                             INVALID)],
    "CreateApiKeyRequest": lambda c: [Choice("this environment", {"name": "isolation matrix key"}),
                                      Choice("the other environment", {"name": "isolation matrix key",
                                                                       "environment": c.other})],
    "TierRequest": lambda c: [Choice("starter", {"tier": "starter"})],
    "CreateCheckpointRequest": lambda c: [Choice("this period", {})],
    "CreatePackageRequest": lambda c: [Choice("one sample", {"sampleSize": 1})],
    "StripeEvent": _stripe_event_bodies,
}


# --- the matrix -----------------------------------------------------------------------------------


@dataclass
class Case:
    op: Operation
    kind: str
    environment: str
    label: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes | None
    expect: frozenset[int]
    phase: int = 1
    codes: dict[int, frozenset[str]] | None = None
    accepted: bool = True

    def __str__(self) -> str:
        return f"{self.op.key} [{self.kind}, {self.environment}] {self.label}: {self.path}"

    @property
    def request_text(self) -> str:
        return " ".join([self.path, *self.headers.values(), (self.body or b"").decode()])


@dataclass
class Substitution:
    label: str
    path: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    expect: frozenset[int] | None
    phase: int
    codes: dict[int, frozenset[str]] | None


NO_BODY = object()


def substitutions(ctx: Ctx) -> list[Substitution]:
    """Every foreign-id substitution for ``ctx.op`` in ``ctx.env`` (plus the caller's own request where the
    operation has no path parameter)."""
    op = ctx.op
    path_names = [p["name"] for p in op.params("path")]
    for name in path_names:
        if name not in PATH_PARAMS:
            raise MatrixError(f"{op.key}: no generator for path parameter {name!r} (add it to PATH_PARAMS)")
    own_path = {name: PATH_PARAMS[name][0](ctx) for name in path_names}
    base_headers: dict[str, str] = {}
    header_choices: list[Choice] = []
    for param in op.params("header"):
        if param["name"] not in HEADER_PARAMS:
            if param.get("required"):
                raise MatrixError(f"{op.key}: no generator for required header {param['name']!r}")
            continue
        fixed, foreign = HEADER_PARAMS[param["name"]]
        if (value := fixed(ctx)) is not None:
            base_headers[param["name"]] = value
        header_choices += foreign(ctx)
    query_choices: list[tuple[str, Choice]] = []
    for name, required in op.query_names.items():
        if name in QUERY_PARAMS:
            query_choices += [(name, c) for c in QUERY_PARAMS[name](ctx)]
        elif required:
            raise MatrixError(f"{op.key}: no generator for required query parameter {name!r}")
    schema = op.body_schema
    if schema is not None and schema not in BODIES:
        raise MatrixError(f"{op.key}: no generator for request body {schema!r} (add it to BODIES)")
    bodies = BODIES[schema](ctx) if schema else []
    base_body = bodies[0].value if bodies else NO_BODY

    def sub(label: str, path: dict, choice: Choice | None = None, query: dict | None = None,
            body: Any = base_body) -> Substitution:
        return Substitution(label, path, query or {}, {**base_headers, **((choice.headers if choice else None) or {})},
                            body, choice.expect if choice else None, choice.phase if choice else 1,
                            choice.codes if choice else None)

    subs = []
    for name in path_names:
        for choice in PATH_PARAMS[name][1](ctx):
            subs.append(sub(f"{name}={choice.label}", {**own_path, name: choice.value}, choice))
    for name, choice in query_choices:
        query = {name: choice.value, **(choice.query or {})}
        subs.append(sub(f"{name}: {choice.label}", own_path, choice, query=query))
    for choice in header_choices:
        subs.append(sub(choice.label, own_path, choice, body=choice.value))
    for choice in bodies:
        if path_names and choice.expect is None:
            continue  # the caller's own resource and own body: nothing foreign, and it could change A's data
        subs.append(sub(f"body {choice.label}", own_path, choice, body=choice.value))
    if not path_names and not bodies:
        subs.append(sub("own request", own_path))  # a list or a read of the caller's own: no B data in it
    return subs


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", quote(value, safe=""))
    return template


def credential_headers(kind: str, environment: str, a: TenantSeed, b: TenantSeed, platform_token: str,
                       cookie: str | None = None) -> dict[str, str]:
    # Accept */* as curl sends it: files (a close-package zip) come inline, where the canary search unpacks
    # them. An API key's environment is the key's: its requests name the other one in X-Environment, which
    # must not widen what they see.
    headers = {"Accept": "*/*", "X-Environment": other(environment) if kind == "api_key" else environment}
    session = cookie or a.cookie
    if kind == "jwt":
        headers["Authorization"] = f"Bearer {a.jwt}"
    elif kind == JWT_WITH_FOREIGN_COOKIE:
        headers.update({"Authorization": f"Bearer {a.jwt}", "Cookie": f"{SESSION_COOKIE}={b.cookie}"})
    elif kind == "cookie":
        headers.update({"Cookie": f"{SESSION_COOKIE}={session}", "Sec-Fetch-Site": "same-origin",
                        "X-Pacspace-CSRF": "1"})
    elif kind == CROSS_SITE_COOKIE:
        headers.update({"Cookie": f"{SESSION_COOKIE}={session}", "Sec-Fetch-Site": "cross-site",
                        "Origin": "https://evil.example"})
    elif kind == COOKIE_AS_B:
        headers["Cookie"] = f"{SESSION_COOKIE}={b.tenant_id}.{session.split('.', 1)[1]}"
    elif kind == "api_key":
        headers["X-Api-Key"] = a.envs[environment].caller_key
    elif kind == API_KEY_AS_B:
        mine = a.envs[environment]
        head, secret = mine.caller_key.split(".", 1)  # pk_{test|live}_{key id}.{secret}
        headers["X-Api-Key"] = f"{head.removesuffix(mine.caller_key_id)}{b.envs[environment].caller_key_id}.{secret}"
    elif kind == "platform":
        headers["Authorization"] = f"Bearer {platform_token}"
    elif kind != "anonymous":
        raise MatrixError(f"unknown credential kind {kind!r}")
    return headers


def build_matrix(document: dict, a: TenantSeed, b: TenantSeed, platform_token: str,
                 fresh_cookie: Callable[[], str], *, sample: bool = False) -> list[Case]:
    """Every case of the matrix (see the module docstring); ``fresh_cookie`` opens a session of A's for a
    case whose operation ends the session it presents.

    ``sample`` (for a run that must stay within a time budget): every substitution still runs, each with one
    of the accepted kinds in turn (all of them where an operation has fewer substitutions than kinds), and
    each refused kind with the first substitution — every operation x kind x environment stays covered."""
    cases: list[Case] = []
    for op in operations(document):
        accepted = op.accepted
        kinds: list[tuple[str, bool]] = [(k, True) for k in accepted] or [("anonymous", True)]
        if "jwt" in accepted:
            kinds.append((JWT_WITH_FOREIGN_COOKIE, True))
        if "cookie" in accepted and op.method not in SAFE_METHODS:
            kinds.append((CROSS_SITE_COOKIE, False))
        if "cookie" in accepted:
            kinds.append((COOKIE_AS_B, False))
        if "api_key" in accepted:
            kinds.append((API_KEY_AS_B, False))
        kinds += [(k, False) for k in op.refused]
        taking = [k for k, is_accepted in kinds if is_accepted]  # listed first in ``kinds``
        for environment in ENVIRONMENTS:
            subs = substitutions(Ctx(a, b, op, environment))
            for index, substitution in enumerate(subs):
                path = _fill(op.path, substitution.path)
                if substitution.query:
                    path += "?" + urlencode(substitution.query)
                body = None if substitution.body is NO_BODY else json.dumps(substitution.body).encode()
                for position, (kind, is_accepted) in enumerate(kinds):
                    if sample and not is_accepted and index > 0:
                        continue
                    if sample and is_accepted and len(subs) >= len(taking) and position != index % len(taking):
                        continue
                    ending = kind in ("cookie", CROSS_SITE_COOKIE) and (op.method, op.path) in SESSION_ENDING
                    cookie = fresh_cookie() if ending else None
                    headers = {**credential_headers(kind, environment, a, b, platform_token, cookie),
                               **substitution.headers}
                    if body is not None:
                        headers["Content-Type"] = "application/json"
                    if is_accepted:
                        expect, phase, codes = substitution.expect or op.own_expect, substitution.phase, \
                            substitution.codes
                    else:
                        expect, phase, codes = (FORBIDDEN if kind == CROSS_SITE_COOKIE else UNAUTHENTICATED), 1, None
                    cases.append(Case(op, kind, environment, substitution.label, path, headers, body, expect,
                                      phase, codes, is_accepted))
    return cases


def harvest_cursors(send: Send, document: dict, seed: TenantSeed) -> None:
    """``nextCursor`` of the first one-item page of every tenant list with a cursor, per environment, read
    with the tenant's own credentials (its own ids in the path)."""
    for op in operations(document):
        if op.method != "GET" or not op.tenant_scoped or "cursor" not in op.query_names:
            continue
        for environment in ENVIRONMENTS:
            env = seed.envs[environment]
            own = {"customerId": env.customers[0], "webhookId": env.webhook_id}
            path = _fill(op.path, {p["name"]: own[p["name"]] for p in op.params("path")})
            if "limit" in op.query_names:
                path += "?limit=1"
            headers = seed.key(environment) if "api_key" in op.accepted else seed.auth(environment)
            cursor = call(send, "GET", path, headers).data().get("nextCursor")
            if cursor:
                seed.cursors[(op.path, environment)] = cursor


# --- checks ---------------------------------------------------------------------------------------


def canaries(seed: TenantSeed) -> set[str]:
    """Every id, secret and distinctive value of a tenant (its numeric tenant id is checked structurally)."""
    found = {seed.name, seed.user_id, seed.jwt, seed.cookie, seed.stripe_customer, *seed.audit_ids,
             *seed.credit_entry_ids, *seed.cursors.values()}
    found |= {s for s in (seed.checkout_session, seed.portal_session) if s}
    for environment in ENVIRONMENTS:
        found |= environment_canaries(seed, environment)
    return found


def environment_canaries(seed: TenantSeed, environment: str) -> set[str]:
    """What is one environment's only: never in an answer about the other environment."""
    env = seed.envs[environment]
    found = {env.caller_key, env.caller_key_id, env.target_key_id, *env.customers, env.manual_customer,
             env.display_name, *env.records, *env.receipts, *env.hashes, *env.checkpoints, *env.checkpoint_roots,
             *env.signatures, env.package_id, env.package_token, env.webhook_id, env.webhook_url,
             env.webhook_secret, *env.events, *env.values, *env.references,
             *(key for key, _body in env.idempotent.values())}
    short = [c for c in found if len(c) < 8]
    assert not short, f"canaries too short to search for: {short}"
    return found


@dataclass
class Outcome:
    case: Case
    answer: Answer | None
    problems: list[str]
    seconds: float


def _tenant_ids(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("tenantId", "tenant_id") and isinstance(v, str):
                yield v
            yield from _tenant_ids(v)
    elif isinstance(value, list):
        for v in value:
            yield from _tenant_ids(v)


@dataclass
class Checker:
    a: TenantSeed
    b: TenantSeed

    def __post_init__(self) -> None:
        self.foreign = canaries(self.b)
        self.other_env = {e: environment_canaries(self.a, e) for e in ENVIRONMENTS}

    def __call__(self, case: Case, answer: Answer) -> list[str]:
        problems = []
        if answer.status >= 500:
            problems.append(f"answered {answer.status} (a server error)")
        elif answer.status not in case.expect:
            problems.append(f"answered {answer.status}, expected {sorted(case.expect)}")
        if answer.status not in case.op.documented:
            problems.append(f"status {answer.status} is not documented")
        if answer.contract_error:
            problems.append(answer.contract_error)
        error_code = None
        if answer.media == "application/json" and answer.body:
            try:
                payload = answer.json()
            except ValueError:
                problems.append("a JSON answer that does not parse")
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
                error_code = payload["error"].get("code")
            if self.b.tenant_id in set(_tenant_ids(payload)):
                problems.append(f"LEAK: B's tenant id {self.b.tenant_id} in the answer")
        if case.codes and answer.status in case.codes and error_code not in case.codes[answer.status]:
            problems.append(f"error code {error_code!r}, expected one of {sorted(case.codes[answer.status])}")
        watch = set(self.foreign)
        if case.op.env_scoped:
            watch |= self.other_env[other(case.environment)]
        sent = case.request_text
        watch = {c for c in watch if c not in sent}
        seen = " ".join([answer.text(), *answer.headers.values()])
        leaked = sorted(c for c in watch if c in seen)
        if leaked:
            problems.append(f"LEAK: the answer carries {leaked[:5]}")
        if "Traceback" in seen:
            problems.append("a stack trace in the answer")
        return problems


def run_case(send: Send, checker: Checker, case: Case) -> Outcome:
    began = time.monotonic()
    try:
        answer = send(case.op.method, case.path, dict(case.headers), case.body)
    except Exception as exc:  # a dropped connection or a timeout is a finding too
        return Outcome(case, None, [f"no answer: {exc!r}"], time.monotonic() - began)
    return Outcome(case, answer, checker(case, answer), time.monotonic() - began)


def failures(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.case}: {'; '.join(o.problems)} — {o.answer!r}" for o in outcomes if o.problems]


def summary(cases: list[Case], seconds: float, how: str) -> str:
    """The matrix size: operations x environments x id substitutions x credential kinds = requests."""
    ops = {c.op.key for c in cases}
    kinds = Counter(c.kind for c in cases)
    subs = {(c.op.key, c.environment, c.label) for c in cases}
    accepted = sum(1 for c in cases if c.accepted)
    return (f"isolation matrix ({how}): {len(ops)} operations x {len(ENVIRONMENTS)} environments x id "
            f"substitutions = {len(subs)} (operation, environment, substitution) cases, x credential kinds = "
            f"{len(cases)} requests ({accepted} with an accepted credential, {len(cases) - accepted} with a refused "
            f"one; by kind {dict(sorted(kinds.items()))}) in {seconds:.1f} s")


# --- state before and after -----------------------------------------------------------------------


def tenant_state(send: Send, seed: TenantSeed, *, full: bool) -> dict[str, Any]:
    """What the matrix must not change, read with the tenant's own credentials. ``full``: everything of the
    tenant (B); else only what was seeded (A, whose own requests in the matrix legitimately add data)."""
    state: dict[str, Any] = {}

    def get(path: str, headers: dict[str, str]) -> Any:
        return call(send, "GET", path, headers).data()

    production = seed.auth("production")
    tenant = get("/dashboard/tenant", production)
    state["tenant"] = {k: tenant[k] for k in ("id", "companyName", "status", "billingMode")}
    state["session"] = get("/dashboard/session", {"Cookie": f"{SESSION_COOKIE}={seed.cookie}"})["tenantId"]
    if full:
        plan = get("/dashboard/billing/plan", production)
        state["plan"] = {k: plan[k] for k in ("tier", "stripeSubscriptionId", "cancelAtPeriodEnd")}
        state["credits"] = get("/dashboard/credit/balances", production)
        state["usage"] = get("/dashboard/billing/usage", production)["consumedDeltas"]
        state["audit"] = sorted(e["id"] for e in get("/dashboard/audit?limit=100", production)["items"])
        state["creditEntries"] = sorted(e["id"] for e in get("/dashboard/credit/entries?limit=100",
                                                              production)["items"])
    for environment in ENVIRONMENTS:
        env, auth = seed.envs[environment], seed.auth(environment)
        seeded_customers = {*env.customers, env.manual_customer}
        customers = {c["customerId"]: (str(c["balance"]), c["deltaCount"], c["lastSequenceNumber"])
                     for c in get("/dashboard/customers?limit=100", auth)["items"]
                     if full or c["customerId"] in seeded_customers}
        keys = {k["id"]: (k["status"], k["rotatedAt"], k["revokedAt"])
                for k in get("/dashboard/api-keys?limit=100", auth)["items"]
                if full or k["id"] in (env.caller_key_id, env.target_key_id)}
        hooks = {h["id"]: (h["status"], h["url"]) for h in get("/dashboard/webhooks", auth)["items"]
                 if full or h["id"] == env.webhook_id}
        records = {r: (d["status"], d["customerId"], d["sequenceNumber"], str(d["delta"]))
                   for r in env.records for d in [get(f"/api/v1/balance/delta/{r}", seed.key(environment))]}
        state[environment] = {"customers": customers, "keys": keys, "webhooks": hooks, "records": records}
        if full:
            summary_ = get("/dashboard/customers/summary", auth)
            state[environment]["summary"] = {k: summary_[k] for k in ("customers", "deltas", "balances")}
            state[environment]["checkpoints"] = {
                c: sorted(x["checkpointId"] for x in get(f"/dashboard/customers/{c}/checkpoints", auth)["items"])
                for c in env.customers}
            state[environment]["events"] = sorted(
                d["eventId"] for d in get("/api/v1/balance/webhooks?limit=100", seed.key(environment))["items"])
    return state
