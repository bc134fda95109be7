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


class ServiceUnavailableError(TallyError):
    """Storage or a queue stayed throttled, unreachable or contended through every retry: 503 with
    ``Retry-After`` (``retryAfterSeconds``). Each commit is whole, so the request left either all of a
    transaction or none of it, and the client may send it again (with its ``Idempotency-Key``)."""

    code = "SERVICE_UNAVAILABLE"
    default_message = "The service is temporarily unavailable; retry after the Retry-After delay."
    #: Storage was throttled or unreachable through botocore's attempts (up to ~7 s of backoff already spent
    #: server-side): a couple of seconds lets the throttle's bucket refill before the client's next try.
    retry_after_seconds = 2

    def __init__(self, message: str | None = None, *, code: str | None = None, **details: Any) -> None:
        details.setdefault("retryAfterSeconds", self.retry_after_seconds)
        super().__init__(message, code=code, **details)


class ConcurrentWriteError(ConflictError, ServiceUnavailableError):
    """A storage race: a write's condition failed, or DynamoDB refused it for a concurrent transaction
    (``TransactionConflict``), because another writer was at the item first.

    Raised only by a unit of work's commit, so the retry loop (``services/retry.py``) catches exactly this
    and never mistakes a business 409 (a duplicate, a wrong state) for a race. A conflict to the code that
    handles conflicts; if it still reaches a client after every retry, a 503 with ``Retry-After`` like any
    contended dependency (api/errors.py), never a 409 a client would not retry."""

    code = "CONCURRENT_WRITE"
    default_message = "The resource was changed concurrently; retry the request."
    retry_after_seconds = 1  # the other writer commits within milliseconds


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
