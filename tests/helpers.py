"""Small direct-storage helpers for arranging test state."""

from __future__ import annotations

from chalicelib import bootstrap
from chalicelib.domain.customers import Customer, CustomerSource
from chalicelib.domain.identity import Environment


def add_customer(tenant_id: str, customer_id: str, environment: Environment = Environment.PRODUCTION) -> None:
    uow = bootstrap.unit_of_work()
    now = bootstrap.now()
    uow.customers.add(Customer(tenant_id=tenant_id, environment=environment, customer_id=customer_id,
                               display_name=customer_id, source=CustomerSource.INTEGRATION,
                               created_at=now, updated_at=now))
    uow.commit()


DELTA = "/api/v1/balance/delta"


def submit(api, key: dict, customer: str = "cust_a", amount: float = 1) -> str:
    """Accept one delta through the API; its record id."""
    reply = api.post(DELTA, headers=key, json_body={"customerId": customer, "delta": amount, "reason": "r"})
    assert reply.status == 202, reply
    return reply.data["recordId"]


def verify(tenant, record_ids: list[str], clock, environment: Environment = Environment.PRODUCTION):
    """The verifier Lambda's work on these deltas (without its webhook hand-off)."""
    from chalicelib.services import verification

    refs = [(tenant.id, environment, r) for r in record_ids]
    return verification.verify_records(bootstrap.unit_of_work(), refs, now=clock(), signer=bootstrap.signer())
