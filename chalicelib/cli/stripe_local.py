"""``tally dev stripe …``: drive the local Stripe stand-in (adapters/stripe_local.py) from the terminal.

Each command does what a person (or time) would do at Stripe — pay a Checkout, reach a period end, have a
payment fail, pay an invoice — and prints what happened and the webhook events sent to the stack.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _stand_in() -> Any:
    from chalicelib import bootstrap
    from chalicelib.adapters.stripe_local import LocalStripe
    from chalicelib.cli.main import _connect

    _connect()
    if bootstrap.stripe_config().api_key:
        raise SystemExit("A Stripe API key is configured: the local Stripe stand-in is not in use.")
    provider = bootstrap.billing_provider()
    if not isinstance(provider, LocalStripe):
        raise SystemExit("The billing provider in use is not the local Stripe stand-in.")
    return provider


def _report(summary: str, events: Any, as_json: bool, **extra: Any) -> int:
    if as_json:
        print(json.dumps({"summary": summary, **extra, "events": [
            {"id": e.id, "type": e.type, "status": e.status, "delivered": e.delivered} for e in events]}, indent=2))
    else:
        print(summary)
        for event in events:
            print(f"  {event.describe()}")
    return 0 if all(event.delivered or event.status == -1 for event in events) else 1


def _session_id(value: str) -> str:
    """The ``cs_…`` id of a Checkout URL (or the id itself)."""
    return value.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


def cmd_complete_checkout(args: argparse.Namespace) -> int:
    outcome = _stand_in().complete_checkout(_session_id(args.url))
    return _report(outcome.summary, outcome.events, args.json, object=outcome.object.get("id"))


def _tenant_command(operation: str) -> Any:
    def command(args: argparse.Namespace) -> int:
        outcome = getattr(_stand_in(), operation)(args.tenant)
        return _report(outcome.summary, outcome.events, args.json, object=outcome.object.get("id"))

    return command


def cmd_deliver(args: argparse.Namespace) -> int:
    sent = _stand_in().deliver_pending()
    summary = f"{sum(e.delivered for e in sent)} of {len(sent)} undelivered events delivered."
    return _report(summary, sent, args.json)


def add_stripe_commands(dev: Any) -> None:
    """``tally dev stripe complete-checkout URL | advance-period | fail-payment | pay-invoice --tenant ID |
    deliver``. Exit status 1 when an event could not be delivered (it stays queued)."""
    stripe = dev.add_parser("stripe", help="drive the local Stripe stand-in (no Stripe account needed)",
                            description="Drive the local Stripe stand-in: pay a Checkout, reach a period end, "
                                        "have a payment fail, pay invoices, resend undelivered events."
                            ).add_subparsers(dest="action", required=True)
    complete = stripe.add_parser("complete-checkout", help="pay a Checkout session, as its Pay button does")
    complete.add_argument("url", help="the Checkout URL the dashboard returned (or its cs_… id)")
    complete.set_defaults(func=cmd_complete_checkout)
    for name, operation, text in (
        ("advance-period", "advance_period", "the subscription reaches its period end: it renews with a paid "
                                             "invoice, or ends if cancellation was scheduled"),
        ("fail-payment", "fail_payment", "a payment fails: an open invoice, the subscription past due"),
        ("pay-invoice", "pay_invoice", "the open invoices are paid, the subscription active again"),
    ):
        command = stripe.add_parser(name, help=text)
        command.add_argument("--tenant", required=True, help="tenant id")
        command.set_defaults(func=_tenant_command(operation))
    deliver = stripe.add_parser("deliver", help="send the events not delivered yet again (oldest first)")
    deliver.set_defaults(func=cmd_deliver)
    for parser in (complete, deliver, *(stripe.choices[n] for n in ("advance-period", "fail-payment",
                                                                     "pay-invoice"))):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
