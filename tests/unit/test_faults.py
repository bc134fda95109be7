"""Which AWS failures are transient (a 503 to retry) and which are bugs (a 500), and how the S3 and SQS clients
retry: adapters/faults.py."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from pynamodb.exceptions import GetError, PutError, TransactWriteError

from chalicelib.adapters.faults import client_config, is_transient, retried, unavailable
from chalicelib.domain.errors import ConcurrentWriteError, ServiceUnavailableError
from chalicelib.settings import Settings


def client_error(code: str, status: int = 400, *, reasons: list[str] | None = None, retries: int = 0) -> ClientError:
    response = {"Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")


def wrapped(error: type[Exception], cause: Exception) -> Exception:
    """As PynamoDB raises it: its own error, with botocore's as ``cause`` and ``__cause__``."""
    try:
        raise error("Failed", cause) from cause
    except error as exc:
        return exc


@pytest.mark.parametrize("failure", [
    client_error("ThrottlingException"),
    client_error("ProvisionedThroughputExceededException"),
    client_error("RequestLimitExceeded"),
    client_error("SlowDown", 503),
    client_error("InternalServerError", 500),
    client_error("TransactionConflictException"),
    client_error("TransactionCanceledException", reasons=["None", "ThrottlingError"]),
    ReadTimeoutError(endpoint_url="https://dynamodb"),
    ConnectTimeoutError(endpoint_url="https://dynamodb"),
    EndpointConnectionError(endpoint_url="https://sqs"),
    wrapped(PutError, client_error("ThrottlingException")),
    wrapped(GetError, ReadTimeoutError(endpoint_url="https://dynamodb")),
], ids=repr)
def test_throttling_timeouts_and_aws_5xx_are_transient_503s(failure):
    assert is_transient(failure)
    found = unavailable(failure)
    assert isinstance(found, ServiceUnavailableError) and found.details == {"retryAfterSeconds": 2}


@pytest.mark.parametrize("failure", [
    client_error("ConditionalCheckFailedException"),
    client_error("ValidationException"),
    client_error("TransactionCanceledException", reasons=["ConditionalCheckFailed", "None"]),
    wrapped(TransactWriteError, client_error("ValidationException")),
    KeyError("bug"),
    RuntimeError("bug"),
], ids=repr)
def test_anything_else_is_a_bug_and_stays_a_500(failure):
    assert not is_transient(failure)
    assert unavailable(failure) is None


def test_a_race_that_outlasted_its_retries_is_a_503_with_a_short_retry_after():
    race = ConcurrentWriteError()
    assert unavailable(race) is race and race.details == {"retryAfterSeconds": 1}


def test_a_retried_call_is_told_apart_from_a_first_attempt():
    assert retried(wrapped(PutError, client_error("ConditionalCheckFailedException", retries=1)))
    assert not retried(wrapped(PutError, client_error("ConditionalCheckFailedException")))


def test_s3_and_sqs_clients_retry_in_standard_mode_with_short_timeouts():
    config = client_config(Settings(aws_max_attempts=5, aws_connect_timeout_seconds=1, aws_read_timeout_seconds=7),
                           signature_version="s3v4")
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert (config.connect_timeout, config.read_timeout, config.signature_version) == (1, 7, "s3v4")
