"""Fixtures shared by the HTTP-level tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import RecordingSender
from tests.helpers import overriding


@pytest.fixture
def tenant(world):
    return world.tenant("Acme Inc")


@pytest.fixture
def admin(world, tenant):
    return world.auth(tenant, "admin")


@pytest.fixture
def receiver() -> Iterator[RecordingSender]:
    """The webhook sender, in memory: every delivery is recorded (``receiver.calls``, ``.events()``) and
    answered from ``receiver.statuses`` (then 200)."""
    got = RecordingSender()
    with overriding(webhook_sender=got):
        yield got


@pytest.fixture
def rotate(aws, boto_session):
    """``rotate(secret)``: the stack's signing secret becomes ``secret`` and the process cold-starts, so the
    next signer holds another key. The session's secret is put back afterwards."""
    from chalicelib import bootstrap

    client = boto_session.client("secretsmanager", region_name="us-east-1")
    secret_id = aws["TALLY_SIGNING_SECRET_ID"]
    original = client.get_secret_value(SecretId=secret_id)["SecretString"]

    def switch(secret: str) -> None:
        client.put_secret_value(SecretId=secret_id, SecretString=secret)
        bootstrap.reset()

    yield switch
    switch(original)
