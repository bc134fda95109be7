"""The verification queue (SQS): accepted delta references go here for the verifier Lambda."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.settings import Settings

REFS_PER_MESSAGE = 100


class SqsVerificationQueue:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._url = settings.verify_queue_url

    def _queue(self) -> tuple[Any, str]:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs", region_name=self._settings.region)
        if not self._url:
            self._url = self._client.get_queue_url(QueueName=self._settings.table_name("verify"))["QueueUrl"]
        return self._client, self._url

    def enqueue(self, refs: list[tuple[str, str, str]]) -> None:
        """Send ``(tenantId, environment, recordId)`` references, 100 per message, 10 messages per call."""
        client, url = self._queue()
        bodies = [json.dumps({"records": refs[i : i + REFS_PER_MESSAGE]})
                  for i in range(0, len(refs), REFS_PER_MESSAGE)]
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start : start + 10])]
            failed = client.send_message_batch(QueueUrl=url, Entries=entries).get("Failed") or []
            if failed:
                raise RuntimeError(f"{len(failed)} verification messages were not accepted by SQS")


def parse_message(body: str) -> list[tuple[str, str, str]]:
    return [tuple(ref) for ref in json.loads(body).get("records", [])]  # type: ignore[misc]
