"""Unit tests: pure domain and services over the in-memory unit of work (no moto, no Chalice)."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.fakes import FakeUnitOfWork
from tests.unit.builders import NOW

# Hypothesis caches literals it finds in source; keep that out of the working tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "tally-unit-hypothesis")


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()
