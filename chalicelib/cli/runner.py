"""In-process runner for the app's scheduled and queue-triggered Lambdas (local stack).

Reads the Chalice app's registered event sources, so a handler added with
``@app.schedule`` or ``@app.on_sqs_message`` runs locally with no extra wiring:
schedules fire at ``min(rate, local_interval)``, queues are long-polled and a
batch is deleted only after its handler returns (as Lambda's SQS poller does).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from chalicelib.log import get_logger

log = get_logger("tally.runner")
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def schedule_seconds(expression: str) -> float:
    """Seconds between runs of a ``rate(...)`` expression; cron runs hourly locally."""
    match = _RATE.match(str(expression).strip())
    if not match:
        return 3600.0
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


class _Context:
    def __init__(self, name: str) -> None:
        self.function_name = name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class JobRunner:
    app: Any
    sqs_client: Any = None
    stack_name: str = ""  # resolves `${AWS::StackName}` in queue names, as CloudFormation does
    local_interval: float = 30.0
    poll_seconds: float = 0.2
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    runs: dict[str, int] = field(default_factory=dict)

    def _sources(self, kind: str) -> list[Any]:
        return [s for s in getattr(self.app, "event_sources", []) if type(s).__name__ == kind]

    def _invoke(self, name: str, event: dict) -> bool:
        try:
            self.app.handler_map[name](event, _Context(name))
            self.runs[name] = self.runs.get(name, 0) + 1
            return True
        except Exception:
            log.exception("background handler failed", extra={"handler": name})
            return False

    def run_schedules_once(self, due: dict[str, float], now: float) -> None:
        for source in self._sources("ScheduledEventConfig"):
            if now < due.get(source.name, 0.0):
                continue
            interval = min(schedule_seconds(source.schedule_expression), self.local_interval)
            due[source.name] = now + interval
            self._invoke(source.name, {
                "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "000000000000", "region": "us-east-1",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "resources": [], "detail": {},
            })

    def drain_queues_once(self, wait_seconds: int = 0) -> int:
        """Deliver one batch per queue source; returns messages handled."""
        handled = 0
        if self.sqs_client is None:
            return handled
        for source in self._sources("SQSEventConfig"):
            name = source.queue.replace("${AWS::StackName}", self.stack_name)
            url = self.sqs_client.get_queue_url(QueueName=name)["QueueUrl"]
            messages = self.sqs_client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(source.batch_size, 10), WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                continue
            event = {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:local:000000000000:{source.queue}",
            } for m in messages]}
            if self._invoke(source.name, event):
                for m in messages:
                    self.sqs_client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                handled += len(messages)
        return handled

    def _loop(self) -> None:
        due: dict[str, float] = {}
        while not self._stop.is_set():
            self.run_schedules_once(due, time.monotonic())
            if not self.drain_queues_once():
                self._stop.wait(self.poll_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tally-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)  # a handler mid-transaction is abandoned; the sweep redoes its work


def main() -> int:
    """The jobs process of the local stack: the app's queue and schedule handlers, one event at a time."""
    import signal

    import boto3

    from chalicelib.cli.devstack import REGION, STACK_NAME, load_app
    from chalicelib.cli.emulator import die_with_parent

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us (SIGTERM)
    runner = JobRunner(app=load_app(), sqs_client=boto3.client("sqs", region_name=REGION), stack_name=STACK_NAME)
    print("ready", flush=True)
    runner._loop()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
