"""Operator commands of the `tally` CLI: the tenant directory, one tenant, the missing-payments flag,
platform tokens (seed 002).

The commands run in-process against the test's moto world (as they run against AWS when
TALLY_RESOURCE_PREFIX is set) with the frozen clock; what they change is then read back over HTTP,
so the CLI and the platform API are checked to be one behaviour.
"""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.tenants import TenantStatus
from tests.helpers import platform_operator

ALL = ("tenants:read", "tenants:write", "cross-tenant")
MARKED_AT = "2026-04-15T12:00:00.000000Z"
LIMIT_DATE = "2026-04-29T12:00:00.000000Z"
SHOW_FIELDS = {"id", "name", "subdomain", "final_domain", "https", "lang", "has_unpaid_invoices_at",
               "missing_payment_limit_date", "dashboard_blocked", "plan", "billingMode", "status",
               "stripeCustomerId", "stripeSubscriptionId", "stripeSubscriptionStatus"}
TOKEN_FIELDS = {"id", "name", "abilities", "created_at", "last_used_at", "revoked_at"}


class Cli:
    """``tally ARGS`` in this process: (exit code, stdout, stderr)."""

    def __init__(self, capsys) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from chalicelib.cli.main import main

        self.capsys.readouterr()
        code = main(list(args))
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *args: str):
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def tally(world, platform, monkeypatch, capsys) -> Cli:
    """No local stack state: the CLI uses the configured AWS resources (here the moto world), where the
    platform operator's tenant ("1") exists."""
    from chalicelib.cli import devstack

    monkeypatch.setattr(devstack, "read_state", lambda: None)
    return Cli(capsys)


@pytest.fixture
def platform(world):
    return platform_operator(world)


@pytest.fixture
def bearer(world, platform):
    return {"Authorization": f"Bearer {world.platform_token(*ALL)}"}


def audit_of(world, tenant_id: str) -> list[tuple[str, str, str]]:
    return [(e.action, e.actor, e.target) for e in world.uow().audit.list(tenant_id, 100, None).items]


# --- tenants list ---------------------------------------------------------------------------------


def test_tenants_list_prints_the_directory_as_get_tenants_does(tally, api, world, bearer):
    world.tenant("Ciudad Nueva", subdomain="ciudadnueva-qetffdw-93.app.publica.la",
                 final_domain="ciudadnueva.publicala.me", lang="es")
    world.tenant("Plain Co", stripe_customer_id="cus_plain")
    world.tenant("Pending Co", status=TenantStatus.PENDING)

    listed = tally.json("tenants", "list")
    over_http = api.get("/tenants", headers=bearer).json
    assert listed["data"] == over_http["data"]
    assert [t["name"] for t in listed["data"]] == ["Ciudad Nueva", "Plain Co"]
    assert listed["meta"] == {"per_page": 15, "next_cursor": None, "has_more": False}


def test_tenants_list_pages_with_cursors_the_api_accepts(tally, api, world, bearer):
    ids = [world.tenant(f"Tenant {n}").id for n in range(5)]
    seen, cursor = [], None
    while True:
        page = tally.json("tenants", "list", "--per-page", "2", *(("--cursor", cursor) if cursor else ()))
        seen += [t["id"] for t in page["data"]]
        if not page["meta"]["has_more"]:
            break
        cursor = page["meta"]["next_cursor"]
        assert api.get(f"/tenants?per_page=2&cursor={cursor}", headers=bearer).json["data"][0]["id"] == ids[len(seen)]
    assert seen == ids


def test_tenants_list_without_json_prints_a_table_and_the_next_cursor(tally, world):
    world.tenant("Ciudad Nueva", final_domain="ciudadnueva.publicala.me", lang="es")
    world.tenant("Plain Co")
    code, out, _err = tally("tenants", "list", "--per-page", "1")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["id", "name", "subdomain", "final_domain", "https", "lang"]
    assert lines[1].startswith("2 ") and "Ciudad Nueva" in lines[1] and "ciudadnueva.publicala.me" in lines[1]
    assert lines[2].startswith("next page: --cursor ") and len(lines) == 3


@pytest.mark.parametrize("per_page", ["0", "501", "abc"])
def test_tenants_list_refuses_a_page_size_outside_1_to_500(tally, per_page):
    with pytest.raises(SystemExit) as exit_:
        tally("tenants", "list", "--per-page", per_page)
    assert exit_.value.code == 2
    assert "between 1 and 500" in tally.capsys.readouterr().err


def test_tenants_list_refuses_a_bad_cursor(tally, world):
    code, out, err = tally("tenants", "list", "--cursor", "garbage")
    assert code == 2 and out == "" and "cursor" in err


# --- tenants show ---------------------------------------------------------------------------------


def test_tenants_show_prints_seed_002_fields_and_billing_state(tally, world):
    tenant = world.tenant("Ciudad Nueva", subdomain="ciudadnueva-qetffdw-93.app.publica.la",
                          final_domain="ciudadnueva.publicala.me", lang="es", stripe_customer_id="cus_ciudad")
    shown = tally.json("tenants", "show", tenant.id)
    assert set(shown) == SHOW_FIELDS
    assert shown == {
        "id": tenant.id, "name": "Ciudad Nueva", "subdomain": "ciudadnueva-qetffdw-93.app.publica.la",
        "final_domain": "ciudadnueva.publicala.me", "https": True, "lang": "es",
        "has_unpaid_invoices_at": None, "missing_payment_limit_date": None, "dashboard_blocked": False,
        "plan": tenant.plan, "billingMode": "monthly", "status": "active", "stripeCustomerId": "cus_ciudad",
        "stripeSubscriptionId": None, "stripeSubscriptionStatus": None,
    }


def test_tenants_show_reports_the_flag_and_the_block_in_seed_002_format(tally, world):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    tally("tenants", "mark-missing-payment", tenant.id)
    shown = tally.json("tenants", "show", tenant.id)
    assert (shown["has_unpaid_invoices_at"], shown["missing_payment_limit_date"], shown["dashboard_blocked"]) == (
        MARKED_AT, LIMIT_DATE, False)
    world.clock.advance(days=14, seconds=1)
    assert tally.json("tenants", "show", tenant.id)["dashboard_blocked"] is True


def test_tenants_show_without_json_prints_one_field_a_line(tally, world):
    tenant = world.tenant("Acme Inc")
    code, out, _err = tally("tenants", "show", tenant.id)
    assert code == 0
    assert f"id: {tenant.id}" in out.splitlines() and "name: Acme Inc" in out.splitlines()
    assert "dashboard_blocked: False" in out.splitlines()


@pytest.mark.parametrize("tenant_id", ["999", "abc"])
def test_tenants_show_of_an_unknown_tenant_fails(tally, world, tenant_id):
    code, out, err = tally("tenants", "show", tenant_id)
    assert code == 2 and out == "" and "NOT_FOUND" in err


# --- missing payments -----------------------------------------------------------------------------


def test_mark_missing_payment_flags_the_tenant_as_the_api_does_audited_as_the_operator(tally, api, world, bearer):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    marked = tally.json("tenants", "mark-missing-payment", tenant.id)
    assert marked == {"tenant_id": tenant.id, "has_unpaid_invoices_at": MARKED_AT, "dashboard_blocked": False,
                      "missing_payment_limit_date": LIMIT_DATE}
    assert ("tenant.missing_payments.marked", "operator:cli", f"tenant:{tenant.id}") in audit_of(world, tenant.id)

    world.clock.advance(days=3)
    again = api.post(f"/tenants/{tenant.id}/missing-payments", headers=bearer)  # the API sees the same flag
    assert again.json["data"] == marked


def test_a_tenant_marked_from_the_cli_is_blocked_after_14_days(tally, api, world):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    tally("tenants", "mark-missing-payment", tenant.id)
    world.clock.advance(days=15)
    reply = api.get("/dashboard/tenant", headers=world.auth(tenant))
    assert reply.status == 402 and reply.error["code"] == "DASHBOARD_BLOCKED"


def test_mark_missing_payment_without_a_stripe_customer_fails_and_changes_nothing(tally, world):
    tenant = world.tenant("No Stripe Co")
    code, out, err = tally("tenants", "mark-missing-payment", tenant.id)
    assert code == 2 and out == "" and "tenant_has_no_stripe_customer" in err
    assert world.uow().tenants.get(tenant.id).has_unpaid_invoices_at is None


@pytest.mark.parametrize("command", ["mark-missing-payment", "clear-missing-payment"])
def test_the_platform_tenant_cannot_be_flagged_or_cleared(tally, world, platform, command):
    code, _out, err = tally("tenants", command, "1")
    assert code == 2 and "platform_tenant_forbidden" in err
    assert world.uow().tenants.get("1").has_unpaid_invoices_at is None


@pytest.mark.parametrize("command", ["mark-missing-payment", "clear-missing-payment"])
def test_missing_payments_of_an_unknown_tenant_fail(tally, world, command):
    code, _out, err = tally("tenants", command, "999")
    assert code == 2 and "tenant_not_found" in err


def test_clear_missing_payment_lifts_the_flag_and_the_block(tally, api, world):
    tenant = world.tenant("Acme Inc", stripe_customer_id="cus_acme")
    tally("tenants", "mark-missing-payment", tenant.id)
    world.clock.advance(days=15)
    cleared = tally.json("tenants", "clear-missing-payment", tenant.id)
    assert cleared == {"tenant_id": tenant.id, "has_unpaid_invoices_at": None, "dashboard_blocked": False}
    assert ("tenant.missing_payments.cleared", "operator:cli", f"tenant:{tenant.id}") in audit_of(world, tenant.id)
    assert api.get("/dashboard/tenant", headers=world.auth(tenant)).status == 200


def test_clearing_a_clear_tenant_is_a_no_op(tally, world):
    tenant = world.tenant("No Stripe Co")
    cleared = tally.json("tenants", "clear-missing-payment", tenant.id)
    assert cleared == {"tenant_id": tenant.id, "has_unpaid_invoices_at": None, "dashboard_blocked": False}
    assert [action for action, *_ in audit_of(world, tenant.id)] == ["tenant.created"]


# --- platform token list --------------------------------------------------------------------------


def created_token(tally, *abilities: str, name: str) -> tuple[str, str]:
    code, out, err = tally("platform", "token", "create", "--abilities", ",".join(abilities), "--name", name)
    assert code == 0, err
    plaintext = out.splitlines()[-1]
    return plaintext.split("|")[0], plaintext


def test_token_list_shows_every_token_without_its_secret(tally, api, world, platform):
    reader_id, reader = created_token(tally, "tenants:read", "cross-tenant", name="directory sync")
    writer_id, writer = created_token(tally, *ALL, name="billing bot")
    world.clock.advance(minutes=5)
    assert api.get("/tenants", headers={"Authorization": f"Bearer {reader}"}).status == 200
    world.clock.advance(minutes=5)
    assert tally("platform", "token", "revoke", writer_id)[0] == 0

    out = tally("platform", "token", "list", "--json")[1]
    tokens = {t["id"]: t for t in json.loads(out)}
    assert set(tokens) == {reader_id, writer_id} and all(set(t) == TOKEN_FIELDS for t in tokens.values())
    assert tokens[reader_id] == {"id": reader_id, "name": "directory sync",
                                 "abilities": ["cross-tenant", "tenants:read"],
                                 "created_at": "2026-04-15T12:00:00.000000Z",
                                 "last_used_at": "2026-04-15T12:05:00.000000Z", "revoked_at": None}
    assert tokens[writer_id]["revoked_at"] == "2026-04-15T12:10:00.000000Z"
    assert tokens[writer_id]["last_used_at"] is None
    stored = world.uow().platform_tokens.get(reader_id)
    for secret in (reader.split("|")[1], writer.split("|")[1], stored.secret_hash):
        assert secret not in out


def test_token_list_without_json_prints_a_table(tally, world):
    token_id, plaintext = created_token(tally, "tenants:read", name="ops")
    code, out, _err = tally("platform", "token", "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].split() == ["id", "name", "abilities", "created_at", "last_used_at", "revoked_at"]
    assert lines[1].split() == [token_id, "ops", "tenants:read", "2026-04-15T12:00:00.000000Z", "-", "-"]
    assert plaintext.split("|")[1] not in out


def test_token_list_of_no_tokens_prints_only_the_header(tally, world):
    assert tally.json("platform", "token", "list") == []
