"""Fixtures shared by the HTTP-level tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def tenant(world):
    return world.tenant("Acme Inc")


@pytest.fixture
def admin(world, tenant):
    return world.auth(tenant, "admin")
