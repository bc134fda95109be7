"""Outgoing webhooks: endpoints, the outbox, deliveries and their due index."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.models import OutboxRecord, WebhookDeliveryRecord, WebhookEndpointRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item, query_page, write_now
from chalicelib.domain.clock import iso_us, parse_iso
from chalicelib.domain.identity import Environment
from chalicelib.domain.webhooks import Attempt, Delivery, DeliveryStatus, Endpoint, EndpointStatus, Event, Outbox
from chalicelib.services.ports import Page

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


class DynamoWebhookRepository(Repository):
    # endpoints
    def get_endpoint(self, tenant_id: str, environment: Environment, endpoint_id: str) -> Endpoint | None:
        record = get_item(WebhookEndpointRecord, keys.webhooks_pk(tenant_id, str(environment)),
                          keys.endpoint_sk(endpoint_id))
        return _endpoint_from(record) if record else None

    def endpoints(self, tenant_id: str, environment: Environment) -> list[Endpoint]:
        """Every endpoint of a tenant environment (a small, bounded set), oldest first."""
        pk = keys.webhooks_pk(tenant_id, str(environment))
        query = tables.query(WebhookEndpointRecord, pk, WebhookEndpointRecord.sk.startswith(keys.endpoint_sk("")),
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
        record = get_item(OutboxRecord, *ref)
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
        def read(shard: str, limit: int) -> list[tuple[str, str]]:
            query = tables.query(OutboxRecord, shard, OutboxRecord.sk < iso_us(older_than), limit=limit,
                                 page_size=limit, attributes_to_get=["pk", "sk"])
            return [(r.pk, r.sk) for r in query]

        return keys.OUTBOX.sweep(read, limit)

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
        record = get_item(WebhookDeliveryRecord, *_delivery_keys(tenant_id, environment, event_id, endpoint_id))
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
            write_now(record, actions=actions, condition=condition)
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
        return [_delivery_from(r) for r in tables.query(
            WebhookDeliveryRecord, pk, WebhookDeliveryRecord.sk.startswith(prefix), consistent_read=True)]

    def deliveries(self, tenant_id: str, environment: Environment, limit: int, cursor: str | None, *,
                   status: str | None = None) -> Page[Delivery]:
        """Newest first; ``status`` is a filter on the tenant environment's partition (not an index)."""
        pk = keys.webhooks_pk(tenant_id, str(environment))
        condition = WebhookDeliveryRecord.status == status if status else None
        return query_page(
            lambda **kw: tables.query(
                WebhookDeliveryRecord, pk, WebhookDeliveryRecord.sk.startswith(keys.DELIVERY_PREFIX),
                filter_condition=condition, scan_index_forward=False, consistent_read=True, **kw),
            _delivery_from, limit=limit, cursor=cursor, partition=("pk", pk), sort_prefix=keys.DELIVERY_PREFIX,
        )

    def endpoint_deliveries(self, tenant_id: str, environment: Environment, endpoint_id: str, limit: int,
                            cursor: str | None) -> Page[Delivery]:
        key = keys.endpoint_key(tenant_id, str(environment), endpoint_id)
        return query_page(
            lambda **kw: tables.query(WebhookDeliveryRecord, key, index=WebhookDeliveryRecord.endpoint_index,
                                      scan_index_forward=False, **kw),
            _delivery_from, limit=limit, cursor=cursor, partition=("endpoint_key", key),
            key_names=DELIVERY_INDEX_KEYS,
        )

    def due(self, *, now: datetime, limit: int) -> list[tuple[str, str, str, str]]:
        """Deliveries whose next attempt is due (the sparse due index, shard by shard; no scan)."""
        def read(shard: str, limit: int) -> list[tuple[str, str, str, str]]:
            query = tables.query(WebhookDeliveryRecord, shard, WebhookDeliveryRecord.due_at <= iso_us(now),
                                 index=WebhookDeliveryRecord.due_index, limit=limit, page_size=limit)
            return [(r.tenant_id, r.environment, r.event_id, r.endpoint_id) for r in query]

        return keys.DUE.sweep(read, limit)


def _event_json(event: Event) -> dict[str, Any]:
    return {"id": event.event_id, "event": event.event_type, "createdAt": iso_us(event.created_at),
            "data": event.data}


def _event_from(data: dict[str, Any], tenant_id: str, environment: Environment) -> Event:
    return Event(event_id=data["id"], event_type=data["event"], tenant_id=tenant_id, environment=environment,
                 created_at=parse_iso(data["createdAt"]), data=data["data"])
