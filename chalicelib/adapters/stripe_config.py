"""The Stripe secret (Secrets Manager): API key and webhook signing secret, read once per process.

An empty ``api_key`` means no Stripe account: the local stand-in bills instead (SPEC "Billing"). The
webhook secret is always set: Stripe's (``whsec_…`` from the dashboard) or, locally, the one the
stand-in signs its events with (written at provisioning, shown by ``tally dev credentials``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from chalicelib.settings import Settings


@dataclass(frozen=True)
class StripeConfig:
    api_key: str
    webhook_secret: str


def load_stripe_config(settings: Settings) -> StripeConfig:
    import boto3

    client = boto3.client("secretsmanager", region_name=settings.region)
    raw = client.get_secret_value(SecretId=settings.stripe_secret_id)["SecretString"]
    data = json.loads(raw) if raw.lstrip().startswith("{") else {}
    return StripeConfig(api_key=str(data.get("api_key") or ""), webhook_secret=str(data.get("webhook_secret") or ""))
