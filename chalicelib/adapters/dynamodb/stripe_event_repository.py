"""Stripe events received and invoice outcomes (billing table): records only, writes staged.

Both are keyed by Stripe's ids (``STRIPE_EVENT#{id}``, ``INVOICE#{id}``), not by tenant: an event
is recorded before its tenant is known, and an invoice's outcome is looked up by the invoice alone.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import InvoiceStateRecord, StripeEventRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item
from chalicelib.domain.stripe_events import INVOICE_PAID, RECEIVED, StripeEvent


def _event_from(record: StripeEventRecord) -> StripeEvent:
    return StripeEvent(event_id=record.event_id, event_type=record.event_type, state=record.state,
                       received_at=record.received_at, handled_at=record.handled_at, tenant_id=record.tenant_id,
                       outcome=record.outcome)


def _event_record(event: StripeEvent) -> StripeEventRecord:
    return StripeEventRecord(
        keys.stripe_event_pk(event.event_id), keys.STRIPE_EVENT_SK,
        event_id=event.event_id, event_type=event.event_type, state=event.state, received_at=event.received_at,
        handled_at=event.handled_at, tenant_id=event.tenant_id, outcome=event.outcome, ttl=event.expires_at,
    )


class DynamoStripeEventRepository(Repository):
    def get(self, event_id: str) -> StripeEvent | None:
        record = get_item(StripeEventRecord, keys.stripe_event_pk(event_id), keys.STRIPE_EVENT_SK)
        return _event_from(record) if record else None

    def add(self, event: StripeEvent) -> None:
        """The exactly-once guard: a conditional put, ConflictError at commit when the id is recorded."""
        self._stage("save", _event_record(event), condition=StripeEventRecord.pk.does_not_exist())

    def mark_handled(self, event: StripeEvent) -> None:
        """Only a ``received`` event becomes ``handled``: of two deliveries applying it, one commits."""
        self._stage("save", _event_record(event), condition=StripeEventRecord.state == RECEIVED)

    def invoice_status(self, invoice_id: str) -> str | None:
        record = get_item(InvoiceStateRecord, keys.invoice_pk(invoice_id), keys.INVOICE_SK)
        return record.status if record else None

    def set_invoice_status(self, invoice_id: str, *, tenant_id: str, status: str, now: datetime) -> None:
        """``paid`` always lands; any other status never overwrites ``paid`` (ConflictError at commit)."""
        record = InvoiceStateRecord(keys.invoice_pk(invoice_id), keys.INVOICE_SK, invoice_id=invoice_id,
                                    tenant_id=tenant_id, status=status, updated_at=now)
        condition = None
        if status != INVOICE_PAID:
            condition = InvoiceStateRecord.pk.does_not_exist() | (InvoiceStateRecord.status != INVOICE_PAID)
        self._stage("save", record, condition=condition)
