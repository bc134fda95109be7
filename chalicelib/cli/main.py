"""The ``tally`` command: local stack, dev credentials, operator tasks.

Commands talk to the running local stack (found through ``.tally/state.json``),
or to AWS when ``TALLY_RESOURCE_PREFIX`` and AWS credentials are configured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from chalicelib.cli import devstack


def _connect() -> dict[str, Any] | None:
    """Point this process at the running local stack, or at AWS; return the local state."""
    state = devstack.read_state()
    if state:
        devstack.configure_environment(state["awsEndpoint"], state["baseUrl"], state.get("env"))
        return state
    if os.environ.get("TALLY_RESOURCE_PREFIX"):
        return None  # AWS, as configured in the environment
    raise SystemExit(
        "No running local stack (start it with `make run`) and no AWS configuration "
        "(set TALLY_RESOURCE_PREFIX and AWS credentials)."
    )


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key}: {value}")


def _uow() -> Any:
    from chalicelib import bootstrap

    return bootstrap.unit_of_work()


def _now() -> Any:
    from chalicelib import bootstrap

    return bootstrap.now()


def _jwt(tenant_id: str, user_id: str, role: str, ttl: int = 12 * 3600) -> str:
    from chalicelib import bootstrap

    return bootstrap.jwt_verifier().issue(tenant_id=tenant_id, user_id=user_id, role=role, ttl_seconds=ttl)


def _cookie_jar(state: dict[str, Any], tenant_id: str, user_id: str) -> str:
    """A curl cookie jar holding a live session; reused while it stays valid."""
    from chalicelib.api.auth import SESSION_COOKIE
    from chalicelib.domain.errors import AuthenticationError
    from chalicelib.domain.identity import DashboardPrincipal, Environment, Role
    from chalicelib.services import auth as auth_service
    from chalicelib.settings import get_settings

    path = devstack.STATE_DIR / "cookies.txt"
    value = None
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) == 7 and fields[5] == SESSION_COOKIE:
                value = fields[6]
    try:
        auth_service.resolve_session(_uow(), value, now=_now(), environment=Environment.PRODUCTION)
    except AuthenticationError:
        principal = DashboardPrincipal(tenant_id=tenant_id, user_id=user_id, role=Role.ADMIN,
                                       environment=Environment.PRODUCTION, via="jwt")
        ttl = get_settings().session_ttl_seconds
        _session, value = auth_service.open_session(_uow(), principal, now=_now(), ttl_seconds=ttl)
    host = state["baseUrl"].split("://", 1)[1].split(":", 1)[0]
    expires = int(time.time()) + 12 * 3600
    path.write_text(
        "# Netscape HTTP Cookie File (written by `tally dev credentials`)\n"
        f"#HttpOnly_{host}\tFALSE\t/\tFALSE\t{expires}\t{SESSION_COOKIE}\t{value}\n"
    )
    path.chmod(0o600)
    return str(path)


def cmd_dev_up(args: argparse.Namespace) -> int:
    return devstack.run_forever(api_port=args.port, workers=args.workers, clock_offset_days=args.clock_offset_days)


def cmd_dev_reset(args: argparse.Namespace) -> int:
    return devstack.reset()


def cmd_dev_credentials(args: argparse.Namespace) -> int:
    state = _connect()
    if state is None:
        raise SystemExit("`tally dev credentials` needs the local stack (make run).")
    from chalicelib.cli.demo import ADMIN_USER

    secrets_ = devstack.dev_secrets()
    tenant_id = state["tenantId"]
    data = {
        "baseUrl": state["baseUrl"],
        "tenantId": tenant_id,
        "jwt": _jwt(tenant_id, ADMIN_USER, "admin"),
        "apiKeys": dict(secrets_["apiKeys"]),
        "platformToken": secrets_["platformToken"],
        "cookieJar": _cookie_jar(state, tenant_id, ADMIN_USER),
        "stripeWebhookSecret": _stripe_webhook_secret(),
    }
    _print(data, args.json)
    return 0


def _stripe_webhook_secret() -> str:
    """What the local Stripe stand-in signs its events with (the Stripe secret's webhook_secret)."""
    from chalicelib import bootstrap

    return bootstrap.stripe_config().webhook_secret


def cmd_dev_token(args: argparse.Namespace) -> int:
    state = _connect()
    from chalicelib.domain.identity import Role
    from chalicelib.services.tenants import ensure_user

    tenant_id = args.tenant or (state or {}).get("tenantId")
    if not tenant_id:
        raise SystemExit("--tenant is required")
    role = Role(args.role)
    user_id = args.user or f"usr_dev_{role}"
    ensure_user(_uow(), tenant_id, user_id, role, now=_now())
    print(_jwt(tenant_id, user_id, str(role), args.ttl))
    return 0


def cmd_dev_api_key(args: argparse.Namespace) -> int:
    _connect()
    from chalicelib.cli.views import api_key_with_secret
    from chalicelib.domain.identity import DashboardPrincipal, Environment, Role
    from chalicelib.services import api_keys as key_service
    from chalicelib.services.tenants import get_tenant

    get_tenant(_uow(), args.tenant)
    principal = DashboardPrincipal(tenant_id=args.tenant, user_id="operator", role=Role.OWNER,
                                   environment=Environment(args.environment), via="jwt")
    key, full_key = key_service.create_api_key(_uow(), principal, name=args.name,
                                               environment=Environment(args.environment), now=_now())
    _print(api_key_with_secret(key, full_key), args.json)
    return 0


def cmd_tenants_create(args: argparse.Namespace) -> int:
    _connect()
    from chalicelib.cli.views import tenant_record
    from chalicelib.domain.tenants import BillingMode
    from chalicelib.services.tenants import create_tenant

    tenant, owner = create_tenant(
        _uow(), company_name=args.name, now=_now(), stripe_customer_id=args.stripe_customer,
        billing_mode=BillingMode(args.billing_mode), plan=args.plan, owner_email=args.owner_email,
    )
    _print({**tenant_record(tenant), "ownerUserId": owner.user_id}, args.json)
    return 0


def cmd_platform_token_create(args: argparse.Namespace) -> int:
    _connect()
    from chalicelib.services.platform import create_platform_token

    abilities = [a.strip() for a in args.abilities.split(",") if a.strip()]
    token, plaintext = create_platform_token(_uow(), name=args.name or "", abilities=abilities, now=_now())
    print(f"id: {token.token_id}")
    print(f"abilities: {','.join(sorted(token.abilities))}")
    print(plaintext)
    return 0


def cmd_platform_token_revoke(args: argparse.Namespace) -> int:
    _connect()
    from chalicelib.services.platform import revoke_platform_token

    token = revoke_platform_token(_uow(), args.token_id.split("|", 1)[0], now=_now())
    print(f"revoked {token.token_id}")
    return 0


def cmd_credits_topup(args: argparse.Namespace) -> int:
    _connect()
    from chalicelib.services.credits import topup

    account, entry = topup(_uow(), args.tenant, args.amount, actor="operator:cli", now=_now(),
                           description=args.description)
    _print({"tenantId": args.tenant, "entryId": entry.entry_id, "amount": entry.amount,
            "creditBalance": account.credit_balance, "availableBalance": account.available,
            "reserved": account.reserved}, args.json)
    return 0


def _read(path: str) -> Any:
    """Strictly parsed JSON from a file or stdin (``-``); DocumentError when unreadable."""
    from chalicelib.offline_verify import DocumentError, loads

    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return loads(raw)
    except DocumentError as exc:
        raise DocumentError(f"{path}: {exc}") from None


def cmd_verify(args: argparse.Namespace) -> int:
    """Offline: needs neither the local stack nor AWS (never calls _connect)."""
    from chalicelib.offline_verify import DocumentError, check

    try:
        keys = _read(args.keys) if args.keys else None
        report = check(_read(args.file), keys=keys)
    except DocumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0 if report.ok else 1
    good, bad = "✓", "✗"
    try:
        (good + bad).encode(sys.stdout.encoding or "utf-8")
    except UnicodeEncodeError:
        good, bad = "ok", "FAIL"
    print(f"{args.file}: {report.kind}")
    for item in report.checks:
        print(f"  {good if item.ok else bad} {item.name}: {item.detail}")
    for note in report.notes:
        print(f"  note: {note}")
    print("VERIFIED" if report.ok else "NOT VERIFIED")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    from chalicelib.cli import jobs, operator

    parser = argparse.ArgumentParser(prog="tally", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="group", required=True)

    dev = sub.add_parser("dev", help="local stack and development credentials").add_subparsers(
        dest="command", required=True)
    up = dev.add_parser("up", help="start the local stack (what `make run` does)")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--workers", type=int, default=devstack.DEFAULT_WORKERS,
                    help="execution environments serving requests side by side, each one request at a time "
                         "(default: $TALLY_LOCAL_WORKERS or 4)")
    up.add_argument("--clock-offset-days", type=float, default=0.0, metavar="DAYS",
                    help="run the stack's clock DAYS ahead (every process and `tally` command share it): see a "
                         "missing-payment grace period end, or a month close, without waiting")
    up.set_defaults(func=cmd_dev_up)
    reset = dev.add_parser("reset", help="delete the local stack's data: the next start begins from nothing")
    reset.set_defaults(func=cmd_dev_reset)
    creds = dev.add_parser("credentials", help="demo credentials of the running stack")
    creds.add_argument("--json", action="store_true")
    creds.set_defaults(func=cmd_dev_credentials)
    token = dev.add_parser("token", help="mint a dashboard JWT (local HS256)")
    token.add_argument("--tenant")
    token.add_argument("--role", default="admin", choices=["owner", "admin", "manager", "viewer"])
    token.add_argument("--user", help="user id (default usr_dev_<role>, created if absent)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_dev_token)
    key = dev.add_parser("api-key", help="create an API key for a tenant")
    key.add_argument("--tenant", required=True)
    key.add_argument("--environment", required=True, choices=["sandbox", "production"])
    key.add_argument("--name", default="CLI key")
    key.add_argument("--json", action="store_true")
    key.set_defaults(func=cmd_dev_api_key)
    from chalicelib.cli import stripe_local

    stripe_local.add_stripe_commands(dev)  # tally dev stripe complete-checkout | advance-period | …

    tenants = sub.add_parser("tenants", help="operator: tenants").add_subparsers(dest="command", required=True)
    create = tenants.add_parser("create", help="create a tenant (and its owner user)")
    create.add_argument("--name", required=True)
    create.add_argument("--stripe-customer")
    create.add_argument("--billing-mode", default="monthly", choices=["monthly", "credits"])
    create.add_argument("--plan", default="free")
    create.add_argument("--owner-email")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_tenants_create)
    operator.add_tenant_commands(tenants)  # list, show, mark-missing-payment, clear-missing-payment

    platform = sub.add_parser("platform", help="operator: platform tokens").add_subparsers(
        dest="command", required=True)
    ptoken = platform.add_parser("token", help="platform tokens").add_subparsers(dest="action", required=True)
    pcreate = ptoken.add_parser("create", help="create a token; prints it on the last line")
    pcreate.add_argument("--abilities", required=True, help="comma-separated: tenants:read,tenants:write,cross-tenant")
    pcreate.add_argument("--name")
    pcreate.set_defaults(func=cmd_platform_token_create)
    prevoke = ptoken.add_parser("revoke", help="revoke a token by id (or the full token)")
    prevoke.add_argument("token_id")
    prevoke.set_defaults(func=cmd_platform_token_revoke)
    operator.add_token_commands(ptoken)  # list
    jobs.add_job_commands(sub)  # tally jobs run NAME
    verify = sub.add_parser("verify", help="check a proof bundle, batch document or verification package "
                                           "offline (exit 0 = verified)")
    verify.add_argument("file", help="saved GET /api/v1/balance/delta/{id}/proof, /api/v1/verify/{root} or "
                                     "/api/v1/verification-packages/{token} answer; - reads stdin")
    verify.add_argument("--keys", help="saved GET /api/v1/verification-keys answer to pin the public key")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=cmd_verify)
    credits = sub.add_parser("credits", help="operator: prepaid credits").add_subparsers(dest="command",
                                                                                          required=True)
    top = credits.add_parser("topup", help="add credits to a tenant's account (a `topup` ledger entry)")
    top.add_argument("--tenant", required=True)
    top.add_argument("--amount", required=True, type=int)
    top.add_argument("--description")
    top.add_argument("--json", action="store_true")
    top.set_defaults(func=cmd_credits_topup)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from chalicelib.domain.errors import TallyError

    try:
        return args.func(args)
    except TallyError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
