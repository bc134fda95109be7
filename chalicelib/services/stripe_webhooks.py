"""The Stripe webhook (SPEC "Billing"): verify, record once, apply once.

The shape dj-stripe and Polar use. The ``Stripe-Signature`` is checked on the raw body before
anything is stored. The event id is then recorded (``received``) by a conditional put: the
exactly-once guard. Its handler stages the effect, and the event's ``handled`` mark (conditional
on it still being ``received``) goes into the same unit of work, so one DynamoDB transaction
applies both or neither. A crash between the two leaves the event ``received``, and Stripe's next
delivery applies it again; a ``handled`` event is answered 200 without a second effect.

Handlers never trust an event's copy of a subscription: they re-read it from the provider and
recompute the tenant's plan from it (domain/subscriptions.py), so late, repeated and out-of-order
events converge on the provider's state. An event whose tenant cannot be found yet (its checkout
not processed) answers 503 and stays unhandled, so Stripe retries it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.errors import ConcurrentWriteError
from chalicelib.domain.stripe_events import (
    IGNORED,
    INVOICE_FAILED,
    INVOICE_PAID,
    RECEIVED,
    StripeEvent,
    failure_counts,
)
from chalicelib.domain.subscriptions import Subscription, apply_subscription, is_second_subscription
from chalicelib.domain.tenants import Tenant
from chalicelib.log import get_logger
from chalicelib.services import payment_blocks
from chalicelib.services.ports import BillingProvider, UnitOfWork
from chalicelib.services.retry import retry_on_conflict

ACTOR = "stripe:webhook"
TOLERANCE_SECONDS = 300  # Stripe's own default: older signatures are replays
MAX_APPLY_ATTEMPTS = 5  # a tenant saved concurrently (dashboard, another event): re-read and re-apply

log = get_logger("tally.stripe_webhook")


@dataclass(frozen=True)
class Result:
    """What to answer Stripe: a status and a small body (what happened, or ``code``/``message``)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status < 400


def _error(status: int, code: str, message: str) -> Result:
    return Result(status, {"code": code, "message": message})


class _Rejected(Exception):
    """The request is not a genuine, current Stripe event: 400, nothing stored."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _TenantNotYetKnown(Exception):
    """The event's tenant is not there yet: 503 so Stripe retries, nothing marked handled."""


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    object: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    outcome: str
    tenant_id: str | None = None


@dataclass(frozen=True)
class Context:
    uow: UnitOfWork
    event: Event
    provider: BillingProvider
    now: datetime


# --- verification -----------------------------------------------------------------------------------


def _signed_at(header: str) -> int:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            return int(value)
    raise ValueError("no timestamp")


def verify(payload: bytes, signature_header: str | None, secret: str, now: datetime) -> Event:
    """Stripe's scheme (``t=…,v1=HMAC-SHA256(secret, "{t}.{body}")``) checked by the Stripe SDK; the
    300-second tolerance against ``now`` (the SDK would use the wall clock), then the event's shape."""
    import stripe

    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance=None)
        signed_at = _signed_at(signature_header or "")
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise _Rejected("INVALID_SIGNATURE", "The Stripe-Signature header does not match the body.") from exc
    if signed_at < now.timestamp() - TOLERANCE_SECONDS:
        raise _Rejected("INVALID_SIGNATURE", f"The signature is older than {TOLERANCE_SECONDS} seconds.")
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise _Rejected("VALIDATION_ERROR", "The body is not JSON.") from exc
    if not isinstance(body, dict):
        body = {}
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not (isinstance(body.get("id"), str) and body["id"] and isinstance(body.get("type"), str)
            and isinstance(obj, dict)):
        raise _Rejected("VALIDATION_ERROR", "The body is not a Stripe event (id, type, data.object).")
    return Event(id=body["id"], type=body["type"], object=obj)


# --- finding the tenant -------------------------------------------------------------------------------


def _id(value: Any) -> str | None:
    """A Stripe reference: an id, or an expanded object carrying one."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _tenant(uow: UnitOfWork, *, tenant_id: str | None, customer_id: str | None) -> Tenant:
    """The tenant Tally named at checkout (``client_reference_id`` / ``metadata.tenant_id``), else the one
    holding the Stripe customer (sparse index, then a consistent read by id: the write is versioned)."""
    if tenant_id:
        tenant = uow.tenants.get(tenant_id)
        if tenant is not None:
            return tenant
    if customer_id:
        found = uow.tenants.by_stripe_customer(customer_id)
        tenant = uow.tenants.get(found.id) if found is not None else None
        if tenant is not None:
            return tenant
    raise _TenantNotYetKnown(f"no tenant for tenant id {tenant_id!r} or Stripe customer {customer_id!r}")


def _audit(ctx: Context, tenant: Tenant, action: str, **details: Any) -> None:
    ctx.uow.audit.add(AuditEntry(
        tenant_id=tenant.id, actor=ACTOR, action=action, target=f"tenant:{tenant.id}", at=ctx.now,
        details={"eventId": ctx.event.id, "eventType": ctx.event.type,
                 **{k: v for k, v in details.items() if v is not None}}))


# --- handlers: each stages its effect and says what it did ----------------------------------------------


def _sync(ctx: Context, tenant: Tenant, subscription: Subscription) -> Outcome:
    if tenant.is_deleted:
        return Outcome("tenant_deleted", tenant.id)
    if is_second_subscription(tenant, subscription):
        log.error("a second live subscription for a tenant: the first stays in force; refund and cancel the "
                  "second in Stripe", extra={"tenantId": tenant.id, "kept": tenant.stripe_subscription_id,
                                             "second": subscription.id})
        _audit(ctx, tenant, "billing.subscription.duplicate", subscriptionId=subscription.id,
               keptSubscriptionId=tenant.stripe_subscription_id, status=subscription.status)
        return Outcome("duplicate_subscription", tenant.id)
    after = apply_subscription(tenant, subscription, ctx.now)
    if after is tenant:
        return Outcome("unchanged", tenant.id)
    ctx.uow.tenants.save(after)
    _audit(ctx, after, "billing.subscription.synced", subscriptionId=subscription.id, status=subscription.status,
           fromTier=tenant.plan, toTier=after.plan, cancelAtPeriodEnd=after.cancel_at_period_end)
    return Outcome("plan_synced", tenant.id)


def on_checkout_completed(ctx: Context) -> Outcome:
    session = ctx.event.object
    subscription_id = _id(session.get("subscription"))
    if session.get("mode", "subscription") != "subscription" or subscription_id is None:
        return Outcome(IGNORED)
    subscription = ctx.provider.get_subscription(subscription_id)
    tenant = _tenant(ctx.uow, tenant_id=session.get("client_reference_id") or subscription.tenant_id,
                     customer_id=subscription.customer_id or _id(session.get("customer")))
    return _sync(ctx, tenant, subscription)


def on_subscription_changed(ctx: Context) -> Outcome:
    """created / updated / deleted alike: the fresh read says what the subscription is now."""
    payload = ctx.event.object
    subscription_id = _id(payload)
    if subscription_id is None:
        return Outcome(IGNORED)
    subscription = ctx.provider.get_subscription(subscription_id)
    named = subscription.tenant_id or (payload.get("metadata") or {}).get("tenant_id")
    tenant = _tenant(ctx.uow, tenant_id=named, customer_id=subscription.customer_id or _id(payload.get("customer")))
    return _sync(ctx, tenant, subscription)


def _invoice_tenant(ctx: Context) -> tuple[str, Tenant]:
    """API 2026-10-28: the subscription is at ``parent.subscription_details``, with its metadata."""
    invoice = ctx.event.object
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    named = (details.get("metadata") or {}).get("tenant_id")
    customer_id = _id(invoice.get("customer"))
    try:
        return invoice["id"], _tenant(ctx.uow, tenant_id=named, customer_id=customer_id)
    except _TenantNotYetKnown:
        subscription_id = _id(details.get("subscription"))
        if subscription_id is None:
            raise
    subscription = ctx.provider.get_subscription(subscription_id)  # its metadata names the tenant
    return invoice["id"], _tenant(ctx.uow, tenant_id=subscription.tenant_id, customer_id=None)


def on_invoice_paid(ctx: Context) -> Outcome:
    """Clears the missing-payment flag (and a block) at once; the invoice is recorded paid for good."""
    if _id(ctx.event.object) is None:
        return Outcome(IGNORED)
    invoice_id, tenant = _invoice_tenant(ctx)
    ctx.uow.stripe_events.set_invoice_status(invoice_id, tenant_id=tenant.id, status=INVOICE_PAID, now=ctx.now)
    after = payment_blocks.stage_clear_missing_payment(ctx.uow, tenant, actor=ACTOR, now=ctx.now,
                                                       details={"eventId": ctx.event.id, "invoiceId": invoice_id})
    return Outcome("payment_cleared" if after is not tenant else "unchanged", tenant.id)


def on_invoice_payment_failed(ctx: Context) -> Outcome:
    """Flags the tenant as POST /tenants/{t}/missing-payments does (the first mark is kept), unless this
    invoice was already paid: then the failure is stale and ignored."""
    if _id(ctx.event.object) is None:
        return Outcome(IGNORED)
    invoice_id, tenant = _invoice_tenant(ctx)
    if not failure_counts(ctx.uow.stripe_events.invoice_status(invoice_id)):
        return Outcome("invoice_already_paid", tenant.id)
    ctx.uow.stripe_events.set_invoice_status(invoice_id, tenant_id=tenant.id, status=INVOICE_FAILED, now=ctx.now)
    if tenant.is_deleted:
        return Outcome("tenant_deleted", tenant.id)
    after = payment_blocks.stage_mark_missing_payment(ctx.uow, tenant, actor=ACTOR, now=ctx.now,
                                                      details={"eventId": ctx.event.id, "invoiceId": invoice_id})
    return Outcome("payment_flagged" if after is not tenant else "unchanged", tenant.id)


HANDLERS: dict[str, Callable[[Context], Outcome]] = {
    "checkout.session.completed": on_checkout_completed,
    "customer.subscription.created": on_subscription_changed,
    "customer.subscription.updated": on_subscription_changed,
    "customer.subscription.deleted": on_subscription_changed,
    "invoice.paid": on_invoice_paid,
    "invoice.payment_failed": on_invoice_payment_failed,
}


# --- the use case ------------------------------------------------------------------------------------------


def _answer(event: StripeEvent, *, duplicate: bool) -> Result:
    return Result(200, {"received": True, "eventId": event.event_id, "type": event.event_type,
                        "outcome": event.outcome, "duplicate": duplicate})


def handle(uow: UnitOfWork, *, payload: bytes, signature_header: str | None, now: datetime,
           provider: BillingProvider, webhook_secret: str | None = None) -> Result:
    """One delivery of ``POST /stripe/webhook``. ``webhook_secret`` defaults to the Stripe secret's."""
    if webhook_secret is None:
        from chalicelib import bootstrap

        webhook_secret = bootstrap.stripe_config().webhook_secret
    if not webhook_secret:
        log.error("the Stripe secret has no webhook_secret: every event is refused until it is set")
        return _error(503, "WEBHOOK_NOT_CONFIGURED", "The webhook signing secret is not configured.")
    try:
        event = verify(payload, signature_header, webhook_secret, now)
    except _Rejected as exc:
        return _error(400, exc.code, exc.message)

    handler = HANDLERS.get(event.type)
    record = StripeEvent(event_id=event.id, event_type=event.type, state=RECEIVED, received_at=now)
    if handler is None:  # recorded, nothing to apply: handled at once, in the one write
        record = record.mark_handled(outcome=IGNORED, tenant_id=None, now=now)

    def store(_n: int) -> tuple[StripeEvent, bool]:
        uow.stripe_events.add(record)
        uow.commit()
        return record, False

    def stored_before(_n: int) -> tuple[StripeEvent, bool] | None:
        """Recorded before: handled (answer again) or interrupted (apply again). Not there: the put met a
        concurrent transaction (``TransactionConflict``), so it is tried again."""
        stored = uow.stripe_events.get(event.id)
        return (stored, True) if stored is not None else None

    record, before = retry_on_conflict(uow, store, attempts=MAX_APPLY_ATTEMPTS, on_conflict=stored_before,
                                       message="The event could not be recorded for concurrent writes; retry.")
    if record.handled:
        return _answer(record, duplicate=before)
    return _apply(uow, Context(uow=uow, event=event, provider=provider, now=now), record,
                  handler or (lambda _ctx: Outcome(IGNORED)))


def _apply(uow: UnitOfWork, ctx: Context, record: StripeEvent, handler: Callable[[Context], Outcome]) -> Result:
    """The effect and the ``handled`` mark in one commit; a conflict re-reads everything and tries again."""

    def attempt(_n: int) -> Result:
        try:
            outcome = handler(ctx)
        except _TenantNotYetKnown as exc:
            uow.rollback()
            log.warning("Stripe event for an unknown tenant; Stripe will retry",
                        extra={"eventId": record.event_id, "eventType": record.event_type, "detail": str(exc)})
            return _error(503, "TENANT_NOT_FOUND",
                          "The event's tenant is not known yet; the event stays unhandled and is retried.")
        handled = record.mark_handled(outcome=outcome.outcome, tenant_id=outcome.tenant_id, now=ctx.now)
        uow.stripe_events.mark_handled(handled)
        uow.commit()
        return _answer(handled, duplicate=False)

    def applied_meanwhile(_n: int) -> Result | None:
        stored = uow.stripe_events.get(record.event_id)
        return _answer(stored, duplicate=True) if stored is not None and stored.handled else None

    try:
        return retry_on_conflict(uow, attempt, attempts=MAX_APPLY_ATTEMPTS, on_conflict=applied_meanwhile,
                                 message="The tenant kept changing while the event was applied.")
    except ConcurrentWriteError:
        return _error(503, "CONCURRENT_WRITE", "The tenant kept changing while the event was applied; retry.")
