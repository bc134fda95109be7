"""Stripe as Tally's billing provider (``BillingProvider`` in services/ports.py).

The SDK is imported only when a provider is built (bootstrap builds one on first use), so ``import app``
never loads it. Every request names the API version pinned below: Stripe answers in the shape this code
reads (API 2026: a subscription's period dates live on its items), whatever the account's default is.
Writes carry the caller's idempotency key, so a retry (ours, or the SDK's own network retries) replays
Stripe's first answer instead of making a second session, plan change, cancellation, meter event or invoice.
Stripe's failures become domain errors (502 refused, 503 unreachable), never a 500 with a trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.domain.clock import utcnow
from chalicelib.domain.errors import BillingProviderError, BillingProviderUnavailableError, ConflictError
from chalicelib.domain.subscriptions import CheckoutSession, Subscription

if TYPE_CHECKING:
    from chalicelib.settings import Settings

#: The API version stripe 16.1.0 is generated against (``stripe._api_version._ApiVersion.CURRENT``).
STRIPE_API_VERSION = "2026-10-28.endive"
#: (connect, read) seconds per attempt; with the retries below a failing call ends well inside API
#: Gateway's 29 s (the SDK's default read timeout is 80 s).
HTTP_TIMEOUT_SECONDS = (3.0, 7.0)
#: The SDK retries connection errors, 409s and 5xx with backoff (0.5 s, 1 s); safe because every write
#: carries an idempotency key (Stripe replays the first answer).
MAX_NETWORK_RETRIES = 2
#: Plan changes invoice the prorated difference at once (see ``change_plan``).
CHANGE_PLAN_PRORATION = "always_invoice"


def next_month_start(moment: datetime) -> datetime:
    """00:00 UTC on the 1st of the UTC month after ``moment``: where Tally's billing periods start."""
    moment = moment.astimezone(UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


class StripeBillingProvider:
    """Checkout, plan changes, portal, cancellation, subscription reads and overage (meter events or one-off
    invoices) on Stripe."""

    def __init__(self, api_key: str, settings: Settings, *, http_client: Any = None,
                 clock: Callable[[], datetime] = utcnow, max_network_retries: int = MAX_NETWORK_RETRIES) -> None:
        import stripe

        if http_client is None:
            http_client = stripe.RequestsClient(timeout=HTTP_TIMEOUT_SECONDS)
        self._client = stripe.StripeClient(api_key, stripe_version=STRIPE_API_VERSION, http_client=http_client,
                                           max_network_retries=max_network_retries)
        self._settings = settings
        self._clock = clock
        self._tier_by_price = {price: tier for tier, price in settings.stripe_price_ids.items()}
        self._overage_prices = frozenset(settings.stripe_overage_price_ids.values())

    def create_checkout_session(self, *, tenant_id: str, tier: str, customer_id: str | None,
                                customer_email: str | None, success_url: str, cancel_url: str,
                                idempotency_key: str) -> CheckoutSession:
        """Subscription-mode Checkout for the tier's plan price (quantity 1) and metered overage price.

        The billing cycle is anchored on the 1st of the next UTC month, so every Stripe period after the
        first (prorated) one is exactly one of Tally's UTC-month periods. If the customer pays only after
        that anchor has passed, Checkout charges the full period starting at the anchor instead (Stripe
        docs, "Set the billing cycle date"). The tenant id rides on the session (``client_reference_id``,
        ``metadata``) and on the subscription (``subscription_data.metadata``), where webhooks find it."""
        plan_price, overage_price = self._prices(tier)
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [{"price": plan_price, "quantity": 1}, {"price": overage_price}],
            "client_reference_id": tenant_id,
            "metadata": {"tenant_id": tenant_id},
            "subscription_data": {
                "metadata": {"tenant_id": tenant_id},
                "billing_cycle_anchor": int(next_month_start(self._clock()).timestamp()),
                "proration_behavior": "create_prorations",
            },
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if customer_id:
            params["customer"] = customer_id
        elif customer_email:
            params["customer_email"] = customer_email
        with _stripe_errors("create a Checkout session"):
            session = self._client.v1.checkout.sessions.create(params=params,
                                                               options={"idempotency_key": idempotency_key})
        return CheckoutSession(id=session.id, url=session.url)

    def change_plan(self, subscription_id: str, *, tier: str, idempotency_key: str) -> Subscription:
        """Swap the plan item's and the overage item's prices for ``tier``'s, keeping the items (and usage).

        ``always_invoice``: the prorated difference is invoiced and charged now rather than added to the
        next month's invoice (``create_prorations``), so an upgrade's larger allotment is paid for when it
        takes effect, and a failed payment reaches Tally at once (``invoice.payment_failed`` → missing-
        payment flag) instead of weeks later. A retried call with the same key sends the same items (the
        swap keeps item ids), so Stripe replays its first answer."""
        plan_price, overage_price = self._prices(tier)
        with _stripe_errors("read the subscription"):
            current = self._client.v1.subscriptions.retrieve(subscription_id).to_dict()
        items = _items(current)
        plan_item = next((item for item in items if _price_id(item) in self._tier_by_price), None)
        if plan_item is None:
            raise ConflictError("The subscription has no Tally plan price to change.")
        overage_item = next((item for item in items if _price_id(item) in self._overage_prices), None)
        changes: list[dict[str, Any]] = [{"id": plan_item["id"], "price": plan_price}]
        changes.append({"id": overage_item["id"], "price": overage_price} if overage_item
                       else {"price": overage_price})  # a subscription made without one gets it now
        with _stripe_errors("change the plan"):
            updated = self._client.v1.subscriptions.update(
                subscription_id,
                params={"items": changes, "proration_behavior": CHANGE_PLAN_PRORATION},
                options={"idempotency_key": idempotency_key},
            )
        return self._subscription(updated.to_dict())

    def create_portal_session(self, customer_id: str, *, return_url: str) -> str:
        """A Customer Portal URL (a session is harmless to repeat: no idempotency key needed)."""
        with _stripe_errors("open the Customer Portal"):
            session = self._client.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url})
        return session.url

    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> Subscription:
        with _stripe_errors("cancel the subscription"):
            updated = self._client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": True},
                                                           options={"idempotency_key": idempotency_key})
        return self._subscription(updated.to_dict())

    def get_subscription(self, subscription_id: str) -> Subscription:
        with _stripe_errors("read the subscription"):
            found = self._client.v1.subscriptions.retrieve(subscription_id)
        return self._subscription(found.to_dict())

    def report_overage(self, *, customer_id: str, quantity: int, identifier: str, timestamp: datetime) -> None:
        """One Billing Meter event. ``identifier`` is both the event's identifier (Stripe drops a repeat for
        about 24 h) and the idempotency key (a replayed request answers as the first did)."""
        params = {
            "event_name": self._settings.stripe_meter_event_name,
            "payload": {"stripe_customer_id": customer_id, "value": str(quantity)},
            "identifier": identifier,
            "timestamp": int(timestamp.timestamp()),
        }
        with _stripe_errors("record overage usage"):
            self._client.v1.billing.meter_events.create(params=params, options={"idempotency_key": identifier})

    def invoice_overage(self, *, customer_id: str, quantity: int, amount_cents: int, description: str,
                        identifier: str) -> None:
        """A pending invoice item, then an invoice that takes it in and is finalized and charged to the
        customer's default payment method (``auto_advance``). Each request's idempotency key is
        ``identifier`` plus ``:item`` / ``:invoice``: a resend within Stripe's ~24 h replays both answers, so
        neither a second item nor a second invoice is made. ``quantity`` is in ``description`` (the amount is
        the month's exact charges, not a unit price times a count)."""
        metadata = {"identifier": identifier}
        with _stripe_errors("invoice the overage"):
            self._client.v1.invoice_items.create(
                params={"customer": customer_id, "amount": amount_cents, "currency": "usd",
                        "description": description, "metadata": metadata},
                options={"idempotency_key": f"{identifier}:item"})
            self._client.v1.invoices.create(
                params={"customer": customer_id, "collection_method": "charge_automatically", "auto_advance": True,
                        "pending_invoice_items_behavior": "include", "metadata": metadata},
                options={"idempotency_key": f"{identifier}:invoice"})

    def _prices(self, tier: str) -> tuple[str, str]:
        plan = self._settings.stripe_price_ids.get(tier)
        overage = self._settings.stripe_overage_price_ids.get(tier)
        if not plan or not overage:
            raise BillingProviderError(f"No Stripe prices are configured for the {tier} tier.")
        return plan, overage

    def _subscription(self, data: dict[str, Any]) -> Subscription:
        """Stripe's subscription reduced to the domain's: tier from the plan item's price, period end from
        that item (API 2026 has no period dates on the subscription itself)."""
        items = _items(data)
        plan_item = next((item for item in items if _price_id(item) in self._tier_by_price), None)
        period_item = plan_item or (items[0] if items else None)
        period_end = period_item.get("current_period_end") if period_item else None
        customer = data.get("customer")
        cancel_at = data.get("cancel_at")
        return Subscription(
            id=data["id"],
            customer_id=customer["id"] if isinstance(customer, dict) else str(customer or ""),
            status=str(data.get("status") or ""),
            tier=self._tier_by_price[_price_id(plan_item)] if plan_item else None,
            current_period_end=datetime.fromtimestamp(period_end, UTC) if period_end else None,
            # A cancellation set as `cancel_at` = the period's end (the Dashboard can do that) is one too.
            cancel_at_period_end=bool(data.get("cancel_at_period_end"))
            or (cancel_at is not None and period_end is not None and cancel_at == period_end),
            tenant_id=(data.get("metadata") or {}).get("tenant_id"),
        )


def _items(subscription: dict[str, Any]) -> list[dict[str, Any]]:
    return list((subscription.get("items") or {}).get("data") or [])


def _price_id(item: dict[str, Any] | None) -> str | None:
    price = (item or {}).get("price")
    return price.get("id") if isinstance(price, dict) else price


@contextmanager
def _stripe_errors(action: str) -> Iterator[None]:
    """Stripe's exceptions → domain errors; the details (type, code, request id) go to the log only."""
    import stripe

    try:
        yield
    except stripe.StripeError as exc:
        from chalicelib.log import get_logger

        get_logger("tally.adapters.stripe").warning(
            "stripe request failed", extra={"action": action, "stripe_error": type(exc).__name__,
                                            "stripe_code": exc.code, "http_status": exc.http_status,
                                            "stripe_request_id": exc.request_id, "stripe_message": exc.user_message})
        if isinstance(exc, stripe.APIConnectionError | stripe.APIError | stripe.RateLimitError):
            raise BillingProviderUnavailableError(f"Stripe could not be reached to {action}; retry later.") from exc
        raise BillingProviderError(f"Stripe refused to {action}.") from exc
