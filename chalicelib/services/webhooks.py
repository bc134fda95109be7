"""Outgoing webhooks: endpoints, events through an outbox, signed deliveries retried with backoff.

Events are never sent from the request path or from inside a transaction. A
change that announces something stages an *outbox* item in its own transaction
(so the event exists exactly when the change does); the webhook worker fans the
outbox out into one delivery per subscribed endpoint — chunked transactions
that advance the outbox from exactly the progress they read, so no delivery is
written twice — and attempts each delivery under a lease, so one attempt is in
flight at a time. Failed attempts are rescheduled with exponential backoff; the
scheduled sweep picks up anything a lost queue message or a crash left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import period_of
from chalicelib.domain.credentials import random_id, time_ordered_id
from chalicelib.domain.errors import ConcurrentWriteError, ConflictError, NotFoundError, ValidationError
from chalicelib.domain.identity import ApiKeyPrincipal, DashboardPrincipal, Environment, Permission
from chalicelib.domain.plans import plan_for
from chalicelib.domain.webhooks import (
    MAX_DESCRIPTION,
    MAX_ENDPOINTS,
    SECRET_PREFIX,
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    Event,
    EventType,
    Outbox,
    check_events,
    check_url,
    is_reference,
    signed_headers,
    verified_payload,
)
from chalicelib.log import get_logger
from chalicelib.services.ports import DeliveryRef, OutboxRef, Page, UnitOfWork, page_after_offset
from chalicelib.services.retry import best_effort, retry_on_conflict

log = get_logger("tally.webhooks")

FANOUT_CHUNK = 98  # deliveries per transaction, leaving room for the outbox's own update
SENDER_LEASE = timedelta(minutes=5)  # longer than a sender Lambda can run: an abandoned attempt is retried
SENDER_THREADS = 8
SEND_BUDGET = timedelta(seconds=60)  # of a sender Lambda's 120 s: later waves wait for the next run
OUTBOX_GRACE = timedelta(seconds=30)
SWEEP_LIMIT = 400  # outbox items, and due deliveries, per sweep run (all shards together)
MAX_ATTEMPTS = 10  # per outbox chunk: races with another worker, transaction conflicts
RECORD_ATTEMPTS = 3  # recording an attempt: a lost lease fails every time, a transaction conflict once


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- endpoints (dashboard) -----------------------------------------------------------------------


def _audit(principal: DashboardPrincipal | ApiKeyPrincipal, action: str, target: str, environment: Environment,
           now: datetime, **details: Any) -> AuditEntry:
    return AuditEntry(tenant_id=principal.tenant_id, actor=principal.actor, action=action, target=target,
                      environment=str(environment), at=now, details=details)


def create_endpoint(uow: UnitOfWork, principal: DashboardPrincipal, *, url: object, events: object,
                    description: object, now: datetime, allow_loopback: bool) -> Endpoint:
    """Register an endpoint; its ``whsec_`` secret is returned here and never again."""
    principal.require(Permission.WEBHOOKS_WRITE)
    checked_url = check_url(url, allow_loopback=allow_loopback)
    subscribed = check_events(events)
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ValidationError(f"description must be a string of at most {MAX_DESCRIPTION} characters",
                              field="description")
    active = [e for e in uow.webhooks.endpoints(principal.tenant_id, principal.environment)
              if e.status == EndpointStatus.ACTIVE]
    if len(active) >= MAX_ENDPOINTS:
        raise ValidationError(f"at most {MAX_ENDPOINTS} webhook endpoints per environment; delete one first",
                              code="WEBHOOK_LIMIT_REACHED", field="url")
    endpoint = Endpoint(
        tenant_id=principal.tenant_id, environment=principal.environment,
        endpoint_id="we_" + time_ordered_id(_ms(now)), url=checked_url, secret=SECRET_PREFIX + random_id("", 32),
        events=subscribed, created_at=now, created_by=principal.actor, description=description.strip(),
    )
    uow.webhooks.save_endpoint(endpoint, new=True)
    uow.audit.add(_audit(principal, "webhook.created", f"webhook:{endpoint.endpoint_id}", endpoint.environment,
                         now, url=endpoint.url, events=list(endpoint.events)))
    uow.commit()
    return endpoint


def list_endpoints(uow: UnitOfWork, principal: DashboardPrincipal) -> list[Endpoint]:
    principal.require(Permission.WEBHOOKS_READ)
    return [e for e in uow.webhooks.endpoints(principal.tenant_id, principal.environment)
            if e.status == EndpointStatus.ACTIVE]


def get_endpoint(uow: UnitOfWork, principal: DashboardPrincipal, endpoint_id: str) -> Endpoint:
    principal.require(Permission.WEBHOOKS_READ)
    endpoint = uow.webhooks.get_endpoint(principal.tenant_id, principal.environment, endpoint_id)
    if endpoint is None or endpoint.status != EndpointStatus.ACTIVE:
        raise NotFoundError("Webhook endpoint not found.")
    return endpoint


def delete_endpoint(uow: UnitOfWork, principal: DashboardPrincipal, endpoint_id: str, *, now: datetime) -> Endpoint:
    """Disable it: nothing more is sent (pending deliveries fail), its history stays readable."""
    principal.require(Permission.WEBHOOKS_WRITE)
    endpoint = get_endpoint(uow, principal, endpoint_id).disabled(now)
    uow.webhooks.save_endpoint(endpoint)
    uow.audit.add(_audit(principal, "webhook.deleted", f"webhook:{endpoint_id}", endpoint.environment, now,
                         url=endpoint.url))
    uow.commit()
    return endpoint


def disable_all(uow: UnitOfWork, tenant_id: str, *, now: datetime) -> int:
    """Account deletion: every endpoint of both environments stops receiving (staged; caller commits)."""
    count = 0
    for environment in Environment:
        for endpoint in uow.webhooks.endpoints(tenant_id, environment):
            if endpoint.status == EndpointStatus.ACTIVE:
                uow.webhooks.save_endpoint(endpoint.disabled(now))
                count += 1
    return count


def send_test(uow: UnitOfWork, principal: DashboardPrincipal, endpoint_id: str, *, now: datetime,
              queue: Any) -> Delivery:
    """A ``webhook.test`` event for this endpoint only; attempted by the worker like any other (woken through
    ``queue``)."""
    principal.require(Permission.WEBHOOKS_WRITE)
    endpoint = get_endpoint(uow, principal, endpoint_id)
    event = Event(event_id=_event_id(now), event_type=EventType.TEST, tenant_id=principal.tenant_id,
                  environment=principal.environment, created_at=now,
                  data={"endpointId": endpoint.endpoint_id, "message": "Test event from Tally."})
    delivery = _delivery(event, endpoint, now)
    uow.webhooks.add_delivery(delivery)
    uow.audit.add(_audit(principal, "webhook.test_sent", f"webhook:{endpoint_id}", endpoint.environment, now,
                         eventId=event.event_id))
    uow.commit()
    wake(queue, [delivery])
    return delivery


def endpoint_history(uow: UnitOfWork, principal: DashboardPrincipal, endpoint_id: str, *, limit: int,
                     cursor: str | None) -> Page[Delivery]:
    principal.require(Permission.WEBHOOKS_READ)
    if uow.webhooks.get_endpoint(principal.tenant_id, principal.environment, endpoint_id) is None:
        raise NotFoundError("Webhook endpoint not found.")
    return uow.webhooks.endpoint_deliveries(principal.tenant_id, principal.environment, endpoint_id, limit, cursor)


# --- events ----------------------------------------------------------------------------------------


def _event_id(now: datetime) -> str:
    return "evt_" + time_ordered_id(_ms(now), 20)


def stage_events(uow: UnitOfWork, tenant_id: str, environment: Environment,
                 events: Iterable[tuple[str, dict[str, Any]]], *, now: datetime) -> Outbox | None:
    """Stage an outbox item with these ``(type, data)`` events in the caller's transaction."""
    built = tuple(Event(event_id=_event_id(now), event_type=str(kind), tenant_id=tenant_id,
                        environment=environment, created_at=now, data=data) for kind, data in events)
    if not built:
        return None
    outbox = Outbox(outbox_id="obx_" + time_ordered_id(_ms(now), 20), tenant_id=tenant_id,
                    environment=environment, events=built, created_at=now)
    uow.webhooks.add_outbox(outbox)
    return outbox


def announce(queue: Any, refs: list[OutboxRef]) -> None:
    """Wake the webhook worker after a commit; if SQS is unreachable the sweep fans out later."""
    if refs:
        best_effort(lambda: queue.fan_out([list(r) for r in refs]), log,
                    "webhook announce failed; the sweep will fan these out", outbox=len(refs))


def wake(queue: Any, deliveries: list[Delivery]) -> None:
    """Ask the worker to attempt these now; if SQS is unreachable the sweep attempts them within a minute."""
    best_effort(lambda: queue.attempt([list(delivery_ref(d)) for d in deliveries]), log,
                "webhook wake-up failed; the sweep will attempt these")


def _usage_block(uow: UnitOfWork, tenant_id: str, period: str) -> dict[str, Any] | None:
    """Seed 003's ``usage`` block, as of fan-out time."""
    tenant = uow.tenants.get(tenant_id)
    if tenant is None:
        return None
    plan = plan_for(tenant.plan)
    consumed = uow.usage.get(tenant_id, period).consumed
    return {"plan": plan.tier, "periodId": period, "includedDeltas": plan.monthly_allotment,
            "consumedDeltas": consumed, "remainingDeltas": plan.remaining(consumed),
            "overageRate": plan.overage_rate_label}


def _materialize(uow: UnitOfWork, events: tuple[Event, ...], tenant_id: str) -> tuple[Event, ...]:
    """``delta.verified`` events kept as references (the outbox stays small) get their payload from the
    verified deltas: one BatchGetItem per environment."""
    wanted: dict[Environment, list[str]] = {}
    for event in events:
        if event.event_type == EventType.DELTA_VERIFIED and is_reference(event.data):
            wanted.setdefault(event.environment, []).append(event.data["recordId"])
    if not wanted:
        return events
    deltas = {(d.environment, d.record_id): d for env, ids in wanted.items()
              for d in uow.deltas.get_many(tenant_id, env, ids)}
    built = []
    for event in events:
        delta = deltas.get((event.environment, event.data.get("recordId"))) if is_reference(event.data) else None
        built.append(replace(event, data=verified_payload(delta)) if delta is not None else event)
    return tuple(built)


def _enrich(uow: UnitOfWork, events: tuple[Event, ...], tenant_id: str) -> tuple[Event, ...]:
    usage: dict[str, dict[str, Any] | None] = {}
    enriched = []
    for event in _materialize(uow, events, tenant_id):
        if event.event_type == EventType.DELTA_VERIFIED:
            period = event.data.get("period") or period_of(event.created_at)
            if period not in usage:
                usage[period] = _usage_block(uow, tenant_id, period)
            if usage[period] is not None:
                event = replace(event, data={**event.data, "usage": usage[period]})
        enriched.append(event)
    return tuple(enriched)


# --- fan-out ---------------------------------------------------------------------------------------


def _delivery(event: Event, endpoint: Endpoint, now: datetime) -> Delivery:
    return Delivery(tenant_id=event.tenant_id, environment=event.environment, event_id=event.event_id,
                    event_type=event.event_type, endpoint_id=endpoint.endpoint_id, url=endpoint.url,
                    body=event.body(), created_at=now, next_attempt_at=now)


def delivery_ref(delivery: Delivery) -> DeliveryRef:
    return delivery.tenant_id, str(delivery.environment), delivery.event_id, delivery.endpoint_id


def _fan_out_chunk(uow: UnitOfWork, ref: OutboxRef, now: datetime) -> tuple[list[DeliveryRef], bool] | None:
    """The outbox's next chunk of deliveries and its progress, in one transaction (moving the progress from
    exactly what was read): ``(deliveries made, done)``, or None when the outbox is gone (done already)."""
    outbox = uow.webhooks.get_outbox(ref)
    if outbox is None:
        return None
    endpoints = {e.endpoint_id: e for e in uow.webhooks.endpoints(outbox.tenant_id, outbox.environment)}
    targets = outbox.targets if outbox.targets is not None else tuple(
        sorted(i for i, e in endpoints.items() if e.status == EndpointStatus.ACTIVE))
    pairs = [(event, target) for event in outbox.events for target in targets]
    chunk = pairs[outbox.progress : outbox.progress + FANOUT_CHUNK]
    wanted = [(event, endpoints[t]) for event, t in chunk if t in endpoints and endpoints[t].wants(event.event_type)]
    unique = tuple({e.event_id: e for e, _ in wanted}.values())
    by_id = {e.event_id: e for e in _enrich(uow, unique, outbox.tenant_id)} if unique else {}
    batch = [_delivery(by_id[event.event_id], endpoint, now) for event, endpoint in wanted]
    for delivery in batch:
        uow.webhooks.add_delivery(delivery)
    progress = outbox.progress + len(chunk)
    uow.webhooks.advance_outbox(outbox, progress=progress, targets=targets, done=progress >= len(pairs))
    uow.commit()
    return [delivery_ref(d) for d in batch], progress >= len(pairs)


def fan_out(uow: UnitOfWork, ref: OutboxRef, *, now: datetime) -> list[DeliveryRef]:
    """Turn one outbox item into deliveries (exactly once), then delete it; returns the deliveries made. A
    race (another worker moved the progress first, or a transaction conflict) reads the outbox again and
    carries on from where it stands."""
    created: list[DeliveryRef] = []
    while True:
        step = retry_on_conflict(uow, lambda _n: _fan_out_chunk(uow, ref, now), attempts=MAX_ATTEMPTS,
                                 message="An outbox item kept losing races; the sweep fans it out.")
        if step is None:
            return created
        made, done = step
        created += made
        if done:
            return created


# --- attempts --------------------------------------------------------------------------------------


@dataclass
class SendReport:
    delivered: list[Delivery] = field(default_factory=list)
    rescheduled: list[Delivery] = field(default_factory=list)
    failed: list[Delivery] = field(default_factory=list)

    def add(self, delivery: Delivery) -> None:
        {DeliveryStatus.DELIVERED: self.delivered, DeliveryStatus.PENDING: self.rescheduled,
         DeliveryStatus.FAILED: self.failed}[delivery.status].append(delivery)


def attempt(uow: UnitOfWork, refs: Iterable[DeliveryRef], *, clock: Callable[[], datetime], sender: Any,
            base: timedelta, budget: timedelta = SEND_BUDGET) -> SendReport:
    """One attempt for each due delivery: claimed under a lease, POSTed in parallel, recorded as it returns.

    Work goes in waves of ``SENDER_THREADS`` so each result is stored before the
    next wave is claimed; once ``budget`` is spent no new wave starts (what is left
    stays due, and the sweep takes it). A delivery that is not due, or that
    another sender holds, is skipped. Only the HTTP requests run on threads.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed  # sender Lambdas only

    report = SendReport()
    endpoints: dict[tuple[str, str, str], Endpoint | None] = {}
    pending = list(dict.fromkeys(refs))
    started = clock()
    with ThreadPoolExecutor(max_workers=SENDER_THREADS) as pool:
        while pending and clock() - started < budget:
            wave, pending = pending[:SENDER_THREADS], pending[SENDER_THREADS:]
            claimed = [c for c in (_claim(uow, ref, clock, endpoints) for ref in wave) if c is not None]
            futures = {pool.submit(_send, delivery, endpoint, clock, sender, base): (delivery, lease)
                       for delivery, lease, endpoint in claimed}
            for future in as_completed(futures):
                _delivery, lease = futures[future]
                _record(uow, future.result(), lease, report)
    return report


def _claim(uow: UnitOfWork, ref: DeliveryRef, clock: Callable[[], datetime],
           endpoints: dict[tuple[str, str, str], Endpoint | None]) -> tuple[Delivery, datetime, Endpoint | None] | None:
    now = clock()
    lease = now + SENDER_LEASE
    delivery = uow.webhooks.claim(ref, now=now, lease_until=lease)
    if delivery is None:
        return None
    key = (delivery.tenant_id, str(delivery.environment), delivery.endpoint_id)
    if key not in endpoints:
        endpoints[key] = uow.webhooks.get_endpoint(delivery.tenant_id, delivery.environment, delivery.endpoint_id)
    return delivery, lease, endpoints[key]


def _send(delivery: Delivery, endpoint: Endpoint | None, clock: Callable[[], datetime], sender: Any,
          base: timedelta) -> Delivery:
    """The delivery after one attempt (runs on a thread: no storage access here)."""
    at = clock()
    number = delivery.attempt_count + 1
    if endpoint is None or endpoint.status != EndpointStatus.ACTIVE:
        return delivery.abandoned(Attempt(number, at, None, 0, error="The endpoint was deleted."))
    try:
        result = sender.post(delivery.url, delivery.body, signed_headers(endpoint.secret, delivery, at))
        outcome = Attempt(number, at, result.status_code, result.duration_ms, result.error, result.excerpt)
    except Exception as exc:  # a sender bug must cost one attempt, not the whole wave
        log.exception("webhook sender failed")
        outcome = Attempt(number, at, None, 0, error=f"{type(exc).__name__}: {exc}"[:200])
    return delivery.after(outcome, base=base)


def _record(uow: UnitOfWork, outcome: Delivery, lease: datetime, report: SendReport) -> None:
    def store(_n: int) -> None:
        uow.webhooks.record_attempt(outcome, lease_until=lease)
        uow.commit()

    try:  # a transaction conflict is tried again; a lease that ran out fails every time
        retry_on_conflict(uow, store, attempts=RECORD_ATTEMPTS, message="lease lost")
    except ConcurrentWriteError:  # our lease ran out and another sender took over: its record stands
        return
    except Exception:  # e.g. throttling: the lease expires and the attempt is made again
        uow.rollback()
        log.exception("recording a webhook attempt failed", extra={"eventId": outcome.event_id})
        return
    report.add(outcome)


RETRY_EVENT_ATTEMPTS = 3


def retry_event(uow: UnitOfWork, principal: ApiKeyPrincipal, event_id: str, *, now: datetime,
                queue: Any) -> list[Delivery]:
    """SDK ``retry_webhook``: every delivery of the event is due again now, with a fresh set of attempts (the
    worker woken through ``queue``)."""
    def attempt(_n: int) -> list[Delivery]:
        """Read, stage and commit; an attempt recorded since the read, or a transaction conflict, is a race
        (read again): only an attempt still in flight outlasts every try."""
        deliveries = uow.webhooks.event_deliveries(principal.tenant_id, principal.environment, event_id)
        if not deliveries:
            raise NotFoundError("Webhook event not found.")
        retried = [d.retried(now) for d in deliveries]
        for delivery in retried:
            uow.webhooks.record_attempt(delivery, lease_until=None)
        uow.audit.add(_audit(principal, "webhook.retried", f"event:{event_id}", principal.environment, now,
                             deliveries=len(retried)))
        uow.commit()
        return retried

    try:
        retried = retry_on_conflict(uow, attempt, attempts=RETRY_EVENT_ATTEMPTS, message="delivery in progress")
    except ConcurrentWriteError as exc:
        raise ConflictError("A delivery attempt for this event is in progress; retry in a moment.",
                            code="DELIVERY_IN_PROGRESS") from exc
    wake(queue, retried)
    return retried


def list_deliveries(uow: UnitOfWork, principal: ApiKeyPrincipal, *, limit: int, cursor: str | None,
                    status: str | None, offset: int = 0) -> Page[Delivery]:
    """Newest first. ``offset`` skips whole items from the start (bounded); cursors are cheaper."""
    if status is not None and status not in DeliveryStatus.__members__:
        raise ValidationError(f"status must be one of {', '.join(DeliveryStatus)}", field="status")
    return page_after_offset(
        lambda size, at: uow.webhooks.deliveries(principal.tenant_id, principal.environment, size, at, status=status),
        offset=offset, limit=limit, cursor=cursor)


# --- the worker ------------------------------------------------------------------------------------


def work(uow: UnitOfWork, outbox_refs: list[OutboxRef], delivery_refs: list[DeliveryRef], *,
         clock: Callable[[], datetime], sender: Any, base: timedelta) -> SendReport:
    """Fan out the outbox items, then attempt their deliveries and the ones named directly."""
    refs = list(delivery_refs)
    for ref in outbox_refs:
        refs += fan_out(uow, ref, now=clock())
    return attempt(uow, refs, clock=clock, sender=sender, base=base)


def sweep(uow: UnitOfWork, *, clock: Callable[[], datetime], sender: Any, base: timedelta) -> SendReport:
    """Scheduled backstop: outbox items nobody fanned out, and deliveries whose retry is due."""
    now = clock()
    stale = uow.webhooks.stale_outbox(older_than=now - OUTBOX_GRACE, limit=SWEEP_LIMIT)
    return work(uow, stale, uow.webhooks.due(now=now, limit=SWEEP_LIMIT), clock=clock, sender=sender, base=base)

