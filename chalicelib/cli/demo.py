"""Idempotent demo data: the platform tenant, three demo tenants, users, keys, customers, and their deltas.

Running it twice changes nothing: every object is created only when absent. The demo customers of the
credits tenant ("2", both environments) and of the paid monthly tenant ("4", production) get verified
deltas in the previous and the current UTC month, and the previous month is checkpointed, so every curl
example of the seeds answers real content. The deltas go through the real write path (``ingest.submit_deltas``), the
verifier (``verification.verify_records``) and the checkpoint service, with back-dated clocks; their
deterministic reference ids (``demo-{period}-{n}``, unique per customer) make a rerun store nothing, and a
start in a later month adds that month and checkpoints the one before without touching older data.

The stack calls :func:`seed` on every start, so the nothing-to-do path is a few key lookups: one
BatchGetItem per tenant environment finds every demo delta's reference guard, one more reads the
customers' checkpoint markers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib import bootstrap
from chalicelib.domain.access import ApiKey, PlatformToken
from chalicelib.domain.amounts import plain
from chalicelib.domain.clock import period_of
from chalicelib.domain.credentials import hash_secret, parse_api_key
from chalicelib.domain.customers import Customer, CustomerSource, EventCadence
from chalicelib.domain.deltas import DeltaInput
from chalicelib.domain.identity import Ability, ApiKeyPrincipal, DashboardPrincipal, Environment, Role
from chalicelib.domain.tenants import BillingMode, User
from chalicelib.log import get_logger
from chalicelib.services import api_keys as key_service
from chalicelib.services import checkpoints as checkpoint_service
from chalicelib.services import credits as credit_service
from chalicelib.services import ingest, verification
from chalicelib.services import tenants as tenant_service

log = get_logger("tally.cli.demo")

DEMO_TENANT_ID = "2"
DEMO_CREDITS = 100_000
FREE_TENANT_ID = "3"
PAID_TENANT_ID = "4"
PAID_COMPANY = "Initech Pro"
DEMO_CUSTOMERS = {"cust_123": "Customer 123", "cust_acme": "Acme Corp", "cust_globex": "Globex Corporation"}
PAID_CUSTOMERS = {"cust_initrode": "Initrode Ltd", "cust_chotchkies": "Chotchkie's Restaurants",
                  "cust_penetrode": "Penetrode Corp"}
DEMO_USERS = {
    "usr_demo_owner": Role.OWNER,
    "usr_demo_admin": Role.ADMIN,
    "usr_demo_manager": Role.MANAGER,
    "usr_demo_viewer": Role.VIEWER,
}
PAID_USERS = {
    "usr_initech_owner": Role.OWNER,
    "usr_initech_admin": Role.ADMIN,
    "usr_initech_manager": Role.MANAGER,
    "usr_initech_viewer": Role.VIEWER,
}
ADMIN_USER = "usr_demo_admin"
PAID_ADMIN_USER = "usr_initech_admin"
_TENANTS = (
    ("1", "Tally Platform", {"plan": "enterprise"}),
    (DEMO_TENANT_ID, "Acme Inc", {"plan": "starter", "billing_mode": BillingMode.CREDITS,
                                  "stripe_customer_id": "cus_demoacme0001"}),
    (FREE_TENANT_ID, "Globex Free", {"plan": "free"}),
    (PAID_TENANT_ID, PAID_COMPANY, {"plan": "growth", "billing_mode": BillingMode.MONTHLY,
                                    "stripe_customer_id": "cus_demoinitech01"}),
)
ACTOR = "operator:seed"

# One demo month of a customer: (amount, reason, metadata) per line item, in order. Each month has RUNS
# usage syncs at evenly spaced instants; a sync posts its share of every customer's line items in one
# request (one transaction), and the verifier seals them seconds later (one signed batch). Line n of the
# month carries the referenceId ``demo-{period}-{n}``.
RUNS = 3
_Line = tuple[str, str, dict[str, Any] | None]
MONTHS: dict[str, tuple[_Line, ...]] = {
    "cust_123": (
        ("1250", "API calls", {"unit": "requests", "region": "eu-west-1"}),
        ("12.25", "Storage (GB-month)", {"unit": "GB-month"}),
        ("980", "API calls", {"unit": "requests", "region": "us-east-1"}),
        ("-150", "SLA credit: 99.9% uptime missed", {"ticket": "SUP-4821"}),
        ("1432", "API calls", {"unit": "requests", "region": "eu-west-1"}),
        ("-42.5", "Refund: duplicate requests", None),
    ),
    "cust_acme": (
        ("25", "Seat licenses", {"plan": "team"}),
        ("140.5", "Compute hours", {"instance": "m6i.large"}),
        ("-2", "Seats removed", None),
        ("87.75", "Compute hours", {"instance": "m6i.large"}),
        ("-20", "Volume discount", {"contract": "ACME-2026"}),
        ("4", "Seat licenses", {"plan": "team"}),
    ),
    "cust_globex": (
        ("1000", "Data export (GB)", {"dataset": "orders"}),
        ("250.125", "Data export (GB)", {"dataset": "inventory"}),
        ("-100", "Promotional credit", {"campaign": "spring-launch"}),
        ("60", "Premium support hours", None),
        ("375.5", "Data export (GB)", {"dataset": "orders"}),
        ("-37.5", "Service credit: 3h outage", {"incident": "INC-1187"}),
    ),
    "cust_initrode": (
        ("5200", "TPS reports processed", {"unit": "reports"}),
        ("310.25", "Storage (GB-month)", None),
        ("-250", "Contractual discount", {"contract": "INI-PRO-7"}),
        ("4875", "TPS reports processed", {"unit": "reports"}),
        ("18", "Priority support tickets", None),
    ),
    "cust_chotchkies": (
        ("37", "Flair items catalogued", {"minimum": 15}),
        ("12.5", "POS terminal hours", None),
        ("-5", "Goodwill credit", {"ticket": "CHK-204"}),
        ("41", "Flair items catalogued", {"minimum": 15}),
        ("9.75", "POS terminal hours", None),
    ),
    "cust_penetrode": (
        ("820", "API calls", {"unit": "requests"}),
        ("-80", "Refund: failed jobs", {"jobs": 16}),
        ("1310", "API calls", {"unit": "requests"}),
        ("64.125", "Storage (GB-month)", None),
        ("-12", "Service credit", None),
    ),
}


@dataclass(frozen=True)
class DemoTenant:
    """A tenant whose demo customers get deltas, in these environments."""

    tenant_id: str
    customers: dict[str, str]
    environments: tuple[Environment, ...]


DATA_TENANTS = (
    DemoTenant(DEMO_TENANT_ID, DEMO_CUSTOMERS, (Environment.SANDBOX, Environment.PRODUCTION)),
    DemoTenant(PAID_TENANT_ID, PAID_CUSTOMERS, (Environment.PRODUCTION,)),
)


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def previous_month_start(moment: datetime) -> datetime:
    return month_start(month_start(moment) - timedelta(days=1))


def reference_id(period: str, line: int) -> str:
    """The demo delta of ``line`` (1-based) in ``period``; unique per customer, so a repeat stores nothing."""
    return f"demo-{period}-{line}"


def run_of(line: int, lines: int) -> int:
    """The usage sync (0-based) that posts ``line`` (1-based) of a month of ``lines`` line items."""
    return (line - 1) * RUNS // lines


def amount_for(line: _Line, period: str) -> Decimal:
    """The line's amount, varied a little from month to month (usage grows and shrinks; credits do not)."""
    amount = Decimal(line[0])
    if amount < 0:
        return amount
    year, month = (int(part) for part in period.split("-"))
    factor = Decimal(90 + (year * 12 + month) * 7 % 23) / 100  # 0.90 - 1.12
    return plain((amount * factor).quantize(amount if amount.as_tuple().exponent < 0 else Decimal(1)))


@dataclass(frozen=True)
class _Month:
    period: str
    start: datetime
    end: datetime  # exclusive: the next month's start, or now for the current month

    def instants(self) -> list[tuple[datetime, datetime]]:
        """(accepted at, verified at) of each usage sync: evenly spaced over the month, verified seconds
        later (always before the month's end: for the current month, before now)."""
        step = (self.end - self.start) / (RUNS + 1)
        return [(self.start + step * n, self.start + step * n + min(timedelta(seconds=3), step / 2))
                for n in range(1, RUNS + 1)]


def seed(dev_secrets: dict[str, Any]) -> dict[str, Any]:
    now = bootstrap.now()
    origin = previous_month_start(now) + timedelta(hours=8)  # the demo accounts predate their data
    uow = bootstrap.unit_of_work()
    tenants = {}
    for tenant_id, name, options in _TENANTS:
        tenant = uow.tenants.get(tenant_id)
        if tenant is None:
            tenant, _owner = tenant_service.create_tenant(uow, company_name=name, now=origin, actor=ACTOR, **options)
            if tenant.id != tenant_id:
                raise RuntimeError(f"demo seeding expected tenant id {tenant_id}, got {tenant.id}: "
                                   "the tables hold other tenants")
        tenants[tenant_id] = tenant
    paid_is_ours = tenants[PAID_TENANT_ID].company_name == PAID_COMPANY
    if not paid_is_ours:  # an older stack whose tenant 4 someone else created: leave it alone
        log.warning("tenant 4 is not the demo tenant; its demo data is skipped",
                    extra={"companyName": tenants[PAID_TENANT_ID].company_name})
    _ensure_users(uow, DEMO_TENANT_ID, DEMO_USERS, "acme.example", origin)
    if paid_is_ours:
        _ensure_users(uow, PAID_TENANT_ID, PAID_USERS, "initech.example", origin)

    for environment, full_key in dev_secrets["apiKeys"].items():
        parsed = parse_api_key(full_key)
        if uow.api_keys.get(DEMO_TENANT_ID, Environment(environment), parsed.public_id) is None:
            uow.api_keys.add(ApiKey(
                tenant_id=DEMO_TENANT_ID, environment=Environment(environment), key_id=parsed.public_id,
                name=f"Demo {environment} key", secret_hash=hash_secret(full_key), last4=full_key[-4:],
                created_at=origin, created_by=ACTOR))
    token_id = dev_secrets["platformToken"].split("|", 1)[0]
    if uow.platform_tokens.get(token_id) is None:
        uow.platform_tokens.add(PlatformToken(
            token_id=token_id, name="Demo platform token", abilities=frozenset(a.value for a in Ability),
            secret_hash=hash_secret(dev_secrets["platformToken"]), created_at=origin))
    uow.commit()
    key_ids = {Environment(env): parse_api_key(full).public_id for env, full in dev_secrets["apiKeys"].items()}
    keys = {DEMO_TENANT_ID: key_ids}
    if paid_is_ours and not tenants[PAID_TENANT_ID].is_deleted:
        keys[PAID_TENANT_ID] = _paid_keys(uow, origin)
    if uow.credits.account(DEMO_TENANT_ID).entry_count == 0:  # before any delta reserves credits
        credit_service.topup(uow, DEMO_TENANT_ID, DEMO_CREDITS, actor=ACTOR, now=origin,
                             description="Demo credits")

    if paid_is_ours and not tenants[PAID_TENANT_ID].is_deleted:
        _subscribe_paid_tenant(uow)

    signer = bootstrap.signer()
    for spec in DATA_TENANTS:
        if spec.tenant_id not in keys or tenants[spec.tenant_id].is_deleted:
            continue  # a deleted account keeps its data and takes no more
        for environment in spec.environments:
            principal = ApiKeyPrincipal(tenant_id=spec.tenant_id, environment=environment,
                                        key_id=keys[spec.tenant_id][environment])
            _seed_environment(uow, spec, principal, origin=origin, now=now, signer=signer)
    return {"tenantId": DEMO_TENANT_ID, "adminUserId": ADMIN_USER}


def _subscribe_paid_tenant(uow: Any) -> None:
    """Initech Pro's growth plan as a real subscription of the local Stripe stand-in (Checkout completed),
    so seed 003's `GET /dashboard/billing/plan` shows a subscription id and period end. The stand-in's
    events go straight to the webhook service in this process (the gateway may not be up yet): the same
    verification and handlers as `POST /stripe/webhook`. Skipped when a real Stripe key is configured."""
    from chalicelib.adapters.stripe_local import LocalStripe
    from chalicelib.services import stripe_webhooks
    from chalicelib.settings import get_settings

    config = bootstrap.stripe_config()
    tenant = uow.tenants.get(PAID_TENANT_ID)
    if config.api_key or tenant.stripe_subscription_id or tenant.plan != "growth":
        return
    stand_in: LocalStripe

    def deliver(payload: bytes, signature: str) -> int:
        return stripe_webhooks.handle(bootstrap.unit_of_work(), payload=payload, signature_header=signature,
                                      now=bootstrap.now(), provider=stand_in).status

    stand_in = LocalStripe(get_settings(), webhook_secret=config.webhook_secret, sink=deliver, clock=bootstrap.now)
    session = stand_in.create_checkout_session(
        tenant_id=PAID_TENANT_ID, tier="growth", customer_id=tenant.stripe_customer_id,
        customer_email="owner@initech.example", success_url=get_settings().billing_return_url,
        cancel_url=get_settings().billing_return_url, idempotency_key=f"demo:checkout:{PAID_TENANT_ID}")
    stand_in.complete_checkout(session.id)


def _ensure_users(uow: Any, tenant_id: str, users: dict[str, Role], domain: str, origin: datetime) -> None:
    present = {u.user_id for u in uow.users.list(tenant_id)}
    for user_id, role in users.items():
        if user_id not in present:
            uow.users.save(User(tenant_id=tenant_id, user_id=user_id, email=f"{role}@{domain}", role=role,
                                created_at=origin))
    uow.commit()


def _paid_keys(uow: Any, origin: datetime) -> dict[Environment, str]:
    """The paid tenant's demo API keys (one per environment, made through the dashboard's service; their
    secrets are not kept: `tally dev api-key --tenant 4` makes a usable one)."""
    found = {k.environment: k.key_id for k in uow.api_keys.list_all(PAID_TENANT_ID)
             if k.name == f"Demo {k.environment} key"}  # revoked or rotated: still the demo's, not remade
    for environment in Environment:
        if environment not in found:
            principal = DashboardPrincipal(tenant_id=PAID_TENANT_ID, user_id="usr_initech_owner", role=Role.OWNER,
                                           environment=environment, via="jwt")
            key, _full = key_service.create_api_key(uow, principal, name=f"Demo {environment} key",
                                                    environment=environment, now=origin)
            found[environment] = key.key_id
    return found


def _seed_environment(uow: Any, spec: DemoTenant, principal: ApiKeyPrincipal, *, origin: datetime, now: datetime,
                      signer: Any) -> None:
    """One tenant environment: its demo customers, their previous and current month's deltas, verified,
    and the previous month checkpointed. Only what is missing is made; when nothing is, this is two reads."""
    tenant_id, environment = principal.tenant_id, principal.environment
    this_month, last_month = month_start(now), previous_month_start(now)
    months = (_Month(period_of(last_month), last_month, this_month), _Month(period_of(now), this_month, now))
    customers = list(spec.customers)
    wanted = [(c, reference_id(m.period, n)) for m in months for c in customers
              for n in range(1, len(MONTHS[c]) + 1)]
    snapshot = uow.deltas.snapshot(tenant_id, environment, customers, wanted, months[1].period)
    _add_customers(uow, spec, environment, [c for c in customers if not snapshot.customers[c].exists], origin)
    accepted = dict(snapshot.guards)  # (customer, referenceId) -> the acceptance answer
    fresh: set[str] = set()
    for month in months:
        for run, (accepted_at, verified_at) in enumerate(month.instants()):
            items = [DeltaInput(customer_id=c, delta=amount_for(line, month.period), reason=line[1],
                                reference_id=reference_id(month.period, n), metadata=line[2])
                     for c in customers for n, line in enumerate(MONTHS[c], start=1)
                     if run_of(n, len(MONTHS[c])) == run and (c, reference_id(month.period, n)) not in accepted]
            if not items:
                continue
            outcomes = ingest.submit_deltas(uow, principal, items, now=accepted_at)
            refused = [o.error for o in outcomes if o.status != "QUEUED"]
            if refused:  # e.g. the demo credits were spent: keep what exists, start anyway
                log.warning("demo deltas refused", extra={"tenantId": tenant_id, "environment": str(environment),
                                                          "error": str(refused[0])})
                return
            for item, outcome in zip(items, outcomes, strict=True):
                accepted[(item.customer_id, item.reference_id or "")] = outcome.data or {}
            record_ids = [o.data["recordId"] for o in outcomes if o.data and not o.idempotent]
            fresh.update(record_ids)
            _verify(uow, [(tenant_id, environment, r) for r in record_ids], now=verified_at, signer=signer)
    rows = uow.customers.get_many(tenant_id, environment, customers)
    late = _verify_leftovers(uow, principal, rows, accepted, fresh, now=now, signer=signer)
    _checkpoint(uow, principal, rows, months[0], accepted, now=now, signer=signer, late=late)


def _add_customers(uow: Any, spec: DemoTenant, environment: Environment, missing: list[str],
                   origin: datetime) -> None:
    """The named customers (integration customers, as a first delta would create them, with display names)."""
    if not missing:
        return
    for customer_id in missing:
        uow.customers.add(Customer(
            tenant_id=spec.tenant_id, environment=environment, customer_id=customer_id,
            display_name=spec.customers[customer_id], source=CustomerSource.INTEGRATION, created_at=origin,
            updated_at=origin, event_cadence=EventCadence.WEEKLY))  # three syncs a month: LATE now and then
    uow.customers.count(spec.tenant_id, environment, customers=len(missing), integration=len(missing))  # summary
    uow.commit()


def _verify(uow: Any, refs: list[tuple[str, Environment, str]], *, now: datetime, signer: Any) -> None:
    report = verification.verify_records(uow, refs, now=now, signer=signer)
    if report.outbox:  # as the verifier Lambda does: the webhook worker fans the events out (if anyone listens)
        from chalicelib.services import webhooks

        webhooks.announce(bootstrap.webhook_queue(), report.outbox)


def _verify_leftovers(uow: Any, principal: ApiKeyPrincipal, rows: dict[str, Customer],
                      accepted: dict[tuple[str, str], dict], fresh: set[str], *, now: datetime, signer: Any) -> bool:
    """Demo deltas an earlier run accepted but stopped before verifying are verified now (looked for only
    when a customer has deltas awaiting verification); whether there were any."""
    waiting = {c for c, customer in rows.items() if customer.awaiting_verification}
    refs = [(principal.tenant_id, principal.environment, answer["recordId"])
            for (c, _ref), answer in accepted.items()
            if c in waiting and answer.get("recordId") and answer["recordId"] not in fresh]
    if refs:
        _verify(uow, refs, now=now, signer=signer)
    return bool(refs)


def _checkpoint(uow: Any, principal: ApiKeyPrincipal, rows: dict[str, Customer], month: _Month,
                accepted: dict[tuple[str, str], dict], *, now: datetime, signer: Any, late: bool) -> None:
    """A signed checkpoint of the previous month per customer, as POST /dashboard/customers/{id}/checkpoint
    makes it, minutes after the month closed (before the current month's first delta). Skipped when the
    customer's checkpoint marker already covers the month's demo deltas; otherwise the service answers the
    existing checkpoint for an unchanged scope, or extends it. ``late``: deltas were verified just now, so
    the checkpoint is made now too (never before its leaves were verified)."""
    closed_at = now if late else month.end + min(timedelta(minutes=10), (now - month.end) / (2 * (RUNS + 1)))
    prefix = f"demo-{month.period}-"
    for customer_id, customer in rows.items():
        last_demo = max((answer.get("sequenceNumber") or 0 for (c, ref), answer in accepted.items()
                         if c == customer_id and ref.startswith(prefix)), default=0)
        if not last_demo:
            continue
        if customer.checkpoint_period == month.period and (customer.checkpoint_last_seq or 0) >= last_demo:
            continue
        scope = checkpoint_service.Scope(principal.tenant_id, principal.environment, customer_id, month.period)
        checkpoint_service.create(uow, scope, now=closed_at, signer=signer)
