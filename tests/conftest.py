"""Test configuration. The environment is set before anything imports boto3 or the
models (PynamoDB reads table names at import); AWS is moto, in-process, per test."""

from __future__ import annotations

import os

for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "TALLY_STAGE": "test",
    "TALLY_RESOURCE_PREFIX": "tally-test-",
    "TALLY_BUCKET": "tally-test-artifactsbucket",  # what provision() names the template's bucket
    "TALLY_JWT_ALGORITHMS": "HS256",
    "TALLY_JWT_SECRET": "test-only-hs256-secret-with-32-plus-bytes!",
    "TALLY_LOG_LEVEL": "WARNING",
    "TALLY_ALLOWED_ORIGINS": "https://dashboard.tally.test",
})

from collections.abc import Iterator  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import moto  # noqa: E402,F401  - registers its botocore hook before any session exists
import pytest  # noqa: E402

from chalicelib.cli import motofixes  # noqa: E402

motofixes.install()  # moto's DynamoDB items in an in-memory SQLite store (see chalicelib/cli/motofixes.py)

TEST_STACK = "tally-test"


class FrozenClock:
    """A controllable clock for services (bootstrap.now)."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    from tests.helpers import overriding

    frozen = FrozenClock(datetime(2026, 4, 15, 12, 0, 0, tzinfo=UTC))
    with overriding(clock=frozen):
        yield frozen


@pytest.fixture(scope="session")
def boto_session():
    """One boto3 session for the run: its clients load service models once."""
    import boto3

    return boto3.session.Session()


@pytest.fixture(scope="session")
def moto_world(boto_session) -> Iterator[dict[str, str]]:
    """One moto world for the run, with every resource of infra/resources.json (built once: ~0.2 s)."""
    from moto import mock_aws

    from chalicelib import bootstrap
    from chalicelib.cli.resources import provision

    with mock_aws():
        bootstrap.reset()
        yield provision(boto_session, stack_name=TEST_STACK, region="us-east-1")


def empty_world() -> None:
    """Every item, object and message gone; tables, bucket, queues, secrets and parameters stay."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.s3.utils import _VersionedKeyStore
    from moto.sqs.models import sqs_backends

    motofixes.store().clear()
    for bucket in s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets.values():
        for key in list(bucket.keys.values()):
            key.dispose()
        bucket.keys = _VersionedKeyStore()
        bucket.multiparts.clear()
    for queue in sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues.values():
        queue._messages = []


@pytest.fixture
def aws(moto_world) -> Iterator[dict[str, str]]:
    """The session's moto world, emptied for this test."""
    from chalicelib import bootstrap
    from chalicelib.services import ingest

    empty_world()
    bootstrap.reset()  # no signer, verifier or client cached by another test
    ingest.forget_billing_reads()  # tenant ids start again at 2: another test's tenant is not this one
    yield moto_world


@pytest.fixture
def world(aws: dict, clock: FrozenClock):
    from tests.factories import World

    return World(clock)


@pytest.fixture
def api(world):
    from tests.contract import ContractClient

    return ContractClient()
