"""How the verifier splits deltas into sealed batches: each batch's transaction also moves one verified
counter per customer, so distinct customers take room from the batch."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.services import verification


def groups(owners: list[str]) -> list[list[str]]:
    record_ids = [f"rec_{i}" for i in range(len(owners))]
    return verification._seal_groups(record_ids, dict(zip(record_ids, owners, strict=True)))


def test_one_customer_fills_batches_of_90():
    assert [len(g) for g in groups(["c"] * 200)] == [90, 90, 20]


def test_distinct_customers_halve_the_batch():
    assert [len(g) for g in groups([f"c{i}" for i in range(90)])] == [46, 44]


@given(st.lists(st.sampled_from([f"c{i}" for i in range(60)]), max_size=400))
def test_every_group_fits_the_transaction_and_keeps_the_order(owners):
    found = groups(owners)
    assert [r for g in found for r in g] == [f"rec_{i}" for i in range(len(owners))]
    owner = {f"rec_{i}": c for i, c in enumerate(owners)}
    for group in found:
        assert 1 <= len(group) <= verification.MAX_BATCH
        assert len(group) + len({owner[r] for r in group}) <= verification.MAX_SEAL_WRITES
    for group, following in itertools.pairwise(found):  # greedy: the next delta did not fit
        grown = [*group, following[0]]
        assert (len(grown) > verification.MAX_BATCH
                or len(grown) + len({owner[r] for r in grown}) > verification.MAX_SEAL_WRITES)
