"""SQS queues: accepted delta references for the verifier, and webhook work for the sender."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.settings import Settings

REFS_PER_MESSAGE = 100
MAX_DELAY_SECONDS = 900  # SQS's limit; longer waits are left to the scheduled sweep


class _SqsQueue:
    def __init__(self, settings: Settings, url: str, name: str) -> None:
        self._settings = settings
        self._client: Any = None
        self._url = url
        self._name = name

    def _queue(self) -> tuple[Any, str]:
        if self._client is None:
            import boto3

            from chalicelib.adapters.faults import client_config

            self._client = boto3.client("sqs", region_name=self._settings.region,
                                        config=client_config(self._settings))
        if not self._url:
            self._url = self._client.get_queue_url(QueueName=self._settings.table_name(self._name))["QueueUrl"]
        return self._client, self._url

    def send(self, bodies: list[str], *, delay_seconds: int = 0) -> None:
        """Send message bodies, 10 per call; raises if SQS refuses any."""
        client, url = self._queue()
        delay = max(0, min(int(delay_seconds), MAX_DELAY_SECONDS))
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(n), "MessageBody": body, "DelaySeconds": delay}
                       for n, body in enumerate(bodies[start : start + 10])]
            failed = client.send_message_batch(QueueUrl=url, Entries=entries).get("Failed") or []
            if failed:
                raise RuntimeError(f"{len(failed)} messages were not accepted by SQS ({self._name})")


class SqsVerificationQueue(_SqsQueue):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.verify_queue_url, "verify")

    def enqueue(self, refs: list[tuple[Any, ...]]) -> None:
        """Send ``(tenantId, environment, recordId[, seal candidate])`` references, 100 per message."""
        self.send([json.dumps({"records": refs[i : i + REFS_PER_MESSAGE]})
                   for i in range(0, len(refs), REFS_PER_MESSAGE)])


def parse_message(body: str) -> list[tuple[Any, ...]]:
    return [tuple(ref) for ref in json.loads(body).get("records", [])]


class SqsWebhookQueue(_SqsQueue):
    """Work for the webhook sender: outbox items to fan out, deliveries to attempt (maybe later)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.webhook_queue_url, "webhooks")

    def fan_out(self, outbox_refs: list[tuple[str, str]]) -> None:
        self.send([json.dumps({"outbox": outbox_refs[i : i + REFS_PER_MESSAGE]})
                   for i in range(0, len(outbox_refs), REFS_PER_MESSAGE)])

    def attempt(self, delivery_refs: list[tuple[str, str, str, str]], *, delay_seconds: int = 0) -> None:
        self.send([json.dumps({"deliveries": delivery_refs[i : i + REFS_PER_MESSAGE]})
                   for i in range(0, len(delivery_refs), REFS_PER_MESSAGE)], delay_seconds=delay_seconds)


def parse_webhook_message(body: str) -> tuple[list[tuple[str, str]], list[tuple[str, str, str, str]]]:
    """(outbox refs, delivery refs) of one webhook queue message."""
    data = json.loads(body)
    return ([tuple(r) for r in data.get("outbox", [])],  # type: ignore[misc]
            [tuple(r) for r in data.get("deliveries", [])])  # type: ignore[misc]
