"""Domain errors → HTTP: the one table, for both envelope styles."""

from __future__ import annotations

from chalice import Response

from chalicelib.api import responses
from chalicelib.domain.errors import (
    AuthenticationError,
    BillingProviderError,
    BillingProviderUnavailableError,
    ConcurrentWriteError,
    ConflictError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    TallyError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from chalicelib.services.idempotency import IdempotencyPendingError

STATUS_BY_ERROR: dict[type[TallyError], int] = {
    IdempotencyPendingError: 202,
    UnsupportedMediaTypeError: 415,
    ValidationError: 400,
    AuthenticationError: 401,
    PaymentRequiredError: 402,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    RateLimitedError: 429,
    BillingProviderError: 502,
    BillingProviderUnavailableError: 503,
    ServiceUnavailableError: 503,
    ConcurrentWriteError: 503,  # a conflict to the code, but a race that outlasted its retries: retry later
}
#: A 503 whose error does not say when to come back (the billing provider's): the client waits this long.
DEFAULT_RETRY_AFTER = ServiceUnavailableError.retry_after_seconds

#: Platform routes (seed 002) answer input errors with 422 unless a specific code says 400.
PLATFORM_400_CODES = {"tenant_has_no_stripe_customer"}


def status_for(exc: TallyError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def _retry_after(exc: TallyError, status: int) -> dict[str, str]:
    """``Retry-After`` for an error that says when to retry, and for every 503."""
    seconds = exc.details.get("retryAfterSeconds", DEFAULT_RETRY_AFTER if status == 503 else None)
    return {} if seconds is None else {"Retry-After": str(seconds)}


def tenant_error_response(exc: TallyError) -> Response:
    status = status_for(exc)
    return responses.error(status, exc.code, exc.message, headers=_retry_after(exc, status), **exc.details)


def platform_error_response(exc: TallyError) -> Response:
    status = status_for(exc)
    if isinstance(exc, PermissionDeniedError) and exc.code == "invalid_ability":
        return responses.platform_error(403, "Invalid ability provided.")
    if isinstance(exc, UnsupportedMediaTypeError):
        return responses.platform_error(415, exc.message, "unsupported_media_type")
    if isinstance(exc, ValidationError):
        if exc.code in PLATFORM_400_CODES:
            return responses.platform_error(400, exc.message, exc.code)
        field = exc.details.get("field")
        return responses.platform_error(422, exc.message, "validation_failed",
                                        errors={field: [exc.message]} if field else {})
    code = exc.code if exc.code.islower() else exc.code.lower()
    reply = responses.platform_error(status, exc.message, code)
    reply.headers.update(_retry_after(exc, status) if status == 503 else {})
    return reply


def unavailable_response(exc: Exception, *, platform: bool) -> Response | None:
    """A failure that outlasted every retry (throttling, timeouts, contention) as the 503 it is; None for a bug."""
    from chalicelib.adapters.faults import unavailable  # only on the error path: not at cold start

    error = unavailable(exc)
    if error is None:
        return None
    return platform_error_response(error) if platform else tenant_error_response(error)


def internal_error(platform: bool = False) -> Response:
    if platform:
        return responses.platform_error(500, "Server Error.", "internal_error")
    return responses.error(500, "INTERNAL_ERROR", "An internal error occurred. Quote the X-Request-Id header.")
