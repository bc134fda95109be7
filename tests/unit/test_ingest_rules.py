"""Acceptance rules as pure functions: delta validation, billing capacity, the plan catalogue,
overage money, and how a batch is cut into DynamoDB transactions (SPEC "The delta
lifecycle", "Billing")."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.billing import acceptance_capacity
from chalicelib.domain.credits import CreditAccount, CreditPosition
from chalicelib.domain.deltas import DeltaInput, format_delta, parse_delta
from chalicelib.domain.errors import TallyError, ValidationError
from chalicelib.domain.identity import ApiKeyPrincipal, Environment
from chalicelib.domain.plans import PLANS, Plan, plan_for
from chalicelib.domain.tenants import BillingMode
from chalicelib.services import ingest
from chalicelib.services.ports import CustomerState, IngestSnapshot
from tests.unit.builders import NOW, tenant

D = Decimal


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"customerId": "cust_1", "delta": D("1"), "reason": "usage"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not MISSING}


MISSING = object()


def nested(depth: int) -> dict:
    """An object nesting exactly ``depth`` levels: {"k": {"k": ... 1}}."""
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


# --- parse_delta: every bad input names its field --------------------------------------------

BAD = [
    # customerId: charset and length (1-128 of letters, digits, _ - . :)
    ("customerId", body(customerId=MISSING)),
    ("customerId", body(customerId=None)),
    ("customerId", body(customerId="")),
    ("customerId", body(customerId="c" * 129)),
    ("customerId", body(customerId="cust 1")),
    ("customerId", body(customerId=" cust_1")),
    ("customerId", body(customerId="kunde_ü")),
    ("customerId", body(customerId="客户")),
    ("customerId", body(customerId="cust/1")),
    ("customerId", body(customerId="cust#1")),
    ("customerId", body(customerId=123)),
    ("customerId", body(customerId=["cust_1"])),
    # delta: a non-zero finite exact number within ±1e9, at most 6 fractional digits
    ("delta", body(delta=MISSING)),
    ("delta", body(delta="5")),
    ("delta", body(delta="1.5")),
    ("delta", body(delta=True)),
    ("delta", body(delta=False)),
    ("delta", body(delta=None)),
    ("delta", body(delta=[1])),
    ("delta", body(delta={"value": 1})),
    ("delta", body(delta=1.5)),  # a binary float never reaches the ledger
    ("delta", body(delta=0)),
    ("delta", body(delta=D("0"))),
    ("delta", body(delta=D("-0"))),
    ("delta", body(delta=D("0E-12"))),
    ("delta", body(delta=D("0.0000000"))),
    ("delta", body(delta=1_000_000_001)),
    ("delta", body(delta=-1_000_000_001)),
    ("delta", body(delta=D("1000000000.000001"))),
    ("delta", body(delta=D("-1000000000.000001"))),
    ("delta", body(delta=D("0.0000001"))),
    ("delta", body(delta=D("1.1234567"))),
    ("delta", body(delta=D("-999999999.9999999"))),
    ("delta", body(delta=D("1E-7"))),
    ("delta", body(delta=D("1E+10"))),
    ("delta", body(delta=D("1E+999999"))),
    ("delta", body(delta=10**30)),
    ("delta", body(delta=D("NaN"))),
    ("delta", body(delta=D("sNaN"))),
    ("delta", body(delta=D("Infinity"))),
    ("delta", body(delta=D("-Infinity"))),
    # reason: a non-empty string of at most 500 characters
    ("reason", body(reason=MISSING)),
    ("reason", body(reason=None)),
    ("reason", body(reason="")),
    ("reason", body(reason="   ")),
    ("reason", body(reason="r" * 501)),
    ("reason", body(reason=42)),
    ("reason", body(reason=["usage"])),
    # referenceId: optional; a non-empty string of at most 256
    ("referenceId", body(referenceId=42)),
    ("referenceId", body(referenceId="")),
    ("referenceId", body(referenceId=" ")),
    ("referenceId", body(referenceId="r" * 257)),
    ("referenceId", body(referenceId={"id": 1})),
    # adjusts: same rule as referenceId
    ("adjusts", body(adjusts=7)),
    ("adjusts", body(adjusts="a" * 257)),
    # metadata: an object, ≤ 50 keys, ≤ 3 levels, ≤ 4096 bytes
    ("metadata", body(metadata="x")),
    ("metadata", body(metadata=[1, 2])),
    ("metadata", body(metadata=3)),
    ("metadata", body(metadata=True)),
    ("metadata", body(metadata={f"k{n}": n for n in range(51)})),
    ("metadata", body(metadata=nested(4))),
    ("metadata", body(metadata={"list": [[[1]]]})),
    ("metadata", body(metadata={"blob": "x" * 4100})),
]


@pytest.mark.parametrize(("field", "raw"), BAD, ids=[f"{f}-{i}" for i, (f, _r) in enumerate(BAD)])
def test_bad_input_is_a_validation_error_naming_the_field(field, raw):
    with pytest.raises(ValidationError) as caught:
        parse_delta(raw)
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.details["field"] == field
    assert caught.value.message.startswith(field)


@pytest.mark.parametrize(("field", "raw"), BAD[::4], ids=[f"{f}-{i}" for i, (f, _r) in enumerate(BAD[::4])])
def test_batch_errors_prefix_the_item_index(field, raw):
    with pytest.raises(ValidationError) as caught:
        parse_delta(raw, prefix="deltas[3].")
    assert caught.value.details["field"] == f"deltas[3].{field}"
    assert caught.value.message.startswith(f"deltas[3].{field} ")


@pytest.mark.parametrize("customer_id", ["cust_1\n", "c" * 128 + "\n"])
def test_a_trailing_newline_is_not_a_valid_customer_id(customer_id):
    with pytest.raises(ValidationError) as caught:
        parse_delta(body(customerId=customer_id))
    assert caught.value.details["field"] == "customerId"


@pytest.mark.parametrize("raw", [None, [], "delta", 5, [body()]])
def test_a_body_that_is_not_an_object(raw):
    with pytest.raises(ValidationError) as caught:
        parse_delta(raw)
    assert caught.value.details["field"] == "body"
    with pytest.raises(ValidationError) as in_batch:
        parse_delta(raw, prefix="deltas[7].")
    assert in_batch.value.details["field"] == "deltas[7]"


def test_a_non_object_batch_item_message_reads_naturally():
    with pytest.raises(ValidationError) as caught:
        parse_delta(5, prefix="deltas[7].")
    assert caught.value.message == "deltas[7] must be a JSON object"


@pytest.mark.parametrize(("given_value", "kept"), [
    (D("0.000001"), "0.000001"),
    (D("-0.000001"), "-0.000001"),
    (D("-999999999.999999"), "-999999999.999999"),
    (D("999999999.999999"), "999999999.999999"),
    (1_000_000_000, "1000000000"),
    (-1_000_000_000, "-1000000000"),
    (D("1000000000"), "1000000000"),
    (D("1E+9"), "1000000000"),
    (D("-1.0E+9"), "-1000000000"),
    (D("1000000000.000000"), "1000000000"),
    (D("1E+2"), "100"),
    (D("12.50"), "12.5"),
    (D("1.1000000"), "1.1"),  # trailing zeros are not fractional digits
    (D("0.1"), "0.1"),
    (D("-42"), "-42"),
    (7, "7"),
    (D("123456789.123456"), "123456789.123456"),
])
def test_exact_values_are_kept_exactly(given_value, kept):
    parsed = parse_delta(body(delta=given_value))
    assert isinstance(parsed.delta, Decimal)
    assert parsed.delta == D(kept)
    assert format_delta(parsed.delta) == kept
    assert str(parsed.delta) == kept  # stored plain: no exponent, no trailing zeros


@pytest.mark.parametrize("raw", ["0.1000000000000000000000000000001", "1.00000000000000000000000000001",
                                 "999999999.99999900000000000000001"])
def test_more_than_28_significant_digits_is_rejected_not_rounded(raw):
    with pytest.raises(ValidationError) as caught:
        parse_delta(body(delta=D(raw)))
    assert caught.value.details["field"] == "delta"


@given(st.decimals(min_value=D("-1000000000"), max_value=D("1000000000"), places=6,
                   allow_nan=False, allow_infinity=False).filter(lambda d: d != 0))
def test_any_six_place_value_in_range_is_kept_exactly(value):
    parsed = parse_delta(body(delta=value))
    assert parsed.delta == value
    assert D(format_delta(parsed.delta)) == value
    assert "E" not in format_delta(parsed.delta)


@given(st.integers(1, 10**6), st.integers(7, 20), st.booleans())
def test_any_seventh_fractional_digit_is_rejected(units, places, negative):
    value = D(units * 10 + 1).scaleb(-places) * (-1 if negative else 1)  # last digit non-zero
    if abs(value) > D(1_000_000_000):
        return
    with pytest.raises(ValidationError):
        parse_delta(body(delta=value))


@pytest.mark.parametrize("fields", [
    {"customerId": "c"},
    {"customerId": "c" * 128},
    {"customerId": "Cust_9-a.b:c"},
    {"reason": "r" * 500},
    {"reason": "ü" * 500},
    {"referenceId": "r" * 256},
    {"referenceId": None},
    {"adjusts": "rec_" + "a" * 252},
    {"metadata": None},
    {"metadata": {}},
    {"metadata": {f"k{n}": n for n in range(50)}},
    {"metadata": nested(3)},
    {"metadata": {"list": [[1]]}},
])
def test_boundary_values_are_accepted(fields):
    parsed = parse_delta(body(**fields))
    assert isinstance(parsed, DeltaInput)
    for name, value in fields.items():
        attribute = {"customerId": "customer_id", "referenceId": "reference_id"}.get(name, name)
        assert getattr(parsed, attribute) == value


def test_metadata_size_limit_is_4096_bytes_inclusive():
    compact = {"separators": (",", ":"), "ensure_ascii": False}

    def sized(total: int) -> dict:
        prefix = len(json.dumps({"b": ""}, **compact))
        return {"b": "x" * (total - prefix)}

    assert len(json.dumps(sized(4096), **compact).encode()) == 4096
    assert parse_delta(body(metadata=sized(4096))).metadata == sized(4096)
    with pytest.raises(ValidationError) as caught:
        parse_delta(body(metadata=sized(4097)))
    assert caught.value.details["field"] == "metadata"


def test_metadata_size_is_measured_in_utf8_bytes():
    metadata = {"note": "é" * 700}  # 1,411 bytes as compact UTF-8 JSON
    assert len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode()) < 4096
    assert parse_delta(body(metadata=metadata)).metadata == metadata


def test_parsed_input_content_is_canonical():
    parsed = parse_delta(body(delta=D("12.50"), referenceId="inv-1", metadata={"a": 1}))
    assert parsed.content() == {"customerId": "cust_1", "delta": "12.5", "reason": "usage",
                                "referenceId": "inv-1", "metadata": {"a": 1}, "adjusts": None}


# --- billing capacity -----------------------------------------------------------------------------


def account(balance: int = 0, reserved: int = 0) -> CreditAccount:
    return CreditAccount(tenant_id="2", credit_balance=balance, reserved=reserved)


@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize(("balance", "reserved", "limit"), [(0, 0, 0), (10, 3, 7), (40, 40, 0), (1, 0, 1)])
def test_credits_billing_allows_what_available_credits_pay_for(plan, balance, reserved, limit):
    capacity = acceptance_capacity(tenant(billing_mode=BillingMode.CREDITS, plan=plan), plan_for(plan),
                                   consumed=10_000_000, credits=account(balance, reserved))
    assert capacity.limit == limit  # the plan's allotment and usage do not matter under credits
    assert capacity.code == "INSUFFICIENT_CREDITS"
    assert str(balance - reserved) in capacity.message


def test_credits_per_delta_divides_the_available_balance():
    pricier = Plan("custom", None, None, None, credits_per_delta=3)
    capacity = acceptance_capacity(tenant(billing_mode=BillingMode.CREDITS), pricier, consumed=0,
                                   credits=account(11, 1))
    assert capacity.limit == 3


@pytest.mark.parametrize(("consumed", "limit"), [(0, 100), (1, 99), (99, 1), (100, 0), (101, 0), (5_000, 0)])
def test_free_monthly_is_hard_capped_at_100(consumed, limit):
    capacity = acceptance_capacity(tenant(plan="free"), plan_for("free"), consumed=consumed,
                                   credits=account(1_000))
    assert capacity.limit == limit
    assert capacity.code == "PLAN_LIMIT_EXCEEDED"
    assert "100" in capacity.message


@pytest.mark.parametrize("plan", ["pilot", "starter", "growth", "scale", "enterprise"])
@pytest.mark.parametrize("consumed", [0, 10_000, 100_012, 10**9])
def test_paid_and_enterprise_monthly_never_refuse(plan, consumed):
    capacity = acceptance_capacity(tenant(plan=plan), plan_for(plan), consumed=consumed, credits=account())
    assert capacity.limit is None


# --- the plan catalogue and overage money ---------------------------------------------------------

CATALOGUE = {
    # tier: (allotment, price USD, overage USD per delta, hard cap)
    "free": (100, 0, None, True),
    "pilot": (10_000, 1_000, D("0.020"), False),
    "starter": (100_000, 3_000, D("0.012"), False),
    "growth": (500_000, 8_000, D("0.010"), False),
    "scale": (2_000_000, 15_000, D("0.008"), False),
    "enterprise": (None, None, None, False),
}


def test_catalogue_matches_the_spec():
    assert set(PLANS) == set(CATALOGUE)
    for tier, (allotment, price, overage, hard_cap) in CATALOGUE.items():
        plan = plan_for(tier)
        assert plan.tier == tier
        assert (plan.monthly_allotment, plan.price_usd, plan.overage_usd, plan.hard_cap) == (
            allotment, price, overage, hard_cap), tier
        assert plan.credits_per_delta == 1
        assert not isinstance(plan.overage_usd, float)
    assert [t for t, p in PLANS.items() if p.self_serve] == ["pilot", "starter", "growth", "scale"]
    assert {t: p.overage_rate_label for t, p in PLANS.items()} == {
        "free": None, "pilot": "$0.020/delta", "starter": "$0.012/delta", "growth": "$0.010/delta",
        "scale": "$0.008/delta", "enterprise": None}


def test_unknown_plan_is_a_validation_error():
    with pytest.raises(ValidationError) as caught:
        plan_for("platinum")
    assert caught.value.details["field"] == "plan"


@pytest.mark.parametrize(("tier", "consumed", "count", "charge", "remaining"), [
    ("starter", 100_012, 12, "0.144", 0),
    ("starter", 100_000, 0, "0", 0),
    ("starter", 99_999, 0, "0", 1),
    ("starter", 0, 0, "0", 100_000),
    ("pilot", 10_001, 1, "0.02", 0),
    ("pilot", 12_345, 2_345, "46.9", 0),
    ("growth", 500_001, 1, "0.01", 0),
    ("growth", 1_234_567, 734_567, "7345.67", 0),
    ("scale", 2_000_123, 123, "0.984", 0),
    ("scale", 3_000_000, 1_000_000, "8000", 0),
    ("enterprise", 10**9, 0, "0", None),
])
def test_overage_math_is_exact(tier, consumed, count, charge, remaining):
    plan = plan_for(tier)
    assert plan.overage_count(consumed) == count
    money = plan.overage_charges_usd(consumed)
    assert isinstance(money, Decimal)
    assert money == D(charge)
    assert str(money) == charge  # plain: no exponent, no float noise
    assert plan.remaining(consumed) == remaining


def test_free_plan_never_charges_overage():
    assert plan_for("free").overage_charges_usd(150) == 0
    assert plan_for("free").remaining(150) == 0


@given(st.sampled_from(["pilot", "starter", "growth", "scale"]), st.integers(0, 10**10))
def test_overage_charge_is_count_times_rate_exactly(tier, consumed):
    plan = plan_for(tier)
    count = max(0, consumed - plan.monthly_allotment)
    money = plan.overage_charges_usd(consumed)
    assert money == count * plan.overage_usd
    assert money * 1000 == int(money * 1000)  # whole tenths of a cent, never rounded
    assert "E" not in str(money)


# --- cutting a batch into transactions --------------------------------------------------------------

CUSTOMER_POOLS = st.sampled_from([["a"], ["a", "b"], [f"c{n}" for n in range(5)], [f"c{n}" for n in range(200)]])


REFERENCES = st.one_of(st.none(), st.sampled_from(["r1", "r2", "r3"]), st.text("abcdef0123456789", min_size=1,
                                                                               max_size=6))


@st.composite
def batches(draw) -> list[tuple[int, DeltaInput]]:
    """Up to 100 deltas: few or many customers, references absent, repeated or distinct."""
    pool = draw(CUSTOMER_POOLS)
    size = draw(st.one_of(st.integers(1, 100), st.integers(95, 100)))  # full batches are the adversarial ones
    rows = draw(st.lists(st.tuples(st.integers(0, len(pool) - 1), REFERENCES), min_size=size, max_size=size))
    return [(index, DeltaInput(customer_id=pool[c], delta=D(1), reason="r", reference_id=reference))
            for index, (c, reference) in enumerate(rows)]


def transaction_cost(chunk: list[tuple[int, DeltaInput]], fixed: int) -> int:
    """Writes one chunk stages: each delta, each reference guard, one update per customer, fixed rows."""
    return (fixed + len(chunk) + sum(1 for _i, item in chunk if item.reference_id)
            + len({item.customer_id for _i, item in chunk}))


@settings(max_examples=200, deadline=None)
@given(batches(), st.sampled_from([1, 3]))
def test_chunks_never_exceed_100_writes(items, fixed):
    chunks = ingest._chunks(items, fixed)
    assert [pair for chunk in chunks for pair in chunk] == items  # all, once, in order
    assert all(chunks)
    for chunk in chunks:
        assert transaction_cost(chunk, fixed) <= ingest.MAX_TRANSACTION_ITEMS
    for chunk, following in itertools.pairwise(chunks):  # greedy: the next item did not fit
        assert transaction_cost([*chunk, following[0]], fixed) > ingest.MAX_TRANSACTION_ITEMS
    if transaction_cost(items, fixed) <= ingest.MAX_TRANSACTION_ITEMS:
        assert len(chunks) == 1


@pytest.mark.parametrize(("fixed", "with_reference", "distinct", "expected"), [
    (1, False, False, [98, 2]),  # 1 fixed + 1 customer + 98 deltas
    (3, True, True, [32, 32, 32, 4]),  # worst case: delta + guard + customer each, 3 fixed
    (1, True, False, [49, 49, 2]),  # 1 fixed + 1 customer + 49 x (delta + guard)
])
def test_chunk_sizes_for_the_worst_mixes(fixed, with_reference, distinct, expected):
    items = [(i, DeltaInput(customer_id=f"c{i}" if distinct else "c", delta=D(1), reason="r",
                            reference_id=f"r{i}" if with_reference else None)) for i in range(100)]
    assert [len(chunk) for chunk in ingest._chunks(items, fixed)] == expected


class _CountingUnitOfWork:
    """Counts the writes ``submit_deltas`` stages per commit; every read returns one fixed snapshot."""

    def __init__(self, snapshot: IngestSnapshot) -> None:
        self._snapshot, self.staged, self.commits, self.refills = snapshot, 0, [], []
        self.deltas = self.usage = self.credits = self.customers = self

    def snapshot(self, *_args: Any, **_reads: bool) -> IngestSnapshot:
        return self._snapshot

    def add_billing_state(self, snapshot: IngestSnapshot, *_args: Any, **_reads: bool) -> IngestSnapshot:
        return snapshot

    def __getattr__(self, name: str):
        writes = {"add": 1, "add_reference_guard": 1, "advance_customer": 1,
                  "hold": 1,  # the lane (+ the pool on a refill)
                  "count": 1}  # a shard of the environment's customer totals
        if name not in writes:
            raise AttributeError(name)

        def stage(*args: Any, **_kwargs: Any) -> None:
            self.staged += writes[name]
            if name == "hold":
                self.refills.append(bool(args[1].refill))
                self.staged += int(bool(args[1].refill))

        return stage

    def commit(self) -> None:
        self.commits.append(self.staged)
        self.staged = 0

    def rollback(self) -> None:
        self.staged = 0


@settings(max_examples=100, deadline=None)
@given(batches(), st.sampled_from([BillingMode.CREDITS, BillingMode.MONTHLY]))
def test_submit_stages_what_chunks_budgeted_and_never_over_100(items, mode):
    """The real write path, counted: each commit stages exactly the chunk's budgeted writes."""
    inputs: list[DeltaInput | TallyError] = [item for _i, item in items]
    customers = {item.customer_id: CustomerState(exists=False, last_seq=None) for _i, item in items}
    uow = _CountingUnitOfWork(IngestSnapshot(
        tenant=tenant(billing_mode=mode, plan="starter"), customers=customers, guards={}, usage_consumed=0,
        credits=CreditPosition(ledger=account(10_000), pool=10_000)))
    principal = ApiKeyPrincipal(tenant_id="2", environment=Environment.PRODUCTION, key_id="k")

    outcomes = ingest.submit_deltas(uow, principal, inputs, now=NOW)

    assert all(o.status == "QUEUED" for o in outcomes)
    firsts, seen = [], set()  # a repeated (customer, referenceId) in one batch is answered, not written
    for index, item in items:
        key = (item.customer_id, item.reference_id)
        if item.reference_id is None or key not in seen:
            firsts.append((index, item))
            seen.add(key)
    fixed = 4 if mode == BillingMode.CREDITS else 2  # usage and totals shards (+ the lane, the pool on a refill)
    budgeted = [transaction_cost(chunk, fixed) for chunk in ingest._chunks(firsts, fixed)]
    if mode == BillingMode.CREDITS:  # the pool is in the transaction only when the hold refills its lane
        assert len(uow.refills) == len(budgeted) and uow.refills[0]
        budgeted = [cost - (0 if refill else 1) for cost, refill in zip(budgeted, uow.refills, strict=True)]
    assert uow.commits == budgeted
    assert max(uow.commits) <= ingest.MAX_TRANSACTION_ITEMS
