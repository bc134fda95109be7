"""What services need from storage: repository protocols and the unit of work.

Reads go straight to the store. Writes are *staged* on the unit of work and land
together in one DynamoDB ``TransactWriteItems`` on :meth:`UnitOfWork.commit`
(all or nothing). Every repository method takes the tenant (and environment)
first, except the credential lookups that must find the tenant from a key and the
platform-wide signing-key registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:  # annotations only: keeps `import app` (cold start) small
    from datetime import datetime
    from decimal import Decimal

    from chalicelib.domain.access import ApiKey, PlatformToken, Session
    from chalicelib.domain.audit import AuditEntry
    from chalicelib.domain.batches import ChainHead, SealCandidate, SealedBatch
    from chalicelib.domain.checkpoints import Checkpoint
    from chalicelib.domain.credits import CreditAccount, CreditPosition, HoldPlan, LedgerEntry, Settled
    from chalicelib.domain.customers import Customer, CustomerStats
    from chalicelib.domain.deltas import CreditState, Delta
    from chalicelib.domain.identity import Environment
    from chalicelib.domain.period_close import PeriodClose, RolloverRun
    from chalicelib.domain.signing_keys import SigningKey
    from chalicelib.domain.stripe_events import StripeEvent
    from chalicelib.domain.subscriptions import CheckoutSession, Subscription
    from chalicelib.domain.tenants import Tenant, User
    from chalicelib.domain.usage import UsageCounter
    from chalicelib.domain.webhooks import Delivery, Endpoint, Outbox

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None = None
    total: int | None = None
    extra: dict = field(default_factory=dict)


def page_after_offset(fetch: Callable[[int, str | None], Page[T]], *, offset: int, limit: int,
                      cursor: str | None) -> Page[T]:
    """``fetch(size, cursor)`` a page, first skipping ``offset`` items with one larger read when no cursor
    is given (callers bound the offset; a cursor is always cheaper)."""
    if offset and cursor is None:
        skipped = fetch(offset, None)
        if skipped.next_cursor is None:
            return Page(items=[], next_cursor=None, extra={"page": 1})
        cursor = skipped.next_cursor
    return fetch(limit, cursor)


class TenantRepository(Protocol):
    def get(self, tenant_id: str) -> Tenant | None: ...
    def next_id(self) -> str: ...
    def add(self, tenant: Tenant) -> None: ...
    def save(self, tenant: Tenant) -> None: ...
    def directory(self, limit: int, cursor: str | None) -> Page[Tenant]: ...
    def due_blocks(self, before: datetime, limit: int, cursor: str | None) -> Page[Tenant]:
        """From the sparse ``block-index``: flagged, limit date before ``before``, block not recorded."""
    def by_stripe_customer(self, customer_id: str) -> Tenant | None:
        """From the ``stripe-customer-index`` (may lag a write by a moment)."""


class UserRepository(Protocol):
    def get(self, tenant_id: str, user_id: str) -> User | None: ...
    def get_with_tenant(self, tenant_id: str, user_id: str) -> tuple[Tenant | None, User | None]:
        """Both in one consistent read: every dashboard request needs the pair."""
    def list(self, tenant_id: str) -> list[User]: ...
    def save(self, user: User) -> None: ...


class ApiKeyRepository(Protocol):
    def get(self, tenant_id: str, environment: Environment, key_id: str) -> ApiKey | None: ...
    def find(self, key_id: str) -> ApiKey | None: ...
    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None) -> Page[ApiKey]: ...
    def list_all(self, tenant_id: str) -> list[ApiKey]: ...
    def add(self, key: ApiKey) -> None: ...
    def save(self, key: ApiKey) -> None: ...
    def touch(self, key: ApiKey, now: datetime) -> None: ...


class SessionRepository(Protocol):
    def get(self, tenant_id: str, session_id: str) -> Session | None: ...
    def add(self, session: Session) -> None: ...
    def delete(self, tenant_id: str, session_id: str) -> None: ...


class PlatformTokenRepository(Protocol):
    def get(self, token_id: str) -> PlatformToken | None: ...
    def list(self) -> list[PlatformToken]: ...
    def add(self, token: PlatformToken) -> None: ...
    def save(self, token: PlatformToken) -> None: ...
    def touch(self, token: PlatformToken, now: datetime) -> None: ...

    def count_request(self, token_id: str, window_id: str, *, limit: int, expires_at: datetime) -> int | None:
        """Count one request in the token's window at once (outside any transaction), unless the window already
        holds ``limit``: the new count, or None when full."""
        ...


class SigningKeyRepository(Protocol):
    """The platform's signing-key registry: every key ever used, by key id (not tenant-scoped)."""

    def get(self, key_id: str) -> SigningKey | None: ...
    def list(self) -> list[SigningKey]:
        """Every registered key, in key-id order (one Query)."""
    def add(self, key: SigningKey) -> None:
        """Staged, write-once: ConflictError at commit when the id is already registered."""


class AuditRepository(Protocol):
    def add(self, entry: AuditEntry) -> None: ...
    def list(self, tenant_id: str, limit: int, cursor: str | None) -> Page[AuditEntry]: ...


class CustomerRepository(Protocol):
    def get(self, tenant_id: str, environment: Environment, customer_id: str) -> Customer | None: ...
    def get_many(self, tenant_id: str, environment: Environment, customer_ids: list[str]) -> dict[str, Customer]: ...
    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None,
             prefix: str | None = None) -> Page[Customer]: ...
    def add(self, customer: Customer) -> None: ...
    def release_from_balance(self, tenant_id: str, environment: Environment, customer_id: str,
                             amount: Decimal, *, period: str, in_cycle: bool) -> None:
        """Take a terminally failed delta's amount back out of the running balance (staged)."""
    def directory(self, tenant_id: str, environment: Environment, *, by_name: bool, descending: bool,
                  limit: int, cursor: str | None, prefix: str | None,
                  keep: Callable[[Customer], bool] | None, budget: int, page: int = 1) -> Page[Customer]:
        """``page`` counts only without a cursor (a cursor says where its page starts)."""
    def stats(self, tenant_id: str, environment: Environment) -> CustomerStats: ...
    def stats_and_usage(self, tenant_id: str, environment: Environment,
                        period: str) -> tuple[CustomerStats, UsageCounter]: ...
    def count(self, tenant_id: str, environment: Environment, **changes: int | Decimal) -> None: ...
    def count_verified(self, tenant_id: str, environment: Environment, customer_id: str, count: int) -> None: ...
    def mark_checkpointed(self, customer: Customer, period: str, through_seq: int | None) -> None: ...


@dataclass(frozen=True)
class CustomerState:
    exists: bool
    last_seq: int | None  # None: no delta accepted yet
    cycle_period: str | None = None  # the period its cycle counters belong to


@dataclass
class IngestSnapshot:
    """What accepting deltas needs to know, read in one go before the transaction."""

    tenant: Tenant | None
    customers: dict[str, CustomerState]
    guards: dict[tuple[str, str], dict]  # (customerId, referenceId) -> first acceptance's answer
    usage_consumed: int | None  # None: not read (the tenant's billing does not limit by it)
    credits: CreditPosition | None  # None: not read (the tenant does not bill credits)
    usage_others: int = 0  # of usage_consumed, what is not on the capped shard (a capped plan's condition)


@dataclass(frozen=True)
class IdempotencyEntry:
    state: str  # IN_PROGRESS | COMPLETED
    request_hash: str
    status_code: int | None
    response: dict | None
    locked_until: datetime
    expires_at: datetime


class DeltaRepository(Protocol):
    def get(self, tenant_id: str, environment: Environment, record_id: str) -> Delta | None: ...
    def snapshot(self, tenant_id: str, environment: Environment, customer_ids: list[str],
                 references: list[tuple[str, str]], period: str, *, usage: bool = True,
                 credits: bool = True) -> IngestSnapshot: ...
    def add_billing_state(self, snapshot: IngestSnapshot, tenant_id: str, period: str, *, usage: bool,
                          credits: bool) -> IngestSnapshot: ...
    def add(self, delta: Delta) -> None: ...
    def add_reference_guard(self, delta: Delta, response: dict, now: datetime) -> None: ...
    def get_many(self, tenant_id: str, environment: Environment, record_ids: list[str]) -> list[Delta]: ...
    def customer_period(self, tenant_id: str, environment: Environment, customer_id: str,
                        period: str) -> list[Delta]: ...
    def customer_range(self, tenant_id: str, environment: Environment, customer_id: str, first: int, last: int,
                       *, newest_first: bool = False) -> list[Delta]: ...
    def pending(self, *, older_than: datetime, limit: int) -> list[tuple[str, Environment, str]]: ...
    def mark_verified(self, tenant_id: str, environment: Environment, leaf: SealCandidate, *, leaf_index: int,
                      proof: list[str], batch: SealedBatch, credit_state: CreditState | None,
                      now: datetime) -> None: ...
    def mark_failed(self, delta: Delta, *, error: str, now: datetime) -> None: ...
    def advance_customer(self, tenant_id: str, environment: Environment, customer_id: str, *,
                         expected_last_seq: int | None, count: int, balance_change: Decimal,
                         now: datetime, is_new: bool, period: str, cycle: str) -> None: ...


class BatchRepository(Protocol):
    def head(self, tenant_id: str, environment: Environment, chain: int = 0) -> ChainHead: ...
    def seal(self, batch: SealedBatch, head: ChainHead) -> None: ...  # moves the head of ``batch.chain``
    def stage_counts(self, batch: SealedBatch, counts: dict[str, int], *, now: datetime) -> None: ...
    def counts(self, tenant_id: str, environment: Environment, batch_id: str) -> dict[str, int] | None: ...
    def clear_counts(self, tenant_id: str, environment: Environment, batch_id: str) -> None: ...
    def get(self, tenant_id: str, environment: Environment, batch_id: str) -> SealedBatch | None: ...
    def by_root(self, root: str) -> SealedBatch | None: ...


class CheckpointRepository(Protocol):
    def latest(self, tenant_id: str, environment: Environment, customer_id: str,
               period: str) -> Checkpoint | None: ...
    def list(self, tenant_id: str, environment: Environment, customer_id: str, period: str | None, limit: int,
             cursor: str | None) -> Page[Checkpoint]: ...
    def list_period(self, tenant_id: str, environment: Environment, period: str, limit: int,
                    cursor: str | None) -> Page[Checkpoint]: ...
    def add(self, checkpoint: Checkpoint) -> None: ...


class UsageRepository(Protocol):
    def get(self, tenant_id: str, period: str) -> UsageCounter: ...
    def add(self, tenant_id: str, period: str, environment: Environment, count: int, *, cap: int | None,
            others: int = 0) -> None: ...


class CreditRepository(Protocol):
    def account(self, tenant_id: str) -> CreditAccount: ...
    def position(self, tenant_id: str, *, snapshot: bool = False) -> CreditPosition: ...
    def entries(self, tenant_id: str, limit: int, cursor: str | None, page: int = 1) -> Page[LedgerEntry]: ...
    def record(self, before: CreditAccount, after: CreditAccount, *entries: LedgerEntry, pool: int = 0,
               resolved: int = 0, posted_deltas: int = 0, posted_lanes: dict[int, Settled] | None = None) -> None:
        """One ledger update from exactly ``before`` to ``after`` and its entries (a posting and the writer's
        own moves share one transaction, where the account may be written only once)."""
    def hold(self, tenant_id: str, plan: HoldPlan, amount: int, deltas: int) -> None: ...
    def settle(self, tenant_id: str, lane: int, settled: Settled) -> None: ...
    def drain(self, tenant_id: str, lanes: dict[int, int], *, to_pool: bool = True) -> None: ...


class IdempotencyRepository(Protocol):
    def get(self, tenant_id: str, environment: Environment, scope: str, key: str) -> IdempotencyEntry | None: ...
    def claim(self, tenant_id: str, environment: Environment, scope: str, key: str, *, request_hash: str,
              now: datetime, lock_seconds: int, keep_seconds: int) -> bool: ...
    def complete(self, tenant_id: str, environment: Environment, scope: str, key: str, *, status_code: int,
                 response: dict) -> None: ...
    def release(self, tenant_id: str, environment: Environment, scope: str, key: str) -> None: ...


DeliveryRef = tuple[str, str, str, str]  # (tenantId, environment, eventId, endpointId)
OutboxRef = tuple[str, str]


class WebhookRepository(Protocol):
    def get_endpoint(self, tenant_id: str, environment: Environment, endpoint_id: str) -> Endpoint | None: ...
    def endpoints(self, tenant_id: str, environment: Environment) -> list[Endpoint]: ...
    def save_endpoint(self, endpoint: Endpoint, *, new: bool = False) -> None: ...
    def add_outbox(self, outbox: Outbox) -> None: ...
    def get_outbox(self, ref: OutboxRef) -> Outbox | None: ...
    def outbox_ref(self, outbox: Outbox) -> OutboxRef: ...
    def stale_outbox(self, *, older_than: datetime, limit: int) -> list[OutboxRef]: ...
    def advance_outbox(self, outbox: Outbox, *, progress: int, targets: tuple[str, ...], done: bool) -> None: ...
    def add_delivery(self, delivery: Delivery) -> None: ...
    def get_delivery(self, ref: DeliveryRef) -> Delivery | None: ...
    def claim(self, ref: DeliveryRef, *, now: datetime, lease_until: datetime) -> Delivery | None:
        """Take a due delivery for one attempt, immediately; None when it is not due or already taken."""

    def record_attempt(self, delivery: Delivery, *, lease_until: datetime | None) -> None: ...
    def event_deliveries(self, tenant_id: str, environment: Environment, event_id: str) -> list[Delivery]: ...
    def deliveries(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None, *,
                   status: str | None = None) -> Page[Delivery]: ...
    def endpoint_deliveries(self, tenant_id: str, environment: Environment, endpoint_id: str, limit: int,
                            cursor: str | None) -> Page[Delivery]: ...
    def due(self, *, now: datetime, limit: int) -> list[DeliveryRef]: ...


class StripeEventRepository(Protocol):
    """The Stripe webhook's records (billing table): events received and each invoice's latest outcome."""

    def get(self, event_id: str) -> StripeEvent | None: ...
    def add(self, event: StripeEvent) -> None:
        """Staged conditional put: ConflictError at commit when the event id is already recorded."""
    def mark_handled(self, event: StripeEvent) -> None:
        """Staged: ConflictError at commit unless the stored event is still ``received``."""
    def invoice_status(self, invoice_id: str) -> str | None: ...
    def set_invoice_status(self, invoice_id: str, *, tenant_id: str, status: str, now: datetime) -> None:
        """Staged: ``paid`` always lands, another status never replaces ``paid`` (ConflictError at commit)."""


class PeriodCloseRepository(Protocol):
    """Closed months (billing table): a tenant's final figures and close steps, and the rollover's runs."""

    def get(self, tenant_id: str, period: str) -> PeriodClose | None: ...
    def save(self, close: PeriodClose) -> None:
        """Staged; ConflictError at commit unless the stored close is the version read (absent when new)."""
    def get_run(self, period: str) -> RolloverRun | None: ...
    def save_run(self, run: RolloverRun, *, now: datetime) -> None:
        """Staged and versioned like :meth:`save`."""


class BillingProvider(Protocol):
    """Where tenants pay: Stripe (adapters/stripe_billing.py) or, without a Stripe key, the local stand-in
    (adapters/stripe_local.py). Each write takes a deterministic idempotency key, so a retried request or
    a rerun job never makes a second Checkout session, plan change, cancellation, meter event or invoice."""

    def create_checkout_session(self, *, tenant_id: str, tier: str, customer_id: str | None,
                                customer_email: str | None, success_url: str, cancel_url: str,
                                idempotency_key: str) -> CheckoutSession:
        """Checkout in subscription mode for ``tier``'s plan price (and its metered overage price), with the
        tenant in ``client_reference_id`` and the subscription's ``metadata.tenant_id``, the billing cycle
        anchored on the 1st of the next UTC month (README, "Billing periods")."""

    def change_plan(self, subscription_id: str, *, tier: str, idempotency_key: str) -> Subscription:
        """Swap the subscription's prices to ``tier``'s at once, with proration."""

    def create_portal_session(self, customer_id: str, *, return_url: str) -> str:
        """A Customer Portal URL."""

    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> Subscription: ...

    def get_subscription(self, subscription_id: str) -> Subscription:
        """A fresh read (webhook handlers never trust an event's copy)."""

    def report_overage(self, *, customer_id: str, quantity: int, identifier: str, timestamp: datetime) -> None:
        """One Billing Meter event of ``quantity`` overage deltas; ``identifier`` makes a resend a no-op."""

    def invoice_overage(self, *, customer_id: str, quantity: int, amount_cents: int, description: str,
                        identifier: str) -> None:
        """A one-off invoice of ``amount_cents`` for ``quantity`` overage deltas, charged to the customer's
        default payment method: a month whose subscription has ended, so no meter event can be billed.
        ``identifier`` makes a resend a no-op."""


class UnitOfWork(Protocol):
    tenants: TenantRepository
    users: UserRepository
    api_keys: ApiKeyRepository
    sessions: SessionRepository
    platform_tokens: PlatformTokenRepository
    signing_keys: SigningKeyRepository
    audit: AuditRepository
    customers: CustomerRepository
    deltas: DeltaRepository
    batches: BatchRepository
    checkpoints: CheckpointRepository
    usage: UsageRepository
    credits: CreditRepository
    idempotency: IdempotencyRepository
    webhooks: WebhookRepository
    period_closes: PeriodCloseRepository
    stripe_events: StripeEventRepository

    def commit(self) -> None:
        """Apply every staged write in one transaction; raise ConcurrentWriteError if a condition fails."""

    def rollback(self) -> None:
        """Drop staged writes."""

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc: object) -> None: ...
