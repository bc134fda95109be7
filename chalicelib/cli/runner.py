"""The local stack's job environments: the app's scheduled and queue-triggered Lambdas.

Reads the Chalice app's registered event sources, so a handler added with
``@app.schedule`` or ``@app.on_sqs_message`` runs locally with no extra wiring:
schedules fire at ``min(rate, local_interval)``; each queue is long-polled by a
thread, a batch is gathered for the source's batching window and deleted only
after its handler returns (as Lambda's SQS poller does); handlers run one event
at a time per environment (``python -m chalicelib.cli.runner``, one process each).
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
    """One execution environment for the app's scheduled and queue-triggered Lambdas: each queue is
    long-polled by a thread of its own (as Lambda's pollers do), and handlers run one event at a time."""

    app: Any
    sqs_client: Any = None
    stack_name: str = ""  # resolves `${AWS::StackName}` in queue names, as CloudFormation does
    local_interval: float = 30.0
    poll_seconds: float = 0.2
    run_schedules: bool = True
    queues: frozenset[str] | None = None  # names of the queue handlers this environment serves (None: all)
    wait_seconds: int = 1  # long-poll wait: how soon a stop is noticed
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _one_at_a_time: threading.Lock = field(default_factory=threading.Lock)
    _urls: dict[str, str] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)

    def _sources(self, kind: str) -> list[Any]:
        found = [s for s in getattr(self.app, "event_sources", []) if type(s).__name__ == kind]
        if kind == "SQSEventConfig" and self.queues is not None:
            found = [s for s in found if s.name in self.queues]
        return found

    def _invoke(self, name: str, event: dict) -> bool:
        with self._one_at_a_time:
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

    def _url(self, source: Any) -> str:
        if source.name not in self._urls:
            name = source.queue.replace("${AWS::StackName}", self.stack_name)
            self._urls[source.name] = self.sqs_client.get_queue_url(QueueName=name)["QueueUrl"]
        return self._urls[source.name]

    def _drain(self, source: Any, wait_seconds: int) -> int:
        """Deliver one batch of ``source``'s queue; returns the messages handled."""
        url = self._url(source)
        batch = min(source.batch_size, 10)

        def receive(count: int, wait: int) -> list[dict]:
            return self.sqs_client.receive_message(QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=wait,
                                                   AttributeNames=["All"]).get("Messages", [])

        messages = receive(batch, wait_seconds)
        if not messages:
            return 0
        # MaximumBatchingWindowInSeconds: like Lambda's poller, gather up to a full batch for that long.
        deadline = time.monotonic() + (getattr(source, "maximum_batching_window_in_seconds", 0) or 0)
        while len(messages) < batch and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages += receive(batch - len(messages), 1 if remaining >= 1 else 0)
            if remaining < 1:
                time.sleep(min(remaining, 0.05))
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:local:000000000000:{source.queue}",
        } for m in messages]}
        if not self._invoke(source.name, event):
            return 0  # left for redelivery once their visibility timeout passes, as Lambda leaves them
        self.sqs_client.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return len(messages)

    def drain_queues_once(self, wait_seconds: int = 0) -> int:
        """Deliver one batch per queue source; returns messages handled."""
        if self.sqs_client is None:
            return 0
        return sum(self._drain(source, wait_seconds) for source in self._sources("SQSEventConfig"))

    def _poll(self, source: Any) -> None:
        while not self._stop.is_set():
            try:
                self._drain(source, self.wait_seconds)
            except Exception:  # the emulator going away at a stop, a transient error: try again shortly
                if self._stop.wait(self.poll_seconds):
                    return

    def _schedule(self) -> None:
        due: dict[str, float] = {}
        while not self._stop.is_set():
            self.run_schedules_once(due, time.monotonic())
            self._stop.wait(self.poll_seconds)

    def start(self) -> None:
        targets: list[tuple[Any, tuple]] = []
        if self.run_schedules:
            targets.append((self._schedule, ()))
        if self.sqs_client is not None:
            targets += [(self._poll, (source,)) for source in self._sources("SQSEventConfig")]
        for target, args in targets:
            thread = threading.Thread(target=target, args=args, name="tally-jobs", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.wait_seconds + 1)  # a handler mid-transaction is abandoned; the sweep redoes it


def queue_handlers(app: Any) -> list[str]:
    """The app's queue-triggered functions: each gets job environments of its own, as each is a Lambda."""
    return [s.name for s in getattr(app, "event_sources", []) if type(s).__name__ == "SQSEventConfig"]


def main(argv: list[str] | None = None) -> int:
    """A job environment of the local stack: the queue handlers named by ``--queue`` (each a Lambda function
    of its own on AWS) and, with ``--schedules``, the scheduled ones."""
    import argparse
    import signal

    import boto3

    from chalicelib.cli.devstack import REGION, STACK_NAME, load_app
    from chalicelib.cli.emulator import die_with_parent

    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli.runner")
    parser.add_argument("--schedules", action="store_true")
    parser.add_argument("--queue", action="append", default=[], help="a queue handler's name (repeatable)")
    args = parser.parse_args(argv)
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us (SIGTERM)
    runner = JobRunner(app=load_app(), sqs_client=boto3.client("sqs", region_name=REGION), stack_name=STACK_NAME,
                       run_schedules=args.schedules, queues=frozenset(args.queue))
    runner.start()
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
