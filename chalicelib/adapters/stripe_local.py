"""The local Stripe stand-in: Tally's ``BillingProvider`` when no Stripe API key is configured.

It keeps Stripe-shaped objects (customers, Checkout and portal sessions, subscriptions, invoices,
meter events) in the ``billing`` table and, for every state change, sends the event real Stripe
would send — signed with Stripe's ``Stripe-Signature`` scheme and POSTed to ``/stripe/webhook`` — so
the local stack and the tests go through the very path production uses. localstripe and stripe-mock
were tried and rejected (README, "The local Stripe stand-in").

Each operation is one DynamoDB transaction: the objects it changes (each conditioned on the copy it
read, so concurrent operations retry instead of overwriting each other), its idempotency record and
its events with their outbox items. Events are delivered after the commit; an undelivered one stays
in the outbox (``LOCALSTRIPE#UNDELIVERED``) and is retried, oldest first, by the next operation or by
``tally dev stripe deliver``, as Stripe retries.

Billing periods are UTC months, as with the real adapter: the first period runs from the checkout to
00:00 UTC on the 1st of the next month (charged prorated), each renewal one whole month. The stand-in
never moves by itself: ``advance_period`` makes a subscription reach its period end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from chalicelib.domain.clock import iso_ms, utcnow
from chalicelib.domain.errors import BillingProviderError, ConflictError, NotFoundError
from chalicelib.domain.plans import PLANS
from chalicelib.domain.subscriptions import CheckoutSession, Subscription

if TYPE_CHECKING:
    from chalicelib.settings import Settings

API_VERSION = "2026-10-28.endive"  # what stripe 16.1.0 (and the real adapter) speak
WEBHOOK_PATH = "/stripe/webhook"
CHECKOUT_PATH = "/local-stripe/checkout/"
PORTAL_PATH = "/local-stripe/portal/"
DELIVERY_TIMEOUT_SECONDS = 10
CHECKOUT_LIFETIME = timedelta(hours=24)  # Stripe's default expires_at
METER_EVENT_MAX_AGE = timedelta(days=35)  # Stripe refuses older meter events …
METER_EVENT_MAX_AHEAD = timedelta(minutes=5)  # … and ones too far in the future
DELIVERY_BATCH = 100
_ATTEMPTS = 5  # optimistic retries of one operation under concurrent changes

#: ``sink(payload, signature_header) -> HTTP status`` (0: the endpoint could not be reached).
Sink = Callable[[bytes, str], int]


# --- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentEvent:
    """One delivery attempt of an event."""

    id: str
    type: str
    status: int  # the endpoint's HTTP status; 0 unreachable; -1 not sent (tests without a sink)

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        if self.delivered:
            result = f"delivered ({self.status})"
        elif self.status == -1:
            result = "recorded, not sent (no sink in tests)"
        elif self.status == 0:
            result = "not delivered (endpoint unreachable; will be retried)"
        else:
            result = f"not delivered ({self.status}; will be retried)"
        return f"{self.id} {self.type}: {result}"


@dataclass(frozen=True)
class Outcome:
    """What a stand-in operation did: the pages and ``tally dev stripe`` show it."""

    summary: str
    object: dict[str, Any]
    events: tuple[SentEvent, ...] = ()


# --- time and money ------------------------------------------------------------------------------------


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month_start(moment: datetime) -> datetime:
    """00:00 UTC on the 1st of the month after ``moment``: every period ends there."""
    start = month_start(moment)
    return datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=UTC)


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def _at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def plan_cents(tier: str) -> int:
    return int(PLANS[tier].price_usd or 0) * 100


def prorated_cents(cents: int, *, start: int, end: int, now: int) -> int:
    """``cents`` for the part of [start, end) still ahead of ``now``, rounded half up (Stripe prorates by
    the second)."""
    total = end - start
    if total <= 0:
        return 0
    remaining = max(0, min(end - now, total))
    return int((Decimal(cents) * remaining / total).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def overage_cents(tier: str, quantity: int) -> int:
    rate = PLANS[tier].overage_usd or Decimal(0)
    return int((rate * quantity * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def usd(cents: int) -> str:
    """``$1,234.56`` for pages and summaries."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def _new_id(prefix: str) -> str:
    return f"{prefix}_local{secrets.token_hex(10)}"


# --- signing and delivery ------------------------------------------------------------------------------


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    """Stripe's scheme: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "{t}.{payload}")>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class HttpSink:
    """POSTs an event as Stripe does (no proxy: the endpoint is the local stack itself)."""

    def __init__(self, url: str, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout

    def __call__(self, payload: bytes, signature: str) -> int:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url, data=payload, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        })
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError, TimeoutError):
            return 0


# --- storage: one operation's reads and staged writes ----------------------------------------------------


class _Retry(Exception):
    """Another operation changed what this one read: run it again on fresh reads."""


class _Work:
    """The objects one operation reads and changes, committed as one transaction."""

    def __init__(self, stand_in: LocalStripe) -> None:
        self.stand_in = stand_in
        self.now = stand_in.now()
        self._read: dict[tuple[str, str], str | None] = {}  # key -> the JSON as read (None: absent)
        self._staged: dict[tuple[str, str], tuple[str, str, Any]] = {}  # key -> (object id, kind, data)
        self._deleted: set[tuple[str, str]] = set()
        self.events: list[dict[str, Any]] = []

    def load(self, pk: str, sk: str | None = None) -> Any:
        from chalicelib.adapters.dynamodb import keys, tables
        from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord
        from chalicelib.jsoncodec import dumps, loads

        key = (pk, sk or keys.LOCALSTRIPE_SK)
        if key in self._staged:
            return self._staged[key][2]
        record = tables.get(LocalStripeObjectRecord, key[0], key[1])
        if record is None:
            self._read.setdefault(key, None)
            return None
        raw = dumps(record.data)
        self._read.setdefault(key, raw)
        return loads(raw)  # a private copy: edits are staged only by put()

    def obj(self, object_id: str) -> dict[str, Any] | None:
        from chalicelib.adapters.dynamodb import keys

        return self.load(keys.localstripe_pk(object_id))

    def put(self, pk: str, object_id: str, kind: str, data: Any, sk: str | None = None) -> None:
        from chalicelib.adapters.dynamodb import keys

        key = (pk, sk or keys.LOCALSTRIPE_SK)
        if key not in self._read and key not in self._staged:
            self._read[key] = None  # written blind: it must not exist yet
        self._staged[key] = (object_id, kind, data)

    def put_obj(self, data: dict[str, Any]) -> None:
        from chalicelib.adapters.dynamodb import keys

        self.put(keys.localstripe_pk(data["id"]), data["id"], data["object"], data)

    def emit(self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        """A Stripe event carrying a snapshot of ``obj`` as it is now."""
        from chalicelib.jsoncodec import dumps, loads

        data: dict[str, Any] = {"object": loads(dumps(obj))}
        if previous:
            data["previous_attributes"] = previous
        self.events.append({
            "id": _new_id("evt"), "object": "event", "api_version": API_VERSION, "created": _ts(self.now),
            "data": data, "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": event_type,
        })

    def commit(self) -> None:
        from pynamodb.exceptions import PutError, TransactWriteError
        from pynamodb.transactions import TransactWrite

        from chalicelib.adapters.dynamodb import keys, tables
        from chalicelib.adapters.dynamodb.connection import shared_connection
        from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord as Record
        from chalicelib.jsoncodec import dumps

        writes: list[tuple[Record, Any]] = []
        for key, (object_id, kind, data) in self._staged.items():
            before = self._read.get(key)
            if before is not None and dumps(data) == before:
                continue  # unchanged
            record = Record(key[0], key[1], object_id=object_id, kind=kind, data=data, updated_at=self.now)
            condition = Record.pk.does_not_exist() if before is None else Record.data == self.stand_in.decode(before)
            writes.append((record, condition))
        order = time.time_ns()
        for index, event in enumerate(self.events):
            delivery = {"status": "pending", "attempts": 0, "lastStatus": None, "lastAttemptAt": None,
                        "deliveredAt": None}
            writes.append((Record(keys.localstripe_pk(event["id"]), keys.LOCALSTRIPE_SK, object_id=event["id"],
                                  kind="event", data={"event": event, "delivery": delivery}, updated_at=self.now),
                           Record.pk.does_not_exist()))
            writes.append((Record(keys.LOCALSTRIPE_UNDELIVERED_PK,
                                  keys.localstripe_undelivered_sk(event["created"], order + index, event["id"]),
                                  object_id=event["id"], kind="undelivered", data={"type": event["type"]},
                                  updated_at=self.now), None))
        if not writes:
            return
        try:
            if len(writes) == 1:
                tables.put(writes[0][0], writes[0][1])
            else:
                with TransactWrite(connection=shared_connection()) as tx:
                    for record, condition in writes:
                        tx.save(record, condition=condition)
        except (TransactWriteError, PutError) as exc:
            if getattr(exc, "cause_response_code", None) in ("ConditionalCheckFailedException",
                                                               "TransactionCanceledException"):
                raise _Retry() from exc
            raise


# --- the stand-in ----------------------------------------------------------------------------------------


class LocalStripe:
    """Stripe's Checkout, Customer Portal, subscriptions, invoices (one-off ones too) and meter events,
    emulated on DynamoDB."""

    def __init__(self, settings: Settings, *, webhook_secret: str, sink: Sink | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._settings = settings
        self._secret = webhook_secret
        self._clock = clock or utcnow
        self.webhook_url = f"{settings.public_base_url}{WEBHOOK_PATH}"
        if sink is None and settings.stage != "test":
            sink = HttpSink(self.webhook_url)
        self._sink = sink  # None: tests that gave none record events without sending them
        self._tier_by_price = {price: tier for tier, price in settings.stripe_price_ids.items()}
        self._overage_prices = {price: tier for tier, price in settings.stripe_overage_price_ids.items()}

    def now(self) -> datetime:
        return self._clock()

    @staticmethod
    def decode(raw: str) -> Any:
        from chalicelib.jsoncodec import loads

        return loads(raw)

    # --- BillingProvider ---------------------------------------------------------------------------

    def create_checkout_session(self, *, tenant_id: str, tier: str, customer_id: str | None,
                                customer_email: str | None, success_url: str, cancel_url: str,
                                idempotency_key: str) -> CheckoutSession:
        plan_price, overage_price = self._prices(tier)
        request = {"tenant_id": tenant_id, "tier": tier, "customer": customer_id, "customer_email": customer_email,
                   "success_url": success_url, "cancel_url": cancel_url}

        def operation(work: _Work) -> dict[str, Any]:
            replay = self._replay(work, idempotency_key, "checkout.session.create", request)
            if replay is not None:
                return replay
            session_id = _new_id("cs")
            session = {
                "id": session_id, "object": "checkout.session", "mode": "subscription", "status": "open",
                "payment_status": "unpaid", "url": f"{self._settings.public_base_url}{CHECKOUT_PATH}{session_id}",
                "client_reference_id": tenant_id, "customer": customer_id, "customer_email": customer_email,
                "customer_details": None, "subscription": None, "invoice": None,
                "metadata": {"tenant_id": tenant_id, "tier": tier},
                "line_items": {"object": "list", "has_more": False, "data": [
                    {"price": {"id": plan_price}, "quantity": 1}, {"price": {"id": overage_price}}]},
                "subscription_data": {"metadata": {"tenant_id": tenant_id},
                                      "billing_cycle_anchor": _ts(next_month_start(work.now)),
                                      "proration_behavior": "create_prorations"},
                "success_url": success_url, "cancel_url": cancel_url, "currency": "usd",
                "amount_total": plan_cents(tier), "created": _ts(work.now),
                "expires_at": _ts(work.now + CHECKOUT_LIFETIME), "livemode": False,
            }
            work.put_obj(session)
            self._remember(work, idempotency_key, "checkout.session.create", request, session)
            return session

        session, _ = self._run(operation)
        return CheckoutSession(id=session["id"], url=session["url"])

    def change_plan(self, subscription_id: str, *, tier: str, idempotency_key: str) -> Subscription:
        self._prices(tier)
        return self._update_subscription(
            subscription_id, idempotency_key, "subscription.change_plan",
            {"subscription": subscription_id, "tier": tier},
            lambda work, subscription: self._swap_plan(work, subscription, tier))

    def _update_subscription(self, subscription_id: str, idempotency_key: str, kind: str, request: dict[str, Any],
                             change: Callable[[_Work, dict[str, Any]], Any]) -> Subscription:
        """One idempotent change of a subscription (a repeated key replays the first answer), its events sent."""

        def operation(work: _Work) -> dict[str, Any]:
            replay = self._replay(work, idempotency_key, kind, request)
            if replay is not None:
                return replay
            subscription = self._subscription_for_update(work, subscription_id)
            change(work, subscription)
            self._remember(work, idempotency_key, kind, request, subscription)
            return subscription

        subscription, _ = self._run_and_send(operation)
        return self.to_subscription(subscription)

    def create_portal_session(self, customer_id: str, *, return_url: str) -> str:
        def operation(work: _Work) -> dict[str, Any]:
            if work.obj(customer_id) is None:  # a customer Tally names that the stand-in never saw: adopted,
                work.put_obj({"id": customer_id, "object": "customer", "email": None, "name": None,  # as at Checkout
                              "created": _ts(work.now), "livemode": False, "metadata": {}})
            session_id = _new_id("bps")
            session = {"id": session_id, "object": "billing_portal.session", "customer": customer_id,
                       "return_url": return_url, "url": f"{self._settings.public_base_url}{PORTAL_PATH}{session_id}",
                       "created": _ts(work.now), "livemode": False}
            work.put_obj(session)
            return session

        session, _ = self._run(operation)
        return session["url"]

    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> Subscription:
        return self._update_subscription(
            subscription_id, idempotency_key, "subscription.cancel",
            {"subscription": subscription_id, "cancel_at_period_end": True}, self._schedule_cancel)

    def get_subscription(self, subscription_id: str) -> Subscription:
        found = self.get_object(subscription_id)
        if found is None or found.get("object") != "subscription":
            raise BillingProviderError(f"No such subscription: '{subscription_id}'.")
        return self.to_subscription(found)

    def report_overage(self, *, customer_id: str, quantity: int, identifier: str, timestamp: datetime) -> None:
        """A Billing Meter event; an identifier seen before is a no-op (Stripe keeps them ~24 h, the stand-in
        for good)."""
        from chalicelib.adapters.dynamodb import keys

        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise BillingProviderError("A meter event's value must be a non-negative whole number.")
        now = self.now()
        if timestamp < now - METER_EVENT_MAX_AGE or timestamp > now + METER_EVENT_MAX_AHEAD:
            raise BillingProviderError("A meter event's timestamp must be within the past 35 days "
                                       "and no more than 5 minutes in the future.")

        def operation(work: _Work) -> None:
            pk = keys.localstripe_meter_event_pk(identifier)
            if work.load(pk) is not None:
                return None
            event = {"object": "billing.meter_event", "created": _ts(work.now),
                     "event_name": self._settings.stripe_meter_event_name, "identifier": identifier,
                     "livemode": False, "payload": {"stripe_customer_id": customer_id, "value": str(quantity)},
                     "timestamp": _ts(timestamp)}
            work.put(pk, identifier, "billing.meter_event", event)
            work.put(keys.localstripe_usage_pk(customer_id), identifier, "meter_usage",
                     {"identifier": identifier, "value": quantity, "timestamp": _ts(timestamp)},
                     sk=keys.localstripe_usage_sk(_ts(timestamp), identifier))
            return None

        self._run(operation)

    def invoice_overage(self, *, customer_id: str, quantity: int, amount_cents: int, description: str,
                        identifier: str) -> None:
        """A one-off invoice of one line (the invoice item: ``amount_cents``, quantity 1, as the real adapter
        creates it), paid at once from the customer's card, with ``invoice.paid``. Idempotent by the
        invoice's key (``{identifier}:invoice``): a resend is a no-op (Stripe replays for ~24 h, the stand-in
        for good)."""
        for value in (quantity, amount_cents):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BillingProviderError("An overage invoice's quantity and amount must be non-negative whole "
                                           "numbers.")
        key = f"{identifier}:invoice"
        request = {"customer": customer_id, "quantity": quantity, "amount": amount_cents,
                   "description": description, "identifier": identifier}

        def operation(work: _Work) -> dict[str, Any]:
            replay = self._replay(work, key, "invoice.overage", request)
            if replay is not None:
                return replay
            now = _ts(work.now)
            line = {"id": _new_id("il"), "object": "line_item", "amount": amount_cents, "currency": "usd",
                    "description": description, "quantity": 1, "period": {"start": now, "end": now},
                    "metadata": {"identifier": identifier}, "pricing": None,
                    "parent": {"type": "invoice_item_details", "invoice_item_details": {
                        "invoice_item": _new_id("ii"), "subscription": None}}}
            invoice = _invoice_object(work, customer_id, "manual", [line], start=now, end=now, parent=None)
            invoice["metadata"] = {"identifier": identifier}
            invoice["attempt_count"] = 1
            self._mark_paid(invoice, work.now)
            work.put_obj(invoice)
            tenant_id = ((work.obj(customer_id) or {}).get("metadata") or {}).get("tenant_id")
            if tenant_id:  # shown on the tenant's portal page
                state = self._state(work, tenant_id)
                state["invoices"] = (state["invoices"] + [invoice["id"]])[-24:]
                self._put_state(work, state)
            self._remember(work, key, "invoice.overage", request, invoice)
            work.emit("invoice.paid", invoice)
            return invoice

        self._run_and_send(operation)

    # --- reads for the pages and the CLI --------------------------------------------------------------

    def get_object(self, object_id: str) -> dict[str, Any] | None:
        from chalicelib.adapters.dynamodb import keys, tables
        from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord

        record = tables.get(LocalStripeObjectRecord, keys.localstripe_pk(object_id), keys.LOCALSTRIPE_SK,
                            consistent_read=False)
        return record.data if record else None

    def tenant_state(self, tenant_id: str) -> dict[str, Any]:
        """``{customer, subscription, open_invoices, invoices}`` ids for a tenant (empty when unknown)."""
        from chalicelib.adapters.dynamodb import keys, tables
        from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord

        record = tables.get(LocalStripeObjectRecord, keys.localstripe_tenant_pk(tenant_id), keys.LOCALSTRIPE_SK,
                            consistent_read=False)
        return record.data if record else _empty_state(tenant_id)

    def checkout_page(self, session_id: str) -> dict[str, Any]:
        """What the hosted Checkout page shows (NotFoundError for an unknown session)."""
        session = self.get_object(session_id)
        if session is None or session.get("object") != "checkout.session":
            raise NotFoundError("No such Checkout session.")
        tier = session["metadata"]["tier"]
        now = self.now()
        if session["status"] == "open" and now.timestamp() >= session["expires_at"]:
            session = {**session, "status": "expired"}
        end = next_month_start(now)
        return {"session": session, "tier": tier, "monthly_cents": plan_cents(tier),
                "overage_usd": PLANS[tier].overage_usd, "allotment": PLANS[tier].monthly_allotment,
                "due_now_cents": prorated_cents(plan_cents(tier), start=_ts(month_start(now)), end=_ts(end),
                                                now=_ts(now)),
                "period_end": end}

    def portal_page(self, portal_session_id: str) -> dict[str, Any]:
        """What the Customer Portal page shows: the customer's subscription, open and recent invoices."""
        portal = self._portal(portal_session_id)
        customer = self.get_object(portal["customer"]) or {"id": portal["customer"], "metadata": {}}
        tenant_id = (customer.get("metadata") or {}).get("tenant_id")
        state = self.tenant_state(tenant_id) if tenant_id else _empty_state("")
        subscription = self.get_object(state["subscription"]) if state.get("subscription") else None
        invoices = [found for found in (self.get_object(i) for i in reversed(state.get("invoices", [])[-6:])) if found]
        return {"portal": portal, "customer": customer, "subscription": subscription,
                "tier": self._tier_of(subscription) if subscription else None,
                "period_end": _at(self._period(subscription)[1]) if subscription else None,
                "open_invoices": [i for i in invoices if i["status"] == "open"], "invoices": invoices}

    # --- what a person does on the pages, or `tally dev stripe` -------------------------------------------

    def complete_checkout(self, session_id: str) -> Outcome:
        """The customer pays: a customer (when new), the subscription and its first, prorated invoice, paid.
        Completing a completed session changes nothing."""

        def operation(work: _Work) -> Outcome:
            session = work.obj(session_id)
            if session is None or session.get("object") != "checkout.session":
                raise NotFoundError("No such Checkout session.")
            if session["status"] == "complete":
                return Outcome("The Checkout session was already completed.", session)
            if session["status"] != "open" or _ts(work.now) >= session["expires_at"]:
                raise ConflictError("This Checkout session has expired; start a new one.",
                                    code="CHECKOUT_SESSION_EXPIRED")
            tenant_id = session["client_reference_id"]
            tier = session["metadata"]["tier"]
            state = self._state(work, tenant_id)
            named = session["customer"] or state["customer"]
            customer = work.obj(named) if named else None
            if customer is None:  # a new customer (or one Tally names that the stand-in never saw: adopted)
                customer = {"id": named or _new_id("cus"), "object": "customer", "email": session["customer_email"],
                            "name": None, "created": _ts(work.now), "livemode": False,
                            "metadata": {"tenant_id": tenant_id}}
                work.put_obj(customer)
            elif not (customer.get("metadata") or {}).get("tenant_id"):  # adopted by a portal visit
                customer = {**customer, "metadata": {**(customer.get("metadata") or {}), "tenant_id": tenant_id}}
                work.put_obj(customer)
            subscription = self._new_subscription(work, customer["id"], tenant_id, tier)
            start, end = self._period(subscription)
            invoice = self._invoice(work, subscription, "subscription_create", [
                self._line(f"Remaining time on Tally {tier.title()} until {_day(end)}",
                           prorated_cents(plan_cents(tier), start=_ts(month_start(_at(start))), end=end, now=start),
                           self._settings.stripe_price_ids[tier], start, end)])
            self._charge(work, subscription, invoice, state, paying=True)
            subscription["latest_invoice"] = invoice["id"]
            work.put_obj(subscription)
            session.update(status="complete", payment_status="paid", customer=customer["id"],
                           subscription=subscription["id"], invoice=invoice["id"],
                           customer_details={"email": customer.get("email"), "name": customer.get("name")})
            work.put_obj(session)
            state.update(customer=customer["id"], subscription=subscription["id"])
            self._put_state(work, state)
            work.emit("checkout.session.completed", session)
            work.emit("customer.subscription.created", subscription)
            work.emit("invoice.paid", invoice)
            return Outcome(f"Tenant {tenant_id} subscribed to {tier} ({subscription['id']}, customer "
                           f"{customer['id']}); invoice {invoice['id']} paid {usd(invoice['amount_paid'])}.",
                           session)

        return self._act(operation)

    def portal_change_plan(self, portal_session_id: str, tier: str) -> Outcome:
        self._prices(tier)
        subscription_id = self._portal_subscription(portal_session_id)

        def operation(work: _Work) -> Outcome:
            subscription = self._subscription_for_update(work, subscription_id)
            before = self._tier_of(subscription)
            self._swap_plan(work, subscription, tier)
            if before == tier:
                return Outcome(f"Already on the {tier} plan.", subscription)
            return Outcome(f"Plan changed from {before} to {tier} ({subscription_id}).", subscription)

        return self._act(operation)

    def portal_cancel(self, portal_session_id: str) -> Outcome:
        subscription_id = self._portal_subscription(portal_session_id)

        def operation(work: _Work) -> Outcome:
            subscription = self._subscription_for_update(work, subscription_id)
            self._schedule_cancel(work, subscription)
            return Outcome(f"{subscription_id} cancels at the end of its period, "
                           f"{_day(self._period(subscription)[1])}.", subscription)

        return self._act(operation)

    def portal_pay(self, portal_session_id: str) -> Outcome:
        portal = self._portal(portal_session_id)
        customer = self.get_object(portal["customer"]) or {}
        tenant_id = (customer.get("metadata") or {}).get("tenant_id")
        if not tenant_id:
            raise NotFoundError("The portal's customer has no subscription here.")
        return self.pay_invoice(tenant_id)

    def advance_period(self, tenant_id: str) -> Outcome:
        """The tenant's subscription reaches its period end: it ends if cancellation was scheduled, else it
        renews for the next UTC month with a new invoice (paid, unless the subscription is past due)."""

        def operation(work: _Work) -> Outcome:
            state = self._state(work, tenant_id)
            subscription = self._current_subscription(work, state, tenant_id)
            start, end = self._period(subscription)
            if subscription["cancel_at_period_end"]:
                previous = {"status": subscription["status"], "ended_at": None}
                subscription.update(status="canceled", ended_at=end)
                work.put_obj(subscription)
                state["subscription"] = None
                self._put_state(work, state)
                work.emit("customer.subscription.deleted", subscription, previous)
                return Outcome(f"{subscription['id']} reached its period end ({_day(end)}) and was canceled.",
                               subscription)
            tier = self._tier_of(subscription)
            new_end = _ts(next_month_start(_at(end)))
            previous = {"items": json.loads(json.dumps(subscription["items"]))}
            for item in subscription["items"]["data"]:
                item.update(current_period_start=end, current_period_end=new_end)
            lines = [self._line(f"Tally {tier.title()} ({_day(end)} to {_day(new_end)})", plan_cents(tier),
                                self._settings.stripe_price_ids[tier], end, new_end)]
            used = self._metered(work, subscription["customer"], start, end)
            if used:
                lines.append(self._line(f"Overage: {used:,} deltas ({_day(start)} to {_day(end)})",
                                        overage_cents(tier, used), self._settings.stripe_overage_price_ids[tier],
                                        start, end, quantity=used))
            invoice = self._invoice(work, subscription, "subscription_cycle", lines)
            paid = self._charge(work, subscription, invoice, state)
            subscription["latest_invoice"] = invoice["id"]
            work.put_obj(subscription)
            self._put_state(work, state)
            work.emit("customer.subscription.updated", subscription, previous)
            work.emit("invoice.paid" if paid else "invoice.payment_failed", invoice)
            result = "paid" if paid else "left open: the payment failed (the subscription is past due)"
            return Outcome(f"{subscription['id']} renewed until {_day(new_end)}; invoice {invoice['id']} of "
                           f"{usd(invoice['amount_due'])} {result}.", subscription)

        return self._act(operation)

    def fail_payment(self, tenant_id: str) -> Outcome:
        """A payment fails: the open invoice's next attempt, else a new invoice for the current period.
        The subscription becomes past_due (its later charges fail too, until ``pay_invoice``)."""

        def operation(work: _Work) -> Outcome:
            state = self._state(work, tenant_id)
            subscription = self._current_subscription(work, state, tenant_id)
            invoice = work.obj(state["open_invoices"][-1]) if state["open_invoices"] else None
            if invoice is not None:
                invoice["attempt_count"] += 1
                work.put_obj(invoice)
            else:
                tier = self._tier_of(subscription)
                start, end = self._period(subscription)
                invoice = self._invoice(work, subscription, "subscription_cycle", [
                    self._line(f"Tally {tier.title()} ({_day(start)} to {_day(end)})", plan_cents(tier),
                               self._settings.stripe_price_ids[tier], start, end)])
                self._charge(work, subscription, invoice, state, paying=False)
                subscription["latest_invoice"] = invoice["id"]
            work.emit("invoice.payment_failed", invoice)
            if subscription["status"] != "past_due":
                previous = {"status": subscription["status"]}
                subscription["status"] = "past_due"
                work.emit("customer.subscription.updated", subscription, previous)
            work.put_obj(subscription)
            self._put_state(work, state)
            return Outcome(f"Payment of invoice {invoice['id']} ({usd(invoice['amount_due'])}) failed "
                           f"(attempt {invoice['attempt_count']}); {subscription['id']} is past due.", invoice)

        return self._act(operation)

    def pay_invoice(self, tenant_id: str) -> Outcome:
        """Every open invoice of the tenant is paid; a past-due subscription is active again."""

        def operation(work: _Work) -> Outcome:
            state = self._state(work, tenant_id)
            if not state["open_invoices"]:
                return Outcome(f"Tenant {tenant_id} has no open invoice.", state)
            paid = []
            for invoice_id in state["open_invoices"]:
                invoice = work.obj(invoice_id)
                if invoice is None:
                    continue
                self._mark_paid(invoice, work.now)
                invoice["attempt_count"] += 1
                work.put_obj(invoice)
                work.emit("invoice.paid", invoice)
                paid.append(invoice)
            state["open_invoices"] = []
            subscription = work.obj(state["subscription"]) if state["subscription"] else None
            if subscription is not None and subscription["status"] == "past_due":
                subscription["status"] = "active"
                work.put_obj(subscription)
                work.emit("customer.subscription.updated", subscription, {"status": "past_due"})
            self._put_state(work, state)
            total = sum(invoice["amount_paid"] for invoice in paid)
            names = ", ".join(invoice["id"] for invoice in paid)
            return Outcome(f"Paid {names} ({usd(total)}) for tenant {tenant_id}.", paid[-1] if paid else state)

        return self._act(operation)

    # --- delivery -----------------------------------------------------------------------------------------

    def deliver_pending(self, limit: int = DELIVERY_BATCH) -> list[SentEvent]:
        """Sends undelivered events, oldest first; stops early when the endpoint cannot be reached."""
        from chalicelib.adapters.dynamodb import keys, tables
        from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord as Record

        if self._sink is None:
            return []
        sent: list[SentEvent] = []
        for pending in tables.query(Record, keys.LOCALSTRIPE_UNDELIVERED_PK, consistent_read=True, limit=limit):
            result = self._attempt(pending)
            sent.append(result)
            if result.status == 0:
                break
        return sent

    def _attempt(self, pending: Any) -> SentEvent:
        from chalicelib.adapters.dynamodb import keys, tables
        from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord as Record
        from chalicelib.jsoncodec import dumps

        record = tables.get(Record, keys.localstripe_pk(pending.object_id), keys.LOCALSTRIPE_SK)
        if record is None:
            tables.delete(pending)
            return SentEvent(pending.object_id, pending.data.get("type", ""), 200)
        event = record.data["event"]
        payload = dumps(event).encode()
        assert self._sink is not None
        status = int(self._sink(payload, signature_header(payload, self._secret, _ts(self.now()))))
        at = iso_ms(self.now())
        delivery = record.data["delivery"]
        delivery.update(attempts=delivery["attempts"] + 1, lastStatus=status, lastAttemptAt=at)
        result = SentEvent(event["id"], event["type"], status)
        if result.delivered:
            delivery.update(status="delivered", deliveredAt=at)
        else:
            delivery["status"] = "failed"
        record.data = {"event": event, "delivery": delivery}
        record.updated_at = self.now()
        tables.put(record)
        if result.delivered:
            tables.delete(pending)
        return result

    # --- internals ------------------------------------------------------------------------------------------

    def _run(self, operation: Callable[[_Work], Any]) -> tuple[Any, list[dict[str, Any]]]:
        """Runs ``operation`` on fresh reads and commits its writes; again if another operation got there first."""
        for _ in range(_ATTEMPTS):
            work = _Work(self)
            result = operation(work)
            try:
                work.commit()
            except _Retry:
                continue
            return result, work.events
        raise ConflictError("The local Stripe stand-in was changed concurrently; retry.")

    def _run_and_send(self, operation: Callable[[_Work], Any]) -> tuple[Any, tuple[SentEvent, ...]]:
        """Runs ``operation``, then delivers its events at once (older undelivered ones go first)."""
        result, events = self._run(operation)
        if not events:
            return result, ()
        if self._sink is None:
            return result, tuple(SentEvent(event["id"], event["type"], -1) for event in events)
        attempts = {sent.id: sent for sent in self.deliver_pending()}
        return result, tuple(attempts.get(event["id"], SentEvent(event["id"], event["type"], 0)) for event in events)

    def _act(self, operation: Callable[[_Work], Outcome]) -> Outcome:
        outcome, sent = self._run_and_send(operation)
        return Outcome(outcome.summary, outcome.object, sent)

    def _replay(self, work: _Work, key: str, operation: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """The first answer for an idempotency key used before; another request under it is refused (Stripe:
        "Keys for idempotent requests can only be used with the same parameters")."""
        from chalicelib.adapters.dynamodb import keys

        seen = work.load(keys.localstripe_idempotency_pk(key))
        if seen is None:
            return None
        if seen["operation"] != operation or seen["request"] != request:
            raise BillingProviderError("Keys for idempotent requests can only be used with the same parameters "
                                       "they were first used with.")
        return seen["response"]

    def _remember(self, work: _Work, key: str, operation: str, request: dict[str, Any],
                  response: dict[str, Any]) -> None:
        from chalicelib.adapters.dynamodb import keys
        from chalicelib.jsoncodec import dumps, loads

        work.put(keys.localstripe_idempotency_pk(key), key, "idempotency",
                 {"operation": operation, "request": request, "response": loads(dumps(response)),
                  "created": _ts(work.now)})

    def _prices(self, tier: str) -> tuple[str, str]:
        plan = self._settings.stripe_price_ids.get(tier)
        overage = self._settings.stripe_overage_price_ids.get(tier)
        if not plan or not overage or tier not in PLANS:
            raise BillingProviderError(f"No Stripe prices are configured for the {tier} tier.")
        return plan, overage

    def _price(self, tier: str, *, metered: bool) -> dict[str, Any]:
        if metered:
            rate = (PLANS[tier].overage_usd or Decimal(0)) * 100
            return {"id": self._settings.stripe_overage_price_ids[tier], "object": "price", "currency": "usd",
                    "unit_amount": None, "unit_amount_decimal": format(rate.normalize(), "f"),
                    "recurring": {"interval": "month", "interval_count": 1, "usage_type": "metered",
                                  "meter": "mtr_local_" + self._settings.stripe_meter_event_name},
                    "metadata": {"tier": tier}, "type": "recurring"}
        return {"id": self._settings.stripe_price_ids[tier], "object": "price", "currency": "usd",
                "unit_amount": plan_cents(tier), "unit_amount_decimal": str(plan_cents(tier)),
                "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
                "metadata": {"tier": tier}, "type": "recurring"}

    def _new_subscription(self, work: _Work, customer_id: str, tenant_id: str, tier: str) -> dict[str, Any]:
        subscription_id = _new_id("sub")
        start, end = _ts(work.now), _ts(next_month_start(work.now))

        def item(metered: bool) -> dict[str, Any]:
            found = {"id": _new_id("si"), "object": "subscription_item", "subscription": subscription_id,
                     "price": self._price(tier, metered=metered), "created": start,
                     "current_period_start": start, "current_period_end": end, "metadata": {}}
            if not metered:
                found["quantity"] = 1
            return found

        return {
            "id": subscription_id, "object": "subscription", "customer": customer_id, "status": "active",
            "cancel_at_period_end": False, "cancel_at": None, "canceled_at": None, "ended_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "billing_cycle_anchor": end, "collection_method": "charge_automatically", "currency": "usd",
            "created": start, "start_date": start, "latest_invoice": None, "livemode": False,
            "metadata": {"tenant_id": tenant_id},
            "items": {"object": "list", "has_more": False, "total_count": 2,
                      "url": f"/v1/subscription_items?subscription={subscription_id}",
                      "data": [item(False), item(True)]},
        }

    def _line(self, description: str, amount: int, price_id: str, start: int, end: int, *,
              quantity: int = 1) -> dict[str, Any]:
        return {"id": _new_id("il"), "object": "line_item", "amount": amount, "currency": "usd",
                "description": description, "quantity": quantity, "period": {"start": start, "end": end},
                "pricing": {"type": "price_details", "price_details": {"price": price_id}}}

    def _invoice(self, work: _Work, subscription: dict[str, Any], reason: str,
                 lines: list[dict[str, Any]]) -> dict[str, Any]:
        start, end = self._period(subscription)
        parent = {"type": "subscription_details", "quote_details": None, "subscription_details": {
            "subscription": subscription["id"], "metadata": dict(subscription.get("metadata") or {})}}
        return _invoice_object(work, subscription["customer"], reason, lines, start=start, end=end, parent=parent)

    @staticmethod
    def _mark_paid(invoice: dict[str, Any], now: datetime) -> None:
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, attempted=True)
        invoice["status_transitions"]["paid_at"] = _ts(now)

    def _charge(self, work: _Work, subscription: dict[str, Any], invoice: dict[str, Any], state: dict[str, Any], *,
                paying: bool | None = None) -> bool:
        """Collects ``invoice``: paid unless the subscription is past due (its card keeps failing) or
        ``paying`` says otherwise; an unpaid one stays open. Returns whether it was paid."""
        paid = subscription["status"] != "past_due" if paying is None else paying
        invoice["attempt_count"] = 1
        invoice["attempted"] = True
        if paid:
            self._mark_paid(invoice, work.now)
        else:
            state["open_invoices"].append(invoice["id"])
        state["invoices"] = (state["invoices"] + [invoice["id"]])[-24:]
        work.put_obj(invoice)
        return paid

    def _swap_plan(self, work: _Work, subscription: dict[str, Any], tier: str) -> None:
        """Both items take ``tier``'s prices at once; the prorated difference is invoiced now (as the real
        adapter's ``always_invoice``)."""
        before = self._tier_of(subscription)
        if before == tier:
            return
        end = self._period(subscription)[1]
        start = _ts(month_start(_at(end - 1)))  # the whole month: a first, partial period was charged pro rata
        previous = {"items": json.loads(json.dumps(subscription["items"]))}
        for item in subscription["items"]["data"]:
            metered = item["price"]["recurring"]["usage_type"] == "metered"
            item["price"] = self._price(tier, metered=metered)
        now = _ts(work.now)
        lines = []
        if before is not None:
            lines.append(self._line(f"Unused time on Tally {before.title()} after {_day(now)}",
                                    -prorated_cents(plan_cents(before), start=start, end=end, now=now),
                                    self._settings.stripe_price_ids[before], now, end))
        lines.append(self._line(f"Remaining time on Tally {tier.title()} after {_day(now)}",
                                prorated_cents(plan_cents(tier), start=start, end=end, now=now),
                                self._settings.stripe_price_ids[tier], now, end))
        state = self._state(work, subscription["metadata"]["tenant_id"])
        invoice = self._invoice(work, subscription, "subscription_update", lines)
        paid = self._charge(work, subscription, invoice, state)
        subscription["latest_invoice"] = invoice["id"]
        work.put_obj(subscription)
        self._put_state(work, state)
        work.emit("customer.subscription.updated", subscription, previous)
        work.emit("invoice.paid" if paid else "invoice.payment_failed", invoice)

    def _schedule_cancel(self, work: _Work, subscription: dict[str, Any]) -> None:
        if subscription["cancel_at_period_end"]:
            return
        previous = {"cancel_at_period_end": False, "cancel_at": subscription["cancel_at"],
                    "canceled_at": subscription["canceled_at"],
                    "cancellation_details": dict(subscription["cancellation_details"])}
        subscription.update(cancel_at_period_end=True, cancel_at=self._period(subscription)[1],
                            canceled_at=_ts(work.now))
        subscription["cancellation_details"]["reason"] = "cancellation_requested"
        work.put_obj(subscription)
        work.emit("customer.subscription.updated", subscription, previous)

    def _subscription_for_update(self, work: _Work, subscription_id: str) -> dict[str, Any]:
        subscription = work.obj(subscription_id)
        if subscription is None or subscription.get("object") != "subscription":
            raise BillingProviderError(f"No such subscription: '{subscription_id}'.")
        if subscription["status"] in ("canceled", "incomplete_expired"):
            raise BillingProviderError("A canceled subscription can only update its cancellation_details and "
                                       "metadata.")
        return subscription

    def _current_subscription(self, work: _Work, state: dict[str, Any], tenant_id: str) -> dict[str, Any]:
        subscription = work.obj(state["subscription"]) if state["subscription"] else None
        if subscription is None:
            raise NotFoundError(f"Tenant {tenant_id} has no subscription in the local Stripe stand-in.")
        return subscription

    def _state(self, work: _Work, tenant_id: str) -> dict[str, Any]:
        from chalicelib.adapters.dynamodb import keys

        return work.load(keys.localstripe_tenant_pk(tenant_id)) or _empty_state(tenant_id)

    @staticmethod
    def _put_state(work: _Work, state: dict[str, Any]) -> None:
        from chalicelib.adapters.dynamodb import keys

        work.put(keys.localstripe_tenant_pk(state["tenant_id"]), f"TENANT#{state['tenant_id']}", "tenant", state)

    def _metered(self, work: _Work, customer_id: str, start: int, end: int) -> int:
        """Overage deltas reported for ``customer_id`` with timestamps in [start, end)."""
        from chalicelib.adapters.dynamodb import keys, tables
        from chalicelib.adapters.dynamodb.models import LocalStripeObjectRecord as Record

        rows = tables.query(Record, keys.localstripe_usage_pk(customer_id),
                            Record.sk.between(keys.localstripe_usage_sk(start, ""),
                                              keys.localstripe_usage_sk(end - 1, "~")),
                            consistent_read=True)
        return sum(int(row.data["value"]) for row in rows)

    def _portal(self, portal_session_id: str) -> dict[str, Any]:
        portal = self.get_object(portal_session_id)
        if portal is None or portal.get("object") != "billing_portal.session":
            raise NotFoundError("No such Customer Portal session.")
        return portal

    def _portal_subscription(self, portal_session_id: str) -> str:
        page = self.portal_page(portal_session_id)
        if page["subscription"] is None:
            raise ConflictError("The customer has no subscription to change.", code="NO_SUBSCRIPTION")
        return page["subscription"]["id"]

    @staticmethod
    def _period(subscription: dict[str, Any]) -> tuple[int, int]:
        item = subscription["items"]["data"][0]
        return item["current_period_start"], item["current_period_end"]

    def _tier_of(self, subscription: dict[str, Any]) -> str | None:
        for item in subscription["items"]["data"]:
            tier = self._tier_by_price.get(item["price"]["id"])
            if tier:
                return tier
        return None

    def to_subscription(self, data: dict[str, Any]) -> Subscription:
        """Stripe's subscription reduced to the domain's (as the real adapter reads it)."""
        end = self._period(data)[1] if data["items"]["data"] else None
        return Subscription(
            id=data["id"], customer_id=data["customer"], status=data["status"], tier=self._tier_of(data),
            current_period_end=_at(end) if end else None, cancel_at_period_end=bool(data["cancel_at_period_end"]),
            tenant_id=(data.get("metadata") or {}).get("tenant_id"))


def _invoice_object(work: _Work, customer_id: str, reason: str, lines: list[dict[str, Any]], *, start: int,
                    end: int, parent: dict[str, Any] | None) -> dict[str, Any]:
    """An open, finalized invoice (``parent`` None: a one-off, not a subscription's)."""
    total = sum(line["amount"] for line in lines)
    invoice_id = _new_id("in")
    return {
        "id": invoice_id, "object": "invoice", "customer": customer_id, "status": "open",
        "billing_reason": reason, "collection_method": "charge_automatically", "currency": "usd",
        "subtotal": total, "total": total, "amount_due": max(0, total), "amount_paid": 0,
        "amount_remaining": max(0, total), "attempt_count": 0, "attempted": False,
        "created": _ts(work.now), "period_start": start, "period_end": end,
        "hosted_invoice_url": None, "livemode": False, "metadata": {}, "number": f"LOCAL-{invoice_id[-6:].upper()}",
        "lines": {"object": "list", "has_more": False, "data": lines}, "parent": parent,
        "status_transitions": {"finalized_at": _ts(work.now), "paid_at": None},
    }


def _empty_state(tenant_id: str) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "customer": None, "subscription": None, "open_invoices": [], "invoices": []}


def _day(timestamp: int) -> str:
    return _at(timestamp).strftime("%Y-%m-%d")

