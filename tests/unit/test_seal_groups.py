"""How the verifier splits deltas into sealed batches: 90 deltas each, however many customers they belong to
(the per-customer counters are applied in a transaction of their own, so customers take no room)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.services import verification


def groups(owners: list[str]) -> list[list[str]]:
    return verification._seal_groups([f"rec_{i}" for i in range(len(owners))])


def test_one_customer_fills_batches_of_90():
    assert [len(g) for g in groups(["c"] * 200)] == [90, 90, 20]


def test_distinct_customers_fill_them_too():
    assert [len(g) for g in groups([f"c{i}" for i in range(100)])] == [90, 10]


@given(st.lists(st.sampled_from([f"c{i}" for i in range(60)]), max_size=400))
def test_every_group_is_full_but_the_last_and_keeps_the_order(owners):
    found = groups(owners)
    assert [r for g in found for r in g] == [f"rec_{i}" for i in range(len(owners))]
    assert all(len(g) == verification.MAX_BATCH for g in found[:-1])
    assert all(1 <= len(g) <= verification.MAX_BATCH for g in found)
