"""Webhook Lambdas (thin): the queue-triggered sender and the once-a-minute sweep."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from chalicelib import bootstrap
from chalicelib.adapters.queues import MAX_DELAY_SECONDS, parse_webhook_message
from chalicelib.log import get_logger
from chalicelib.services import webhooks
from chalicelib.settings import get_settings

log = get_logger("tally.jobs.webhooks")


def _base() -> timedelta:
    return timedelta(seconds=get_settings().webhook_retry_base_seconds)


def _schedule_retries(report: webhooks.SendReport) -> None:
    """Retries due within SQS's 15-minute delay limit get a delayed message; the sweep finds the rest."""
    by_delay: dict[int, list[list[str]]] = defaultdict(list)
    now = bootstrap.now()
    for delivery in report.rescheduled:
        if delivery.next_attempt_at is None:
            continue
        delay = max(0, int((delivery.next_attempt_at - now).total_seconds() + 0.999))
        if delay <= MAX_DELAY_SECONDS:
            by_delay[delay].append(list(webhooks.delivery_ref(delivery)))
    for delay, refs in by_delay.items():
        try:
            bootstrap.webhook_queue().attempt(refs, delay_seconds=delay)
        except Exception:
            log.warning("retry scheduling failed; the sweep will retry these", exc_info=True)


def _log(report: webhooks.SendReport) -> None:
    if report.delivered or report.rescheduled or report.failed:
        log.info("webhook deliveries", extra={"delivered": len(report.delivered),
                                              "rescheduled": len(report.rescheduled), "failed": len(report.failed)})


def handle_queue(event: Any) -> None:
    """One SQS batch: fan out the outbox items named, attempt the deliveries named."""
    outbox: list = []
    deliveries: list = []
    for record in event:
        more_outbox, more_deliveries = parse_webhook_message(record.body)
        outbox += more_outbox
        deliveries += more_deliveries
    report = webhooks.work(bootstrap.unit_of_work(), outbox, deliveries, clock=bootstrap.now,
                           sender=bootstrap.webhook_sender(), base=_base())
    _schedule_retries(report)
    _log(report)


def handle_sweep(event: Any) -> None:
    report = webhooks.sweep(bootstrap.unit_of_work(), clock=bootstrap.now, sender=bootstrap.webhook_sender(),
                            base=_base())
    _schedule_retries(report)
    _log(report)
