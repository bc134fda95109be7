"""Operator commands: the tenant directory, one tenant, the missing-payments flag, platform tokens.

They call the same services as the platform API (seed 002), acting as :class:`OperatorPrincipal`
(every ability, audited as ``operator:cli``); output uses the API's field names.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from chalicelib.cli import main as cli


def _per_page(raw: str) -> int:
    """The API's bound, checked before anything connects."""
    from chalicelib.services.platform import PER_PAGE_MAX, per_page_value

    per_page = per_page_value(raw)
    if per_page is None:
        raise argparse.ArgumentTypeError(f"must be between 1 and {PER_PAGE_MAX}")
    return per_page


def tenant_details(tenant: Any, now: Any) -> dict:
    """Seed 002's fields (its names and timestamp format), then Tally's own (as `tenants create` names them)."""
    from chalicelib.api.views import tenant_directory_view as directory_view
    from chalicelib.domain.clock import iso_us

    return {
        **directory_view(tenant),
        "has_unpaid_invoices_at": iso_us(tenant.has_unpaid_invoices_at),
        "missing_payment_limit_date": iso_us(tenant.missing_payment_limit_date),
        "dashboard_blocked": tenant.dashboard_blocked(now),
        "plan": tenant.plan,
        "billingMode": str(tenant.billing_mode),
        "status": str(tenant.status),
        "stripeCustomerId": tenant.stripe_customer_id,
        "stripeSubscriptionId": tenant.stripe_subscription_id,
        "stripeSubscriptionStatus": tenant.stripe_subscription_status,
    }


def token_view(token: Any) -> dict:
    """Sanctum's column names (seed 002's tokens); never the secret, which is not stored anyway."""
    from chalicelib.domain.clock import iso_us

    return {
        "id": token.token_id,
        "name": token.name,
        "abilities": sorted(token.abilities),
        "created_at": iso_us(token.created_at),
        "last_used_at": iso_us(token.last_used_at),
        "revoked_at": iso_us(token.revoked_at),
    }


def _table(rows: list[dict], columns: list[str]) -> None:
    cells = [columns] + [["-" if row[c] is None else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def cmd_tenants_list(args: argparse.Namespace) -> int:
    cli._connect()
    from chalicelib.api.views import tenant_directory_view as directory_view
    from chalicelib.domain.identity import OperatorPrincipal
    from chalicelib.services.platform import list_tenants

    page = list_tenants(cli._uow(), OperatorPrincipal(), per_page=args.per_page, cursor=args.cursor)
    data = [directory_view(t) for t in page.items]
    if args.json:
        print(json.dumps({"data": data, "meta": {"per_page": args.per_page, "next_cursor": page.next_cursor,
                                                 "has_more": page.next_cursor is not None}}, indent=2))
        return 0
    _table(data, ["id", "name", "subdomain", "final_domain", "https", "lang"])
    if page.next_cursor:
        print(f"next page: --cursor {page.next_cursor}")
    return 0


def cmd_tenants_show(args: argparse.Namespace) -> int:
    cli._connect()
    from chalicelib.services.tenants import get_tenant

    cli._print(tenant_details(get_tenant(cli._uow(), args.tenant_id), cli._now()), args.json)
    return 0


def _missing_payments(args: argparse.Namespace, *, mark: bool) -> int:
    cli._connect()
    from chalicelib.api.views import missing_payments_view
    from chalicelib.domain.identity import OperatorPrincipal
    from chalicelib.services import platform as platform_service

    change = platform_service.mark_missing_payments if mark else platform_service.clear_missing_payments
    now = cli._now()
    tenant = change(cli._uow(), OperatorPrincipal(), args.tenant_id, now=now)
    cli._print(missing_payments_view(tenant, now), args.json)
    return 0


def cmd_tenants_mark_missing_payment(args: argparse.Namespace) -> int:
    return _missing_payments(args, mark=True)


def cmd_tenants_clear_missing_payment(args: argparse.Namespace) -> int:
    return _missing_payments(args, mark=False)


def cmd_platform_token_list(args: argparse.Namespace) -> int:
    cli._connect()
    from chalicelib.services.platform import list_platform_tokens

    tokens = [token_view(t) for t in list_platform_tokens(cli._uow())]
    if args.json:
        print(json.dumps(tokens, indent=2))
        return 0
    _table([{**t, "abilities": ",".join(t["abilities"])} for t in tokens],
           ["id", "name", "abilities", "created_at", "last_used_at", "revoked_at"])
    return 0


def add_tenant_commands(tenants: Any) -> None:
    """``tally tenants list | show | mark-missing-payment | clear-missing-payment``."""
    listing = tenants.add_parser("list", help="the tenant directory (as GET /tenants: tenants with an active plan)")
    listing.add_argument("--per-page", type=_per_page, default=15, help="1-500 (default 15)")
    listing.add_argument("--cursor", help="the next_cursor of the previous page")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_tenants_list)
    show = tenants.add_parser("show", help="one tenant: seed 002's fields, plan, billing mode, status, Stripe ids")
    show.add_argument("tenant_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_tenants_show)
    for name, func, text in (
        ("mark-missing-payment", cmd_tenants_mark_missing_payment,
         "flag unpaid invoices (as POST /tenants/{t}/missing-payments); the dashboard blocks 14 days later"),
        ("clear-missing-payment", cmd_tenants_clear_missing_payment,
         "clear the flag (as DELETE /tenants/{t}/missing-payments); lifts a block at once"),
    ):
        command = tenants.add_parser(name, help=text)
        command.add_argument("tenant_id")
        command.add_argument("--json", action="store_true")
        command.set_defaults(func=func)


def add_token_commands(ptoken: Any) -> None:
    """``tally platform token list``."""
    listing = ptoken.add_parser("list", help="every platform token (never its secret), revoked ones included")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_platform_token_list)
