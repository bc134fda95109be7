"""Outgoing webhooks: endpoints, events, signed deliveries and their retry schedule.

A delivery is signed the way the ``pacspace-sdk`` verifier checks it:
``X-PacSpace-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{rawBody}")>``
with ``X-PacSpace-Timestamp`` the attempt's Unix time, so a retry hours later is
still fresh. The body is fixed when the event is created; every attempt sends
the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from chalicelib import jsoncodec
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.identity import Environment

SECRET_PREFIX = "whsec_"
MAX_URL = 2048
MAX_DESCRIPTION = 200
MAX_ENDPOINTS = 20  # per tenant environment
MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=6)
RETRY_WINDOW = timedelta(hours=24)
BACKOFF_FACTOR = 5
RESPONSE_EXCERPT = 256
KEPT_ATTEMPTS = 24  # the latest attempts stored with a delivery (the count keeps growing)


class EventType(StrEnum):
    DELTA_VERIFIED = "delta.verified"
    DELTA_FAILED = "delta.failed"
    VERIFICATION_COMPLETED = "verification.completed"
    CUSTOMER_CREATED = "customer.created"
    # Account events (missing payments): sent to the tenant's production endpoints only.
    TENANT_DASHBOARD_BLOCKED = "tenant.dashboard_blocked"
    TENANT_DASHBOARD_UNBLOCKED = "tenant.dashboard_unblocked"
    TEST = "webhook.test"  # only ever sent to the endpoint that asked for it


SUBSCRIBABLE = tuple(e for e in EventType if e != EventType.TEST)


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # deleted by the tenant, or the account was deleted


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"  # waiting for its next attempt
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # attempts exhausted; a retry request starts it again


def check_url(value: object, *, allow_loopback: bool) -> str:
    """HTTPS to a public host; plain HTTP only to loopback, and only on the local stack.

    Literal private, link-local and loopback addresses are refused so a tenant
    cannot point deliveries into the platform's network (names are not resolved
    here; the sender refuses redirects).
    """
    from urllib.parse import urlsplit  # registration only: kept out of the cold start

    if not isinstance(value, str) or not value.strip() or len(value) > MAX_URL:
        raise ValidationError(f"url must be an absolute URL of at most {MAX_URL} characters", field="url")
    url = value.strip()
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ValidationError(f"url is not a valid URL: {exc}", field="url") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError("url must be an absolute https:// URL", field="url")
    if parts.username or parts.password:
        raise ValidationError("url must not carry credentials; authenticate with the signature", field="url")
    loopback = _is_loopback(host)
    if loopback and allow_loopback:
        return url
    if parts.scheme != "https":
        raise ValidationError("url must use https:// (plain http is accepted only for loopback on the local stack)",
                              field="url")
    if loopback or _is_private(host):
        raise ValidationError("url must point to a public host", field="url")
    return url


def _address(host: str) -> Any:
    """The IP a literal host names (an ``ipaddress`` object), including the legacy IPv4 spellings
    (``127.1``, ``0x7f000001``, ``2852039166``) that resolvers accept."""
    import ipaddress
    import socket

    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if all(c in "0123456789abcdefx." for c in host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def _is_private(host: str) -> bool:
    address = _address(host)
    return address is not None and not address.is_global


def check_events(value: object) -> tuple[str, ...]:
    """The subscribed event types; absent or empty means all of them."""
    if value is None:
        return tuple(SUBSCRIBABLE)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("events must be an array of event type names", field="events")
    unknown = sorted(set(value) - set(SUBSCRIBABLE))
    if unknown:
        raise ValidationError(f"unknown event types: {', '.join(unknown)}; choose from {', '.join(SUBSCRIBABLE)}",
                              field="events")
    return tuple(e for e in SUBSCRIBABLE if e in value) or tuple(SUBSCRIBABLE)


@dataclass(frozen=True)
class Endpoint:
    tenant_id: str
    environment: Environment
    endpoint_id: str
    url: str
    secret: str
    events: tuple[str, ...]
    created_at: datetime
    created_by: str
    description: str = ""
    status: EndpointStatus = EndpointStatus.ACTIVE
    disabled_at: datetime | None = None

    @property
    def secret_hint(self) -> str:
        return f"{SECRET_PREFIX}…{self.secret[-4:]}"

    def wants(self, event_type: str) -> bool:
        return self.status == EndpointStatus.ACTIVE and event_type in self.events

    def disabled(self, now: datetime) -> Endpoint:
        return replace(self, status=EndpointStatus.DISABLED, disabled_at=self.disabled_at or now)


@dataclass(frozen=True)
class Event:
    """One occurrence, before fan-out to endpoints; ``data`` is the event-specific payload."""

    event_id: str
    event_type: str
    tenant_id: str
    environment: Environment
    created_at: datetime
    data: dict[str, Any]

    def body(self) -> str:
        """The exact bytes every attempt sends (and signs)."""
        return jsoncodec.dumps({
            "id": self.event_id,
            "event": self.event_type,
            "tenantId": self.tenant_id,
            "createdAt": iso_ms(self.created_at),
            "timestamp": int(self.created_at.timestamp()),
            "data": self.data,
        })


def verified_reference(delta: Any) -> tuple[str, dict[str, Any]]:
    """A ``delta.verified`` event as its outbox keeps it: the record id only, so a seal's outbox item stays a
    few KB; fan-out builds the payload from the verified delta (:func:`verified_payload`), which never
    changes once verified."""
    return EventType.DELTA_VERIFIED, {"recordId": delta.record_id}


def is_reference(data: dict[str, Any]) -> bool:
    return set(data) == {"recordId"}


def verified_payload(delta: Any) -> dict[str, Any]:
    """SDK ``DeltaVerifiedPayload`` plus the proof references (the usage block is added at fan-out)."""
    from chalicelib.domain.merkle import leaf_hash

    verified_at = iso_ms(delta.verified_at)
    return {
        "recordId": delta.record_id,
        "receiptId": delta.receipt_id,
        "verificationReference": delta.proof_root,
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "sequenceNumber": str(delta.sequence_number),
        "referenceId": delta.reference_id,
        "blockTimestamp": verified_at,
        "environment": str(delta.environment),
        "period": delta.period,
        "contentHash": delta.content_hash,
        "proofHash": leaf_hash(bytes.fromhex(delta.content_hash or "")).hex(),
        "batchId": delta.batch_id,
        "proofRoot": delta.proof_root,
        "leafIndex": delta.leaf_index,
        "verifiedAt": verified_at,
    }


@dataclass(frozen=True)
class Attempt:
    number: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None = None
    response_excerpt: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Delivery:
    """An event on its way to one endpoint, with every attempt so far."""

    tenant_id: str
    environment: Environment
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    body: str
    created_at: datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    window_start: int = 1  # number of the first attempt of the current retry window
    window_started_at: datetime | None = None

    @property
    def attempt_count(self) -> int:
        return self.attempts[-1].number if self.attempts else 0

    def after(self, attempt: Attempt, *, base: timedelta) -> Delivery:
        """The delivery once ``attempt`` is recorded: delivered, rescheduled with backoff, or exhausted."""
        attempts = (*self.attempts, attempt)[-KEPT_ATTEMPTS:]
        started = self.window_started_at or attempt.at
        if attempt.succeeded:
            return replace(self, attempts=attempts, status=DeliveryStatus.DELIVERED, delivered_at=attempt.at,
                           next_attempt_at=None, window_started_at=started)
        failures = attempt.number - self.window_start + 1
        due = attempt.at + backoff(failures, base=base)
        if failures < MAX_ATTEMPTS and due - started <= RETRY_WINDOW:
            return replace(self, attempts=attempts, next_attempt_at=due, window_started_at=started)
        return replace(self, attempts=attempts, status=DeliveryStatus.FAILED, next_attempt_at=None,
                       window_started_at=started)

    def abandoned(self, attempt: Attempt) -> Delivery:
        """Failed for good without a request (the endpoint is gone)."""
        return replace(self, attempts=(*self.attempts, attempt)[-KEPT_ATTEMPTS:], status=DeliveryStatus.FAILED,
                       next_attempt_at=None)

    def retried(self, now: datetime) -> Delivery:
        """A manual retry: due now, with a fresh window of attempts."""
        return replace(self, status=DeliveryStatus.PENDING, next_attempt_at=now, delivered_at=None,
                       window_start=self.attempt_count + 1, window_started_at=None)


def backoff(failures: int, *, base: timedelta) -> timedelta:
    """Delay after the ``failures``-th failed attempt: base, 5x, 25x … capped at six hours."""
    return min(base * BACKOFF_FACTOR ** max(failures - 1, 0), MAX_BACKOFF)


def signature(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"v1={digest}"


def signed_headers(secret: str, delivery: Delivery, now: datetime) -> dict[str, str]:
    timestamp = str(int(now.timestamp()))
    return {
        "Content-Type": "application/json",
        "User-Agent": "Tally-Webhooks/1",
        "X-PacSpace-Signature": signature(secret, timestamp, delivery.body),
        "X-PacSpace-Timestamp": timestamp,
        "X-Webhook-Event": delivery.event_type,
        "X-Event-ID": delivery.event_id,
    }


@dataclass(frozen=True)
class Outbox:
    """Events stored in the same transaction as the change they announce, awaiting fan-out."""

    outbox_id: str
    tenant_id: str
    environment: Environment
    events: tuple[Event, ...]
    created_at: datetime
    progress: int = 0  # deliveries already written by earlier fan-out transactions
    targets: tuple[str, ...] | None = None  # endpoint ids, fixed when fan-out needs several transactions
