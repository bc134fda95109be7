"""Unit tests: pure domain and services over the in-memory unit of work (no moto, no Chalice; the storage
contract suites, through ``new_uow``, also run against DynamoDB under moto)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from chalicelib.services.ports import UnitOfWork
from tests.fakes import FakeStore, FakeUnitOfWork
from tests.unit.builders import NOW

# Hypothesis caches literals it finds in source; keep that out of the working tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "tally-unit-hypothesis")


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture(params=["fake", "dynamodb"])
def new_uow(request) -> Callable[[], UnitOfWork]:
    """For the storage contract suites, which run every test against both implementations: a factory of
    units of work sharing one store, like separate requests do (the fake, or DynamoUnitOfWork under moto)."""
    if request.param == "fake":
        store = FakeStore()
        return lambda: FakeUnitOfWork(store)
    request.getfixturevalue("aws")
    from chalicelib.adapters.dynamodb.unit_of_work import DynamoUnitOfWork

    return DynamoUnitOfWork
