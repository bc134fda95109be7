"""Domain errors → HTTP: the one table, for both envelope styles."""

from __future__ import annotations

from chalice import Response

from chalicelib.api import responses
from chalicelib.domain.errors import (
    AuthenticationError,
    BillingProviderError,
    BillingProviderUnavailableError,
    ConflictError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitedError,
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
}

#: Platform routes (seed 002) answer input errors with 422 unless a specific code says 400.
PLATFORM_400_CODES = {"tenant_has_no_stripe_customer"}


def status_for(exc: TallyError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def tenant_error_response(exc: TallyError) -> Response:
    status = status_for(exc)
    headers = {}
    if "retryAfterSeconds" in exc.details:
        headers["Retry-After"] = str(exc.details["retryAfterSeconds"])
    return responses.error(status, exc.code, exc.message, headers=headers, **exc.details)


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
    return responses.platform_error(status, exc.message, code)


def internal_error(platform: bool = False) -> Response:
    if platform:
        return responses.platform_error(500, "Server Error.", "internal_error")
    return responses.error(500, "INTERNAL_ERROR", "An internal error occurred. Quote the X-Request-Id header.")
