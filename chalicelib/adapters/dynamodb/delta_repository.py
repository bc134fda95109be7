"""Deltas, reference guards, and the snapshot acceptance reads in one or two BatchGetItem calls."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib import jsoncodec
from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.credit_repository import position_keys, read_position
from chalicelib.adapters.dynamodb.models import (
    CustomerRecord,
    DeltaRecord,
    ReferenceGuardRecord,
    TenantRecord,
)
from chalicelib.adapters.dynamodb.staging import Repository, batch_get, get_item
from chalicelib.adapters.dynamodb.tenant_repository import tenant_from
from chalicelib.adapters.dynamodb.usage_repository import read_usage, usage_keys
from chalicelib.domain.batches import SealCandidate, SealedBatch
from chalicelib.domain.clock import iso_us
from chalicelib.domain.customers import CustomerSource, name_key
from chalicelib.domain.deltas import CreditState, Delta, DeltaStatus
from chalicelib.domain.identity import Environment
from chalicelib.services.ports import CustomerState, IngestSnapshot

_VERIFIED_NAMES = {
    "#status": DeltaRecord.status.attr_name, "#hash": DeltaRecord.content_hash.attr_name,
    "#leaf": DeltaRecord.leaf_index.attr_name, "#proof": DeltaRecord.proof.attr_name,
    "#batch": DeltaRecord.batch_id.attr_name, "#root": DeltaRecord.proof_root.attr_name,
    "#verified": DeltaRecord.verified_at.attr_name, "#updated": DeltaRecord.updated_at.attr_name,
    "#credit": DeltaRecord.credit_state.attr_name, "#shard": DeltaRecord.pending_shard.attr_name,
    "#since": DeltaRecord.pending_since.attr_name, "#reserved": DeltaRecord.credits_reserved.attr_name,
}
_VERIFIED_NAMES_NO_CREDIT = {k: v for k, v in _VERIFIED_NAMES.items() if k != "#credit"}


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
        credit_lane=int(record.credit_lane) if record.credit_lane is not None else None,
        error=record.error,
        updated_at=record.updated_at,
        content_hash=record.content_hash,
        leaf_index=int(record.leaf_index) if record.leaf_index is not None else None,
        proof=list(record.proof) if record.proof is not None else None,
        batch_id=record.batch_id,
        proof_root=record.proof_root,
        verified_at=record.verified_at,
    )


def _billing_state(tenant_id: str, period: str, found: dict[tuple[str, str, str], Any], *, usage: bool,
                   credits: bool) -> dict[str, Any]:
    """The snapshot's billing fields from a BatchGetItem that asked for the usage shards (``usage``) and the
    credit position (``credits``); what was not asked for is None."""
    counter = read_usage(tenant_id, period, found) if usage else None
    return {"usage_consumed": counter.consumed if counter else None,
            "usage_others": counter.consumed - counter.capped_shard if counter else 0,
            "credits": read_position(tenant_id, found, settlements=False) if credits else None}


class DynamoDeltaRepository(Repository):
    def get(self, tenant_id: str, environment: Environment, record_id: str) -> Delta | None:
        record = get_item(DeltaRecord, keys.delta_pk(tenant_id, environment, record_id), keys.DELTA_SK)
        return _delta_from(record) if record else None

    def snapshot(self, tenant_id: str, environment: Environment, customer_ids: list[str],
                 references: list[tuple[str, str]], period: str, *, usage: bool = True,
                 credits: bool = True) -> IngestSnapshot:
        """Everything acceptance needs, in one or two BatchGetItem calls: the tenant, the customers, the
        reference guards, and the period's usage shards (``usage``) and credit account and lanes
        (``credits``) when asked for."""
        env = str(environment)
        wanted: list[tuple[Any, str, str]] = [(TenantRecord, keys.tenant_pk(tenant_id), keys.TENANT_SK)]
        wanted += (usage_keys(tenant_id, period) if usage else []) + (
            position_keys(tenant_id, settlements=False) if credits else [])
        wanted += [(CustomerRecord, keys.customer_pk(tenant_id, env, c), keys.CUSTOMER_SK) for c in customer_ids]
        wanted += [(ReferenceGuardRecord, keys.reference_guard_pk(tenant_id, env, c, r), keys.GUARD_SK)
                   for c, r in references]
        found = batch_get(wanted)

        def raw(model: Any, pk: str, sk: str) -> Any:
            return found.get((model.Meta.table_name, pk, sk))

        tenant = raw(TenantRecord, keys.tenant_pk(tenant_id), keys.TENANT_SK)
        customers: dict[str, CustomerState] = {}
        for customer_id in customer_ids:
            item = raw(CustomerRecord, keys.customer_pk(tenant_id, env, customer_id), keys.CUSTOMER_SK)
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
            tenant=tenant_from(TenantRecord.from_raw_data(tenant)) if tenant else None,
            customers=customers,
            guards=guards,
            **_billing_state(tenant_id, period, found, usage=usage, credits=credits),
        )

    def add_billing_state(self, snapshot: IngestSnapshot, tenant_id: str, period: str, *, usage: bool,
                          credits: bool) -> IngestSnapshot:
        """``snapshot`` with the period's usage shards (``usage``) and the credit account and lanes
        (``credits``) read now, in one BatchGetItem, for a snapshot taken without them."""
        found = batch_get((usage_keys(tenant_id, period) if usage else [])
                          + (position_keys(tenant_id, settlements=False) if credits else []))
        state = _billing_state(tenant_id, period, found, usage=usage, credits=credits)
        return replace(snapshot, **{name: value for name, value in state.items()
                                    if (name == "credits" and credits) or (name != "credits" and usage)})

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
            credit_lane=delta.credit_lane,
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
        return [_delta_from(r) for r in tables.query(
            DeltaRecord, key, index=DeltaRecord.customer_seq_index, filter_condition=DeltaRecord.period == period)]

    def customer_range(self, tenant_id: str, environment: Environment, customer_id: str, first: int, last: int,
                       *, newest_first: bool = False) -> list[Delta]:
        """A customer's deltas with sequence numbers ``first..last`` (a key range on the customer index)."""
        if last < first:
            return []
        key = keys.customer_key(tenant_id, str(environment), customer_id)
        return [_delta_from(r) for r in tables.query(
            DeltaRecord, key, DeltaRecord.seq_key.between(keys.seq_key(first), keys.seq_key(last)),
            index=DeltaRecord.customer_seq_index, scan_index_forward=not newest_first)]

    def get_many(self, tenant_id: str, environment: Environment, record_ids: list[str]) -> list[Delta]:
        """Consistent reads of many deltas (BatchGetItem), in the order asked; missing ids are skipped."""
        env = str(environment)
        wanted = [(DeltaRecord, keys.delta_pk(tenant_id, env, r), keys.DELTA_SK) for r in record_ids]
        found = batch_get(wanted)
        table = DeltaRecord.Meta.table_name
        return [_delta_from(DeltaRecord.from_raw_data(found[(table, pk, sk)]))
                for _m, pk, sk in wanted if (table, pk, sk) in found]

    def pending(self, *, older_than: datetime, limit: int) -> list[tuple[str, Environment, str]]:
        """Up to ``limit`` deltas still awaiting verification, oldest first per shard (the sparse index; no
        scan)."""
        def read(shard: str, limit: int) -> list[tuple[str, Environment, str]]:
            query = tables.query(DeltaRecord, shard, DeltaRecord.pending_since < iso_us(older_than),
                                 index=DeltaRecord.pending_index, limit=limit, page_size=limit)
            return [(r.tenant_id, Environment(r.environment), r.record_id) for r in query]

        return keys.PENDING.sweep(read, limit)

    def _pending_update(self, tenant_id: str, environment: Environment, record_id: str, credits_reserved: int,
                        actions: list) -> None:
        record = DeltaRecord(keys.delta_pk(tenant_id, str(environment), record_id), keys.DELTA_SK)
        actions += [DeltaRecord.pending_shard.remove(), DeltaRecord.pending_since.remove()]
        # Exactly once: only a delta still awaiting verification can be resolved, and only with the hold it
        # has (a seal may go by the candidate a queue message carried rather than by a read).
        condition = (DeltaRecord.status.is_in(str(DeltaStatus.QUEUED), str(DeltaStatus.PROCESSING))
                     & (DeltaRecord.credits_reserved == credits_reserved))
        self._stage("update", record, condition=condition, actions=actions)

    def mark_verified(self, tenant_id: str, environment: Environment, leaf: SealCandidate, *, leaf_index: int,
                      proof: list[str], batch: SealedBatch, credit_state: CreditState | None,
                      now: datetime) -> None:
        """VERIFIED with its place in the batch, off the pending index, conditioned as :meth:`_pending_update`
        conditions. A seal writes 90 of these: the request is built directly (PynamoDB's expression objects
        were a fifth of the verifier's CPU), from the record's own attribute names and serializers."""
        names, a = _VERIFIED_NAMES, DeltaRecord
        values: dict[str, Any] = {
            ":verified": {"S": str(DeltaStatus.VERIFIED)}, ":hash": {"S": leaf.content_hash},
            ":leaf": {"N": str(leaf_index)}, ":proof": {"B": a.proof.serialize(proof)},
            ":batch": {"S": batch.batch_id}, ":root": {"S": batch.root}, ":now": {"S": a.verified_at.serialize(now)},
            ":queued": {"S": str(DeltaStatus.QUEUED)}, ":processing": {"S": str(DeltaStatus.PROCESSING)},
            ":held": {"N": str(leaf.credits_reserved)},
        }
        sets = "#status = :verified, #hash = :hash, #leaf = :leaf, #proof = :proof, #batch = :batch, " \
               "#root = :root, #verified = :now, #updated = :now"
        if credit_state is not None:  # as the service resolved it; None: the delta held nothing
            values[":credit"] = {"S": str(credit_state)}
            sets += ", #credit = :credit"
        pk = keys.delta_pk(tenant_id, str(environment), leaf.record_id)
        request = {
            "TableName": a.Meta.table_name,
            "Key": {a.pk.attr_name: {"S": pk}, a.sk.attr_name: {"S": keys.DELTA_SK}},
            "UpdateExpression": f"SET {sets} REMOVE #shard, #since",
            "ConditionExpression": "#status IN (:queued, :processing) AND #reserved = :held",
            "ExpressionAttributeNames": names if credit_state is not None else _VERIFIED_NAMES_NO_CREDIT,
            "ExpressionAttributeValues": values,
        }
        self._stage_request(request)

    def mark_failed(self, delta: Delta, *, error: str, now: datetime) -> None:
        actions = [
            DeltaRecord.status.set(str(DeltaStatus.FAILED)),
            DeltaRecord.error.set(error),
            DeltaRecord.updated_at.set(now),
            DeltaRecord.credit_state.set(str(delta.credit_state)),  # as the service resolved it
        ]
        self._pending_update(delta.tenant_id, delta.environment, delta.record_id, delta.credits_reserved, actions)

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
        record = CustomerRecord(keys.customer_pk(tenant_id, env, customer_id), keys.CUSTOMER_SK)
        actions = [
            CustomerRecord.updated_at.set(now),
            CustomerRecord.last_delta_at.set(now),
            CustomerRecord.last_seq.set((expected_last_seq or 0) + count),
            CustomerRecord.delta_count.add(count),
            CustomerRecord.balance.add(balance_change),
        ]
        if cycle == "add":
            actions += [CustomerRecord.cycle_count.add(count), CustomerRecord.cycle_net.add(balance_change)]
        elif cycle == "restart":
            actions += [CustomerRecord.cycle_period.set(period), CustomerRecord.cycle_count.set(count),
                        CustomerRecord.cycle_net.set(balance_change)]
        if is_new:  # its profile and index keys, written once (a delta's update never touches the indexes)
            actions += [
                CustomerRecord.tenant_id.set(tenant_id),
                CustomerRecord.environment.set(env),
                CustomerRecord.customer_id.set(customer_id),
                CustomerRecord.display_name.set(customer_id),
                CustomerRecord.source.set(str(CustomerSource.INTEGRATION)),
                CustomerRecord.created_at.set(now),
                CustomerRecord.list_pk.set(keys.customer_list_pk(tenant_id, env, customer_id)),
                CustomerRecord.name_key.set(name_key(customer_id, customer_id)),
            ]
            condition = CustomerRecord.pk.does_not_exist()
        elif expected_last_seq is None:
            condition = CustomerRecord.pk.exists() & CustomerRecord.last_seq.does_not_exist()
        else:
            condition = CustomerRecord.last_seq == expected_last_seq
        self._stage("update", record, condition=condition, actions=actions)
