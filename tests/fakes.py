"""An in-memory :class:`~chalicelib.services.ports.UnitOfWork` for fast service tests.

Why a fake and not moto: service tests then run in microseconds and need no AWS
world. Why it must be *faithful*: a fake that is kinder than DynamoDB hides bugs.
So every method mirrors the repository modules in ``chalicelib/adapters/dynamodb/``:

* the same sort keys (built with the adapter's ``keys`` module) and the same
  orderings: API keys by sort key *descending*, audit newest first, customers by
  id, the tenant directory by numeric id and only listed tenants;
* the same conditions: ``add`` needs absence, ``save`` of API keys and platform
  tokens needs existence, tenants carry an optimistic ``version`` (PynamoDB's
  ``VersionAttribute``), users are upserted, ``sessions.delete`` is unconditional;
* the same cursors (the adapter's ``encode_cursor``/``decode_cursor``), bound to
  their partition and search prefix, holding exactly the query's key attributes,
  and issued only when another item really follows;
* the same transaction rules: reads are immediate and never see staged writes;
  ``commit`` applies everything or nothing (``ConflictError``), holds at most 100
  writes and at most one write per item; staged writes are dropped even when the
  commit fails; ``touch`` and ``next_id`` write at once, outside any transaction.

``tests/unit/test_unit_of_work_contract.py`` runs one contract suite against this
fake and against ``DynamoUnitOfWork`` under moto, which is what keeps them alike.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.cursors import decode_cursor, encode_cursor
from chalicelib.domain.access import ApiKey, PlatformToken, Session
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import iso_us
from chalicelib.domain.customers import Customer, CustomerStats
from chalicelib.domain.errors import ConcurrentWriteError, ConflictError
from chalicelib.domain.identity import PLATFORM_TENANT_ID, Environment
from chalicelib.domain.signing_keys import SigningKey
from chalicelib.domain.tenants import Tenant, User
from chalicelib.domain.webhooks import Endpoint
from chalicelib.services.ports import Page

T = TypeVar("T")
Key = tuple[str, str]  # (partition key, sort key), exactly as DynamoDB would store it
Condition = Callable[[Any], bool]  # receives the stored item (or None), True to proceed

MAX_TRANSACTION_ITEMS = 100  # DynamoDB's TransactWriteItems limit, enforced by the real UoW too
TABLE_KEYS = ("pk", "sk")
DIRECTORY_KEYS = ("pk", "sk", "directory_pk", "directory_sk")


def _exists(current: Any) -> bool:
    return current is not None


def _absent(current: Any) -> bool:
    return current is None


def _always(_current: Any) -> bool:
    return True


class Table:
    """One dict per repository: ``(pk, sk)`` → a private copy of the domain object.

    Copies go in and come out, so a test (or service) mutating what it read can
    never change stored state behind the unit of work's back, just as with DynamoDB.
    """

    def __init__(self) -> None:
        self.rows: dict[Key, Any] = {}

    def get(self, key: Key) -> Any:
        return copy.deepcopy(self.rows.get(key))

    def partition(self, pk: str, *, forward: bool = True) -> list[tuple[str, Any]]:
        """``(sk, item)`` of one partition in DynamoDB query order (sort key, byte order)."""
        found = [(sk, item) for (p, sk), item in self.rows.items() if p == pk]
        found.sort(key=lambda row: row[0], reverse=not forward)
        return [(sk, copy.deepcopy(item)) for sk, item in found]


@dataclass
class FakeStore:
    """Everything committed so far; share one store between several units of work."""

    tenants: Table = field(default_factory=Table)
    users: Table = field(default_factory=Table)
    api_keys: Table = field(default_factory=Table)
    sessions: Table = field(default_factory=Table)
    platform_tokens: Table = field(default_factory=Table)
    rate_windows: dict[Key, int] = field(default_factory=dict)  # (pk, sk) -> requests counted
    signing_keys: Table = field(default_factory=Table)
    audit: Table = field(default_factory=Table)
    customers: Table = field(default_factory=Table)
    webhook_endpoints: Table = field(default_factory=Table)
    tenant_counter: int = 0


@dataclass
class _Write:
    table: Table
    key: Key
    item: Any  # None deletes
    condition: Condition = _always
    apply: Callable[[Any], Any] | None = None  # an update computed from the item at commit (ADD)


def _paginate(
    rows: list[tuple[str, T]],
    *,
    limit: int,
    cursor: str | None,
    partition: tuple[str, str],
    forward: bool,
    last_key: Callable[[str], dict[str, Any]],
    sort_attr: str = "sk",
    key_names: tuple[str, ...] = TABLE_KEYS,
    sort_prefix: str | None = None,
) -> tuple[list[T], str | None, int]:
    """Slice ``rows`` (already in query order) like the adapter's ``_query_page``.

    The cursor is the adapter's: it carries the start key (the keys of the last item
    returned) and the page number, and is refused for another partition or prefix.
    """
    start, page = decode_cursor(cursor, partition=partition, key_names=key_names,
                                sort_prefix=(sort_attr, sort_prefix) if sort_prefix else None)
    if start is not None:
        after = start[sort_attr]["S"]
        rows = [row for row in rows if (row[0] > after if forward else row[0] < after)]
    chunk = rows[:limit]
    next_cursor = encode_cursor(last_key(chunk[-1][0]), page) if len(rows) > limit else None
    return [item for _sk, item in chunk], next_cursor, page


def _lek(pk: str) -> Callable[[str], dict[str, Any]]:
    return lambda sk: {"pk": {"S": pk}, "sk": {"S": sk}}


class _Repository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow
        self._store = uow.store

    def _stage(self, table: Table, key: Key, item: Any, condition: Condition = _always) -> None:
        self._uow.stage(_Write(table, key, copy.deepcopy(item), condition))


class FakeTenantRepository(_Repository):
    def get(self, tenant_id: str) -> Tenant | None:
        return self._store.tenants.get((keys.tenant_pk(tenant_id), keys.TENANT_SK))

    def next_id(self) -> str:
        """Immediate, like the DynamoDB atomic counter: a failed create leaves a gap."""
        self._store.tenant_counter += 1
        return str(self._store.tenant_counter)

    def _stage_versioned(self, tenant: Tenant, *, must_be_new: bool) -> None:
        """PynamoDB's VersionAttribute: write ``version + 1`` if the stored version still matches."""
        keys.directory_sk(tenant.id)  # the real record builder fails here for non-numeric ids

        def condition(current: Tenant | None) -> bool:
            if must_be_new and current is not None:
                return False
            if tenant.version is None:
                return current is None or current.version is None
            return current is not None and current.version == tenant.version

        stored = replace(tenant, version=(tenant.version or 0) + 1)
        self._stage(self._store.tenants, (keys.tenant_pk(tenant.id), keys.TENANT_SK), stored, condition)

    def add(self, tenant: Tenant) -> None:
        self._stage_versioned(tenant, must_be_new=True)

    def save(self, tenant: Tenant) -> None:
        self._stage_versioned(tenant, must_be_new=False)

    def by_stripe_customer(self, customer_id: str) -> Tenant | None:
        """The sparse ``stripe-customer-index``: tenants carrying that Stripe customer id."""
        found = [t for t in self._store.tenants.rows.values() if t.stripe_customer_id == customer_id]
        return copy.deepcopy(found[0]) if found else None

    def due_blocks(self, before: datetime, limit: int, cursor: str | None) -> Page[Tenant]:
        """The sparse block index: flagged tenants whose block is unrecorded, by ``{limit date}#{id}``,
        with the key condition ``block_sk < iso_us(before)``."""
        rows = sorted(
            ((keys.block_sk(iso_us(t.missing_payment_limit_date) or "", t.id), copy.deepcopy(t))
             for t in self._store.tenants.rows.values()
             if t.missing_payment_limit_date is not None and t.dashboard_blocked_at is None),
            key=lambda row: row[0],
        )
        rows = [row for row in rows if row[0] < (iso_us(before) or "")]

        def last_key(sort: str) -> dict[str, Any]:
            return {"block_pk": {"S": keys.BLOCK_PK}, "block_sk": {"S": sort},
                    "pk": {"S": keys.tenant_pk(sort.rsplit("#", 1)[1])}, "sk": {"S": keys.TENANT_SK}}

        items, next_cursor, page = _paginate(rows, limit=limit, cursor=cursor, forward=True,
                                              partition=("block_pk", keys.BLOCK_PK), last_key=last_key,
                                              sort_attr="block_sk", key_names=("pk", "sk", "block_pk", "block_sk"))
        return Page(items=items, next_cursor=next_cursor, extra={"page": page})

    def directory(self, limit: int, cursor: str | None) -> Page[Tenant]:
        """The sparse directory index: listed tenants only, by zero-padded numeric id."""
        rows = sorted(
            ((keys.directory_sk(t.id), copy.deepcopy(t)) for t in self._store.tenants.rows.values()
             if t.listed_in_directory),
            key=lambda row: row[0],
        )

        def last_key(sort: str) -> dict[str, Any]:
            return {"directory_pk": {"S": keys.DIRECTORY_PK}, "directory_sk": {"S": sort},
                    "pk": {"S": keys.tenant_pk(str(int(sort)))}, "sk": {"S": keys.TENANT_SK}}

        items, next_cursor, page = _paginate(rows, limit=limit, cursor=cursor, forward=True,
                                              partition=("directory_pk", keys.DIRECTORY_PK), last_key=last_key,
                                              sort_attr="directory_sk", key_names=DIRECTORY_KEYS)
        return Page(items=items, next_cursor=next_cursor, extra={"page": page})


class FakeUserRepository(_Repository):
    def get(self, tenant_id: str, user_id: str) -> User | None:
        return self._store.users.get((keys.tenant_pk(tenant_id), keys.user_sk(user_id)))

    def get_with_tenant(self, tenant_id: str, user_id: str) -> tuple[Tenant | None, User | None]:
        return self._store.tenants.get((keys.tenant_pk(tenant_id), keys.TENANT_SK)), self.get(tenant_id, user_id)

    def list(self, tenant_id: str) -> list[User]:
        return [user for _sk, user in self._store.users.partition(keys.tenant_pk(tenant_id))]

    def save(self, user: User) -> None:
        """An unconditional upsert."""
        self._stage(self._store.users, (keys.tenant_pk(user.tenant_id), keys.user_sk(user.user_id)), user)


class FakeApiKeyRepository(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        self.touches: list[tuple[str, datetime]] = []  # (key id, now): lets tests count writes

    @staticmethod
    def _key(tenant_id: str, environment: Environment, key_id: str) -> Key:
        return keys.env_pk(tenant_id, environment), keys.api_key_sk(key_id)

    def get(self, tenant_id: str, environment: Environment, key_id: str) -> ApiKey | None:
        return self._store.api_keys.get(self._key(tenant_id, environment, key_id))

    def find(self, key_id: str) -> ApiKey | None:
        """The key-id index: across every tenant and environment."""
        for key in self._store.api_keys.rows.values():
            if key.key_id == key_id:
                return copy.deepcopy(key)
        return None

    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None) -> Page[ApiKey]:
        """Sort key *descending* (``KEY#{id}``): creation order only if ids sort by time."""
        pk = keys.env_pk(tenant_id, environment)
        rows = self._store.api_keys.partition(pk, forward=False)
        items, next_cursor, page = _paginate(rows, limit=limit, cursor=cursor, partition=("pk", pk),
                                             forward=False, last_key=_lek(pk))
        return Page(items=items, next_cursor=next_cursor, total=len(rows), extra={"page": page})

    def list_all(self, tenant_id: str) -> list[ApiKey]:
        return [key for environment in Environment
                for _sk, key in self._store.api_keys.partition(keys.env_pk(tenant_id, environment))]

    def add(self, key: ApiKey) -> None:
        self._stage(self._store.api_keys, self._key(key.tenant_id, key.environment, key.key_id), key, _absent)

    def save(self, key: ApiKey) -> None:
        self._stage(self._store.api_keys, self._key(key.tenant_id, key.environment, key.key_id), key, _exists)

    def touch(self, key: ApiKey, now: datetime) -> None:
        """Immediate and outside the transaction; only ``last_used_at`` changes.

        (DynamoDB lets pynamodb's UpdateError escape for a missing key; no service
        relies on that case, so the fake raises ConflictError.)
        """
        self.touches.append((key.key_id, now))
        row = self._key(key.tenant_id, key.environment, key.key_id)
        if row not in self._store.api_keys.rows:
            raise ConflictError("The API key no longer exists.")
        self._store.api_keys.rows[row] = replace(self._store.api_keys.rows[row], last_used_at=now)


class FakeSessionRepository(_Repository):
    def get(self, tenant_id: str, session_id: str) -> Session | None:
        return self._store.sessions.get((keys.tenant_pk(tenant_id), keys.session_sk(session_id)))

    def add(self, session: Session) -> None:
        row = (keys.tenant_pk(session.tenant_id), keys.session_sk(session.session_id))
        self._stage(self._store.sessions, row, session, _absent)

    def delete(self, tenant_id: str, session_id: str) -> None:
        """Unconditional: deleting a missing session is not an error."""
        self._stage(self._store.sessions, (keys.tenant_pk(tenant_id), keys.session_sk(session_id)), None)


class FakePlatformTokenRepository(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        self.touches: list[tuple[str, datetime]] = []

    @staticmethod
    def _key(token_id: str) -> Key:
        return keys.tenant_pk(PLATFORM_TENANT_ID), keys.platform_token_sk(token_id)

    def get(self, token_id: str) -> PlatformToken | None:
        return self._store.platform_tokens.get(self._key(token_id))

    def add(self, token: PlatformToken) -> None:
        self._stage(self._store.platform_tokens, self._key(token.token_id), token, _absent)

    def save(self, token: PlatformToken) -> None:
        self._stage(self._store.platform_tokens, self._key(token.token_id), token, _exists)

    def touch(self, token: PlatformToken, now: datetime) -> None:
        self.touches.append((token.token_id, now))
        row = self._key(token.token_id)
        if row not in self._store.platform_tokens.rows:
            raise ConflictError("The platform token no longer exists.")
        self._store.platform_tokens.rows[row] = replace(self._store.platform_tokens.rows[row], last_used_at=now)

    def list(self) -> list[PlatformToken]:
        """The platform tenant's ``PTOKEN#`` items, by sort key (the Query's order)."""
        pk, prefix = keys.tenant_pk(PLATFORM_TENANT_ID), keys.platform_token_sk("")
        return [t for sk, t in self._store.platform_tokens.partition(pk) if sk.startswith(prefix)]

    def count_request(self, token_id: str, window_id: str, *, limit: int, expires_at: datetime) -> int | None:
        """Immediate, like the conditional ADD: the window's new count, None when it already holds ``limit``."""
        row = (keys.rate_window_pk(PLATFORM_TENANT_ID, token_id), keys.rate_window_sk(window_id))
        count = self._store.rate_windows.get(row, 0)
        if count >= limit:
            return None
        self._store.rate_windows[row] = count + 1
        return count + 1


class FakeSigningKeyRepository(_Repository):
    """The registry partition: write-once items, listed by sort key (``K#{key_id}``) like the Query."""

    def get(self, key_id: str) -> SigningKey | None:
        return self._store.signing_keys.get((keys.SIGNING_KEYS_PK, keys.signing_key_sk(key_id)))

    def list(self) -> list[SigningKey]:
        return [key for _sk, key in self._store.signing_keys.partition(keys.SIGNING_KEYS_PK)]

    def add(self, key: SigningKey) -> None:
        self._stage(self._store.signing_keys, (keys.SIGNING_KEYS_PK, keys.signing_key_sk(key.key_id)), key, _absent)


class FakeAuditRepository(_Repository):
    def add(self, entry: AuditEntry) -> None:
        row = (keys.tenant_pk(entry.tenant_id), keys.audit_sk(iso_us(entry.at) or "", entry.entry_id))
        self._stage(self._store.audit, row, entry, _absent)

    def list(self, tenant_id: str, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """Newest first: the sort key starts with the microsecond timestamp."""
        pk = keys.tenant_pk(tenant_id)
        rows = self._store.audit.partition(pk, forward=False)
        items, next_cursor, page = _paginate(rows, limit=limit, cursor=cursor, partition=("pk", pk),
                                             forward=False, last_key=_lek(pk))
        return Page(items=items, next_cursor=next_cursor, extra={"page": page})


def _customer_sort(customer_id: str) -> str:
    """The fake keeps a tenant environment's customers in one sorted partition (the id index's order)."""
    return f"C#{customer_id}"


class FakeCustomerRepository(_Repository):
    def get(self, tenant_id: str, environment: Environment, customer_id: str) -> Customer | None:
        return self._store.customers.get((keys.env_pk(tenant_id, environment), _customer_sort(customer_id)))

    def get_many(self, tenant_id: str, environment: Environment, customer_ids: list[str]) -> dict[str, Customer]:
        found = {c: self.get(tenant_id, environment, c) for c in customer_ids}
        return {c: customer for c, customer in found.items() if customer is not None}

    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None,
             prefix: str | None = None) -> Page[Customer]:
        """By id; ``prefix`` is a ``begins_with`` key condition."""
        pk = keys.env_pk(tenant_id, environment)
        begins = _customer_sort(prefix or "")
        rows = [row for row in self._store.customers.partition(pk) if row[0].startswith(begins)]
        items, next_cursor, page = _paginate(rows, limit=limit, cursor=cursor, partition=("pk", pk),
                                             forward=True, last_key=_lek(pk), sort_prefix=begins)
        return Page(items=items, next_cursor=next_cursor, extra={"page": page})

    def add(self, customer: Customer) -> None:
        row = (keys.env_pk(customer.tenant_id, customer.environment), _customer_sort(customer.customer_id))
        self._stage(self._store.customers, row, customer, _absent)

    def stats(self, tenant_id: str, environment: Environment) -> CustomerStats:
        found = self._store.customers.get((keys.env_pk(tenant_id, environment), keys.STATS_SK))
        return found or CustomerStats()

    def count(self, tenant_id: str, environment: Environment, **changes: int | Decimal) -> None:
        """Staged like DynamoDB's ADD: applied to whatever the totals are at commit."""
        if not any(changes.values()):
            return

        def add(current: CustomerStats | None) -> CustomerStats:
            base = current or CustomerStats()
            return replace(base, **{name: getattr(base, name) + value for name, value in changes.items()})

        self._uow.stage(_Write(self._store.customers, (keys.env_pk(tenant_id, environment), keys.STATS_SK),
                               None, apply=add))


class FakeWebhookRepository(_Repository):
    """Endpoints (what account deletion touches) and staging outbox items (``store.outbox``, by outbox id);
    fan-out and deliveries are tested under moto."""

    def add_outbox(self, outbox: Any) -> None:
        self._stage(_outbox_table(self._store), ("OUTBOX", outbox.outbox_id), outbox, _absent)

    def outbox_ref(self, outbox: Any) -> tuple[str, str]:
        return "OUTBOX", outbox.outbox_id

    def get_endpoint(self, tenant_id: str, environment: Environment, endpoint_id: str) -> Endpoint | None:
        return self._store.webhook_endpoints.get((keys.webhooks_pk(tenant_id, environment),
                                                  keys.endpoint_sk(endpoint_id)))

    def endpoints(self, tenant_id: str, environment: Environment) -> list[Endpoint]:
        pk = keys.webhooks_pk(tenant_id, environment)
        return [e for sk, e in self._store.webhook_endpoints.partition(pk) if sk.startswith(keys.endpoint_sk(""))]

    def save_endpoint(self, endpoint: Endpoint, *, new: bool = False) -> None:
        row = (keys.webhooks_pk(endpoint.tenant_id, endpoint.environment), keys.endpoint_sk(endpoint.endpoint_id))
        self._stage(self._store.webhook_endpoints, row, endpoint, _absent if new else _always)


def _versioned(version: int | None) -> Condition:
    """PynamoDB's VersionAttribute on save: absent when new, else the version read."""
    if version is None:
        return _absent
    return lambda current: current is not None and current.version == version


class FakePeriodCloseRepository(_Repository):
    """Mirrors ``DynamoPeriodCloseRepository``: ``T#{tenant}`` / ``PERIOD#{p}`` closes and ``ROLLOVER`` /
    ``PERIOD#{p}`` runs on one table (``store.period_closes``), each save versioned."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        if not hasattr(self._store, "period_closes"):
            self._store.period_closes = Table()  # type: ignore[attr-defined]
        self._table: Table = self._store.period_closes  # type: ignore[attr-defined]

    def get(self, tenant_id: str, period: str) -> Any:
        return self._table.get((keys.tenant_pk(tenant_id), keys.period_close_sk(period)))

    def save(self, close: Any) -> None:
        stored = replace(close, version=(close.version or 0) + 1)
        self._stage(self._table, (keys.tenant_pk(close.tenant_id), keys.period_close_sk(close.period)), stored,
                    _versioned(close.version))

    def get_run(self, period: str) -> Any:
        return self._table.get((keys.ROLLOVER_RUN_PK, keys.period_close_sk(period)))

    def save_run(self, run: Any, *, now: datetime) -> None:
        stored = replace(run, version=(run.version or 0) + 1)
        self._stage(self._table, (keys.ROLLOVER_RUN_PK, keys.period_close_sk(run.period)), stored,
                    _versioned(run.version))


def _outbox_table(store: FakeStore) -> Table:
    if not hasattr(store, "outbox"):
        store.outbox = Table()  # type: ignore[attr-defined]
    return store.outbox  # type: ignore[attr-defined]


class FakeUnitOfWork:
    """Reads go straight to the store; writes wait for :meth:`commit` (all or nothing)."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store if store is not None else FakeStore()
        self._staged: list[_Write] = []
        self.committed: list[int] = []  # writes per successful commit: lets tests see chunking
        self.tenants = FakeTenantRepository(self)
        self.users = FakeUserRepository(self)
        self.api_keys = FakeApiKeyRepository(self)
        self.sessions = FakeSessionRepository(self)
        self.platform_tokens = FakePlatformTokenRepository(self)
        self.signing_keys = FakeSigningKeyRepository(self)
        self.audit = FakeAuditRepository(self)
        self.customers = FakeCustomerRepository(self)
        self.webhooks = FakeWebhookRepository(self)
        self.period_closes = FakePeriodCloseRepository(self)
        self.stripe_events = FakeStripeEventRepository(self)

    def stage(self, write: _Write) -> None:
        self._staged.append(write)

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    def rollback(self) -> None:
        self._staged.clear()

    def commit(self) -> None:
        staged, self._staged = self._staged, []
        if not staged:
            return
        if len(staged) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACTION_ITEMS} writes")
        if len(staged) > 1 and len({(id(w.table), w.key) for w in staged}) < len(staged):
            raise ValueError("Transaction request cannot include multiple operations on one item")
        if not all(write.condition(write.table.rows.get(write.key)) for write in staged):
            raise ConcurrentWriteError()
        for write in staged:
            if write.apply is not None:
                write.table.rows[write.key] = write.apply(write.table.rows.get(write.key))
            elif write.item is None:
                write.table.rows.pop(write.key, None)
            else:
                write.table.rows[write.key] = write.item
        self.committed.append(len(staged))


# --- credits ---------------------------------------------------------------------------------
# Mirrors ``DynamoCreditRepository`` (the model: domain/credits.py): the account item (``ACCOUNT``:
# the posted ledger, moved only from exactly what was read, plus the pool and the cumulative resolved
# holds and posted deltas, moved by ADDs), one immutable item per entry (``E#{entry_id}``), and the
# escrow lanes (``CREDITS#LANE#{n}``, conditional ADDs). Attach it to a unit of work with
# ``uow.credits = FakeCreditRepository(uow)``; the ledger table lives on the shared store, so several
# units of work see the same account.

from chalicelib.domain.credits import CreditAccount, CreditPosition, HoldLane, HoldPlan, LedgerEntry, Settled  # noqa: E402


@dataclass(frozen=True)
class _AccountRow:
    ledger: CreditAccount
    pool: int = 0
    resolved: int = 0
    posted_deltas: int = 0
    posted: tuple[tuple[int, Settled], ...] = ()


def _ledger_table(store: FakeStore) -> Table:
    table = getattr(store, "credit_ledger", None)
    if table is None:
        table = Table()
        store.credit_ledger = table  # type: ignore[attr-defined]
    return table


class FakeCreditRepository(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        self._ledger = _ledger_table(self._store)

    @staticmethod
    def _account_key(tenant_id: str) -> Key:
        return keys.credits_pk(tenant_id), keys.ACCOUNT_SK

    def _row(self, tenant_id: str) -> _AccountRow:
        return self._ledger.get(self._account_key(tenant_id)) or _AccountRow(CreditAccount(tenant_id=tenant_id))

    def account(self, tenant_id: str) -> CreditAccount:
        return self._row(tenant_id).ledger

    def position(self, tenant_id: str, *, snapshot: bool = False) -> CreditPosition:
        row = self._row(tenant_id)  # a read here is always a snapshot
        lanes = tuple(lane for n in sorted(set(keys.CREDIT_LANES) | set(keys.CREDIT_SETTLEMENTS))
                      if (lane := self._ledger.get((keys.credit_lane_pk(tenant_id, n), keys.LANE_SK))) is not None)
        return CreditPosition(ledger=row.ledger, pool=row.pool, resolved=row.resolved,
                              posted_deltas=row.posted_deltas, lanes=lanes, posted=row.posted)

    def entries(self, tenant_id: str, limit: int, cursor: str | None, page: int = 1) -> Page[LedgerEntry]:
        """Newest first: ``E#{entry_id}`` descending (entry ids are numbered in commit order); ``page`` without
        a cursor is reached by walking the pages before it (past the end: empty)."""
        pk = keys.credits_pk(tenant_id)
        begins = keys.ledger_entry_sk("")
        rows = [row for row in self._ledger.partition(pk, forward=False) if row[0].startswith(begins)]
        total = self.account(tenant_id).entry_count
        items, next_cursor, number = _paginate(rows, limit=limit, cursor=cursor, partition=("pk", pk),
                                               forward=False, last_key=_lek(pk), sort_prefix=begins)
        while cursor is None and number < page:
            if next_cursor is None:
                return Page(items=[], next_cursor=None, total=total, extra={"page": page})
            items, next_cursor, number = _paginate(rows, limit=limit, cursor=next_cursor, partition=("pk", pk),
                                                   forward=False, last_key=_lek(pk), sort_prefix=begins)
        return Page(items=items, next_cursor=next_cursor, total=total, extra={"page": number})

    def _update(self, key: Key, condition: Condition, change: Callable[[Any], Any]) -> None:
        self._uow.stage(_Write(self._ledger, key, None, condition, apply=change))

    def record(self, before: CreditAccount, after: CreditAccount, *entries: LedgerEntry, pool: int = 0,
               resolved: int = 0, posted_deltas: int = 0, posted_lanes: dict[int, Settled] | None = None) -> None:
        """Move the ledger from exactly ``before`` (its entry count; ConcurrentWriteError at commit
        otherwise) to ``after``, ADD the rest, and put the new entries."""
        tenant_id = before.tenant_id

        def unchanged(current: _AccountRow | None) -> bool:
            count = current.ledger.entry_count if current is not None else 0
            return count == before.entry_count

        def change(current: _AccountRow | None) -> _AccountRow:
            row = current or _AccountRow(CreditAccount(tenant_id=tenant_id))
            posted = row.posted if posted_lanes is None else tuple(sorted(posted_lanes.items()))
            return _AccountRow(after, row.pool + pool, row.resolved + resolved, row.posted_deltas + posted_deltas,
                               posted)

        self._update(self._account_key(tenant_id), unchanged, change)
        for entry in entries:
            self._stage(self._ledger, (keys.credits_pk(tenant_id), keys.ledger_entry_sk(entry.entry_id)), entry,
                        _absent)

    def hold(self, tenant_id: str, plan: HoldPlan, amount: int, deltas: int) -> None:
        short = amount - plan.refill

        def change(current: HoldLane | None) -> HoldLane:
            lane = current or HoldLane(plan.lane)
            return replace(lane, free=lane.free + plan.refill - amount, held_total=lane.held_total + amount,
                           held_deltas=lane.held_deltas + deltas)

        self._update((keys.credit_lane_pk(tenant_id, plan.lane), keys.LANE_SK),
                     lambda current: short <= 0 or (current is not None and current.free >= short), change)
        if plan.refill:
            self._update(self._account_key(tenant_id),
                         lambda current: current is not None and current.pool >= plan.refill,
                         lambda current: replace(current, pool=current.pool - plan.refill))

    def settle(self, tenant_id: str, lane: int, settled: Settled) -> None:
        """On the lane's row here; the adapter keeps settlements on items of their own (``CREDITS#SETTLE#n``),
        which reads the same: only DynamoDB's conflicts between transactions on one item tell them apart."""
        self._update((keys.credit_lane_pk(tenant_id, lane), keys.LANE_SK), _always,
                     lambda current: replace(current or HoldLane(lane), settled=(current or HoldLane(lane)).settled
                                             + settled))

    def drain(self, tenant_id: str, lanes: dict[int, int], *, to_pool: bool = True) -> None:
        for index, amount in lanes.items():
            self._update((keys.credit_lane_pk(tenant_id, index), keys.LANE_SK),
                         lambda current, amount=amount: current is not None and current.free >= amount,
                         lambda current, amount=amount: replace(current, free=current.free - amount))

        def refill_pool(current: _AccountRow | None) -> _AccountRow:
            row = current or _AccountRow(CreditAccount(tenant_id=tenant_id))
            return replace(row, pool=row.pool + sum(lanes.values()))

        if to_pool and lanes:
            self._update(self._account_key(tenant_id), _always, refill_pool)


# --- billing provider --------------------------------------------------------------------------------
# An in-memory BillingProvider (services/ports.py): records every call, keeps subscriptions, honours
# idempotency keys and meter-event identifiers like Stripe. Install with ``bootstrap.override(billing=...)``.


from chalicelib.domain.subscriptions import CheckoutSession, Subscription  # noqa: E402


class FakeBillingProvider:
    def __init__(self, period_end: datetime | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.subscriptions: dict[str, Subscription] = {}
        self.meter_events: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}  # one-off overage invoices, by identifier
        self._answers: dict[str, Any] = {}
        self.period_end = period_end or datetime(2031, 1, 1, tzinfo=UTC)
        self.fail_with: Exception | None = None  # raised by the next call, once

    def _call(self, name: str, **params: Any) -> None:
        self.calls.append((name, params))
        if self.fail_with is not None:
            exc, self.fail_with = self.fail_with, None
            raise exc

    def names(self) -> list[str]:
        return [name for name, _params in self.calls]

    def subscribe(self, tenant_id: str, tier: str, *, customer_id: str | None = None) -> Subscription:
        """What completing Checkout does on the provider's side."""
        sub = Subscription(id=f"sub_{len(self.subscriptions) + 1}", customer_id=customer_id or f"cus_{tenant_id}",
                           status="active", tier=tier, current_period_end=self.period_end, tenant_id=tenant_id)
        self.subscriptions[sub.id] = sub
        return sub

    def create_checkout_session(self, *, tenant_id: str, tier: str, customer_id: str | None,
                                customer_email: str | None, success_url: str, cancel_url: str,
                                idempotency_key: str) -> CheckoutSession:
        self._call("create_checkout_session", tenant_id=tenant_id, tier=tier, customer_id=customer_id,
                   customer_email=customer_email, success_url=success_url, cancel_url=cancel_url,
                   idempotency_key=idempotency_key)
        if idempotency_key not in self._answers:
            session_id = f"cs_{len(self._answers) + 1}"
            self._answers[idempotency_key] = CheckoutSession(session_id, f"https://checkout.test/c/pay/{session_id}")
        return self._answers[idempotency_key]

    def change_plan(self, subscription_id: str, *, tier: str, idempotency_key: str) -> Subscription:
        self._call("change_plan", subscription_id=subscription_id, tier=tier, idempotency_key=idempotency_key)
        sub = replace(self.subscriptions[subscription_id], tier=tier)
        self.subscriptions[subscription_id] = sub
        return sub

    def create_portal_session(self, customer_id: str, *, return_url: str) -> str:
        self._call("create_portal_session", customer_id=customer_id, return_url=return_url)
        return f"https://billing.test/p/session/{customer_id}"

    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> Subscription:
        self._call("cancel_at_period_end", subscription_id=subscription_id, idempotency_key=idempotency_key)
        sub = replace(self.subscriptions[subscription_id], cancel_at_period_end=True)
        self.subscriptions[subscription_id] = sub
        return sub

    def get_subscription(self, subscription_id: str) -> Subscription:
        self._call("get_subscription", subscription_id=subscription_id)
        return self.subscriptions[subscription_id]

    def report_overage(self, *, customer_id: str, quantity: int, identifier: str, timestamp: datetime) -> None:
        self._call("report_overage", customer_id=customer_id, quantity=quantity, identifier=identifier,
                   timestamp=timestamp)
        self.meter_events.setdefault(identifier, {"customer_id": customer_id, "quantity": quantity,
                                                  "timestamp": timestamp})

    def invoice_overage(self, *, customer_id: str, quantity: int, amount_cents: int, description: str,
                        identifier: str) -> None:
        self._call("invoice_overage", customer_id=customer_id, quantity=quantity, amount_cents=amount_cents,
                   description=description, identifier=identifier)
        self.invoices.setdefault(identifier, {"customer_id": customer_id, "quantity": quantity,
                                              "amount_cents": amount_cents, "description": description})


# --- Stripe events ------------------------------------------------------------------------------------
# Mirrors ``adapters/dynamodb/stripe_event_repository.py``: the billing table's ``STRIPE_EVENT#{id}`` and
# ``INVOICE#{id}`` items, with the same conditions (absent to record, ``received`` to mark handled,
# never ``paid`` → anything else).

from chalicelib.domain.stripe_events import INVOICE_PAID, RECEIVED, StripeEvent  # noqa: E402


def _billing_table(store: FakeStore) -> Table:
    table = getattr(store, "billing", None)
    if table is None:
        table = Table()
        store.billing = table  # type: ignore[attr-defined]
    return table


class FakeStripeEventRepository(_Repository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        self._billing = _billing_table(self._store)

    def get(self, event_id: str) -> StripeEvent | None:
        return self._billing.get((keys.stripe_event_pk(event_id), keys.STRIPE_EVENT_SK))

    def add(self, event: StripeEvent) -> None:
        self._stage(self._billing, (keys.stripe_event_pk(event.event_id), keys.STRIPE_EVENT_SK), event, _absent)

    def mark_handled(self, event: StripeEvent) -> None:
        self._stage(self._billing, (keys.stripe_event_pk(event.event_id), keys.STRIPE_EVENT_SK), event,
                    lambda current: current is not None and current.state == RECEIVED)

    def invoice_status(self, invoice_id: str) -> str | None:
        return self._billing.get((keys.invoice_pk(invoice_id), keys.INVOICE_SK))

    def set_invoice_status(self, invoice_id: str, *, tenant_id: str, status: str, now: datetime) -> None:
        condition = _always if status == INVOICE_PAID else (lambda current: current != INVOICE_PAID)
        self._stage(self._billing, (keys.invoice_pk(invoice_id), keys.INVOICE_SK), status, condition)


# --- outgoing deliveries ------------------------------------------------------------------------------
# Recorders standing in for the network: the webhook sender (``bootstrap.override(webhook_sender=...)``)
# and the local Stripe stand-in's event sink (``LocalStripe(sink=...)``, ``bootstrap.override(stripe_sink=...)``).

from chalicelib.adapters.webhook_http import SendResult  # noqa: E402


class RecordingSender:
    """A webhook sender that records every POST as (url, body, headers) in ``calls`` and answers each with
    the next of ``statuses`` (then 200)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.calls: list[tuple[str, str, dict]] = []

    def post(self, url: str, body: str, headers: dict) -> SendResult:
        self.calls.append((url, body, headers))
        status = self.statuses.pop(0) if self.statuses else 200
        return SendResult(status, 7, None if status < 300 else f"HTTP {status}", "ok")

    def events(self, kind: str | None = None) -> list[dict]:
        """The events posted (parsed), in order; only those of type ``kind`` if given."""
        return [event for _url, event in self.deliveries(kind)]

    def deliveries(self, kind: str | None = None) -> list[tuple[str, dict]]:
        """(url, parsed event) of every POST, in order; only events of type ``kind`` if given."""
        found = [(url, json.loads(body)) for url, body, _headers in self.calls]
        return [(url, event) for url, event in found if kind is None or event["event"] == kind]


class CapturingSink:
    """A Stripe event sink: records every delivery as (payload, signature) in ``calls`` and answers each
    with the next status of ``statuses`` (the last one repeats; 200 if none)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses or (200,))
        self.calls: list[tuple[bytes, str]] = []

    def __call__(self, payload: bytes, signature: str) -> int:
        self.calls.append((payload, signature))
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    @property
    def events(self) -> list[dict]:
        return [json.loads(payload) for payload, _ in self.calls]

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def clear(self) -> None:
        self.calls.clear()
