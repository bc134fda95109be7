"""Idempotent demo data: the platform tenant, two demo tenants, users, keys, customers.

Running it twice changes nothing: every object is created only when absent.
"""

from __future__ import annotations

from typing import Any

from chalicelib import bootstrap
from chalicelib.domain.access import ApiKey, PlatformToken
from chalicelib.domain.credentials import hash_secret, parse_api_key
from chalicelib.domain.customers import Customer, CustomerSource
from chalicelib.domain.identity import Ability, Environment, Role
from chalicelib.domain.tenants import BillingMode, User
from chalicelib.services import credits as credit_service
from chalicelib.services import tenants as tenant_service

DEMO_TENANT_ID = "2"
DEMO_CREDITS = 100_000
FREE_TENANT_ID = "3"
DEMO_CUSTOMERS = {"cust_123": "Customer 123", "cust_acme": "Acme Corp", "cust_globex": "Globex Corporation"}
DEMO_USERS = {
    "usr_demo_owner": Role.OWNER,
    "usr_demo_admin": Role.ADMIN,
    "usr_demo_manager": Role.MANAGER,
    "usr_demo_viewer": Role.VIEWER,
}
ADMIN_USER = "usr_demo_admin"
_TENANTS = (
    ("1", "Tally Platform", {"plan": "enterprise"}),
    (DEMO_TENANT_ID, "Acme Inc", {"plan": "starter", "billing_mode": BillingMode.CREDITS,
                                  "stripe_customer_id": "cus_demoacme0001"}),
    (FREE_TENANT_ID, "Globex Free", {"plan": "free"}),
)


def seed(dev_secrets: dict[str, Any]) -> dict[str, Any]:
    now = bootstrap.now()
    uow = bootstrap.unit_of_work()
    for tenant_id, name, options in _TENANTS:
        if uow.tenants.get(tenant_id) is None:
            tenant, _owner = tenant_service.create_tenant(uow, company_name=name, now=now, actor="operator:seed",
                                                          **options)
            if tenant.id != tenant_id:
                raise RuntimeError(f"demo seeding expected tenant id {tenant_id}, got {tenant.id}: "
                                   "the tables hold other tenants")
    for user_id, role in DEMO_USERS.items():
        if uow.users.get(DEMO_TENANT_ID, user_id) is None:
            uow.users.save(User(tenant_id=DEMO_TENANT_ID, user_id=user_id,
                                email=f"{role}@acme.example", role=role, created_at=now))
    uow.commit()

    for environment, full_key in dev_secrets["apiKeys"].items():
        parsed = parse_api_key(full_key)
        if uow.api_keys.get(DEMO_TENANT_ID, Environment(environment), parsed.public_id) is None:
            uow.api_keys.add(ApiKey(
                tenant_id=DEMO_TENANT_ID, environment=Environment(environment), key_id=parsed.public_id,
                name=f"Demo {environment} key", secret_hash=hash_secret(full_key), last4=full_key[-4:],
                created_at=now, created_by="operator:seed"))
    token_id = dev_secrets["platformToken"].split("|", 1)[0]
    if uow.platform_tokens.get(token_id) is None:
        uow.platform_tokens.add(PlatformToken(
            token_id=token_id, name="Demo platform token", abilities=frozenset(a.value for a in Ability),
            secret_hash=hash_secret(dev_secrets["platformToken"]), created_at=now))
    for environment in Environment:
        added = 0
        for customer_id, display_name in DEMO_CUSTOMERS.items():
            if uow.customers.get(DEMO_TENANT_ID, environment, customer_id) is None:
                uow.customers.add(Customer(
                    tenant_id=DEMO_TENANT_ID, environment=environment, customer_id=customer_id,
                    display_name=display_name, source=CustomerSource.INTEGRATION, created_at=now,
                    updated_at=now))
                added += 1
        uow.customers.count(DEMO_TENANT_ID, environment, customers=added, integration=added)  # the summary's
    uow.commit()
    if uow.credits.account(DEMO_TENANT_ID).entry_count == 0:
        credit_service.topup(uow, DEMO_TENANT_ID, DEMO_CREDITS, actor="operator:seed", now=now,
                             description="Demo credits")
    return {"tenantId": DEMO_TENANT_ID, "adminUserId": ADMIN_USER}
