"""Fixtures shared by the HTTP-level tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def tenant(world):
    return world.tenant("Acme Inc")


@pytest.fixture
def admin(world, tenant):
    return world.auth(tenant, "admin")


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
