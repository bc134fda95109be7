"""The local stack serves ``POST /stripe/webhook`` as the deployment does: the gateway hands it to the
``stripe_webhook`` function in an execution environment, which verifies the signature with the stack's
webhook secret (``{prefix}/stripe`` in the emulated Secrets Manager) and applies each event once."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.localstack import call, local_stack, tally


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "tally-stripe-webhook-home")


def webhook_secret(stack: dict) -> str:
    """What `tally dev credentials` shows as stripeWebhookSecret, read straight from the emulator."""
    import boto3

    state = json.loads((stack["home"] / "state.json").read_text())
    client = boto3.client("secretsmanager", endpoint_url=state["awsEndpoint"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    names = [s["Name"] for s in client.list_secrets()["SecretList"] if s["Name"].endswith("/stripe")]
    assert len(names) == 1, names
    secret = json.loads(client.get_secret_value(SecretId=names[0])["SecretString"])["webhook_secret"]
    assert secret.startswith("whsec_")
    return secret


def post(stack: dict, payload: str, signature: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"{stack['base']}/stripe/webhook", data=payload.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Stripe-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_a_signed_payment_failure_flags_the_tenant_once_over_http(stack):
    import stripe

    tenant = json.loads(tally(stack, "tenants", "create", "--name", "Webhook Co", "--stripe-customer", "cus_webhook",
                              "--json"))
    secret = webhook_secret(stack)
    payload = json.dumps({"id": "evt_local_1", "object": "event", "type": "invoice.payment_failed", "data": {
        "object": {"id": "in_local_1", "object": "invoice", "customer": "cus_webhook", "parent": None}}})
    signature = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=int(time.time()))

    status, headers, body = post(stack, payload, signature)
    assert status == 200, body
    assert body["data"]["outcome"] == "payment_flagged" and body["data"]["duplicate"] is False
    assert headers.get("X-Request-Id")
    status, _h, body = post(stack, payload, signature)
    assert (status, body["data"]["duplicate"]) == (200, True)
    status, _h, body = post(stack, payload.replace("in_local_1", "in_local_2"), signature)
    assert (status, body["error"]["code"]) == (400, "INVALID_SIGNATURE")

    # The platform API sees the webhook's mark (and keeps it: the first mark wins).
    token = json.loads(tally(stack, "dev", "credentials", "--json"))["platformToken"]
    status, _h, body = call("POST", f"{stack['base']}/tenants/{tenant['id']}/missing-payments",
                            {"Authorization": f"Bearer {token}"})
    assert status == 200 and body["data"]["has_unpaid_invoices_at"] is not None
    status, _h, body = call("GET", f"{stack['base']}/stripe/webhook")
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
