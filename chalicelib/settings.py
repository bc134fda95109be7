"""Runtime configuration: the only module that reads ``os.environ``.

Every knob has a safe local default so ``make run`` works with no setup; the
deployment template sets the production values (see README, "Configuration").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

LOCAL_JWT_ISSUER = "tally-local"
DEFAULT_JWT_AUDIENCE = "tally-dashboard"
DEFAULT_ORIGINS = ("http://127.0.0.1:8000", "http://localhost:8000")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from exc


def _default_prices(suffix: str) -> dict[str, str]:
    """The local stand-in's price ids (a deployment configures Stripe's)."""
    return {tier: f"price_tally_{tier}{suffix}" for tier in ("pilot", "starter", "growth", "scale")}


def _mapping(raw: str, default: dict[str, str]) -> dict[str, str]:
    """``pilot=price_1,starter=price_2`` → dict; empty → ``default``."""
    if not raw.strip():
        return default
    pairs = [part.split("=", 1) for part in _csv(raw)]
    if any(len(pair) != 2 for pair in pairs):
        raise RuntimeError(f"expected tier=price_id pairs, got {raw!r}")
    return {tier.strip(): price.strip() for tier, price in pairs}


@dataclass(frozen=True)
class Settings:
    """Process-wide configuration, read once per cold start."""

    stage: str = "local"
    region: str = "us-east-1"
    resource_prefix: str = "tally-local-"
    bucket: str = "tally-local-artifacts"
    log_level: str = "INFO"
    public_base_url: str = "http://127.0.0.1:8000"
    # Dashboard JWT verification.
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_jwks_url: str = ""
    jwt_issuer: str = LOCAL_JWT_ISSUER
    jwt_audience: str = DEFAULT_JWT_AUDIENCE
    jwt_tenant_claim: str = "tenant_id"
    jwt_role_claim: str = "role"
    jwt_leeway_seconds: int = 30
    # Dashboard session cookie.
    session_ttl_seconds: int = 12 * 3600
    allowed_origins: tuple[str, ...] = field(default=DEFAULT_ORIGINS)
    # API keys: lastUsedAt is written at most this often per key.
    api_key_touch_seconds: int = 60
    # Balance API: per-key token bucket (requests/second and burst); 0 disables.
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 200
    # Ed25519 signing key: the seed secret (Secrets Manager id). Its key id is derived from the key.
    signing_secret_id: str = "tally-local/signing-key"
    verify_queue_url: str = ""  # empty: found by name (`{prefix}verify`)
    # Outgoing webhooks: queue, first retry delay (then x5 per failure), request timeout, and
    # whether plain-http loopback URLs are accepted (local stack and tests only).
    webhook_queue_url: str = ""  # empty: found by name (`{prefix}webhooks`)
    webhook_retry_base_seconds: int = 10
    webhook_timeout_seconds: int = 5
    webhooks_allow_loopback: bool = False
    # Stripe: the secret holding {"api_key", "webhook_secret"} (no api_key: the local stand-in bills),
    # catalogue tier -> plan price id and -> metered overage price id, the meter's event name, and the
    # dashboard page Checkout and the Portal return to.
    stripe_secret_id: str = "tally-local/stripe"
    stripe_price_ids: dict[str, str] = field(default_factory=lambda: _default_prices(""))
    stripe_overage_price_ids: dict[str, str] = field(default_factory=lambda: _default_prices("_overage"))
    stripe_meter_event_name: str = "tally_overage_deltas"
    billing_return_url: str = "http://127.0.0.1:8000/dashboard/billing/plan"
    # AWS calls: botocore's standard retry mode (capped exponential backoff with full jitter: 1 s base for
    # throttling, 25-50 ms for timeouts and 5xx) over this many attempts; what still fails answers 503 with
    # Retry-After. Timeouts keep every attempt of a stuck call well inside API Gateway's 29 s. DynamoDB's are
    # the shared connection's (adapters/dynamodb/connection.py: PynamoDB's Connection takes the timeouts and
    # max_retry_attempts = attempts - 1); S3's and SQS's are their clients' (adapters/faults.client_config).
    dynamodb_max_attempts: int = 4
    dynamodb_connect_timeout_seconds: int = 1
    dynamodb_read_timeout_seconds: int = 3
    aws_max_attempts: int = 3
    aws_connect_timeout_seconds: int = 2
    aws_read_timeout_seconds: int = 10
    # The local stack's clock, ahead of the wall clock (`tally dev up --clock-offset-days`): grace periods and
    # month ends without waiting. Ignored outside the local stage.
    clock_offset_seconds: int = 0

    def table_name(self, suffix: str) -> str:
        """Physical DynamoDB table name for a logical table (``tenants`` …)."""
        return f"{self.resource_prefix}{suffix}"


def load_settings() -> Settings:
    """Build settings from the environment (call :func:`get_settings` instead)."""
    env = os.environ
    algorithms = _csv(env.get("TALLY_JWT_ALGORITHMS", "HS256"))
    secret = env.get("TALLY_JWT_SECRET", "")
    if "HS256" in algorithms and secret and len(secret.encode()) < 32:
        raise RuntimeError("TALLY_JWT_SECRET must be at least 32 bytes for HS256")
    return Settings(
        stage=env.get("TALLY_STAGE", "local"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        resource_prefix=env.get("TALLY_RESOURCE_PREFIX", "tally-local-"),
        bucket=env.get("TALLY_BUCKET", "tally-local-artifacts"),
        log_level=env.get("TALLY_LOG_LEVEL", "INFO").upper(),
        public_base_url=env.get("TALLY_PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
        jwt_algorithms=algorithms,
        jwt_secret=secret,
        jwt_public_key=env.get("TALLY_JWT_PUBLIC_KEY", ""),
        jwt_jwks_url=env.get("TALLY_JWT_JWKS_URL", ""),
        jwt_issuer=env.get("TALLY_JWT_ISSUER", LOCAL_JWT_ISSUER),
        jwt_audience=env.get("TALLY_JWT_AUDIENCE", DEFAULT_JWT_AUDIENCE),
        jwt_tenant_claim=env.get("TALLY_JWT_TENANT_CLAIM", "tenant_id"),
        jwt_role_claim=env.get("TALLY_JWT_ROLE_CLAIM", "role"),
        jwt_leeway_seconds=_int("TALLY_JWT_LEEWAY_SECONDS", 30),
        session_ttl_seconds=_int("TALLY_SESSION_TTL_SECONDS", 12 * 3600),
        allowed_origins=_csv(env.get("TALLY_ALLOWED_ORIGINS", ",".join(DEFAULT_ORIGINS))),
        api_key_touch_seconds=_int("TALLY_API_KEY_TOUCH_SECONDS", 60),
        rate_limit_per_second=float(env.get("TALLY_RATE_LIMIT_PER_SECOND") or 100),
        rate_limit_burst=_int("TALLY_RATE_LIMIT_BURST", 200),
        signing_secret_id=env.get("TALLY_SIGNING_SECRET_ID")
        or env.get("TALLY_RESOURCE_PREFIX", "tally-local-").rstrip("-") + "/signing-key",
        verify_queue_url=env.get("TALLY_VERIFY_QUEUE_URL", ""),
        webhook_queue_url=env.get("TALLY_WEBHOOK_QUEUE_URL", ""),
        webhook_retry_base_seconds=_int("TALLY_WEBHOOK_RETRY_BASE_SECONDS", 10),
        webhook_timeout_seconds=_int("TALLY_WEBHOOK_TIMEOUT_SECONDS", 5),
        webhooks_allow_loopback=env.get("TALLY_STAGE", "local") in ("local", "test"),
        stripe_secret_id=env.get("TALLY_STRIPE_SECRET_ID")
        or env.get("TALLY_RESOURCE_PREFIX", "tally-local-").rstrip("-") + "/stripe",
        stripe_price_ids=_mapping(env.get("TALLY_STRIPE_PRICE_IDS", ""), _default_prices("")),
        stripe_overage_price_ids=_mapping(env.get("TALLY_STRIPE_OVERAGE_PRICE_IDS", ""), _default_prices("_overage")),
        stripe_meter_event_name=env.get("TALLY_STRIPE_METER_EVENT", "tally_overage_deltas"),
        dynamodb_max_attempts=_int("TALLY_DYNAMODB_MAX_ATTEMPTS", 4),
        dynamodb_connect_timeout_seconds=_int("TALLY_DYNAMODB_CONNECT_TIMEOUT_SECONDS", 1),
        dynamodb_read_timeout_seconds=_int("TALLY_DYNAMODB_READ_TIMEOUT_SECONDS", 3),
        aws_max_attempts=_int("TALLY_AWS_MAX_ATTEMPTS", 3),
        aws_connect_timeout_seconds=_int("TALLY_AWS_CONNECT_TIMEOUT_SECONDS", 2),
        aws_read_timeout_seconds=_int("TALLY_AWS_READ_TIMEOUT_SECONDS", 10),
        clock_offset_seconds=_int("TALLY_CLOCK_OFFSET_SECONDS", 0) if env.get("TALLY_STAGE", "local") == "local"
        else 0,
        billing_return_url=env.get("TALLY_BILLING_RETURN_URL")
        or env.get("TALLY_PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/") + "/dashboard/billing/plan",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return load_settings()
