"""Webhook rules: URL checks, event subscriptions, SDK-compatible signatures, the retry schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pacspace_sdk import Webhooks, WebhookVerificationError

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import Environment
from chalicelib.domain.webhooks import (
    KEPT_ATTEMPTS,
    MAX_ATTEMPTS,
    SUBSCRIBABLE,
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    backoff,
    check_events,
    check_url,
    signed_headers,
)

NOW = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)
BASE = timedelta(seconds=10)
SECRET = "whsec_" + "k" * 32


def delivery(**overrides) -> Delivery:
    event = Event("evt_1", "delta.verified", "2", Environment.PRODUCTION, NOW, {"recordId": "rec_1", "delta": 1})
    values = dict(tenant_id="2", environment=Environment.PRODUCTION, event_id=event.event_id,
                  event_type=event.event_type, endpoint_id="we_1", url="https://hooks.example.com/x",
                  body=event.body(), created_at=NOW, next_attempt_at=NOW)
    values.update(overrides)
    return Delivery(**values)


def failed(number: int, at: datetime) -> Attempt:
    return Attempt(number, at, 500, 12, "HTTP 500")


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/tally", "https://hooks.example.com:8443/a?b=c", "https://93.184.216.34/x",
])
def test_public_https_urls_are_accepted(url):
    assert check_url(url, allow_loopback=False) == url


@pytest.mark.parametrize("url", [
    "http://hooks.example.com/x",  # plain http
    "ftp://hooks.example.com/x", "hooks.example.com/x", "https://", "", None, 42, "https://" + "a" * 2050,
    "https://user:pw@hooks.example.com/x",  # credentials in the URL
    "https://10.0.0.5/x", "https://192.168.1.1/x", "https://169.254.169.254/latest", "https://[::1]/x",
    "https://127.0.0.1/x", "https://localhost/x", "https://0.0.0.0/x", "https://hooks.example.com:99999/x",
    # legacy IPv4 spellings, trailing dots and non-global ranges
    "https://2852039166/", "https://127.1/", "https://0x7f000001/", "https://0/", "https://localhost./x",
    "https://100.64.1.1/x", "https://[fd00::1]/x",
])
def test_other_urls_are_refused(url):
    with pytest.raises(ValidationError) as caught:
        check_url(url, allow_loopback=False)
    assert caught.value.details["field"] == "url"


def test_loopback_http_is_accepted_only_when_allowed():
    assert check_url("http://127.0.0.1:9000/hook", allow_loopback=True) == "http://127.0.0.1:9000/hook"
    assert check_url("http://localhost:9000/hook", allow_loopback=True)
    with pytest.raises(ValidationError):
        check_url("http://127.0.0.1:9000/hook", allow_loopback=False)
    with pytest.raises(ValidationError):
        check_url("http://10.0.0.1/hook", allow_loopback=True)


def test_events_default_to_everything_and_unknown_names_are_refused():
    assert check_events(None) == SUBSCRIBABLE == check_events([])
    assert check_events(["delta.failed", "delta.verified", "delta.failed"]) == ("delta.verified", "delta.failed")
    for bad in (["delta.created"], ["webhook.test"], "delta.verified", [1]):
        with pytest.raises(ValidationError):
            check_events(bad)


def test_signed_headers_pass_the_sdk_verifier_and_a_tampered_body_fails():
    d = delivery()
    now = datetime.now(UTC)
    headers = signed_headers(SECRET, d, now)
    assert headers["X-Webhook-Event"] == "delta.verified" and headers["X-Event-ID"] == "evt_1"
    assert headers["X-PacSpace-Timestamp"] == str(int(now.timestamp()))
    payload = Webhooks(SECRET).verify_from_headers(headers, d.body)
    assert payload["data"] == {"recordId": "rec_1", "delta": 1} and payload["tenantId"] == "2"
    assert set(payload) == {"id", "event", "tenantId", "createdAt", "timestamp", "data"}
    with pytest.raises(WebhookVerificationError):
        Webhooks(SECRET).verify_from_headers(headers, d.body.replace("rec_1", "rec_2"))
    with pytest.raises(WebhookVerificationError):
        Webhooks("whsec_other").verify_from_headers(headers, d.body)


def test_backoff_grows_five_fold_and_is_capped():
    assert [backoff(n, base=BASE).total_seconds() for n in range(1, 8)] == [10, 50, 250, 1250, 6250, 21600, 21600]


def test_a_failed_attempt_is_rescheduled_and_a_success_delivers():
    first = delivery().after(failed(1, NOW), base=BASE)
    assert (first.status, first.next_attempt_at, first.attempt_count) == (DeliveryStatus.PENDING,
                                                                         NOW + BASE, 1)
    later = NOW + BASE
    done = first.after(Attempt(2, later, 204, 5), base=BASE)
    assert (done.status, done.delivered_at, done.next_attempt_at) == (DeliveryStatus.DELIVERED, later, None)


def test_retries_stop_after_the_attempt_limit_or_the_retry_window():
    d, at = delivery(), NOW
    for number in range(1, MAX_ATTEMPTS + 1):
        d = d.after(failed(number, at), base=BASE)
        at = d.next_attempt_at or at
    assert d.status == DeliveryStatus.FAILED and d.attempt_count <= MAX_ATTEMPTS
    slow = delivery().after(failed(1, NOW), base=timedelta(hours=20))  # next try would fall past 24 h
    again = slow.after(failed(2, NOW + timedelta(hours=20)), base=timedelta(hours=20))
    assert again.status == DeliveryStatus.FAILED


def test_a_manual_retry_opens_a_fresh_window_of_attempts():
    d, at = delivery(), NOW
    while d.status == DeliveryStatus.PENDING:
        d = d.after(failed(d.attempt_count + 1, at), base=BASE)
        at = d.next_attempt_at or at
    retried = d.retried(at)
    assert (retried.status, retried.next_attempt_at, retried.window_start) == (
        DeliveryStatus.PENDING, at, d.attempt_count + 1)
    again = retried.after(failed(retried.attempt_count + 1, at), base=BASE)
    assert again.status == DeliveryStatus.PENDING and again.next_attempt_at == at + BASE


def test_only_the_latest_attempts_are_kept_while_the_count_keeps_growing():
    d, at = delivery(), NOW
    for _round in range(5):  # five manual retries of a receiver that never answers 2xx
        while d.status == DeliveryStatus.PENDING:
            d = d.after(failed(d.attempt_count + 1, at), base=BASE)
            at = d.next_attempt_at or at
        d = d.retried(at)
    assert d.attempt_count == 5 * MAX_ATTEMPTS and len(d.attempts) == KEPT_ATTEMPTS
    assert [a.number for a in d.attempts] == list(range(5 * MAX_ATTEMPTS - KEPT_ATTEMPTS + 1, 5 * MAX_ATTEMPTS + 1))


def test_the_api_lists_the_same_delivery_statuses():
    from chalicelib.api.webhooks import DELIVERY_STATUSES

    assert [str(s) for s in DeliveryStatus] == DELIVERY_STATUSES


def test_the_cold_start_does_not_load_the_webhook_checkpoint_or_package_services():
    import subprocess
    import sys

    code = ("import sys, app; print(sorted(m for m in sys.modules if m.startswith(("
            "'chalicelib.services.webhooks', 'chalicelib.services.checkpoints', 'chalicelib.services.packages', "
            "'chalicelib.services.derive', 'chalicelib.domain.webhooks', 'concurrent.futures'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
