"""Tenants and their users (the tenant's partition ``T#{tenant}``): records only, writes staged."""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.models import CounterRecord, TenantRecord, UserRecord
from chalicelib.adapters.dynamodb.staging import Repository, batch_get, get_item, query_page, write_now
from chalicelib.domain.clock import iso_us, parse_iso
from chalicelib.domain.identity import Role
from chalicelib.domain.tenants import BillingMode, PlanChange, Tenant, TenantStatus, User, UserStatus
from chalicelib.services.ports import Page


def tenant_from(record: TenantRecord) -> Tenant:
    return Tenant(
        id=record.tenant_id,
        company_name=record.company_name,
        status=TenantStatus(record.status),
        billing_mode=BillingMode(record.billing_mode),
        plan=record.plan,
        environments=dict(record.environments.as_dict() if hasattr(record.environments, "as_dict")
                          else record.environments),
        stripe_customer_id=record.stripe_customer_id,
        stripe_subscription_id=record.stripe_subscription_id,
        stripe_subscription_status=record.stripe_subscription_status,
        stripe_current_period_end=record.stripe_current_period_end,
        cancel_at_period_end=bool(record.cancel_at_period_end),
        subdomain=record.subdomain,
        final_domain=record.final_domain,
        https=bool(record.https),
        lang=record.lang,
        has_unpaid_invoices_at=record.has_unpaid_invoices_at,
        dashboard_blocked_at=record.dashboard_blocked_at,
        plan_changes=tuple(PlanChange(at=parse_iso(at), plan=plan, billing_mode=mode)
                           for at, plan, mode in record.plan_changes or ()),
        deleted_at=record.deleted_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
        version=record.version,
    )


def _tenant_record(tenant: Tenant) -> TenantRecord:
    listed = tenant.listed_in_directory
    record = TenantRecord(
        keys.tenant_pk(tenant.id),
        keys.TENANT_SK,
        tenant_id=tenant.id,
        company_name=tenant.company_name,
        status=str(tenant.status),
        billing_mode=str(tenant.billing_mode),
        plan=tenant.plan,
        environments={k: str(v) for k, v in tenant.environments.items()},
        stripe_customer_id=tenant.stripe_customer_id,
        stripe_subscription_id=tenant.stripe_subscription_id,
        stripe_subscription_status=tenant.stripe_subscription_status,
        stripe_current_period_end=tenant.stripe_current_period_end,
        cancel_at_period_end=tenant.cancel_at_period_end,
        subdomain=tenant.subdomain,
        final_domain=tenant.final_domain,
        https=tenant.https,
        lang=tenant.lang,
        has_unpaid_invoices_at=tenant.has_unpaid_invoices_at,
        dashboard_blocked_at=tenant.dashboard_blocked_at,
        plan_changes=[[iso_us(c.at), c.plan, c.billing_mode] for c in tenant.plan_changes] or None,
        deleted_at=tenant.deleted_at,
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
        directory_pk=keys.DIRECTORY_PK if listed else None,
        directory_sk=keys.directory_sk(tenant.id) if listed else None,
    )
    limit = tenant.missing_payment_limit_date
    if limit is not None and tenant.dashboard_blocked_at is None:
        record.block_pk = keys.BLOCK_PK
        record.block_sk = keys.block_sk(iso_us(limit), tenant.id)
    if tenant.version is not None:
        record.version = tenant.version
    return record


class DynamoTenantRepository(Repository):
    def get(self, tenant_id: str) -> Tenant | None:
        record = get_item(TenantRecord, keys.tenant_pk(tenant_id), keys.TENANT_SK)
        return tenant_from(record) if record else None

    def next_id(self) -> str:
        """Atomic counter: ids are never reused (a failed create leaves a gap, which is fine)."""
        counter = CounterRecord(keys.TENANT_COUNTER_PK, keys.COUNTER_SK)
        write_now(counter, actions=[CounterRecord.value.add(1)])
        return str(int(counter.value))

    def add(self, tenant: Tenant) -> None:
        self._stage("save", _tenant_record(tenant), condition=TenantRecord.pk.does_not_exist())

    def save(self, tenant: Tenant) -> None:
        """Optimistic: fails with ConcurrentWriteError if someone saved since ``tenant`` was read."""
        self._stage("save", _tenant_record(tenant))

    def by_stripe_customer(self, customer_id: str) -> Tenant | None:
        """The tenant of a Stripe customer, from the sparse index (eventually consistent: re-read by id
        before writing)."""
        for record in tables.query(TenantRecord, customer_id, index=TenantRecord.stripe_customer_index, limit=1):
            return tenant_from(record)
        return None

    def due_blocks(self, before: datetime, limit: int, cursor: str | None) -> Page[Tenant]:
        """Flagged tenants whose missing-payment limit date is before ``before`` and whose block is not
        recorded yet: a key-condition query on the sparse block index (eventually consistent: re-read by
        id before writing)."""
        return query_page(
            lambda **kw: tables.query(TenantRecord, keys.BLOCK_PK, TenantRecord.block_sk < iso_us(before),
                                      index=TenantRecord.block_index, **kw), tenant_from,
            limit=limit, cursor=cursor, partition=("block_pk", keys.BLOCK_PK),
            key_names=("pk", "sk", "block_pk", "block_sk"),
        )

    def directory(self, limit: int, cursor: str | None) -> Page[Tenant]:
        return query_page(
            lambda **kw: tables.query(TenantRecord, keys.DIRECTORY_PK, index=TenantRecord.directory_index, **kw),
            tenant_from,
            limit=limit, cursor=cursor, partition=("directory_pk", keys.DIRECTORY_PK),
            key_names=("pk", "sk", "directory_pk", "directory_sk"),
        )


# --- users -----------------------------------------------------------------------------


def _user_from(record: UserRecord) -> User:
    return User(
        tenant_id=record.tenant_id,
        user_id=record.user_id,
        email=record.email,
        role=Role(record.role),
        status=UserStatus(record.status),
        created_at=record.created_at,
    )


class DynamoUserRepository(Repository):
    def get(self, tenant_id: str, user_id: str) -> User | None:
        record = get_item(UserRecord, keys.tenant_pk(tenant_id), keys.user_sk(user_id))
        return _user_from(record) if record else None

    def get_with_tenant(self, tenant_id: str, user_id: str) -> tuple[Tenant | None, User | None]:
        """One consistent BatchGetItem for the tenant row and the user row (same table)."""
        pk = keys.tenant_pk(tenant_id)
        found = {sk: item for (_t, _pk, sk), item in batch_get(
            [(TenantRecord, pk, keys.TENANT_SK), (UserRecord, pk, keys.user_sk(user_id))]).items()}
        tenant = found.get(keys.TENANT_SK)
        user = found.get(keys.user_sk(user_id))
        return (tenant_from(TenantRecord.from_raw_data(tenant)) if tenant else None,
                _user_from(UserRecord.from_raw_data(user)) if user else None)

    def list(self, tenant_id: str) -> list[User]:
        query = tables.query(
            UserRecord, keys.tenant_pk(tenant_id), UserRecord.sk.startswith("USER#"), consistent_read=True
        )
        return [_user_from(r) for r in query]

    def save(self, user: User) -> None:
        self._stage(
            "save",
            UserRecord(
                keys.tenant_pk(user.tenant_id),
                keys.user_sk(user.user_id),
                tenant_id=user.tenant_id,
                user_id=user.user_id,
                email=user.email,
                role=str(user.role),
                status=str(user.status),
                created_at=user.created_at,
            ),
        )
