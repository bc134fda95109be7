"""Composition root: lazy factories for the unit of work, clock and token verifier.

Nothing heavy is imported until first use. Tests swap pieces with :func:`override`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.clock import utcnow
from chalicelib.settings import get_settings

_overrides: dict[str, Any] = {}
_cache: dict[str, Any] = {}


def override(**factories: Any) -> None:
    """Replace ``clock`` / ``uow`` / ``jwt`` / ``signer`` / ``queue`` / ``webhook_queue`` / ``webhook_sender`` /
    ``stripe_config`` / ``billing`` / ``stripe_sink`` (tests); ``None`` restores the default."""
    for name, value in factories.items():
        if value is None:
            _overrides.pop(name, None)
        else:
            _overrides[name] = value
    _cache.clear()


def now() -> datetime:
    """The services' clock: a test's, else the wall clock (on the local stack, ahead by its clock offset)."""
    if "clock" in _overrides:
        return _overrides["clock"]()
    offset = get_settings().clock_offset_seconds
    return utcnow() + timedelta(seconds=offset) if offset else utcnow()


def unit_of_work() -> Any:
    """A fresh unit of work per use case (it holds staged writes)."""
    if "uow" in _overrides:
        return _overrides["uow"]()
    from chalicelib.adapters.dynamodb.unit_of_work import DynamoUnitOfWork

    return DynamoUnitOfWork()


def _singleton(name: str, build: Callable[[], Any]) -> Any:
    """A test override, else one instance per process, built on first use."""
    if name in _overrides:
        return _overrides[name]
    if name not in _cache:
        _cache[name] = build()
    return _cache[name]


def jwt_verifier() -> Any:
    def build() -> Any:
        from chalicelib.adapters.jwt_tokens import JwtVerifier

        return JwtVerifier(get_settings())

    return _singleton("jwt", build)


def signer() -> Any:
    """The platform's Ed25519 signer (its secret is read once per process).

    Before first use its public key is recorded in the signing-key registry (a read, and a write
    only for a key never seen before), so everything it signs names a published key. A test
    override is used as given (not registered)."""

    def build() -> Any:
        from chalicelib.adapters.signing import load_signer
        from chalicelib.services import signing_keys

        loaded = load_signer(get_settings())
        signing_keys.register(unit_of_work(), loaded.key_id, loaded.public_key.raw, now=now())
        return loaded

    return _singleton("signer", build)


def verification_queue() -> Any:
    def build() -> Any:
        from chalicelib.adapters.queues import SqsVerificationQueue

        return SqsVerificationQueue(get_settings())

    return _singleton("queue", build)


def webhook_queue() -> Any:
    def build() -> Any:
        from chalicelib.adapters.queues import SqsWebhookQueue

        return SqsWebhookQueue(get_settings())

    return _singleton("webhook_queue", build)


def webhook_sender() -> Any:
    """POSTs signed deliveries (tests override it with an in-memory receiver)."""

    def build() -> Any:
        from chalicelib.adapters.webhook_http import HttpSender

        settings = get_settings()
        return HttpSender(timeout_seconds=settings.webhook_timeout_seconds,
                          allow_private=settings.webhooks_allow_loopback)

    return _singleton("webhook_sender", build)


def artifacts() -> Any:
    """Generated files on S3."""

    def build() -> Any:
        from chalicelib.adapters.artifacts import S3Artifacts

        return S3Artifacts(get_settings())

    return _singleton("artifacts", build)


def stripe_config() -> Any:
    """The Stripe API key and webhook secret (Secrets Manager, read once per process)."""

    def build() -> Any:
        from chalicelib.adapters.stripe_config import load_stripe_config

        return load_stripe_config(get_settings())

    return _singleton("stripe_config", build)


def stand_in_allowed() -> bool:
    """The local Stripe stand-in bills only where nothing is real money: the local stack and the tests. A
    deployed stage without a Stripe key fails closed instead (its pages would let anyone "pay")."""
    return get_settings().stage in ("local", "test")


def billing_provider() -> Any:
    """Stripe when an API key is configured, else (local and test stages only) the local Stripe stand-in;
    a deployed stage without a key raises BillingProviderUnavailableError (503). Tests override it."""

    def build() -> Any:
        config = stripe_config()
        if config.api_key:
            from chalicelib.adapters.stripe_billing import StripeBillingProvider

            return StripeBillingProvider(config.api_key, get_settings(), clock=now)
        if not stand_in_allowed():
            from chalicelib.domain.errors import BillingProviderUnavailableError

            raise BillingProviderUnavailableError("Billing is not configured: the Stripe secret has no api_key.",
                                                  code="BILLING_NOT_CONFIGURED")
        from chalicelib.adapters.stripe_local import LocalStripe

        # ``stripe_sink``: tests deliver the stand-in's signed events in-process instead of over HTTP.
        return LocalStripe(get_settings(), webhook_secret=config.webhook_secret,
                           sink=_overrides.get("stripe_sink"), clock=now)

    return _singleton("billing", build)


def reset() -> None:
    """Forget cached singletons (after settings change)."""
    _cache.clear()
