"""``tally jobs run NAME``: run one scheduled job once, against the local stack or AWS."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _names() -> list[str]:
    from chalicelib.jobs.scheduled import JOBS

    return list(JOBS)


def cmd_jobs_run(args: argparse.Namespace) -> int:
    from chalicelib.cli.main import _connect
    from chalicelib.jobs.scheduled import JOBS

    _connect()
    job = JOBS[args.name]
    if args.period and args.name != "period-rollover":
        raise SystemExit("--period applies to period-rollover only")
    with _logs_to_stderr():
        result = _rollover_until_settled(job, args.period) if args.name == "period-rollover" else job.run(None, None)
    print(json.dumps({"job": job.name, **result}, indent=2 if args.json else None, default=str))
    return 0


@contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """The jobs log JSON lines to stdout (Lambda's convention); here stdout is the result, parseable alone."""
    import logging
    import sys

    from chalicelib.log import get_logger

    get_logger()
    handlers = [h for h in logging.getLogger("tally").handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.setStream(sys.stderr) for h in handlers]
    try:
        yield
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            if stream is not None:
                handler.setStream(stream)


def _rollover_until_settled(job: Any, period: str | None) -> dict[str, Any]:
    """Invocations back to back until the month is closed or a run makes no progress (what is left waits
    on verification, Stripe or an error, and the schedule retries it)."""
    total: dict[str, Any] = {}
    while True:
        result = job.run(None, None, period=period, budget_seconds=600)
        for key in ("closed", "reports", "reverted", "checkpoints"):
            total[key] = total.get(key, 0) + result[key]
        total.update(period=result["period"], phase=result["phase"], done=result["done"], retry=result["retry"])
        if result["done"] or not (result["closed"] or result["checkpoints"]):
            return total


def add_job_commands(sub: Any) -> None:
    """``tally jobs run NAME`` (NAME: missing-payment-blocks, period-rollover, sweep-unverified,
    deliver-due-webhooks)."""
    from chalicelib.jobs.scheduled import JOBS

    listing = "scheduled jobs:\n" + "\n".join(f"  {j.name:<24}{j.summary} ({j.schedule})" for j in JOBS.values())
    raw = argparse.RawDescriptionHelpFormatter
    jobs = sub.add_parser("jobs", help="scheduled jobs: run one once", description=listing,
                          formatter_class=raw).add_subparsers(dest="command", required=True)
    run = jobs.add_parser("run", help="run a scheduled job once, now", description=listing, formatter_class=raw)
    run.add_argument("name", choices=_names(), metavar="NAME", help=f"one of: {', '.join(_names())}")
    run.add_argument("--period", help="period-rollover: the UTC month to close, YYYY-MM (default: last month)")
    run.add_argument("--json", action="store_true", help="pretty-print the result")
    run.set_defaults(func=cmd_jobs_run)
