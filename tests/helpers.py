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
