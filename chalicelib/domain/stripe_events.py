"""Stripe events as the webhook records them, and the rule between an invoice's outcomes.

An event is recorded ``received`` before its effect is applied and becomes ``handled`` in the
same transaction as the effect (services/stripe_webhooks.py), so a stored ``handled`` event is
never applied again and a ``received`` one was interrupted and may be applied again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

RECEIVED = "received"
HANDLED = "handled"
IGNORED = "ignored"  # the outcome of an event type Tally does not act on

#: Stripe resends an event for at most a few days and keeps events 30 days; kept longer than that,
#: a record outlives every redelivery of its event.
EVENT_RETENTION = timedelta(days=90)

INVOICE_PAID = "paid"
INVOICE_FAILED = "failed"


@dataclass(frozen=True)
class StripeEvent:
    event_id: str
    event_type: str
    state: str
    received_at: datetime
    handled_at: datetime | None = None
    tenant_id: str | None = None
    outcome: str | None = None

    @property
    def handled(self) -> bool:
        return self.state == HANDLED

    @property
    def expires_at(self) -> datetime:
        return self.received_at + EVENT_RETENTION

    def mark_handled(self, *, outcome: str, tenant_id: str | None, now: datetime) -> StripeEvent:
        return replace(self, state=HANDLED, handled_at=now, outcome=outcome, tenant_id=tenant_id)


def failure_counts(invoice_status: str | None) -> bool:
    """A payment failure flags the tenant unless the same invoice was already paid (paid wins, in any order)."""
    return invoice_status != INVOICE_PAID
