"""When a whole batch is a 402 (seed 003 "Usage Limits"): ``ingest.batch_refusal`` over per-item outcomes."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import ConflictError, PaymentRequiredError, ValidationError
from chalicelib.services.ingest import Outcome, batch_refusal

CAP = PaymentRequiredError("The free plan allows 100 deltas per UTC month.", code="PLAN_LIMIT_EXCEEDED")
BROKE = PaymentRequiredError("Insufficient credits.", code="INSUFFICIENT_CREDITS")
INVALID = ValidationError("deltas[1].delta must be non-zero", field="deltas[1].delta")
BUSY = ConflictError("Too many concurrent writes.", code="CONCURRENT_WRITE")
ACCEPTED = {"recordId": "rec_1", "status": "QUEUED"}


def outcomes(*kinds) -> list[Outcome]:
    made = []
    for index, kind in enumerate(kinds):
        if kind == "new":
            made.append(Outcome(index, "QUEUED", data=ACCEPTED))
        elif kind == "replay":
            made.append(Outcome(index, "QUEUED", data=ACCEPTED, idempotent=True))
        else:
            made.append(Outcome(index, "FAILED", error=kind))
    return made


@pytest.mark.parametrize("kinds, code", [
    ((CAP,), "PLAN_LIMIT_EXCEEDED"),
    ((BROKE, BROKE, BROKE), "INSUFFICIENT_CREDITS"),
    ((INVALID, BROKE), "INSUFFICIENT_CREDITS"),  # paying is what unblocks the valid ones
    ((BUSY, CAP, INVALID), "PLAN_LIMIT_EXCEEDED"),
])
def test_nothing_accepted_and_billing_refused_is_a_402(kinds, code):
    refusal = batch_refusal(outcomes(*kinds))
    assert isinstance(refusal, PaymentRequiredError) and refusal.code == code
    assert refusal.details["totalQueued"] == 0 and refusal.details["totalFailed"] == len(kinds)
    assert [(r["index"], r["status"]) for r in refusal.details["results"]] == [(i, "FAILED") for i in range(len(kinds))]
    assert [r["code"] for r in refusal.details["results"]] == [k.code for k in kinds]


@pytest.mark.parametrize("kinds", [
    ("new",),
    ("new", BROKE),
    ("replay", BROKE, BROKE),  # an accepted item, even replayed, keeps the per-item answer
    (INVALID,),
    (INVALID, BUSY),  # nothing refused for payment: paying would not help
])
def test_anything_accepted_or_no_billing_refusal_keeps_the_per_item_answer(kinds):
    assert batch_refusal(outcomes(*kinds)) is None
