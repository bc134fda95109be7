"""`tally dev stripe …` and `tally dev credentials`' stripeWebhookSecret, run in-process on the moto world
(``chalicelib.cli.main.main([...])``; no local stack: the CLI talks to "AWS", which is moto here)."""

from __future__ import annotations

import json

import pytest

from chalicelib import bootstrap
from chalicelib.cli import devstack
from chalicelib.cli.main import main
from tests.fakes import CapturingSink
from tests.helpers import overriding


@pytest.fixture
def sink(world, monkeypatch):
    monkeypatch.setattr(devstack, "read_state", lambda: None)  # never a developer's running stack
    captured = CapturingSink()
    with overriding(stripe_sink=captured):
        yield captured


@pytest.fixture
def checkout_url(sink, world):
    tenant = world.tenant("Globex")
    session = bootstrap.billing_provider().create_checkout_session(
        tenant_id=tenant.id, tier="pilot", customer_id=None, customer_email=None,
        success_url="http://127.0.0.1:8000/ok", cancel_url="http://127.0.0.1:8000/no", idempotency_key="cli-1")
    return tenant.id, session.url


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_complete_checkout_by_url_prints_what_happened_and_the_events(capsys, sink, checkout_url):
    tenant_id, url = checkout_url
    code, out = run(capsys, "dev", "stripe", "complete-checkout", url)
    assert code == 0
    assert f"Tenant {tenant_id} subscribed to pilot" in out
    for event in ("checkout.session.completed", "customer.subscription.created", "invoice.paid"):
        assert f"{event}: delivered (200)" in out
    assert sink.types == ["checkout.session.completed", "customer.subscription.created", "invoice.paid"]


def test_the_period_and_payment_commands(capsys, sink, checkout_url):
    tenant_id, url = checkout_url
    main(["dev", "stripe", "complete-checkout", url])
    capsys.readouterr()

    code, out = run(capsys, "dev", "stripe", "advance-period", "--tenant", tenant_id, "--json")
    result = json.loads(out)
    assert code == 0 and "renewed until 2026-06-01" in result["summary"]
    assert [e["type"] for e in result["events"]] == ["customer.subscription.updated", "invoice.paid"]

    code, out = run(capsys, "dev", "stripe", "fail-payment", "--tenant", tenant_id)
    assert code == 0 and "past due" in out and "invoice.payment_failed: delivered (200)" in out

    code, out = run(capsys, "dev", "stripe", "pay-invoice", "--tenant", tenant_id)
    assert code == 0 and "Paid in_" in out and "customer.subscription.updated: delivered (200)" in out


def test_an_undelivered_event_exits_1_and_deliver_sends_it_later(capsys, sink, checkout_url):
    _tenant, url = checkout_url
    sink.statuses = [503]
    code, out = run(capsys, "dev", "stripe", "complete-checkout", url)
    assert code == 1 and "not delivered (503; will be retried)" in out
    sink.statuses = [200]
    code, out = run(capsys, "dev", "stripe", "deliver")
    assert code == 0 and "3 of 3 undelivered events delivered" in out


def test_a_tenant_without_subscription_is_an_error(capsys, sink):
    assert main(["dev", "stripe", "advance-period", "--tenant", "42"]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err


def test_credentials_carry_the_stripe_webhook_secret(capsys, sink, monkeypatch, world):
    from chalicelib.cli import main as cli

    tenant = world.tenant("Demo")
    state = {"awsEndpoint": "", "baseUrl": "http://127.0.0.1:8000", "tenantId": tenant.id}
    monkeypatch.setattr(cli, "_connect", lambda: state)
    monkeypatch.setattr(cli, "_cookie_jar", lambda *_: "/tmp/cookies.txt")
    monkeypatch.setattr(devstack, "dev_secrets", lambda: {"apiKeys": {"sandbox": "a", "production": "b"},
                                                          "platformToken": "1|x"})
    code, out = run(capsys, "dev", "credentials", "--json")
    secret = json.loads(out)["stripeWebhookSecret"]
    assert code == 0 and secret.startswith("whsec_") and secret == bootstrap.stripe_config().webhook_secret
