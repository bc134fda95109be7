"""Domain errors: each carries a stable UPPER_SNAKE code; HTTP mapping lives in api/errors.py."""

from __future__ import annotations

from typing import Any


class TallyError(Exception):
    """Base of every expected failure; ``code`` is part of the public contract."""

    code = "ERROR"
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details


class ValidationError(TallyError):
    code = "VALIDATION_ERROR"
    default_message = "Invalid request data."


class UnsupportedMediaTypeError(ValidationError):
    """A request body that is not ``application/json``: a 415, never parsed as JSON anyway."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "The request body must be application/json."


class AuthenticationError(TallyError):
    code = "UNAUTHORIZED"
    default_message = "Authentication is required."


class InvalidApiKeyError(AuthenticationError):
    code = "INVALID_API_KEY"
    default_message = "Invalid or missing API key."


class PermissionDeniedError(TallyError):
    code = "FORBIDDEN"
    default_message = "You do not have permission to perform this action."


class PaymentRequiredError(TallyError):
    code = "PAYMENT_REQUIRED"
    default_message = "Payment is required to continue."


class NotFoundError(TallyError):
    code = "NOT_FOUND"
    default_message = "Resource not found."


class ConflictError(TallyError):
    code = "CONFLICT"
    default_message = "The request conflicts with the current state."


class ConcurrentWriteError(ConflictError):
    """A storage race: a write's condition failed because another writer changed the item first.

    Raised only by a unit of work's commit, so a retry loop catches exactly this and never mistakes a
    business 409 (a duplicate, a wrong state) for a race. Still a 409 if it reaches a client."""

    code = "CONCURRENT_WRITE"
    default_message = "The resource was changed concurrently; retry the request."


class RateLimitedError(TallyError):
    code = "RATE_LIMITED"
    default_message = "Rate limit exceeded."


class BillingProviderError(TallyError):
    """The billing provider (Stripe) refused the request: 502, our request or its configuration is at fault."""

    code = "BILLING_PROVIDER_ERROR"
    default_message = "The billing provider could not complete the request."


class BillingProviderUnavailableError(BillingProviderError):
    """The billing provider could not be reached, failed, or throttled us: 503, retrying later may succeed."""

    code = "BILLING_PROVIDER_UNAVAILABLE"
    default_message = "The billing provider is unavailable; retry later."
