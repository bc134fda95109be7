"""The credit account (``CREDITS#{tenant}``), its ledger entries (``CREDITS#E#{n}``, 8 partitions round
robin), its escrow lanes (``CREDITS#LANE#{n}``) and the lanes' settlements (``CREDITS#SETTLE#{n}``): the
model and its invariants are in domain/credits.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.dynamodb.models import (
    CreditAccountRecord,
    CreditLaneRecord,
    CreditSettlementRecord,
    LedgerEntryRecord,
)
from chalicelib.adapters.dynamodb.staging import Repository, batch_get, get_item, transact_get
from chalicelib.domain.credits import (
    CreditAccount,
    CreditPosition,
    EntryType,
    HoldLane,
    HoldPlan,
    LedgerEntry,
    Settled,
    entry_id_for,
    entry_number,
)
from chalicelib.domain.errors import ValidationError
from chalicelib.services.ports import Page


def account_from(tenant_id: str, record: CreditAccountRecord | None) -> CreditAccount:
    if record is None:
        return CreditAccount(tenant_id=tenant_id)
    return CreditAccount(tenant_id=tenant_id, credit_balance=int(record.credit_balance or 0),
                         reserved=int(record.reserved or 0), entry_count=int(record.entry_count or 0))


def _lane_from(index: int, lane: Any, settled: Any) -> HoldLane:
    holds = CreditLaneRecord.from_raw_data(lane) if lane else CreditLaneRecord()
    seals = CreditSettlementRecord.from_raw_data(settled) if settled else CreditSettlementRecord()
    return HoldLane(index, free=int(holds.free or 0), held_total=int(holds.held_total or 0),
                    held_deltas=int(holds.held_deltas or 0),
                    settled=Settled(int(seals.settled or 0), int(seals.released or 0), int(seals.settled_deltas or 0),
                                    int(seals.seals or 0)))


def position_from(tenant_id: str, account: Any, lanes: dict[int, tuple[Any, Any]]) -> CreditPosition:
    """From raw items: the account (or None) and, by index, each lane that exists as (holds, settlements),
    either of which may be None."""
    record = CreditAccountRecord.from_raw_data(account) if account else None
    posted = (record.posted_lanes or {}) if record else {}
    return CreditPosition(
        ledger=account_from(tenant_id, record),
        pool=int(record.pool or 0) if record else 0,
        resolved=int(record.resolved or 0) if record else 0,
        posted_deltas=int(record.posted_deltas or 0) if record else 0,
        lanes=tuple(_lane_from(index, *raw) for index, raw in sorted(lanes.items())),
        posted=tuple(sorted((int(lane), Settled(*(int(n) for n in values))) for lane, values in posted.items())),
    )


def position_keys(tenant_id: str, *, settlements: bool = True) -> list[tuple[Any, str, str]]:
    """The account, every lane and (``settlements``) every lane's settlements: what :func:`read_position`
    asks for (in a caller's BatchGetItem too)."""
    return [(CreditAccountRecord, keys.credits_pk(tenant_id), keys.ACCOUNT_SK)] + [
        (CreditLaneRecord, keys.credit_lane_pk(tenant_id, lane), keys.LANE_SK) for lane in keys.CREDIT_LANES] + [
        (CreditSettlementRecord, keys.credit_settle_pk(tenant_id, lane), keys.SETTLE_SK)
        for lane in keys.CREDIT_SETTLEMENTS if settlements]


def read_position(tenant_id: str, found: dict[tuple[str, str, str], Any], *,
                  settlements: bool = True) -> CreditPosition:
    """The position from a read that asked for :func:`position_keys` (with ``settlements`` alike)."""
    table = CreditAccountRecord.Meta.table_name
    account = found.get((table, keys.credits_pk(tenant_id), keys.ACCOUNT_SK))
    lanes = {}
    for lane in sorted(set(keys.CREDIT_LANES) | set(keys.CREDIT_SETTLEMENTS)):
        holds = found.get((table, keys.credit_lane_pk(tenant_id, lane), keys.LANE_SK))
        settled = found.get((table, keys.credit_settle_pk(tenant_id, lane), keys.SETTLE_SK))
        if holds is not None or settled is not None:
            lanes[lane] = (holds, settled)
    position = position_from(tenant_id, account, lanes)
    return position if settlements else replace(position, complete=False)


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


class DynamoCreditRepository(Repository):
    def account(self, tenant_id: str) -> CreditAccount:
        record = get_item(CreditAccountRecord, keys.credits_pk(tenant_id), keys.ACCOUNT_SK)
        return account_from(tenant_id, record)

    def entries(self, tenant_id: str, limit: int, cursor: str | None, page: int = 1) -> Page[LedgerEntry]:
        """Newest first, read by key: entries are numbered 1..``entry_count`` without gaps (the account
        update that writes them is exact), so a page is the account (its count is the newest number and the
        page's ``total``) and one BatchGetItem of the page's numbers, each in its shard. An entry written
        before the shards existed is looked for under the account's key. The cursor holds the last entry's
        key under the account's partition, as cursors issued before did. ``page`` (without a cursor) is read
        directly: its newest number is known from the count."""
        legacy = keys.credits_pk(tenant_id)
        last_key, number = decode_cursor(cursor, partition=("pk", legacy), key_names=("pk", "sk"),
                                         sort_prefix=("sk", "E#"))
        total = top = self.account(tenant_id).entry_count
        if last_key is None:
            number = max(page, 1)
            top -= (number - 1) * limit
        else:
            try:
                top = min(top, entry_number(last_key["sk"]["S"][2:]) - 1)  # a forged number pages no emptiness
            except ValueError as exc:
                raise ValidationError("cursor is invalid or expired", field="cursor") from exc
        numbers = list(range(top, max(0, top - limit), -1))  # none past the oldest
        table = LedgerEntryRecord.Meta.table_name
        where = {n: (keys.ledger_entry_pk(tenant_id, n), keys.ledger_entry_sk(entry_id_for(n))) for n in numbers}
        found = batch_get([(LedgerEntryRecord, *where[n]) for n in numbers])
        missing = [n for n in numbers if (table, *where[n]) not in found]
        if missing:  # written before the shards: under the account's key
            where |= {n: (legacy, where[n][1]) for n in missing}
            found |= batch_get([(LedgerEntryRecord, *where[n]) for n in missing])
        items = [_entry_from(LedgerEntryRecord.from_raw_data(found[(table, *where[n])])) for n in numbers
                 if (table, *where[n]) in found]
        next_cursor = (encode_cursor({"pk": {"S": legacy}, "sk": {"S": where[numbers[-1]][1]}}, number)
                       if numbers and numbers[-1] > 1 else None)
        return Page(items=items, next_cursor=next_cursor, total=total, extra={"page": number})

    def position(self, tenant_id: str, *, snapshot: bool = False) -> CreditPosition:
        """The account, its lanes and their settlements. ``snapshot``: as of one instant (TransactGetItems),
        for the ledger's writers, who post sums of these items and must not mix one item's old state with
        another's new one; it is cancelled by a transaction in flight on any of them (ConcurrentWriteError),
        so reads that only show or plan take one BatchGetItem."""
        keys_wanted = position_keys(tenant_id)
        return read_position(tenant_id, transact_get(keys_wanted) if snapshot else batch_get(keys_wanted))

    def record(self, before: CreditAccount, after: CreditAccount, *entries: LedgerEntry, pool: int = 0,
               resolved: int = 0, posted_deltas: int = 0, posted_lanes: dict[int, Settled] | None = None) -> None:
        """Move the ledger from ``before`` to ``after`` (exactly: fails if another ledger writer moved it) and
        add the entries; ``pool``, ``resolved`` and ``posted_deltas`` are ADDed (acceptances ADD to the pool
        concurrently, never conflicting with this); ``posted_lanes``: each lane's settlements now posted."""
        account = CreditAccountRecord(keys.credits_pk(before.tenant_id), keys.ACCOUNT_SK)
        if before.entry_count == 0:
            condition = CreditAccountRecord.entry_count.does_not_exist()
        else:
            condition = CreditAccountRecord.entry_count == before.entry_count
        actions = [
            CreditAccountRecord.tenant_id.set(before.tenant_id),
            CreditAccountRecord.credit_balance.set(after.credit_balance),
            CreditAccountRecord.reserved.set(after.reserved),
            CreditAccountRecord.entry_count.set(after.entry_count),
        ]
        actions += [getattr(CreditAccountRecord, name).add(value) for name, value in
                    (("pool", pool), ("resolved", resolved), ("posted_deltas", posted_deltas)) if value]
        if posted_lanes is not None:
            actions.append(CreditAccountRecord.posted_lanes.set(
                {str(lane): [s.credits, s.released, s.deltas, s.seals] for lane, s in sorted(posted_lanes.items())}))
        self._stage("update", account, condition=condition, actions=actions)
        for entry in entries:
            shard = keys.ledger_entry_pk(entry.tenant_id, entry_number(entry.entry_id))
            self._stage("save", LedgerEntryRecord(
                shard, keys.ledger_entry_sk(entry.entry_id),
                tenant_id=entry.tenant_id, entry_id=entry.entry_id, entry_type=str(entry.entry_type),
                amount=entry.amount, balance_after=entry.balance_after, description=entry.description,
                created_at=entry.created_at,
            ), condition=LedgerEntryRecord.pk.does_not_exist())

    def hold(self, tenant_id: str, plan: HoldPlan, amount: int, deltas: int) -> None:
        """Stage a hold of ``amount`` for ``deltas`` deltas on ``plan.lane``: conditional ADDs only, after a
        refill from the pool when planned (the account is in the transaction only then)."""
        lane = CreditLaneRecord(keys.credit_lane_pk(tenant_id, plan.lane), keys.LANE_SK)
        short = amount - plan.refill  # what the lane's free escrow must already cover
        condition = (CreditLaneRecord.free >= short) if short > 0 else None
        self._stage("update", lane, condition=condition, actions=[
            CreditLaneRecord.free.add(plan.refill - amount),
            CreditLaneRecord.held_total.add(amount),
            CreditLaneRecord.held_deltas.add(deltas),
        ])
        if plan.refill:
            self._stage("update", CreditAccountRecord(keys.credits_pk(tenant_id), keys.ACCOUNT_SK),
                        condition=CreditAccountRecord.pool >= plan.refill,
                        actions=[CreditAccountRecord.pool.add(-plan.refill)])

    def settle(self, tenant_id: str, lane: int, settled: Settled) -> None:
        """Stage a seal's settlement on ``lane``: ADDs only (its deltas' conditions make it exactly once)."""
        record = CreditSettlementRecord(keys.credit_settle_pk(tenant_id, lane), keys.SETTLE_SK)
        self._stage("update", record, actions=[
            CreditSettlementRecord.settled.add(settled.credits), CreditSettlementRecord.released.add(settled.released),
            CreditSettlementRecord.settled_deltas.add(settled.deltas), CreditSettlementRecord.seals.add(settled.seals),
        ])

    def drain(self, tenant_id: str, lanes: dict[int, int], *, to_pool: bool = True) -> None:
        """Stage moving each lane's ``free`` credits (exactly as much as read: at least that much must still
        be there) back into the pool (``to_pool=False``: the caller's account update adds them)."""
        for lane, amount in lanes.items():
            self._stage("update", CreditLaneRecord(keys.credit_lane_pk(tenant_id, lane), keys.LANE_SK),
                        condition=CreditLaneRecord.free >= amount, actions=[CreditLaneRecord.free.add(-amount)])
        if to_pool and lanes:
            self._stage("update", CreditAccountRecord(keys.credits_pk(tenant_id), keys.ACCOUNT_SK),
                        actions=[CreditAccountRecord.pool.add(sum(lanes.values()))])
