"""Customers (a partition each), their environment's totals (``STATS`` shards) and the keys-only indexes
that list them by id and by name."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.cursors import decode_merged_cursor, encode_merged_cursor
from chalicelib.adapters.dynamodb.merged import MergedQuery
from chalicelib.adapters.dynamodb.models import CustomerRecord, CustomerStatsRecord
from chalicelib.adapters.dynamodb.staging import Repository, batch_get, get_item
from chalicelib.adapters.dynamodb.usage_repository import read_usage, usage_keys
from chalicelib.domain.customers import (
    CUSTOMER_ID_RE,
    Customer,
    CustomerSource,
    CustomerStats,
    EventCadence,
    Policy,
    SharingState,
    name_key,
)
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import Environment
from chalicelib.domain.usage import UsageCounter
from chalicelib.services.ports import Page


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


def _stats_keys(tenant_id: str, environment: Environment) -> list[tuple[Any, str, str]]:
    return [(CustomerStatsRecord, keys.stats_pk(tenant_id, str(environment), shard), keys.STATS_SK)
            for shard in keys.STATS_SHARDS]


def _sum_stats(tenant_id: str, environment: Environment, found: dict[tuple[str, str, str], Any]) -> CustomerStats:
    table = CustomerStatsRecord.Meta.table_name
    return sum((_stats_from(CustomerStatsRecord.from_raw_data(found[(table, pk, sk)]))
                for _m, pk, sk in _stats_keys(tenant_id, environment) if (table, pk, sk) in found), CustomerStats())


DIRECTORY_PAGE = 100  # index items read per query while filling a filtered directory page
SKIP_READ = 1_000  # index keys a shard is asked for at most while passing over earlier pages (``page``)


def _record(tenant_id: str, environment: Environment | str, customer_id: str) -> CustomerRecord:
    """An unsaved record with the customer's keys (for staged updates)."""
    return CustomerRecord(keys.customer_pk(tenant_id, str(environment), customer_id), keys.CUSTOMER_SK)


def _list_key(tenant_id: str, environment: Environment, sort_key: str, value: str) -> dict[str, Any]:
    """A list index entry's key (without its partition) from its sort key alone, as a merged cursor holds it:
    the id is the sort key (id order) or what follows the name's tab (name order)."""
    customer_id = value.rpartition("\t")[2] if sort_key == "name_key" else value
    if (sort_key == "name_key" and "\t" not in value) or not CUSTOMER_ID_RE.fullmatch(customer_id):
        raise ValidationError("cursor is invalid or expired", field="cursor")
    return {"pk": {"S": keys.customer_pk(tenant_id, str(environment), customer_id)}, "sk": {"S": keys.CUSTOMER_SK},
            sort_key: {"S": value}}


class DynamoCustomerRepository(Repository):
    def get(self, tenant_id: str, environment: Environment, customer_id: str) -> Customer | None:
        record = get_item(CustomerRecord, keys.customer_pk(tenant_id, str(environment), customer_id),
                          keys.CUSTOMER_SK)
        return _customer_from(record) if record else None

    def get_many(self, tenant_id: str, environment: Environment, customer_ids: list[str]) -> dict[str, Customer]:
        """The customers that exist among ``customer_ids``, by id: BatchGetItem, 100 keys a call."""
        env = str(environment)
        wanted = [(CustomerRecord, keys.customer_pk(tenant_id, env, c), keys.CUSTOMER_SK) for c in customer_ids]
        found = batch_get(wanted)
        table = CustomerRecord.Meta.table_name
        return {c: _customer_from(CustomerRecord.from_raw_data(found[(table, pk, sk)]))
                for c, (_m, pk, sk) in zip(customer_ids, wanted, strict=True) if (table, pk, sk) in found}

    @staticmethod
    def _hydrate(index_records: list[Any]) -> list[Customer | None]:
        """The full rows behind keys-only index entries, in index order (one BatchGetItem per 100); None
        where the row is gone."""
        found = batch_get([(CustomerRecord, r.pk, r.sk) for r in index_records])
        table = CustomerRecord.Meta.table_name
        return [_customer_from(CustomerRecord.from_raw_data(found[(table, r.pk, r.sk)]))
                if (table, r.pk, r.sk) in found else None for r in index_records]

    def list(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None,
             prefix: str | None = None) -> Page[Customer]:
        """Customers by id; ``prefix`` narrows with a key condition, never a filter."""
        return self.directory(tenant_id, environment, by_name=False, descending=False, limit=limit, cursor=cursor,
                              prefix=prefix, keep=None, budget=limit)

    def directory(self, tenant_id: str, environment: Environment, *, by_name: bool, descending: bool,
                  limit: int, cursor: str | None, prefix: str | None,
                  keep: Callable[[Customer], bool] | None, budget: int, page: int = 1) -> Page[Customer]:
        """Customers by display name or by id (keys-only indexes, then the rows in one BatchGetItem),
        kept by ``keep``. ``page`` (unfiltered, without a cursor) passes over the earlier pages' keys in the
        same queries, reading no rows for them.

        The indexes are sharded (``keys.customer_list_pks``): each shard is queried (concurrently) and the
        answers merged by sort key (``merged.py``). Unfiltered: one query a shard (a shard that runs dry
        early is asked again) and one BatchGetItem. Filtered: customers are read and filtered 100 at a time
        until the page is full or ``budget`` customers were examined; the cursor then resumes after the last
        customer examined (so a page may come back short, even empty, with a cursor).
        """
        partitions = keys.customer_list_pks(tenant_id, str(environment))
        index, sort_key = (CustomerRecord.name_index, "name_key") if by_name else (CustomerRecord.id_index,
                                                                                     "customer_id")
        key_names: tuple[str, ...] = ("pk", "sk", "list_pk", sort_key)
        order = "desc" if descending else None
        searched = (sort_key, prefix) if prefix else None
        resume, read_all, page_number = decode_merged_cursor(cursor, partitions=partitions, sort_prefix=searched,
                                                             order=order)
        after = None if resume is None else _list_key(tenant_id, environment, sort_key, resume)
        condition = getattr(index.__class__, sort_key).startswith(prefix) if prefix else None

        def run(list_pk: str, start: dict[str, Any] | None, count: int) -> Any:
            return tables.query(CustomerRecord, list_pk, condition, index=index, scan_index_forward=not descending,
                                limit=count, page_size=count, last_evaluated_key=start)

        wanted = limit if keep is None else budget
        skip = (page - 1) * limit if cursor is None and keep is None else 0
        merged = MergedQuery(run, partitions, after, read_all, partition_name="list_pk", sort_key=sort_key,
                             descending=descending, wanted=min(wanted + skip, SKIP_READ if skip else DIRECTORY_PAGE),
                             key_names=key_names)
        skipped: list[tuple[int, Any]] = []
        while len(skipped) < skip and (taken := merged.take(min(SKIP_READ, skip - len(skipped)))):
            skipped += taken
        if skip:
            page_number = page
        kept: list[Customer] = []
        used: list[tuple[int, Any]] = []
        unused: list[tuple[int, Any]] = []
        while len(kept) < limit and len(used) < wanted:
            taken = merged.take(min(DIRECTORY_PAGE, wanted - len(used)))
            if not taken:
                break
            rows = self._hydrate([record for _, record in taken])
            for position, (entry, customer) in enumerate(zip(taken, rows, strict=True)):
                used.append(entry)
                if customer is not None and (keep is None or keep(customer)):
                    kept.append(customer)
                if len(kept) == limit or len(used) >= wanted:
                    unused = taken[position + 1:]
                    break
        if keep is None and not unused:
            merged.more()  # a full last page: find out whether anything follows, for no cursor to an empty page
        last, finished = merged.resume_point(skipped + used, unused)
        next_cursor = encode_merged_cursor(last[sort_key]["S"] if last else None, finished, page_number,
                                           partitions=partitions, sort_prefix=searched, order=order)
        return Page(items=kept, next_cursor=next_cursor, extra={"page": page_number})

    def stats(self, tenant_id: str, environment: Environment) -> CustomerStats:
        """The environment's totals: every shard in one BatchGetItem, summed."""
        return _sum_stats(tenant_id, environment, batch_get(_stats_keys(tenant_id, environment)))

    def stats_and_usage(self, tenant_id: str, environment: Environment,
                        period: str) -> tuple[CustomerStats, UsageCounter]:
        """The environment's totals and the tenant's usage counter of ``period``: every shard of both in one
        BatchGetItem (the summary's one round trip)."""
        found = batch_get(_stats_keys(tenant_id, environment) + usage_keys(tenant_id, period))
        return _sum_stats(tenant_id, environment, found), read_usage(tenant_id, period, found)

    def count(self, tenant_id: str, environment: Environment, **changes: int | Decimal) -> None:
        """Stage ADDs to the environment's totals (``customers``, ``manual``, ``integration``, ``deltas``,
        ``verified``, ``failed``, ``balance``) on one shard chosen at random; zeros are left out."""
        actions = [getattr(CustomerStatsRecord, name).add(value) for name, value in changes.items() if value]
        if actions:
            shard = random.choice(keys.STATS_SHARDS)
            self._stage("update", CustomerStatsRecord(keys.stats_pk(tenant_id, str(environment), shard),
                                                      keys.STATS_SK), actions=actions)

    def count_verified(self, tenant_id: str, environment: Environment, customer_id: str, count: int) -> None:
        self._stage("update", _record(tenant_id, environment, customer_id), condition=CustomerRecord.pk.exists(),
                    actions=[CustomerRecord.verified_count.add(count)])

    def mark_checkpointed(self, customer: Customer, period: str, through_seq: int | None) -> None:
        """The newest checkpoint's period and the last sequence number settled under it (directory),
        moved from exactly the marker ``customer`` holds: a concurrent move is a conflict, not a regression."""
        record = _record(customer.tenant_id, customer.environment, customer.customer_id)
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
            keys.customer_pk(customer.tenant_id, str(customer.environment), customer.customer_id),
            keys.CUSTOMER_SK,
            list_pk=keys.customer_list_pk(customer.tenant_id, str(customer.environment), customer.customer_id),
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
        record = _record(tenant_id, environment, customer_id)
        actions = [CustomerRecord.balance.add(-amount), CustomerRecord.failed_count.add(1)]
        if in_cycle:
            actions += [CustomerRecord.cycle_count.add(-1), CustomerRecord.cycle_net.add(-amount)]
            condition = CustomerRecord.cycle_period == period
        else:
            condition = CustomerRecord.pk.exists() & (CustomerRecord.cycle_period.does_not_exist()
                                                      | (CustomerRecord.cycle_period != period))
        self._stage("update", record, condition=condition, actions=actions)
