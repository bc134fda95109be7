"""Repositories: map PynamoDB records to domain objects and back. No business rules.

Reads are immediate (strongly consistent on the base table); writes are staged
on the owning unit of work and committed together.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import UpdateError

from chalicelib import jsoncodec
from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.dynamodb.models import (
    ApiKeyRecord,
    AuditRecord,
    BatchRecord,
    ChainHeadRecord,
    CheckpointRecord,
    CounterRecord,
    CreditAccountRecord,
    CustomerDirectoryIndex,
    CustomerRecord,
    CustomerStatsRecord,
    DeltaRecord,
    IdempotencyRecord,
    LedgerEntryRecord,
    OutboxRecord,
    PlatformTokenRecord,
    RateWindowRecord,
    ReferenceGuardRecord,
    SessionRecord,
    SigningKeyRecord,
    TenantRecord,
    UsageCounterRecord,
    UserRecord,
    WebhookDeliveryRecord,
    WebhookEndpointRecord,
)
from chalicelib.domain.access import ApiKey, KeyStatus, PlatformToken, Session
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.batches import ChainHead, SealedBatch
from chalicelib.domain.checkpoints import Checkpoint
from chalicelib.domain.clock import iso_us, parse_iso
from chalicelib.domain.credits import CreditAccount, EntryType, LedgerEntry
from chalicelib.domain.customers import (
    Customer,
    CustomerSource,
    CustomerStats,
    EventCadence,
    Policy,
    SharingState,
    name_key,
)
from chalicelib.domain.deltas import CreditState, Delta, DeltaStatus
from chalicelib.domain.identity import Environment, Role
from chalicelib.domain.signing_keys import SigningKey
from chalicelib.domain.tenants import BillingMode, PlanChange, Tenant, TenantStatus, User, UserStatus
from chalicelib.domain.usage import UsageCounter
from chalicelib.domain.webhooks import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    Event,
    Outbox,
)
from chalicelib.services.ports import CustomerState, IdempotencyEntry, IngestSnapshot, Page

if TYPE_CHECKING:
    from chalicelib.adapters.dynamodb.unit_of_work import DynamoUnitOfWork


def _get(model_cls: Any, pk: str, sk: str) -> Any:
    try:
        return model_cls.get(pk, sk, consistent_read=True)
    except model_cls.DoesNotExist:
        return None


TABLE_KEYS = ("pk", "sk")


def _query_page(run: Any, to_domain: Any, *, limit: int, cursor: str | None, partition: tuple[str, str],
                key_names: tuple[str, ...] = TABLE_KEYS, sort_prefix: str | None = None,
                sort_key: str = "sk", order: str | None = None) -> Page:
    """One page of a key query, plus a cursor only when another item really follows.

    DynamoDB returns a LastEvaluatedKey whenever a query stops at its Limit, even
    when nothing follows; asking for one extra item tells the two cases apart.
    """
    start, page = decode_cursor(cursor, partition=partition, key_names=key_names,
                                sort_prefix=(sort_key, sort_prefix) if sort_prefix else None, order=order)
    records = list(run(limit=limit + 1, page_size=limit + 1, last_evaluated_key=start))
    next_cursor = None
    if len(records) > limit:
        records = records[:limit]
        next_cursor = encode_cursor({name: {"S": getattr(records[-1], name)} for name in key_names}, page, order)
    return Page(items=[to_domain(r) for r in records], next_cursor=next_cursor, extra={"page": page})


class _Repository:
    def __init__(self, uow: DynamoUnitOfWork) -> None:
        from chalicelib.adapters.dynamodb.unit_of_work import StagedWrite

        self._uow = uow
        self._write = StagedWrite

    def _stage(self, kind: str, model: Any, condition: Any = None, actions: list | None = None) -> None:
        self._uow.stage(self._write(kind=kind, model=model, condition=condition, actions=actions))


# --- tenants -------------------------------------------------------------------------


def _tenant_from(record: TenantRecord) -> Tenant:
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


class DynamoTenantRepository(_Repository):
    def get(self, tenant_id: str) -> Tenant | None:
        record = _get(TenantRecord, keys.tenant_pk(tenant_id), keys.TENANT_SK)
        return _tenant_from(record) if record else None

    def next_id(self) -> str:
        """Atomic counter: ids are never reused (a failed create leaves a gap, which is fine)."""
        counter = CounterRecord(keys.TENANT_COUNTER_PK, keys.COUNTER_SK)
        counter.update(actions=[CounterRecord.value.add(1)])
        return str(int(counter.value))

    def add(self, tenant: Tenant) -> None:
        self._stage("save", _tenant_record(tenant), condition=TenantRecord.pk.does_not_exist())

    def save(self, tenant: Tenant) -> None:
        """Optimistic: fails with ConflictError if someone saved since ``tenant`` was read."""
        self._stage("save", _tenant_record(tenant))

    def by_stripe_customer(self, customer_id: str) -> Tenant | None:
        """The tenant of a Stripe customer, from the sparse index (eventually consistent: re-read by id
        before writing)."""
        for record in TenantRecord.stripe_customer_index.query(customer_id, limit=1):
            return _tenant_from(record)
        return None

    def due_blocks(self, before: datetime, limit: int, cursor: str | None) -> Page[Tenant]:
        """Flagged tenants whose missing-payment limit date is before ``before`` and whose block is not
        recorded yet: a key-condition query on the sparse block index (eventually consistent: re-read by
        id before writing)."""
        return _query_page(
            lambda **kw: TenantRecord.block_index.query(
                keys.BLOCK_PK, TenantRecord.block_sk < iso_us(before), **kw), _tenant_from,
            limit=limit, cursor=cursor, partition=("block_pk", keys.BLOCK_PK),
            key_names=("pk", "sk", "block_pk", "block_sk"),
        )

    def directory(self, limit: int, cursor: str | None) -> Page[Tenant]:
        return _query_page(
            lambda **kw: TenantRecord.directory_index.query(keys.DIRECTORY_PK, **kw), _tenant_from,
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


class DynamoUserRepository(_Repository):
    def get(self, tenant_id: str, user_id: str) -> User | None:
        record = _get(UserRecord, keys.tenant_pk(tenant_id), keys.user_sk(user_id))
        return _user_from(record) if record else None

    def get_with_tenant(self, tenant_id: str, user_id: str) -> tuple[Tenant | None, User | None]:
        """One consistent BatchGetItem for the tenant row and the user row (same table)."""
        pk = keys.tenant_pk(tenant_id)
        wanted = [{"pk": {"S": pk}, "sk": {"S": keys.TENANT_SK}}, {"pk": {"S": pk}, "sk": {"S": keys.user_sk(user_id)}}]
        table = TenantRecord.Meta.table_name
        connection = TenantRecord._get_connection().connection
        found: dict[str, dict] = {}
        request = {table: {"Keys": wanted, "ConsistentRead": True}}
        for _attempt in range(5):
            response = connection.dispatch("BatchGetItem", {"RequestItems": request})
            for item in response.get("Responses", {}).get(table, []):
                found[item["sk"]["S"]] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        tenant = found.get(keys.TENANT_SK)
        user = found.get(keys.user_sk(user_id))
        return (_tenant_from(TenantRecord.from_raw_data(tenant)) if tenant else None,
                _user_from(UserRecord.from_raw_data(user)) if user else None)

    def list(self, tenant_id: str) -> list[User]:
        query = UserRecord.query(
            keys.tenant_pk(tenant_id), UserRecord.sk.startswith("USER#"), consistent_read=True
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


# --- API keys ---------------------------------------------------------------------------


def _key_from(record: ApiKeyRecord) -> ApiKey:
    return ApiKey(
        tenant_id=record.tenant_id,
        environment=Environment(record.environment),
        key_id=record.key_id,
        name=record.name,
        secret_hash=record.secret_hash,
        last4=record.last4,
        status=KeyStatus(record.status),
        created_at=record.created_at,
        created_by=record.created_by,
        rotated_at=record.rotated_at,
        revoked_at=record.revoked_at,
        last_used_at=record.last_used_at,
    )


def _key_record(key: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        keys.env_pk(key.tenant_id, key.environment),
        keys.api_key_sk(key.key_id),
        key_id=key.key_id,
        tenant_id=key.tenant_id,
        environment=str(key.environment),
        name=key.name,
        secret_hash=key.secret_hash,
        last4=key.last4,
        status=str(key.status),
        created_at=key.created_at,
        created_by=key.created_by,
        rotated_at=key.rotated_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


class DynamoApiKeyRepository(_Repository):
    def get(self, tenant_id: str, environment: Environment, key_id: str) -> ApiKey | None:
        record = _get(ApiKeyRecord, keys.env_pk(tenant_id, environment), keys.api_key_sk(key_id))
        return _key_from(record) if record else None

    def find(self, key_id: str) -> ApiKey | None:
        """Authentication lookup by public id (one GSI query; the id is globally unique)."""
        for record in ApiKeyRecord.key_id_index.query(key_id, limit=1):
            return _key_from(record)
        return None

    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None) -> Page[ApiKey]:
        """Newest first (key ids start with their creation time)."""
        pk = keys.env_pk(tenant_id, environment)
        result = _query_page(
            lambda **kw: ApiKeyRecord.query(pk, consistent_read=True, scan_index_forward=False, **kw), _key_from,
            limit=limit, cursor=cursor, partition=("pk", pk),
        )
        result.total = ApiKeyRecord.count(pk, consistent_read=True)
        return result

    def list_all(self, tenant_id: str) -> list[ApiKey]:
        found: list[ApiKey] = []
        for environment in Environment:
            query = ApiKeyRecord.query(keys.env_pk(tenant_id, environment), consistent_read=True)
            found.extend(_key_from(r) for r in query)
        return found

    def add(self, key: ApiKey) -> None:
        self._stage("save", _key_record(key), condition=ApiKeyRecord.pk.does_not_exist())

    def save(self, key: ApiKey) -> None:
        self._stage("save", _key_record(key), condition=ApiKeyRecord.pk.exists())

    def touch(self, key: ApiKey, now: datetime) -> None:
        """Record use outside any transaction; losing a race here is harmless."""
        record = ApiKeyRecord(keys.env_pk(key.tenant_id, key.environment), keys.api_key_sk(key.key_id))
        record.update(
            actions=[ApiKeyRecord.last_used_at.set(now)], condition=ApiKeyRecord.pk.exists()
        )


# --- sessions ----------------------------------------------------------------------------


def _session_from(record: SessionRecord) -> Session:
    return Session(
        tenant_id=record.tenant_id,
        session_id=record.session_id,
        user_id=record.user_id,
        role=record.role,
        secret_hash=record.secret_hash,
        created_at=record.created_at,
        expires_at=record.expires_at,
        meta=dict(record.meta or {}),
    )


class DynamoSessionRepository(_Repository):
    def get(self, tenant_id: str, session_id: str) -> Session | None:
        record = _get(SessionRecord, keys.tenant_pk(tenant_id), keys.session_sk(session_id))
        return _session_from(record) if record else None

    def add(self, session: Session) -> None:
        record = SessionRecord(
            keys.tenant_pk(session.tenant_id),
            keys.session_sk(session.session_id),
            tenant_id=session.tenant_id,
            session_id=session.session_id,
            user_id=session.user_id,
            role=session.role,
            secret_hash=session.secret_hash,
            created_at=session.created_at,
            expires_at=session.expires_at,
            meta=session.meta,
            ttl=session.expires_at,
        )
        self._stage("save", record, condition=SessionRecord.pk.does_not_exist())

    def delete(self, tenant_id: str, session_id: str) -> None:
        self._stage("delete", SessionRecord(keys.tenant_pk(tenant_id), keys.session_sk(session_id)))


# --- platform tokens (owned by the platform tenant) ----------------------------------------


def _token_from(record: PlatformTokenRecord) -> PlatformToken:
    return PlatformToken(
        token_id=record.token_id,
        name=record.name,
        abilities=frozenset(record.abilities or []),
        secret_hash=record.secret_hash,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
        last_used_at=record.last_used_at,
    )


def _token_record(token: PlatformToken) -> PlatformTokenRecord:
    from chalicelib.domain.identity import PLATFORM_TENANT_ID

    return PlatformTokenRecord(
        keys.tenant_pk(PLATFORM_TENANT_ID),
        keys.platform_token_sk(token.token_id),
        token_id=token.token_id,
        name=token.name,
        abilities=sorted(token.abilities),
        secret_hash=token.secret_hash,
        created_at=token.created_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
    )


class DynamoPlatformTokenRepository(_Repository):
    def get(self, token_id: str) -> PlatformToken | None:
        from chalicelib.domain.identity import PLATFORM_TENANT_ID

        record = _get(
            PlatformTokenRecord, keys.tenant_pk(PLATFORM_TENANT_ID), keys.platform_token_sk(token_id)
        )
        return _token_from(record) if record else None

    def add(self, token: PlatformToken) -> None:
        self._stage("save", _token_record(token), condition=PlatformTokenRecord.pk.does_not_exist())

    def save(self, token: PlatformToken) -> None:
        self._stage("save", _token_record(token), condition=PlatformTokenRecord.pk.exists())

    def touch(self, token: PlatformToken, now: datetime) -> None:
        record = _token_record(token)
        record.update(actions=[PlatformTokenRecord.last_used_at.set(now)],
                      condition=PlatformTokenRecord.pk.exists())

    def list(self) -> list[PlatformToken]:
        """Every token, by id: one Query of the platform tenant's ``PTOKEN#`` items (an operator's handful)."""
        from chalicelib.domain.identity import PLATFORM_TENANT_ID

        return [_token_from(r) for r in PlatformTokenRecord.query(
            keys.tenant_pk(PLATFORM_TENANT_ID), PlatformTokenRecord.sk.startswith(keys.platform_token_sk("")),
            consistent_read=True)]

    def count_request(self, token_id: str, window_id: str, *, limit: int, expires_at: datetime) -> int | None:
        """One conditional ADD on the window's item (created by the first request, deleted by TTL)."""
        from chalicelib.domain.identity import PLATFORM_TENANT_ID

        record = RateWindowRecord(keys.rate_window_pk(PLATFORM_TENANT_ID, token_id), keys.rate_window_sk(window_id))
        try:
            record.update(actions=[RateWindowRecord.hits.add(1), RateWindowRecord.ttl.set(expires_at)],
                          condition=RateWindowRecord.hits.does_not_exist() | (RateWindowRecord.hits < limit))
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return int(record.hits)


# --- signing keys (platform-wide registry) ---------------------------------------------------


def _signing_key_from(record: SigningKeyRecord) -> SigningKey:
    return SigningKey(key_id=record.key_id, public_key=base64.b64decode(record.public_key),
                      first_seen_at=record.first_seen_at, algorithm=record.algorithm)


class DynamoSigningKeyRepository(_Repository):
    def get(self, key_id: str) -> SigningKey | None:
        record = _get(SigningKeyRecord, keys.SIGNING_KEYS_PK, keys.signing_key_sk(key_id))
        return _signing_key_from(record) if record else None

    def list(self) -> list[SigningKey]:
        """Every registered key: one Query of the registry partition (a handful of items), by key id."""
        return [_signing_key_from(r) for r in SigningKeyRecord.query(keys.SIGNING_KEYS_PK, consistent_read=True)]

    def add(self, key: SigningKey) -> None:
        """Write-once: ConflictError at commit when the id is already registered."""
        record = SigningKeyRecord(keys.SIGNING_KEYS_PK, keys.signing_key_sk(key.key_id), key_id=key.key_id,
                                  algorithm=key.algorithm, public_key=base64.b64encode(key.public_key).decode(),
                                  first_seen_at=key.first_seen_at)
        self._stage("save", record, condition=SigningKeyRecord.pk.does_not_exist())


# --- audit --------------------------------------------------------------------------------


def _audit_from(record: AuditRecord) -> AuditEntry:
    return AuditEntry(
        tenant_id=record.tenant_id,
        entry_id=record.entry_id,
        actor=record.actor,
        action=record.action,
        target=record.target,
        environment=record.environment,
        at=record.at,
        details=dict(record.details or {}),
    )


class DynamoAuditRepository(_Repository):
    def add(self, entry: AuditEntry) -> None:
        record = AuditRecord(
            keys.tenant_pk(entry.tenant_id),
            keys.audit_sk(iso_us(entry.at), entry.entry_id),
            entry_id=entry.entry_id,
            tenant_id=entry.tenant_id,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            environment=entry.environment,
            at=entry.at,
            details=entry.details,
        )
        self._stage("save", record, condition=AuditRecord.pk.does_not_exist())

    def list(self, tenant_id: str, limit: int, cursor: str | None) -> Page[AuditEntry]:
        pk = keys.tenant_pk(tenant_id)
        return _query_page(
            lambda **kw: AuditRecord.query(pk, scan_index_forward=False, **kw), _audit_from,
            limit=limit, cursor=cursor, partition=("pk", pk),
        )


# --- customers ----------------------------------------------------------------------------


def _customer_from(record: CustomerRecord) -> Customer:
    return Customer(
        tenant_id=record.tenant_id,
        environment=Environment(record.environment),
        customer_id=record.customer_id,
        display_name=record.display_name,
        source=CustomerSource(record.source),
        created_at=record.created_at,
        updated_at=record.updated_at,
        sharing_state_hint=SharingState(record.sharing_state_hint or SharingState.INHERIT),
        event_cadence=EventCadence(record.event_cadence) if record.event_cadence else None,
        unit_label=record.unit_label,
        policy=Policy(record.policy or Policy.TWO_TIER),
        last_seq=int(record.last_seq) if record.last_seq is not None else None,
        delta_count=int(record.delta_count or 0),
        balance=record.balance if record.balance is not None else Decimal(0),
        last_delta_at=record.last_delta_at,
        verified_count=int(record.verified_count or 0),
        failed_count=int(record.failed_count or 0),
        cycle_period=record.cycle_period,
        cycle_count=int(record.cycle_count or 0),
        cycle_net=record.cycle_net if record.cycle_net is not None else Decimal(0),
        checkpoint_period=record.checkpoint_period,
        checkpoint_last_seq=int(record.checkpoint_last_seq) if record.checkpoint_last_seq is not None else None,
    )


def _stats_from(record: CustomerStatsRecord | None) -> CustomerStats:
    if record is None:
        return CustomerStats()
    return CustomerStats(
        customers=int(record.customers or 0), manual=int(record.manual or 0),
        integration=int(record.integration or 0), deltas=int(record.deltas or 0),
        verified=int(record.verified or 0), failed=int(record.failed or 0),
        balance=record.balance if record.balance is not None else Decimal(0),
    )


DIRECTORY_PAGE = 100  # index items read per query while filling a filtered directory page


class DynamoCustomerRepository(_Repository):
    def get(self, tenant_id: str, environment: Environment, customer_id: str) -> Customer | None:
        record = _get(CustomerRecord, keys.env_pk(tenant_id, environment), keys.customer_sk(customer_id))
        return _customer_from(record) if record else None

    def get_many(self, tenant_id: str, environment: Environment, customer_ids: list[str]) -> dict[str, Customer]:
        """The customers that exist among ``customer_ids``, by id: BatchGetItem, 100 keys a call."""
        pk = keys.env_pk(tenant_id, str(environment))
        found = batch_get([(CustomerRecord, pk, keys.customer_sk(c)) for c in customer_ids])
        table = CustomerRecord.Meta.table_name
        return {c: _customer_from(CustomerRecord.from_raw_data(found[(table, pk, keys.customer_sk(c))]))
                for c in customer_ids if (table, pk, keys.customer_sk(c)) in found}

    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None,
             prefix: str | None = None) -> Page[Customer]:
        """Customers by id; ``prefix`` narrows with a key condition, never a filter."""
        return self.directory(tenant_id, environment, by_name=False, descending=False, limit=limit, cursor=cursor,
                              prefix=prefix, keep=None, budget=limit)

    def directory(self, tenant_id: str, environment: Environment, *, by_name: bool, descending: bool,
                  limit: int, cursor: str | None, prefix: str | None,
                  keep: Callable[[Customer], bool] | None, budget: int) -> Page[Customer]:
        """Customers by display name (the directory index) or by id (the table), kept by ``keep``.

        Unfiltered: one query. Filtered: index pages of 100 are read and filtered until
        the page is full or ``budget`` customers were examined; the cursor then resumes
        after the last customer examined (so a page may come back short, even empty,
        with a cursor).
        """
        pk = keys.env_pk(tenant_id, str(environment))
        if by_name:
            key_names: tuple[str, ...] = ("pk", "sk", "name_key")
            sort_key, sort_prefix = "name_key", prefix or ""

            def run(**kw: Any) -> Any:
                condition = CustomerDirectoryIndex.name_key.startswith(sort_prefix) if sort_prefix else None
                return CustomerRecord.directory_index.query(pk, condition, scan_index_forward=not descending, **kw)
        else:
            key_names, sort_key, sort_prefix = TABLE_KEYS, "sk", keys.customer_sk(prefix or "")

            def run(**kw: Any) -> Any:
                return CustomerRecord.query(pk, CustomerRecord.sk.startswith(sort_prefix), consistent_read=True,
                                            scan_index_forward=not descending, **kw)
        order = "desc" if descending else None
        if keep is None:
            return _query_page(run, _customer_from, limit=limit, cursor=cursor, partition=("pk", pk),
                               key_names=key_names, sort_prefix=sort_prefix or None, sort_key=sort_key, order=order)
        start, page = decode_cursor(cursor, partition=("pk", pk), key_names=key_names,
                                    sort_prefix=(sort_key, sort_prefix) if sort_prefix else None, order=order)
        kept: list[Customer] = []
        examined = 0
        while True:
            results = run(limit=DIRECTORY_PAGE, page_size=DIRECTORY_PAGE, last_evaluated_key=start)
            records = list(results)
            for record in records:
                examined += 1
                customer = _customer_from(record)
                if keep(customer):
                    kept.append(customer)
                if len(kept) == limit or examined >= budget:
                    last = {name: {"S": getattr(record, name)} for name in key_names}
                    return Page(items=kept, next_cursor=encode_cursor(last, page, order), extra={"page": page})
            start = results.last_evaluated_key
            if not start or len(records) < DIRECTORY_PAGE:
                return Page(items=kept, next_cursor=None, extra={"page": page})

    def stats(self, tenant_id: str, environment: Environment) -> CustomerStats:
        return _stats_from(_get(CustomerStatsRecord, keys.env_pk(tenant_id, str(environment)), keys.STATS_SK))

    def count(self, tenant_id: str, environment: Environment, **changes: int | Decimal) -> None:
        """Stage ADDs to the environment's totals (``customers``, ``manual``, ``integration``, ``deltas``,
        ``verified``, ``failed``, ``balance``); zeros are left out."""
        actions = [getattr(CustomerStatsRecord, name).add(value) for name, value in changes.items() if value]
        if actions:
            self._stage("update", CustomerStatsRecord(keys.env_pk(tenant_id, str(environment)), keys.STATS_SK),
                        actions=actions)

    def count_verified(self, tenant_id: str, environment: Environment, customer_id: str, count: int) -> None:
        record = CustomerRecord(keys.env_pk(tenant_id, str(environment)), keys.customer_sk(customer_id))
        self._stage("update", record, condition=CustomerRecord.pk.exists(),
                    actions=[CustomerRecord.verified_count.add(count)])

    def mark_checkpointed(self, customer: Customer, period: str, through_seq: int | None) -> None:
        """The newest checkpoint's period and the last sequence number settled under it (directory),
        moved from exactly the marker ``customer`` holds: a concurrent move is a conflict, not a regression."""
        record = CustomerRecord(keys.env_pk(customer.tenant_id, str(customer.environment)),
                                keys.customer_sk(customer.customer_id))
        if customer.checkpoint_period is None:
            condition = CustomerRecord.pk.exists() & CustomerRecord.checkpoint_period.does_not_exist()
        else:
            condition = ((CustomerRecord.checkpoint_period == customer.checkpoint_period)
                         & (CustomerRecord.checkpoint_last_seq == (customer.checkpoint_last_seq or 0)))
        self._stage("update", record, condition=condition, actions=[
            CustomerRecord.checkpoint_period.set(period),
            CustomerRecord.checkpoint_last_seq.set(through_seq or 0),
        ])

    def add(self, customer: Customer) -> None:
        record = CustomerRecord(
            keys.env_pk(customer.tenant_id, customer.environment),
            keys.customer_sk(customer.customer_id),
            name_key=name_key(customer.display_name, customer.customer_id),
            policy=str(customer.policy),
            tenant_id=customer.tenant_id,
            environment=str(customer.environment),
            customer_id=customer.customer_id,
            display_name=customer.display_name,
            source=str(customer.source),
            created_at=customer.created_at,
            updated_at=customer.updated_at,
            sharing_state_hint=str(customer.sharing_state_hint),
            event_cadence=str(customer.event_cadence) if customer.event_cadence else None,
            unit_label=customer.unit_label,
        )
        self._stage("save", record, condition=CustomerRecord.pk.does_not_exist())

    def release_from_balance(self, tenant_id: str, environment: Environment, customer_id: str,
                             amount: Decimal, *, period: str, in_cycle: bool) -> None:
        """A terminal failure: out of the running balance, counted as failed, and out of the current cycle's
        counters when it belongs to it (``in_cycle``, conditioned so a concurrent roll-over is a conflict)."""
        record = CustomerRecord(keys.env_pk(tenant_id, str(environment)), keys.customer_sk(customer_id))
        actions = [CustomerRecord.balance.add(-amount), CustomerRecord.failed_count.add(1)]
        if in_cycle:
            actions += [CustomerRecord.cycle_count.add(-1), CustomerRecord.cycle_net.add(-amount)]
            condition = CustomerRecord.cycle_period == period
        else:
            condition = CustomerRecord.pk.exists() & (CustomerRecord.cycle_period.does_not_exist()
                                                      | (CustomerRecord.cycle_period != period))
        self._stage("update", record, condition=condition, actions=actions)


# --- batch reads ----------------------------------------------------------------------------


def batch_get(wanted: list[tuple[Any, str, str]]) -> dict[tuple[str, str, str], Any]:
    """Consistent BatchGetItem across tables: {(table, pk, sk): raw item}, 100 keys a call."""
    connection = TenantRecord._get_connection().connection
    found: dict[tuple[str, str, str], Any] = {}
    unique = list(dict.fromkeys((model.Meta.table_name, pk, sk) for model, pk, sk in wanted))
    for start in range(0, len(unique), 100):
        request: dict[str, Any] = {}
        for table, pk, sk in unique[start : start + 100]:
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(
                {"pk": {"S": pk}, "sk": {"S": sk}})
        for _attempt in range(8):
            response = connection.dispatch("BatchGetItem", {"RequestItems": request})
            for table, items in response.get("Responses", {}).items():
                for item in items:
                    found[(table, item["pk"]["S"], item["sk"]["S"])] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        if request:
            raise RuntimeError("BatchGetItem left keys unprocessed after retries")
    return found


# --- deltas, reference guards ------------------------------------------------------------------


def _delta_from(record: DeltaRecord) -> Delta:
    return Delta(
        tenant_id=record.tenant_id,
        environment=Environment(record.environment),
        record_id=record.record_id,
        receipt_id=record.receipt_id,
        customer_id=record.customer_id,
        sequence_number=int(record.sequence_number),
        delta=record.delta,
        reason=record.reason,
        period=record.period,
        created_at=record.created_at,
        status=DeltaStatus(record.status),
        reference_id=record.reference_id,
        metadata=record.metadata,
        adjusts=record.adjusts,
        credits_reserved=int(record.credits_reserved or 0),
        credit_state=CreditState(record.credit_state),
        error=record.error,
        updated_at=record.updated_at,
        content_hash=record.content_hash,
        leaf_index=int(record.leaf_index) if record.leaf_index is not None else None,
        proof=list(record.proof) if record.proof is not None else None,
        batch_id=record.batch_id,
        proof_root=record.proof_root,
        verified_at=record.verified_at,
    )


class DynamoDeltaRepository(_Repository):
    def get(self, tenant_id: str, environment: Environment, record_id: str) -> Delta | None:
        record = _get(DeltaRecord, keys.delta_pk(tenant_id, environment, record_id), keys.DELTA_SK)
        return _delta_from(record) if record else None

    def snapshot(self, tenant_id: str, environment: Environment, customer_ids: list[str],
                 references: list[tuple[str, str]], period: str) -> IngestSnapshot:
        """Everything acceptance needs, in one or two BatchGetItem calls."""
        env = str(environment)
        wanted: list[tuple[Any, str, str]] = [
            (TenantRecord, keys.tenant_pk(tenant_id), keys.TENANT_SK),
            (UsageCounterRecord, keys.tenant_pk(tenant_id), keys.usage_sk(period)),
            (CreditAccountRecord, keys.credits_pk(tenant_id), keys.ACCOUNT_SK),
        ]
        wanted += [(CustomerRecord, keys.env_pk(tenant_id, env), keys.customer_sk(c)) for c in customer_ids]
        wanted += [(ReferenceGuardRecord, keys.reference_guard_pk(tenant_id, env, c, r), keys.GUARD_SK)
                   for c, r in references]
        found = batch_get(wanted)

        def raw(model: Any, pk: str, sk: str) -> Any:
            return found.get((model.Meta.table_name, pk, sk))

        tenant = raw(TenantRecord, keys.tenant_pk(tenant_id), keys.TENANT_SK)
        usage = raw(UsageCounterRecord, keys.tenant_pk(tenant_id), keys.usage_sk(period))
        account = raw(CreditAccountRecord, keys.credits_pk(tenant_id), keys.ACCOUNT_SK)
        customers: dict[str, CustomerState] = {}
        for customer_id in customer_ids:
            item = raw(CustomerRecord, keys.env_pk(tenant_id, env), keys.customer_sk(customer_id))
            record = CustomerRecord.from_raw_data(item) if item else None
            customers[customer_id] = CustomerState(
                exists=record is not None,
                last_seq=int(record.last_seq) if record and record.last_seq is not None else None,
                cycle_period=record.cycle_period if record else None,
            )
        guards = {}
        for customer_id, reference_id in references:
            item = raw(ReferenceGuardRecord, keys.reference_guard_pk(tenant_id, env, customer_id, reference_id),
                       keys.GUARD_SK)
            if item:
                guards[(customer_id, reference_id)] = jsoncodec.loads(ReferenceGuardRecord.from_raw_data(item).response)
        return IngestSnapshot(
            tenant=_tenant_from(TenantRecord.from_raw_data(tenant)) if tenant else None,
            customers=customers,
            guards=guards,
            usage_consumed=int(UsageCounterRecord.from_raw_data(usage).consumed or 0) if usage else 0,
            credits=_account_from(tenant_id, CreditAccountRecord.from_raw_data(account) if account else None),
        )

    def add(self, delta: Delta) -> None:
        env = str(delta.environment)
        record = DeltaRecord(
            keys.delta_pk(delta.tenant_id, env, delta.record_id),
            keys.DELTA_SK,
            tenant_id=delta.tenant_id,
            environment=env,
            record_id=delta.record_id,
            receipt_id=delta.receipt_id,
            customer_id=delta.customer_id,
            customer_key=keys.customer_key(delta.tenant_id, env, delta.customer_id),
            seq_key=keys.seq_key(delta.sequence_number),
            sequence_number=delta.sequence_number,
            delta=delta.delta,
            reason=delta.reason,
            reference_id=delta.reference_id,
            metadata=delta.metadata,
            adjusts=delta.adjusts,
            period=delta.period,
            status=str(delta.status),
            credits_reserved=delta.credits_reserved,
            credit_state=str(delta.credit_state),
            error=delta.error,
            created_at=delta.created_at,
            updated_at=delta.updated_at or delta.created_at,
        )
        if delta.awaiting_verification:
            record.pending_shard = keys.pending_shard(delta.record_id)
            record.pending_since = iso_us(delta.created_at)
        self._stage("save", record, condition=DeltaRecord.pk.does_not_exist())

    def customer_period(self, tenant_id: str, environment: Environment, customer_id: str,
                        period: str) -> list[Delta]:
        """A customer's deltas of one period in sequence order (the customer index, filtered on the period:
        the read covers the customer's other periods' keys too)."""
        key = keys.customer_key(tenant_id, str(environment), customer_id)
        return [_delta_from(r) for r in DeltaRecord.customer_seq_index.query(
            key, filter_condition=DeltaRecord.period == period)]

    def customer_range(self, tenant_id: str, environment: Environment, customer_id: str, first: int, last: int,
                       *, newest_first: bool = False) -> list[Delta]:
        """A customer's deltas with sequence numbers ``first..last`` (a key range on the customer index)."""
        if last < first:
            return []
        key = keys.customer_key(tenant_id, str(environment), customer_id)
        return [_delta_from(r) for r in DeltaRecord.customer_seq_index.query(
            key, DeltaRecord.seq_key.between(keys.seq_key(first), keys.seq_key(last)),
            scan_index_forward=not newest_first)]

    def get_many(self, tenant_id: str, environment: Environment, record_ids: list[str]) -> list[Delta]:
        """Consistent reads of many deltas (BatchGetItem), in the order asked; missing ids are skipped."""
        env = str(environment)
        wanted = [(DeltaRecord, keys.delta_pk(tenant_id, env, r), keys.DELTA_SK) for r in record_ids]
        found = batch_get(wanted)
        table = DeltaRecord.Meta.table_name
        return [_delta_from(DeltaRecord.from_raw_data(found[(table, pk, sk)]))
                for _m, pk, sk in wanted if (table, pk, sk) in found]

    def pending(self, *, older_than: datetime, limit: int) -> list[tuple[str, Environment, str]]:
        """Deltas still awaiting verification, oldest first per shard (the sparse index; no scan)."""
        refs: list[tuple[str, Environment, str]] = []
        for shard in range(keys.PENDING_SHARDS):
            query = DeltaRecord.pending_index.query(
                f"P#{shard}", DeltaRecord.pending_since < iso_us(older_than), limit=limit, page_size=limit)
            refs += [(r.tenant_id, Environment(r.environment), r.record_id) for r in query]
        return refs

    def _pending_update(self, delta: Delta, actions: list) -> None:
        record = DeltaRecord(keys.delta_pk(delta.tenant_id, str(delta.environment), delta.record_id), keys.DELTA_SK)
        actions += [DeltaRecord.pending_shard.remove(), DeltaRecord.pending_since.remove()]
        # Exactly once: only a delta still awaiting verification can be resolved.
        condition = DeltaRecord.status.is_in(str(DeltaStatus.QUEUED), str(DeltaStatus.PROCESSING))
        self._stage("update", record, condition=condition, actions=actions)

    def mark_verified(self, delta: Delta, *, now: datetime) -> None:
        actions = [
            DeltaRecord.status.set(str(DeltaStatus.VERIFIED)),
            DeltaRecord.content_hash.set(delta.content_hash),
            DeltaRecord.leaf_index.set(delta.leaf_index),
            DeltaRecord.proof.set(delta.proof),
            DeltaRecord.batch_id.set(delta.batch_id),
            DeltaRecord.proof_root.set(delta.proof_root),
            DeltaRecord.verified_at.set(now),
            DeltaRecord.updated_at.set(now),
        ]
        if delta.credit_state == CreditState.RESERVED:
            actions.append(DeltaRecord.credit_state.set(str(CreditState.SETTLED)))
        self._pending_update(delta, actions)

    def mark_failed(self, delta: Delta, *, error: str, now: datetime) -> None:
        actions = [
            DeltaRecord.status.set(str(DeltaStatus.FAILED)),
            DeltaRecord.error.set(error),
            DeltaRecord.updated_at.set(now),
        ]
        if delta.credit_state == CreditState.RESERVED:
            actions.append(DeltaRecord.credit_state.set(str(CreditState.REFUNDED)))
        self._pending_update(delta, actions)

    def add_reference_guard(self, delta: Delta, response: dict, now: datetime) -> None:
        env = str(delta.environment)
        record = ReferenceGuardRecord(
            keys.reference_guard_pk(delta.tenant_id, env, delta.customer_id, delta.reference_id or ""),
            keys.GUARD_SK, record_id=delta.record_id, response=jsoncodec.dumps(response), created_at=now,
        )
        self._stage("save", record, condition=ReferenceGuardRecord.pk.does_not_exist())

    def advance_customer(self, tenant_id: str, environment: Environment, customer_id: str, *,
                         expected_last_seq: int | None, count: int, balance_change: Decimal, now: datetime,
                         is_new: bool, period: str, cycle: str) -> None:
        """Claim sequence numbers ``expected+1 .. expected+count``; creates the customer on first sight
        (``is_new``: exactly then, so the totals count it once). ``cycle``: ``add`` to the month counters,
        ``restart`` them for ``period``, or ``keep`` them (they belong to a later month)."""
        env = str(environment)
        record = CustomerRecord(keys.env_pk(tenant_id, env), keys.customer_sk(customer_id))
        actions = [
            CustomerRecord.tenant_id.set(CustomerRecord.tenant_id | tenant_id),
            CustomerRecord.environment.set(CustomerRecord.environment | env),
            CustomerRecord.customer_id.set(CustomerRecord.customer_id | customer_id),
            CustomerRecord.display_name.set(CustomerRecord.display_name | customer_id),
            CustomerRecord.source.set(CustomerRecord.source | str(CustomerSource.INTEGRATION)),
            CustomerRecord.created_at.set(CustomerRecord.created_at | now),
            CustomerRecord.updated_at.set(now),
            CustomerRecord.last_delta_at.set(now),
            CustomerRecord.name_key.set(CustomerRecord.name_key | name_key(customer_id, customer_id)),
            CustomerRecord.last_seq.set((expected_last_seq or 0) + count),
            CustomerRecord.delta_count.add(count),
            CustomerRecord.balance.add(balance_change),
        ]
        if cycle == "add":
            actions += [CustomerRecord.cycle_count.add(count), CustomerRecord.cycle_net.add(balance_change)]
        elif cycle == "restart":
            actions += [CustomerRecord.cycle_period.set(period), CustomerRecord.cycle_count.set(count),
                        CustomerRecord.cycle_net.set(balance_change)]
        if is_new:
            condition = CustomerRecord.pk.does_not_exist()
        elif expected_last_seq is None:
            condition = CustomerRecord.pk.exists() & CustomerRecord.last_seq.does_not_exist()
        else:
            condition = CustomerRecord.last_seq == expected_last_seq
        self._stage("update", record, condition=condition, actions=actions)


# --- sealed batches and the hash chain -----------------------------------------------------------


def _batch_from(record: BatchRecord) -> SealedBatch:
    return SealedBatch(
        batch_id=record.batch_id, tenant_id=record.tenant_id, environment=record.environment,
        root=record.root_hex, tree_size=int(record.tree_size), sequence=int(record.sequence),
        previous_root=record.previous_root, sealed_at=record.sealed_at, key_id=record.key_id,
        record_ids=tuple(record.record_ids), leaf_hashes=tuple(record.leaf_hashes), signature=record.signature,
    )


class DynamoBatchRepository(_Repository):
    def head(self, tenant_id: str, environment: Environment) -> ChainHead:
        record = _get(ChainHeadRecord, keys.chain_pk(tenant_id, str(environment)), keys.HEAD_SK)
        if record is None:
            return ChainHead()
        return ChainHead(int(record.sequence), record.last_root, record.last_batch_id)

    def seal(self, batch: SealedBatch, head: ChainHead) -> None:
        """Stage the batch and move the chain head from exactly ``head`` (one sealer wins a race)."""
        self._stage("save", BatchRecord(
            keys.batch_pk(batch.tenant_id, batch.environment, batch.batch_id), keys.BATCH_SK,
            batch_id=batch.batch_id, tenant_id=batch.tenant_id, environment=batch.environment,
            root_hex=batch.root, tree_size=batch.tree_size, sequence=batch.sequence,
            previous_root=batch.previous_root, sealed_at=batch.sealed_at, key_id=batch.key_id,
            signature=batch.signature, record_ids=list(batch.record_ids), leaf_hashes=list(batch.leaf_hashes),
        ), condition=BatchRecord.pk.does_not_exist())
        condition = (ChainHeadRecord.pk.does_not_exist() if head.sequence == 0
                     else ChainHeadRecord.sequence == head.sequence)
        self._stage("save", ChainHeadRecord(
            keys.chain_pk(batch.tenant_id, batch.environment), keys.HEAD_SK,
            sequence=batch.sequence, last_root=batch.root, last_batch_id=batch.batch_id,
        ), condition=condition)

    def get(self, tenant_id: str, environment: Environment, batch_id: str) -> SealedBatch | None:
        record = _get(BatchRecord, keys.batch_pk(tenant_id, str(environment), batch_id), keys.BATCH_SK)
        return _batch_from(record) if record else None

    def by_root(self, root: str) -> SealedBatch | None:
        """Public lookup by Merkle root (a GSI query; roots are unique in practice)."""
        for record in BatchRecord.root_index.query(root, limit=1):
            return _batch_from(record)
        return None


# --- usage counters -----------------------------------------------------------------------------


class DynamoUsageRepository(_Repository):
    def get(self, tenant_id: str, period: str) -> UsageCounter:
        record = _get(UsageCounterRecord, keys.tenant_pk(tenant_id), keys.usage_sk(period))
        if record is None:
            return UsageCounter(tenant_id=tenant_id, period=period)
        return UsageCounter(
            tenant_id=tenant_id,
            period=period,
            consumed=int(record.consumed or 0),
            by_environment={str(env): int(getattr(record, f"consumed_{env}") or 0) for env in Environment},
        )

    def add(self, tenant_id: str, period: str, environment: Environment, count: int, *, cap: int | None) -> None:
        """Count ``count`` accepted units (negative: release); ``cap`` keeps consumed ≤ cap, exactly."""
        record = UsageCounterRecord(keys.tenant_pk(tenant_id), keys.usage_sk(period))
        per_env = getattr(UsageCounterRecord, f"consumed_{environment}")
        actions = [
            UsageCounterRecord.tenant_id.set(tenant_id),
            UsageCounterRecord.period.set(period),
            UsageCounterRecord.consumed.add(count),
            per_env.add(count),
        ]
        if count < 0:
            actions.append(UsageCounterRecord.released.add(-count))
        condition = None
        if cap is not None:
            condition = UsageCounterRecord.consumed.does_not_exist() | (UsageCounterRecord.consumed <= cap - count)
        self._stage("update", record, condition=condition, actions=actions)


# --- credits -------------------------------------------------------------------------------------


def _account_from(tenant_id: str, record: CreditAccountRecord | None) -> CreditAccount:
    if record is None:
        return CreditAccount(tenant_id=tenant_id)
    return CreditAccount(tenant_id=tenant_id, credit_balance=int(record.credit_balance or 0),
                         reserved=int(record.reserved or 0), entry_count=int(record.entry_count or 0))


def _entry_from(record: LedgerEntryRecord) -> LedgerEntry:
    return LedgerEntry(
        tenant_id=record.tenant_id,
        entry_id=record.entry_id,
        entry_type=EntryType(record.entry_type),
        amount=int(record.amount),
        description=record.description,
        balance_after=int(record.balance_after),
        created_at=record.created_at,
    )


class DynamoCreditRepository(_Repository):
    def account(self, tenant_id: str) -> CreditAccount:
        record = _get(CreditAccountRecord, keys.credits_pk(tenant_id), keys.ACCOUNT_SK)
        return _account_from(tenant_id, record)

    def entries(self, tenant_id: str, limit: int, cursor: str | None) -> Page[LedgerEntry]:
        """Newest first."""
        pk = keys.credits_pk(tenant_id)
        return _query_page(
            lambda **kw: LedgerEntryRecord.query(pk, LedgerEntryRecord.sk.startswith("E#"), consistent_read=True,
                                                 scan_index_forward=False, **kw),
            _entry_from, limit=limit, cursor=cursor, partition=("pk", pk), sort_prefix="E#",
        )

    def record(self, before: CreditAccount, after: CreditAccount, *entries: LedgerEntry) -> None:
        """Move the account from ``before`` to ``after`` (exactly: fails if it changed) and add the entries."""
        pk = keys.credits_pk(before.tenant_id)
        account = CreditAccountRecord(pk, keys.ACCOUNT_SK)
        if before.entry_count == 0:
            condition = CreditAccountRecord.pk.does_not_exist()
        else:
            condition = ((CreditAccountRecord.entry_count == before.entry_count)
                         & (CreditAccountRecord.credit_balance == before.credit_balance)
                         & (CreditAccountRecord.reserved == before.reserved))
        self._stage("update", account, condition=condition, actions=[
            CreditAccountRecord.tenant_id.set(before.tenant_id),
            CreditAccountRecord.credit_balance.set(after.credit_balance),
            CreditAccountRecord.reserved.set(after.reserved),
            CreditAccountRecord.available.set(after.available),
            CreditAccountRecord.entry_count.set(after.entry_count),
        ])
        for entry in entries:
            self._stage("save", LedgerEntryRecord(
                pk, keys.ledger_entry_sk(entry.entry_id),
                tenant_id=entry.tenant_id, entry_id=entry.entry_id, entry_type=str(entry.entry_type),
                amount=entry.amount, balance_after=entry.balance_after, description=entry.description,
                created_at=entry.created_at,
            ), condition=LedgerEntryRecord.pk.does_not_exist())


# --- idempotency ------------------------------------------------------------------------------------


def _idempotency_from(record: IdempotencyRecord) -> IdempotencyEntry:
    return IdempotencyEntry(
        state=record.state, request_hash=record.request_hash,
        status_code=int(record.status_code) if record.status_code is not None else None,
        response=jsoncodec.loads(record.response) if record.response else None, locked_until=record.locked_until,
        expires_at=record.expires_at,
    )


class DynamoIdempotencyRepository(_Repository):
    """Writes here are immediate: the claim must land before the work it guards starts."""

    def get(self, tenant_id: str, environment: Environment, scope: str, key: str) -> IdempotencyEntry | None:
        record = _get(IdempotencyRecord, keys.idempotency_pk(tenant_id, str(environment), scope, key),
                      keys.IDEMPOTENCY_SK)
        return _idempotency_from(record) if record else None

    def claim(self, tenant_id: str, environment: Environment, scope: str, key: str, *, request_hash: str,
              now: datetime, lock_seconds: int, keep_seconds: int) -> bool:
        """True when this request owns the key: it was free, expired, or its lock lapsed."""
        from datetime import timedelta

        from pynamodb.exceptions import PutError

        record = IdempotencyRecord(
            keys.idempotency_pk(tenant_id, str(environment), scope, key), keys.IDEMPOTENCY_SK,
            state="IN_PROGRESS", request_hash=request_hash, locked_until=now + timedelta(seconds=lock_seconds),
            expires_at=now + timedelta(seconds=keep_seconds), ttl=now + timedelta(seconds=keep_seconds),
        )
        condition = (IdempotencyRecord.pk.does_not_exist() | (IdempotencyRecord.expires_at < now)
                     | ((IdempotencyRecord.state == "IN_PROGRESS") & (IdempotencyRecord.locked_until < now)))
        try:
            record.save(condition=condition)
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def complete(self, tenant_id: str, environment: Environment, scope: str, key: str, *, status_code: int,
                 response: dict) -> None:
        record = IdempotencyRecord(keys.idempotency_pk(tenant_id, str(environment), scope, key),
                                   keys.IDEMPOTENCY_SK)
        record.update(actions=[IdempotencyRecord.state.set("COMPLETED"),
                               IdempotencyRecord.status_code.set(status_code),
                               IdempotencyRecord.response.set(jsoncodec.dumps(response))])

    def release(self, tenant_id: str, environment: Environment, scope: str, key: str) -> None:
        """Forget a claim whose request failed, so the client may retry with the same key."""
        IdempotencyRecord(keys.idempotency_pk(tenant_id, str(environment), scope, key), keys.IDEMPOTENCY_SK).delete()


# --- outgoing webhooks: endpoints, the outbox, deliveries ---------------------------------------

DELIVERY_RETENTION = timedelta(days=30)
DELIVERY_INDEX_KEYS = ("pk", "sk", "endpoint_key", "event_id")


def _endpoint_from(record: WebhookEndpointRecord) -> Endpoint:
    return Endpoint(
        tenant_id=record.tenant_id, environment=Environment(record.environment), endpoint_id=record.endpoint_id,
        url=record.url, secret=record.secret, events=tuple(record.events), created_at=record.created_at,
        created_by=record.created_by, description=record.description or "",
        status=EndpointStatus(record.status), disabled_at=record.disabled_at,
    )


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {"number": attempt.number, "at": iso_us(attempt.at), "statusCode": attempt.status_code,
            "durationMs": attempt.duration_ms, "error": attempt.error, "response": attempt.response_excerpt}


def _attempt_from(data: dict[str, Any]) -> Attempt:
    return Attempt(number=int(data["number"]), at=parse_iso(data["at"]), status_code=data.get("statusCode"),
                   duration_ms=int(data.get("durationMs") or 0), error=data.get("error"),
                   response_excerpt=data.get("response"))


def _delivery_from(record: WebhookDeliveryRecord) -> Delivery:
    return Delivery(
        tenant_id=record.tenant_id, environment=Environment(record.environment), event_id=record.event_id,
        event_type=record.event_type, endpoint_id=record.endpoint_id, url=record.url, body=record.body,
        created_at=record.created_at, status=DeliveryStatus(record.status),
        attempts=tuple(_attempt_from(a) for a in record.attempts or []), next_attempt_at=record.next_attempt_at,
        delivered_at=record.delivered_at, window_start=int(record.window_start or 1),
        window_started_at=record.window_started_at,
    )


def _delivery_keys(tenant_id: str, environment: str, event_id: str, endpoint_id: str) -> tuple[str, str]:
    return keys.webhooks_pk(tenant_id, environment), keys.delivery_sk(event_id, endpoint_id)


class DynamoWebhookRepository(_Repository):
    # endpoints
    def get_endpoint(self, tenant_id: str, environment: Environment, endpoint_id: str) -> Endpoint | None:
        record = _get(WebhookEndpointRecord, keys.webhooks_pk(tenant_id, str(environment)),
                      keys.endpoint_sk(endpoint_id))
        return _endpoint_from(record) if record else None

    def endpoints(self, tenant_id: str, environment: Environment) -> list[Endpoint]:
        """Every endpoint of a tenant environment (a small, bounded set), oldest first."""
        pk = keys.webhooks_pk(tenant_id, str(environment))
        query = WebhookEndpointRecord.query(pk, WebhookEndpointRecord.sk.startswith(keys.endpoint_sk("")),
                                            consistent_read=True)
        return [_endpoint_from(r) for r in query]

    def save_endpoint(self, endpoint: Endpoint, *, new: bool = False) -> None:
        record = WebhookEndpointRecord(
            keys.webhooks_pk(endpoint.tenant_id, str(endpoint.environment)), keys.endpoint_sk(endpoint.endpoint_id),
            tenant_id=endpoint.tenant_id, environment=str(endpoint.environment), endpoint_id=endpoint.endpoint_id,
            url=endpoint.url, description=endpoint.description, secret=endpoint.secret, events=list(endpoint.events),
            status=str(endpoint.status), created_at=endpoint.created_at, created_by=endpoint.created_by,
            disabled_at=endpoint.disabled_at,
        )
        self._stage("save", record, condition=WebhookEndpointRecord.pk.does_not_exist() if new else None)

    # the outbox
    def add_outbox(self, outbox: Outbox) -> None:
        self._stage("save", OutboxRecord(
            keys.outbox_pk(outbox.outbox_id), keys.outbox_sk(iso_us(outbox.created_at), outbox.outbox_id),
            outbox_id=outbox.outbox_id, tenant_id=outbox.tenant_id, environment=str(outbox.environment),
            events=[_event_json(e) for e in outbox.events], created_at=outbox.created_at,
        ), condition=OutboxRecord.pk.does_not_exist())

    def get_outbox(self, ref: tuple[str, str]) -> Outbox | None:
        record = _get(OutboxRecord, *ref)
        if record is None:
            return None
        environment = Environment(record.environment)
        events = tuple(_event_from(e, record.tenant_id, environment) for e in record.events)
        return Outbox(outbox_id=record.outbox_id, tenant_id=record.tenant_id, environment=environment,
                      events=events, created_at=record.created_at, progress=int(record.progress or 0),
                      targets=tuple(record.targets) if record.targets is not None else None)

    @staticmethod
    def outbox_ref(outbox: Outbox) -> tuple[str, str]:
        return keys.outbox_pk(outbox.outbox_id), keys.outbox_sk(iso_us(outbox.created_at), outbox.outbox_id)

    def stale_outbox(self, *, older_than: datetime, limit: int) -> list[tuple[str, str]]:
        """Outbox items nobody fanned out (a lost queue message, a crash): the sweep's work list."""
        refs: list[tuple[str, str]] = []
        for shard in range(keys.OUTBOX_SHARDS):
            query = OutboxRecord.query(f"OUTBOX#{shard}", OutboxRecord.sk < iso_us(older_than), limit=limit,
                                       page_size=limit, attributes_to_get=["pk", "sk"])
            refs += [(r.pk, r.sk) for r in query]
        return refs

    def advance_outbox(self, outbox: Outbox, *, progress: int, targets: tuple[str, ...], done: bool) -> None:
        """Move fan-out from exactly ``outbox.progress`` (so two senders never both write a chunk)."""
        record = OutboxRecord(*self.outbox_ref(outbox))
        if outbox.progress:
            condition = OutboxRecord.progress == outbox.progress
        else:
            condition = OutboxRecord.pk.exists() & (OutboxRecord.progress.does_not_exist()
                                                    | (OutboxRecord.progress == 0))
        if done:
            self._stage("delete", record, condition=condition)
        else:
            self._stage("update", record, condition=condition, actions=[
                OutboxRecord.progress.set(progress), OutboxRecord.targets.set(list(targets))])

    # deliveries
    def add_delivery(self, delivery: Delivery) -> None:
        self._stage("save", self._delivery_record(delivery))

    def _delivery_record(self, delivery: Delivery) -> WebhookDeliveryRecord:
        env = str(delivery.environment)
        record = WebhookDeliveryRecord(
            *_delivery_keys(delivery.tenant_id, env, delivery.event_id, delivery.endpoint_id),
            tenant_id=delivery.tenant_id, environment=env, event_id=delivery.event_id,
            event_type=delivery.event_type, endpoint_id=delivery.endpoint_id,
            endpoint_key=keys.endpoint_key(delivery.tenant_id, env, delivery.endpoint_id), url=delivery.url,
            body=delivery.body, status=str(delivery.status), attempts=[_attempt_json(a) for a in delivery.attempts],
            attempt_count=delivery.attempt_count, created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at, delivered_at=delivery.delivered_at,
            window_start=delivery.window_start, window_started_at=delivery.window_started_at,
            ttl=delivery.created_at + DELIVERY_RETENTION,
        )
        if delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at is not None:
            record.due_shard = keys.due_shard(delivery.event_id, delivery.endpoint_id)
            record.due_at = iso_us(delivery.next_attempt_at)
        return record

    def get_delivery(self, ref: tuple[str, str, str, str]) -> Delivery | None:
        tenant_id, environment, event_id, endpoint_id = ref
        record = _get(WebhookDeliveryRecord, *_delivery_keys(tenant_id, environment, event_id, endpoint_id))
        return _delivery_from(record) if record else None

    def claim(self, ref: tuple[str, str, str, str], *, now: datetime, lease_until: datetime) -> Delivery | None:
        """Take a due delivery for one attempt (immediately, not staged); None if it is not due or taken."""
        tenant_id, environment, event_id, endpoint_id = ref
        record = WebhookDeliveryRecord(*_delivery_keys(tenant_id, environment, event_id, endpoint_id))
        condition = (
            (WebhookDeliveryRecord.status == str(DeliveryStatus.PENDING))
            & (WebhookDeliveryRecord.next_attempt_at <= now)
            & (WebhookDeliveryRecord.lease_until.does_not_exist() | (WebhookDeliveryRecord.lease_until < now))
        )
        # While the lease runs the delivery leaves the due index; it reappears if the sender dies.
        actions = [WebhookDeliveryRecord.lease_until.set(lease_until),
                   WebhookDeliveryRecord.due_at.set(iso_us(lease_until))]
        try:
            record.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return None
            raise
        return _delivery_from(record)

    def record_attempt(self, delivery: Delivery, *, lease_until: datetime | None) -> None:
        """Store the delivery after an attempt (or a manual retry), releasing the sender's lease."""
        record = self._delivery_record(delivery)
        actions = [
            WebhookDeliveryRecord.status.set(record.status),
            WebhookDeliveryRecord.attempts.set(record.attempts),
            WebhookDeliveryRecord.attempt_count.set(record.attempt_count),
            WebhookDeliveryRecord.window_start.set(record.window_start),
            WebhookDeliveryRecord.lease_until.remove(),
        ]
        for attribute, value in ((WebhookDeliveryRecord.next_attempt_at, record.next_attempt_at),
                                 (WebhookDeliveryRecord.delivered_at, record.delivered_at),
                                 (WebhookDeliveryRecord.window_started_at, record.window_started_at),
                                 (WebhookDeliveryRecord.due_shard, record.due_shard),
                                 (WebhookDeliveryRecord.due_at, record.due_at)):
            actions.append(attribute.remove() if value is None else attribute.set(value))
        if lease_until is None:  # a manual retry: only when no attempt is in flight or recorded since the read
            condition = (WebhookDeliveryRecord.attempt_count == delivery.attempt_count) & (
                WebhookDeliveryRecord.lease_until.does_not_exist()
                | (WebhookDeliveryRecord.lease_until < delivery.next_attempt_at))
        else:
            condition = WebhookDeliveryRecord.lease_until == lease_until
        self._stage("update", WebhookDeliveryRecord(record.pk, record.sk), condition=condition, actions=actions)

    def event_deliveries(self, tenant_id: str, environment: Environment, event_id: str) -> list[Delivery]:
        pk = keys.webhooks_pk(tenant_id, str(environment))
        prefix = keys.delivery_sk(event_id, "")
        return [_delivery_from(r) for r in WebhookDeliveryRecord.query(
            pk, WebhookDeliveryRecord.sk.startswith(prefix), consistent_read=True)]

    def deliveries(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None, *,
                   status: str | None = None) -> Page[Delivery]:
        """Newest first; ``status`` is a filter on the tenant environment's partition (not an index)."""
        pk = keys.webhooks_pk(tenant_id, str(environment))
        condition = WebhookDeliveryRecord.status == status if status else None
        return _query_page(
            lambda **kw: WebhookDeliveryRecord.query(
                pk, WebhookDeliveryRecord.sk.startswith(keys.DELIVERY_PREFIX), filter_condition=condition,
                scan_index_forward=False, consistent_read=True, **kw),
            _delivery_from, limit=limit, cursor=cursor, partition=("pk", pk), sort_prefix=keys.DELIVERY_PREFIX,
        )

    def endpoint_deliveries(self, tenant_id: str, environment: Environment, endpoint_id: str, limit: int,
                            cursor: str | None) -> Page[Delivery]:
        key = keys.endpoint_key(tenant_id, str(environment), endpoint_id)
        return _query_page(
            lambda **kw: WebhookDeliveryRecord.endpoint_index.query(key, scan_index_forward=False, **kw),
            _delivery_from, limit=limit, cursor=cursor, partition=("endpoint_key", key),
            key_names=DELIVERY_INDEX_KEYS,
        )

    def due(self, *, now: datetime, limit: int) -> list[tuple[str, str, str, str]]:
        """Deliveries whose next attempt is due (the sparse due index, shard by shard; no scan)."""
        refs: list[tuple[str, str, str, str]] = []
        for shard in range(keys.DUE_SHARDS):
            query = WebhookDeliveryRecord.due_index.query(
                f"W#{shard}", WebhookDeliveryRecord.due_at <= iso_us(now), limit=limit, page_size=limit)
            refs += [(r.tenant_id, r.environment, r.event_id, r.endpoint_id) for r in query]
        return refs


def _event_json(event: Event) -> dict[str, Any]:
    return {"id": event.event_id, "event": event.event_type, "createdAt": iso_us(event.created_at),
            "data": event.data}


def _event_from(data: dict[str, Any], tenant_id: str, environment: Environment) -> Event:
    return Event(event_id=data["id"], event_type=data["event"], tenant_id=tenant_id, environment=environment,
                 created_at=parse_iso(data["createdAt"]), data=data["data"])


# --- customer checkpoints ------------------------------------------------------------------------


def _checkpoint_from(record: CheckpointRecord) -> Checkpoint:
    return Checkpoint(
        checkpoint_id=record.checkpoint_id, tenant_id=record.tenant_id, environment=record.environment,
        customer_id=record.customer_id, period=record.period, sequence=int(record.sequence),
        root=record.checkpoint_root, tree_size=int(record.tree_size),
        first_sequence=int(record.first_sequence) if record.first_sequence is not None else None,
        last_sequence=int(record.last_sequence) if record.last_sequence is not None else None,
        net_change=record.net_change, previous_root=record.previous_root,
        previous_tree_size=int(record.previous_tree_size) if record.previous_tree_size is not None else None,
        consistency_proof=tuple(record.consistency_proof or ()), created_at=record.created_at,
        key_id=record.key_id, signature=record.signature,
    )


class DynamoCheckpointRepository(_Repository):
    def latest(self, tenant_id: str, environment: Environment, customer_id: str, period: str) -> Checkpoint | None:
        pk = keys.checkpoints_pk(tenant_id, str(environment), customer_id)
        for record in CheckpointRecord.query(pk, CheckpointRecord.sk.startswith(f"{period}#"), consistent_read=True,
                                             scan_index_forward=False, limit=1):
            return _checkpoint_from(record)
        return None

    def list(self, tenant_id: str, environment: Environment, customer_id: str, period: str | None, limit: int,
             cursor: str | None) -> Page[Checkpoint]:
        """Newest first; ``period`` narrows with a key condition."""
        pk = keys.checkpoints_pk(tenant_id, str(environment), customer_id)
        prefix = f"{period}#" if period else None
        condition = CheckpointRecord.sk.startswith(prefix) if prefix else None
        return _query_page(
            lambda **kw: CheckpointRecord.query(pk, condition, consistent_read=True, scan_index_forward=False, **kw),
            _checkpoint_from, limit=limit, cursor=cursor, partition=("pk", pk), sort_prefix=prefix,
        )

    def list_period(self, tenant_id: str, environment: Environment, period: str, limit: int,
                    cursor: str | None) -> Page[Checkpoint]:
        """Every customer's checkpoints of a period, by customer id then sequence (the period index)."""
        key = keys.checkpoint_period_key(tenant_id, str(environment), period)
        return _query_page(
            lambda **kw: CheckpointRecord.period_index.query(key, **kw), _checkpoint_from, limit=limit,
            cursor=cursor, partition=("period_key", key), key_names=("pk", "sk", "period_key", "period_sort"),
        )

    def add(self, checkpoint: Checkpoint) -> None:
        """Conditioned on the sequence being free: of two concurrent creators, one wins."""
        self._stage("save", CheckpointRecord(
            keys.checkpoints_pk(checkpoint.tenant_id, checkpoint.environment, checkpoint.customer_id),
            keys.checkpoint_sk(checkpoint.period, checkpoint.sequence),
            period_key=keys.checkpoint_period_key(checkpoint.tenant_id, checkpoint.environment, checkpoint.period),
            period_sort=keys.checkpoint_period_sort(checkpoint.customer_id, checkpoint.sequence),
            checkpoint_id=checkpoint.checkpoint_id, tenant_id=checkpoint.tenant_id,
            environment=checkpoint.environment, customer_id=checkpoint.customer_id, period=checkpoint.period,
            sequence=checkpoint.sequence, checkpoint_root=checkpoint.root, tree_size=checkpoint.tree_size,
            first_sequence=checkpoint.first_sequence, last_sequence=checkpoint.last_sequence,
            net_change=checkpoint.net_change, previous_root=checkpoint.previous_root,
            previous_tree_size=checkpoint.previous_tree_size, consistency_proof=list(checkpoint.consistency_proof),
            created_at=checkpoint.created_at, key_id=checkpoint.key_id, signature=checkpoint.signature,
        ), condition=CheckpointRecord.pk.does_not_exist())
