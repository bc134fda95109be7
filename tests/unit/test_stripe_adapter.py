"""The Stripe adapter at the HTTP level: the SDK talks to a fake HTTP client that records every request
(method, path, form parameters, idempotency key, API version) and answers with canned Stripe JSON.
No network."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

from chalicelib.adapters.stripe_billing import STRIPE_API_VERSION, StripeBillingProvider, next_month_start
from chalicelib.api.errors import status_for
from chalicelib.domain.errors import BillingProviderError, BillingProviderUnavailableError, ConflictError
from chalicelib.domain.subscriptions import CheckoutSession
from chalicelib.settings import Settings

API_KEY = "sk_test_tally_unit"
NOW = datetime(2026, 12, 3, 14, 30, 5, tzinfo=UTC)
ANCHOR = 1798761600  # 2027-01-01T00:00:00Z: the 1st of the UTC month after NOW
PERIOD_START = 1796083200  # 2026-12-01T00:00:00Z
PERIOD_END = ANCHOR

SETTINGS = Settings(
    stripe_price_ids={"pilot": "price_1Pilot", "starter": "price_1Starter", "growth": "price_1Growth",
                      "scale": "price_1Scale"},
    stripe_overage_price_ids={"pilot": "price_1PilotOver", "starter": "price_1StarterOver",
                              "growth": "price_1GrowthOver", "scale": "price_1ScaleOver"},
    stripe_meter_event_name="tally_overage_deltas",
)


@dataclass
class Sent:
    method: str
    host: str
    path: str
    params: dict[str, str]
    pairs: list[tuple[str, str]]
    idempotency_key: str | None
    stripe_version: str | None
    authorization: str | None


class FakeStripeHttp(stripe.HTTPClient):
    """Answers queued responses in order and records what the SDK sent."""

    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Sent] = []
        self._answers: list[tuple[int, object] | Exception] = []

    def answer(self, status: int, body: object) -> FakeStripeHttp:
        self._answers.append((status, body))
        return self

    def fail(self, exc: Exception) -> FakeStripeHttp:
        self._answers.append(exc)
        return self

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        body = post_data.decode() if isinstance(post_data, bytes) else (post_data or parts.query)
        pairs = parse_qsl(body, keep_blank_values=True)
        headers = dict(headers or {})
        self.sent.append(Sent(method, parts.netloc, parts.path, dict(pairs), pairs, headers.get("Idempotency-Key"),
                              headers.get("Stripe-Version"), headers.get("Authorization")))
        if not self._answers:
            raise AssertionError(f"unexpected request {method} {url}")
        answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, payload = answer
        return json.dumps(payload), status, {"request-id": f"req_{len(self.sent)}"}

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return 0.0  # the SDK's retry backoff, without the wait

    def close(self) -> None:
        pass


@pytest.fixture
def http() -> FakeStripeHttp:
    return FakeStripeHttp()


@pytest.fixture
def provider(http: FakeStripeHttp) -> StripeBillingProvider:
    return StripeBillingProvider(API_KEY, SETTINGS, http_client=http, clock=lambda: NOW)


def item(item_id: str, price: str, *, metered: bool = False, period_end: int = PERIOD_END) -> dict:
    recurring = {"interval": "month", "usage_type": "metered" if metered else "licensed",
                 "meter": "mtr_1" if metered else None}
    return {"id": item_id, "object": "subscription_item",
            "price": {"id": price, "object": "price", "recurring": recurring},
            **({} if metered else {"quantity": 1}),
            "current_period_start": PERIOD_START, "current_period_end": period_end}


def subscription(*, items: list[dict] | None = None, status: str = "active", cancel_at_period_end: bool = False,
                 cancel_at: int | None = None, customer: object = "cus_1", tenant_id: str | None = "t_42") -> dict:
    """A subscription as API 2026-10-28 returns it: no period dates of its own, items carry them."""
    if items is None:
        items = [item("si_plan", "price_1Starter"), item("si_over", "price_1StarterOver", metered=True)]
    return {"id": "sub_1", "object": "subscription", "customer": customer, "status": status,
            "cancel_at_period_end": cancel_at_period_end, "cancel_at": cancel_at,
            "billing_cycle_anchor": ANCHOR, "metadata": {"tenant_id": tenant_id} if tenant_id else {},
            "items": {"object": "list", "data": items, "has_more": False,
                      "url": "/v1/subscription_items?subscription=sub_1"}}


def error_body(kind: str, code: str | None = None, message: str = "No such subscription: 'sub_1'") -> dict:
    return {"error": {"type": kind, "code": code, "message": message}}


def assert_stripe_request(sent: Sent, method: str, path: str, *, key: str | None) -> None:
    assert (sent.method, sent.host, sent.path) == (method, "api.stripe.com", path)
    assert sent.idempotency_key == key
    assert sent.stripe_version == STRIPE_API_VERSION
    assert sent.authorization == f"Bearer {API_KEY}"


# --- Checkout -----------------------------------------------------------------------------------------------

def checkout(provider: StripeBillingProvider, *, customer_id: str | None = None,
             customer_email: str | None = "owner@acme.test") -> CheckoutSession:
    return provider.create_checkout_session(
        tenant_id="t_42", tier="starter", customer_id=customer_id, customer_email=customer_email,
        success_url="https://app.test/dashboard/billing/plan?checkout=success",
        cancel_url="https://app.test/dashboard/billing/plan?checkout=cancel", idempotency_key="checkout:t_42:starter:1")


def test_checkout_sends_plan_and_overage_prices_the_tenant_and_a_first_of_month_anchor(provider, http):
    http.answer(200, {"id": "cs_test_1", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_1"})

    session = checkout(provider)

    assert session == CheckoutSession(id="cs_test_1", url="https://checkout.stripe.com/c/pay/cs_1")
    [sent] = http.sent
    assert_stripe_request(sent, "post", "/v1/checkout/sessions", key="checkout:t_42:starter:1")
    assert sent.params == {
        "mode": "subscription",
        "line_items[0][price]": "price_1Starter",
        "line_items[0][quantity]": "1",
        "line_items[1][price]": "price_1StarterOver",
        "client_reference_id": "t_42",
        "metadata[tenant_id]": "t_42",
        "subscription_data[metadata][tenant_id]": "t_42",
        "subscription_data[billing_cycle_anchor]": str(ANCHOR),
        "subscription_data[proration_behavior]": "create_prorations",
        "success_url": "https://app.test/dashboard/billing/plan?checkout=success",
        "cancel_url": "https://app.test/dashboard/billing/plan?checkout=cancel",
        "customer_email": "owner@acme.test",
    }
    assert len(sent.pairs) == len(sent.params)  # no parameter sent twice


def test_checkout_names_the_tenants_existing_customer_instead_of_an_email(provider, http):
    http.answer(200, {"id": "cs_test_2", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_2"})

    checkout(provider, customer_id="cus_1", customer_email="owner@acme.test")

    [sent] = http.sent
    assert sent.params["customer"] == "cus_1"
    assert "customer_email" not in sent.params


def test_checkout_without_customer_or_email_lets_checkout_ask(provider, http):
    http.answer(200, {"id": "cs_test_3", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_3"})

    checkout(provider, customer_id=None, customer_email=None)

    [sent] = http.sent
    assert "customer" not in sent.params and "customer_email" not in sent.params


def test_checkout_for_a_tier_without_configured_prices_sends_nothing(http):
    settings = Settings(stripe_price_ids={"starter": "price_1Starter"}, stripe_overage_price_ids={})
    provider = StripeBillingProvider(API_KEY, settings, http_client=http, clock=lambda: NOW)

    with pytest.raises(BillingProviderError) as raised:
        checkout(provider)

    assert raised.value.code == "BILLING_PROVIDER_ERROR" and status_for(raised.value) == 502
    assert http.sent == []


@pytest.mark.parametrize(("moment", "start"), [
    (datetime(2026, 12, 3, 14, 30, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    (datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
    (datetime(2026, 2, 1, 0, 0, 0, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
    # 20:00 on Jan 31 in New York is already Feb 1 in UTC: the anchor follows UTC months.
    (datetime.fromisoformat("2026-01-31T20:00:00-05:00"), datetime(2026, 3, 1, tzinfo=UTC)),
])
def test_periods_are_anchored_on_the_first_of_the_next_utc_month(moment, start):
    assert next_month_start(moment) == start


# --- Plan change ---------------------------------------------------------------------------------------------

def test_change_plan_swaps_the_plan_and_overage_prices_on_the_same_items_and_invoices_the_proration(provider, http):
    http.answer(200, subscription())
    http.answer(200, subscription(items=[item("si_plan", "price_1Growth"),
                                         item("si_over", "price_1GrowthOver", metered=True)]))

    changed = provider.change_plan("sub_1", tier="growth", idempotency_key="change:t_42:growth:1")

    read, update = http.sent
    assert_stripe_request(read, "get", "/v1/subscriptions/sub_1", key=None)
    assert read.params == {}
    assert_stripe_request(update, "post", "/v1/subscriptions/sub_1", key="change:t_42:growth:1")
    assert update.params == {
        "items[0][id]": "si_plan",
        "items[0][price]": "price_1Growth",
        "items[1][id]": "si_over",
        "items[1][price]": "price_1GrowthOver",
        "proration_behavior": "always_invoice",
    }
    assert (changed.tier, changed.status, changed.id) == ("growth", "active", "sub_1")


def test_change_plan_finds_the_items_by_price_whatever_their_order(provider, http):
    http.answer(200, subscription(items=[item("si_over", "price_1StarterOver", metered=True),
                                         item("si_plan", "price_1Starter")]))
    http.answer(200, subscription(items=[item("si_plan", "price_1Scale")]))

    provider.change_plan("sub_1", tier="scale", idempotency_key="k")

    assert http.sent[1].params == {"items[0][id]": "si_plan", "items[0][price]": "price_1Scale",
                                   "items[1][id]": "si_over", "items[1][price]": "price_1ScaleOver",
                                   "proration_behavior": "always_invoice"}


def test_change_plan_adds_the_overage_price_to_a_subscription_made_without_it(provider, http):
    http.answer(200, subscription(items=[item("si_plan", "price_1Starter")]))
    http.answer(200, subscription(items=[item("si_plan", "price_1Pilot"), item("si_new", "price_1PilotOver")]))

    provider.change_plan("sub_1", tier="pilot", idempotency_key="k")

    assert http.sent[1].params == {"items[0][id]": "si_plan", "items[0][price]": "price_1Pilot",
                                   "items[1][price]": "price_1PilotOver", "proration_behavior": "always_invoice"}


def test_change_plan_of_a_subscription_without_a_tally_plan_price_is_a_conflict(provider, http):
    http.answer(200, subscription(items=[item("si_custom", "price_enterprise_custom")]))

    with pytest.raises(ConflictError):
        provider.change_plan("sub_1", tier="growth", idempotency_key="k")

    assert [s.method for s in http.sent] == ["get"]  # nothing changed


# --- Portal, cancellation ------------------------------------------------------------------------------------

def test_portal_session_is_for_the_customer_and_returns_to_billing(provider, http):
    http.answer(200, {"id": "bps_1", "object": "billing_portal.session", "customer": "cus_1",
                      "url": "https://billing.stripe.com/p/session/test_1"})

    url = provider.create_portal_session("cus_1", return_url="https://app.test/dashboard/billing/plan")

    assert url == "https://billing.stripe.com/p/session/test_1"
    [sent] = http.sent
    assert (sent.method, sent.path) == ("post", "/v1/billing_portal/sessions")
    assert sent.stripe_version == STRIPE_API_VERSION
    assert sent.params == {"customer": "cus_1", "return_url": "https://app.test/dashboard/billing/plan"}


def test_cancel_sets_cancel_at_period_end_with_the_key_and_returns_the_subscription(provider, http):
    http.answer(200, subscription(cancel_at_period_end=True))

    cancelled = provider.cancel_at_period_end("sub_1", idempotency_key="cancel:t_42:sub_1")

    [sent] = http.sent
    assert_stripe_request(sent, "post", "/v1/subscriptions/sub_1", key="cancel:t_42:sub_1")
    assert sent.params == {"cancel_at_period_end": "true"}
    assert cancelled.cancel_at_period_end is True
    assert cancelled.current_period_end == datetime(2027, 1, 1, tzinfo=UTC)


# --- Reading a subscription ----------------------------------------------------------------------------------

def test_a_subscription_maps_tier_period_end_from_its_items_status_customer_and_tenant(provider, http):
    http.answer(200, subscription(status="past_due", items=[
        item("si_over", "price_1GrowthOver", metered=True, period_end=PERIOD_END),
        item("si_plan", "price_1Growth", period_end=PERIOD_END),
    ]))

    found = provider.get_subscription("sub_1")

    [sent] = http.sent
    assert_stripe_request(sent, "get", "/v1/subscriptions/sub_1", key=None)
    assert sent.params == {}
    assert found.id == "sub_1"
    assert found.tier == "growth"
    assert found.current_period_end == datetime(2027, 1, 1, tzinfo=UTC)
    assert found.status == "past_due"
    assert found.customer_id == "cus_1"
    assert found.tenant_id == "t_42"
    assert found.cancel_at_period_end is False
    assert found.live


def test_a_subscription_whose_price_is_not_in_the_catalogue_has_no_tier(provider, http):
    http.answer(200, subscription(items=[item("si_x", "price_someone_elses")], tenant_id=None))

    found = provider.get_subscription("sub_1")

    assert found.tier is None and not found.live
    assert found.tenant_id is None
    assert found.current_period_end == datetime(2027, 1, 1, tzinfo=UTC)


def test_an_expanded_customer_and_a_cancel_at_on_the_period_end_are_understood(provider, http):
    http.answer(200, subscription(customer={"id": "cus_9", "object": "customer"}, cancel_at=PERIOD_END))

    found = provider.get_subscription("sub_1")

    assert found.customer_id == "cus_9"
    assert found.cancel_at_period_end is True


def test_an_ended_subscription_maps_to_its_status(provider, http):
    http.answer(200, subscription(status="canceled"))

    found = provider.get_subscription("sub_1")

    assert (found.status, found.tier, found.live) == ("canceled", "starter", False)


# --- Overage ---------------------------------------------------------------------------------------------------

def test_overage_is_one_meter_event_whose_identifier_is_also_the_idempotency_key(provider, http):
    http.answer(200, {"object": "billing.meter_event", "event_name": "tally_overage_deltas",
                      "identifier": "overage:t_42:2026-11", "payload": {}, "timestamp": 1796083199})

    provider.report_overage(customer_id="cus_1", quantity=1234, identifier="overage:t_42:2026-11",
                            timestamp=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))

    [sent] = http.sent
    assert_stripe_request(sent, "post", "/v1/billing/meter_events", key="overage:t_42:2026-11")
    assert sent.params == {
        "event_name": "tally_overage_deltas",
        "payload[stripe_customer_id]": "cus_1",
        "payload[value]": "1234",
        "identifier": "overage:t_42:2026-11",
        "timestamp": "1796083199",
    }


def invoice_overage(provider: StripeBillingProvider) -> None:
    provider.invoice_overage(customer_id="cus_1", quantity=251, amount_cents=502,
                             description="Tally Pilot overage: 251 deltas in 2026-11",
                             identifier="tally-overage-t_42-2026-11")


def test_overage_of_an_ended_subscription_is_an_invoice_item_then_an_invoice_charged_at_once(provider, http):
    http.answer(200, {"id": "ii_1", "object": "invoiceitem", "customer": "cus_1", "amount": 502})
    http.answer(200, {"id": "in_1", "object": "invoice", "customer": "cus_1", "status": "draft"})

    invoice_overage(provider)

    item, invoice = http.sent
    assert_stripe_request(item, "post", "/v1/invoiceitems", key="tally-overage-t_42-2026-11:item")
    assert item.params == {
        "customer": "cus_1",
        "amount": "502",
        "currency": "usd",
        "description": "Tally Pilot overage: 251 deltas in 2026-11",
        "metadata[identifier]": "tally-overage-t_42-2026-11",
    }
    assert len(item.pairs) == len(item.params)
    assert_stripe_request(invoice, "post", "/v1/invoices", key="tally-overage-t_42-2026-11:invoice")
    assert invoice.params == {
        "customer": "cus_1",
        "collection_method": "charge_automatically",
        "auto_advance": "true",
        "pending_invoice_items_behavior": "include",
        "metadata[identifier]": "tally-overage-t_42-2026-11",
    }
    assert len(invoice.pairs) == len(invoice.params)


def test_an_overage_invoice_refused_after_its_item_is_a_502_and_a_resend_repeats_both_keys(provider, http):
    http.answer(200, {"id": "ii_1", "object": "invoiceitem"})
    http.answer(400, error_body("invalid_request_error", "invoice_no_customer_line_items", "Nothing to invoice"))

    with pytest.raises(BillingProviderError) as raised:
        invoice_overage(provider)

    assert not isinstance(raised.value, BillingProviderUnavailableError) and status_for(raised.value) == 502
    http.answer(200, {"id": "ii_1", "object": "invoiceitem"})  # Stripe replays the item's first answer
    http.answer(200, {"id": "in_1", "object": "invoice"})
    invoice_overage(provider)
    assert [s.idempotency_key for s in http.sent] == ["tally-overage-t_42-2026-11:item",
                                                     "tally-overage-t_42-2026-11:invoice"] * 2
    assert http.sent[0].params == http.sent[2].params and http.sent[1].params == http.sent[3].params


# --- Errors ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "body"), [
    (404, error_body("invalid_request_error", "resource_missing")),
    (400, error_body("invalid_request_error", "parameter_invalid_empty", "No such price: 'price_1Starter'")),
    (400, error_body("idempotency_error", None, "Keys for idempotent requests can only be used with the same "
                                                "parameters they were first used with.")),
    (401, error_body("invalid_request_error", None, "Invalid API Key provided: sk_test_****unit")),
    (403, error_body("invalid_request_error", None, "The provided key does not have access")),
])
def test_stripe_refusing_a_request_is_a_502_without_stripes_details(provider, http, status, body):
    http.answer(status, body)

    with pytest.raises(BillingProviderError) as raised:
        provider.get_subscription("sub_1")

    assert not isinstance(raised.value, BillingProviderUnavailableError)
    assert raised.value.code == "BILLING_PROVIDER_ERROR"
    assert status_for(raised.value) == 502
    assert body["error"]["message"] not in raised.value.message
    assert isinstance(raised.value.__cause__, stripe.StripeError)
    assert len(http.sent) == 1  # a refusal is not retried


def test_a_failing_stripe_is_retried_with_the_same_key_then_a_503(provider, http):
    for _ in range(3):
        http.answer(500, error_body("api_error", None, "Something went wrong on Stripe's end."))

    with pytest.raises(BillingProviderUnavailableError) as raised:
        provider.cancel_at_period_end("sub_1", idempotency_key="cancel:t_42:sub_1")

    assert raised.value.code == "BILLING_PROVIDER_UNAVAILABLE"
    assert status_for(raised.value) == 503
    assert [s.idempotency_key for s in http.sent] == ["cancel:t_42:sub_1"] * 3  # 1 try + 2 retries


def test_a_retry_after_a_stripe_hiccup_succeeds_with_the_same_key(provider, http):
    http.answer(503, error_body("api_error", None, "unavailable"))
    http.answer(200, {"object": "billing.meter_event", "identifier": "overage:t_42:2026-11"})

    provider.report_overage(customer_id="cus_1", quantity=5, identifier="overage:t_42:2026-11",
                            timestamp=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))

    assert [s.idempotency_key for s in http.sent] == ["overage:t_42:2026-11"] * 2
    assert http.sent[0].params == http.sent[1].params


def test_an_unreachable_stripe_is_a_503(http):
    provider = StripeBillingProvider(API_KEY, SETTINGS, http_client=http, clock=lambda: NOW, max_network_retries=0)
    http.fail(stripe.APIConnectionError("Network error: timed out"))

    with pytest.raises(BillingProviderUnavailableError):
        checkout(provider)


def test_rate_limiting_by_stripe_is_a_503(http):
    provider = StripeBillingProvider(API_KEY, SETTINGS, http_client=http, max_network_retries=0)
    http.answer(429, error_body("invalid_request_error", "rate_limit", "Too many requests"))

    with pytest.raises(BillingProviderUnavailableError):
        provider.create_portal_session("cus_1", return_url="https://app.test/dashboard/billing/plan")


# --- Cold start ------------------------------------------------------------------------------------------------

def test_the_cold_start_does_not_load_stripe_or_this_adapter():
    import subprocess
    import sys

    code = ("import sys, app; print(sorted(m for m in sys.modules if m == 'stripe' or m.startswith(("
            "'stripe.', 'requests', 'chalicelib.adapters.stripe'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
