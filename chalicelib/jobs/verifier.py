"""Verifier Lambdas (thin): the SQS-triggered verifier and the scheduled sweep; both hand the
webhook events they committed to the webhook queue."""

from __future__ import annotations

from typing import Any

from chalicelib import bootstrap
from chalicelib.adapters.queues import parse_message
from chalicelib.log import get_logger
from chalicelib.services import verification, webhooks

log = get_logger("tally.jobs.verifier")


def handle_queue(event: Any) -> None:
    """One SQS batch: verify every referenced delta. Raising returns the batch to the queue."""
    refs = [ref for record in event for ref in parse_message(record.body)]
    report = verification.verify_records(bootstrap.unit_of_work(), refs, now=bootstrap.now(),
                                         signer=bootstrap.signer())
    webhooks.announce(bootstrap.webhook_queue(), report.outbox)
    log.info("verified", extra={"verified": len(report.verified), "failed": len(report.failed),
                                "batches": len(report.batches), "skipped": report.skipped})


def handle_sweep(event: Any) -> None:
    """Scheduled backstop for anything the queue missed."""
    report = verification.sweep(bootstrap.unit_of_work(), now=bootstrap.now(), signer=bootstrap.signer())
    webhooks.announce(bootstrap.webhook_queue(), report.outbox)
    if report.verified or report.failed:
        log.info("sweep verified", extra={"verified": len(report.verified), "failed": len(report.failed)})
