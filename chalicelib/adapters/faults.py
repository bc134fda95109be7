"""How AWS calls are retried, and which of their failures are transient (the one place that reads botocore's
and PynamoDB's exceptions for it).

botocore already retries these with capped exponential backoff and jitter (standard mode: throttling with a
1 s base, timeouts and 5xx with 25-50 ms, up to each client's attempt count), so a failure that reaches the
product has outlasted every attempt: the request answers 503 with ``Retry-After``
(:class:`~chalicelib.domain.errors.ServiceUnavailableError`) and a background run leaves its work for the
next one. A race (a failed condition, a ``TransactionConflict``) is not one of these: the unit of work raises
``ConcurrentWriteError`` for it and the services' retry loop re-reads and tries again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.domain.errors import ServiceUnavailableError
from chalicelib.settings import Settings

#: Error codes AWS answers while it throttles, is briefly unavailable, or lost track of a request.
TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "RequestThrottledException", "RequestThrottled",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown",
    "LimitExceededException", "TransactionInProgressException", "InternalServerError", "InternalFailure",
    "InternalError", "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout",
    "RequestTimeoutException", "PriorRequestNotComplete", "KMSThrottlingException",
    "TransactionConflictException",  # a write outside the unit of work met a transaction on its item
})
#: Reasons of a cancelled TransactWriteItems that are capacity, not a race.
TRANSIENT_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what PynamoDB wrapped (``.cause``) and what it was raised from, once each."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "cause", None), current.__cause__, current.__context__]


def is_transient(exc: BaseException) -> bool:
    """Throttling, a timeout or lost connection, an AWS 5xx, or a transaction cancelled for capacity."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    for current in _chain(exc):
        if isinstance(current, (ConnectionError, HTTPClientError)):  # timeouts, refused/unreachable endpoints
            return True
        if isinstance(current, ClientError):
            error = current.response.get("Error") or {}
            status = (current.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            reasons = {r.get("Code") for r in current.response.get("CancellationReasons") or ()}
            if error.get("Code") in TRANSIENT_CODES or status >= 500 or reasons & TRANSIENT_REASONS:
                return True
    return False


def retried(exc: BaseException) -> bool:
    """Whether botocore sent the failed call more than once: an earlier attempt may have been applied (its
    answer lost), so a condition the last attempt failed may have met that very write."""
    from botocore.exceptions import ClientError

    return any(isinstance(current, ClientError)
               and (current.response.get("ResponseMetadata") or {}).get("RetryAttempts", 0) > 0
               for current in _chain(exc))


def unavailable(exc: BaseException) -> ServiceUnavailableError | None:
    """The 503 a failure stands for (itself if it is one), or None for a bug, which stays a 500."""
    if isinstance(exc, ServiceUnavailableError):
        return exc
    if is_transient(exc):
        return ServiceUnavailableError()
    return None


def client_config(settings: Settings, **options: Any) -> Any:
    """The botocore ``Config`` of an S3 or SQS client: standard retry mode over ``aws_max_attempts``, and
    timeouts that keep each attempt short (DynamoDB's connection has its own, ``dynamodb_*`` settings)."""
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
                  connect_timeout=settings.aws_connect_timeout_seconds,
                  read_timeout=settings.aws_read_timeout_seconds, **options)
