"""One contract, two implementations: the in-memory fake and DynamoUnitOfWork under moto.

Service tests trust the fake; this suite is what earns that trust. Every test runs
against both, so a behaviour the fake gets wrong fails here first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from pynamodb.exceptions import PynamoDBException

from chalicelib.domain.access import ApiKey, KeyStatus, PlatformToken, Session
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.customers import Customer, CustomerSource
from chalicelib.domain.errors import ConflictError, ValidationError
from chalicelib.domain.identity import Environment, Role
from chalicelib.domain.signing_keys import SigningKey
from chalicelib.domain.tenants import TenantStatus, User, UserStatus
from chalicelib.services.ports import UnitOfWork
from tests.unit.builders import NOW, tenant

P, S = Environment.PRODUCTION, Environment.SANDBOX


@pytest.fixture
def uow(new_uow) -> UnitOfWork:
    """One unit of work of ``new_uow`` (tests/unit/conftest.py): the fake, or DynamoDB under moto."""
    return new_uow()


def key(key_id: str, tenant_id: str = "2", environment: Environment = P, **fields) -> ApiKey:
    fields.setdefault("name", f"name {key_id}")
    return ApiKey(tenant_id=tenant_id, environment=environment, key_id=key_id, secret_hash="h" * 64, last4="abcd",
                  created_at=NOW, created_by="user:u", **fields)


def entry(action: str, at_offset: int = 0, tenant_id: str = "2", entry_id: str | None = None) -> AuditEntry:
    extra = {"entry_id": entry_id} if entry_id else {}
    return AuditEntry(tenant_id=tenant_id, actor="user:u", action=action, target="t",
                      at=NOW + timedelta(seconds=at_offset), details={"n": at_offset, "nested": {"a": [1]}}, **extra)


def user(user_id: str, tenant_id: str = "2", role: Role = Role.VIEWER) -> User:
    return User(tenant_id=tenant_id, user_id=user_id, email=f"{user_id}@x.test", role=role, created_at=NOW)


def customer(customer_id: str, environment: Environment = P) -> Customer:
    return Customer(tenant_id="2", environment=environment, customer_id=customer_id, display_name=customer_id,
                    source=CustomerSource.MANUAL, created_at=NOW, updated_at=NOW)


def token(token_id: str) -> PlatformToken:
    return PlatformToken(token_id=token_id, name="ops", abilities=frozenset({"tenants:read", "cross-tenant"}),
                         secret_hash="h" * 64, created_at=NOW)


def commit(uow: UnitOfWork, *writes: Callable[[], None]) -> None:
    for write in writes:
        write()
    uow.commit()


# --- transactions --------------------------------------------------------------------------


def test_reads_do_not_see_staged_writes_until_commit(uow):
    uow.tenants.add(tenant("2"))
    uow.api_keys.add(key("Key00000001"))
    assert uow.tenants.get("2") is None and uow.api_keys.get("2", P, "Key00000001") is None
    uow.commit()
    assert uow.tenants.get("2").company_name == "Acme Inc"
    assert uow.api_keys.get("2", P, "Key00000001") == key("Key00000001")


def test_adding_an_existing_item_alone_conflicts(uow):
    commit(uow, lambda: uow.api_keys.add(key("Key00000001")))
    with pytest.raises(ConflictError):
        commit(uow, lambda: uow.api_keys.add(key("Key00000001", name="second")))
    assert uow.api_keys.get("2", P, "Key00000001").name == "name Key00000001"


def test_a_conflict_applies_nothing_from_that_commit(uow):
    commit(uow, lambda: uow.tenants.add(tenant("2")), lambda: uow.api_keys.add(key("Key00000001")))
    uow.users.save(user("usr_new"))
    uow.audit.add(entry("before.conflict"))
    uow.api_keys.add(key("Key00000002"))
    uow.api_keys.add(key("Key00000001"))  # already there
    with pytest.raises(ConflictError):
        uow.commit()
    assert uow.users.get("2", "usr_new") is None
    assert uow.api_keys.get("2", P, "Key00000002") is None
    assert uow.audit.list("2", 10, None).items == []


def test_a_failed_commit_drops_its_writes(uow):
    commit(uow, lambda: uow.api_keys.add(key("Key00000001")))
    uow.users.save(user("usr_new"))
    uow.api_keys.add(key("Key00000001"))
    with pytest.raises(ConflictError):
        uow.commit()
    uow.commit()  # nothing left to retry
    assert uow.users.get("2", "usr_new") is None


def test_rollback_drops_staged_writes(uow):
    uow.tenants.add(tenant("2"))
    uow.users.save(user("usr_a"))
    uow.rollback()
    uow.commit()
    assert uow.tenants.get("2") is None and uow.users.get("2", "usr_a") is None


def test_leaving_the_context_drops_uncommitted_writes(uow):
    with uow:
        uow.users.save(user("usr_a"))
    uow.commit()
    assert uow.users.get("2", "usr_a") is None


def test_many_writes_land_together(uow):
    writes = [key(f"Key{n:08d}", environment=P if n % 2 else S) for n in range(100)]
    for k in writes:
        uow.api_keys.add(k)
    uow.commit()
    assert len(uow.api_keys.list_all("2")) == 100


def test_more_than_100_writes_are_refused_whole(uow):
    for n in range(101):
        uow.api_keys.add(key(f"Key{n:08d}"))
    with pytest.raises(ValueError):
        uow.commit()
    assert uow.api_keys.list_all("2") == []


def test_two_writes_to_one_item_in_a_commit_are_refused_whole(uow):
    uow.users.save(user("usr_b"))
    uow.users.save(user("usr_a"))
    uow.users.save(user("usr_a", role=Role.ADMIN))
    with pytest.raises((ValueError, PynamoDBException)):
        uow.commit()
    assert uow.users.list("2") == []


# --- conditions per repository -------------------------------------------------------------


def test_saving_an_api_key_or_platform_token_requires_it_to_exist(uow):
    for write in (lambda: uow.api_keys.save(key("Key00000009")),
                  lambda: uow.platform_tokens.save(token("ptk_none0001"))):
        uow.users.save(user("usr_a"))
        write()
        with pytest.raises(ConflictError):
            uow.commit()
    assert uow.users.get("2", "usr_a") is None and uow.platform_tokens.get("ptk_none0001") is None


def test_saving_an_existing_api_key_replaces_it(uow):
    commit(uow, lambda: uow.api_keys.add(key("Key00000001")))
    revoked = key("Key00000001", status=KeyStatus.REVOKED, revoked_at=NOW)
    commit(uow, lambda: uow.api_keys.save(revoked))
    assert uow.api_keys.get("2", P, "Key00000001") == revoked


def test_tenant_saves_are_optimistic(new_uow):
    commit(setup := new_uow(), lambda: setup.tenants.add(tenant("2")))
    first, second = new_uow(), new_uow()
    mine, theirs = first.tenants.get("2"), second.tenants.get("2")
    assert mine.version == 1
    commit(first, lambda: first.tenants.save(replace(mine, plan="pro")))
    with pytest.raises(ConflictError):
        commit(second, lambda: second.tenants.save(replace(theirs, plan="team")))
    latest = new_uow().tenants.get("2")
    assert (latest.plan, latest.version) == ("pro", 2)
    commit(second, lambda: second.tenants.save(replace(latest, plan="team")))
    assert new_uow().tenants.get("2").plan == "team"


def test_a_tenants_billing_state_and_plan_history_round_trip(uow):
    from datetime import timedelta

    from chalicelib.domain.tenants import BillingMode

    commit(uow, lambda: uow.tenants.add(tenant("2")))
    stored = uow.tenants.get("2")
    changed = replace(stored.with_plan("growth", BillingMode.MONTHLY, NOW).with_plan(
        "free", BillingMode.MONTHLY, NOW + timedelta(days=3)), stripe_customer_id="cus_1",
        stripe_subscription_id="sub_1", stripe_subscription_status="active",
        stripe_current_period_end=NOW + timedelta(days=30), dashboard_blocked_at=NOW)
    commit(uow, lambda: uow.tenants.save(changed))
    assert uow.tenants.get("2") == replace(changed, version=2)


def test_adding_a_tenant_twice_conflicts(uow):
    commit(uow, lambda: uow.tenants.add(tenant("2")))
    with pytest.raises(ConflictError):
        commit(uow, lambda: uow.tenants.add(tenant("2", "Other")))
    assert uow.tenants.get("2").company_name == "Acme Inc"


def test_users_are_upserted(uow):
    commit(uow, lambda: uow.users.save(user("usr_b")))
    commit(uow, lambda: uow.users.save(user("usr_a")))
    commit(uow, lambda: uow.users.save(replace(user("usr_b", role=Role.ADMIN), status=UserStatus.DEACTIVATED)))
    assert [(u.user_id, u.role, u.status) for u in uow.users.list("2")] == [
        ("usr_a", Role.VIEWER, UserStatus.ACTIVE), ("usr_b", Role.ADMIN, UserStatus.DEACTIVATED)]
    assert uow.users.list("3") == []


def test_sessions_are_added_once_and_deleted_unconditionally(uow):
    session = Session(tenant_id="2", session_id="ses_abcdefgh", user_id="usr_a", role="admin",
                      secret_hash="h" * 64, created_at=NOW, expires_at=NOW + timedelta(hours=1), meta={"ip": "x"})
    commit(uow, lambda: uow.sessions.add(session))
    assert uow.sessions.get("2", "ses_abcdefgh") == session
    with pytest.raises(ConflictError):
        commit(uow, lambda: uow.sessions.add(session))
    commit(uow, lambda: uow.sessions.delete("2", "ses_abcdefgh"))
    assert uow.sessions.get("2", "ses_abcdefgh") is None
    commit(uow, lambda: uow.sessions.delete("2", "ses_abcdefgh"), lambda: uow.users.save(user("usr_a")))
    assert uow.users.get("2", "usr_a") is not None


def test_audit_entries_are_write_once(uow):
    first = entry("a", entry_id="aud_same")
    commit(uow, lambda: uow.audit.add(first))
    with pytest.raises(ConflictError):
        commit(uow, lambda: uow.audit.add(replace(first, action="b")))
    assert [e.action for e in uow.audit.list("2", 10, None).items] == ["a"]


# --- immediate writes ----------------------------------------------------------------------


def test_touch_writes_at_once_and_only_last_used_at(uow):
    commit(uow, lambda: uow.api_keys.add(key("Key00000001")), lambda: uow.platform_tokens.add(token("ptk_abcdefgh")))
    stale = key("Key00000001", name="stale copy")
    later = NOW + timedelta(minutes=3)
    uow.users.save(user("usr_a"))
    uow.api_keys.touch(stale, later)
    uow.platform_tokens.touch(replace(token("ptk_abcdefgh"), name="stale copy"), later)
    uow.rollback()
    assert uow.api_keys.get("2", P, "Key00000001") == key("Key00000001", last_used_at=later)
    assert uow.platform_tokens.get("ptk_abcdefgh") == replace(token("ptk_abcdefgh"), last_used_at=later)


def test_request_windows_count_at_once_up_to_the_limit_per_token_and_window(uow):
    counted = [uow.platform_tokens.count_request("ptk_a", "202604151200", limit=3, expires_at=NOW) for _ in range(5)]
    uow.rollback()  # immediate writes: nothing to roll back
    assert counted == [1, 2, 3, None, None]
    assert uow.platform_tokens.count_request("ptk_a", "202604151201", limit=3, expires_at=NOW) == 1
    assert uow.platform_tokens.count_request("ptk_b", "202604151200", limit=3, expires_at=NOW) == 1
    assert uow.platform_tokens.count_request("ptk_a", "202604151200", limit=4, expires_at=NOW) == 4


def test_platform_tokens_list_every_token_by_id_and_nothing_else(uow):
    revoked = replace(token("ptk_aaaaaaaa"), revoked_at=NOW)
    commit(uow, lambda: uow.platform_tokens.add(token("ptk_bbbbbbbb")), lambda: uow.platform_tokens.add(revoked),
           lambda: uow.users.save(user("usr_a", tenant_id="1")))
    uow.platform_tokens.count_request("ptk_aaaaaaaa", "202604151200", limit=60, expires_at=NOW)
    assert uow.platform_tokens.list() == [revoked, token("ptk_bbbbbbbb")]


def test_tenant_ids_come_from_a_counter_that_never_repeats(uow):
    first, second, third = uow.tenants.next_id(), uow.tenants.next_id(), uow.tenants.next_id()
    uow.rollback()
    assert [int(first) + 1, int(first) + 2] == [int(second), int(third)]
    assert int(uow.tenants.next_id()) == int(first) + 3


# --- reads ---------------------------------------------------------------------------------


def test_stored_objects_read_back_equal(uow):
    stored = [key("Key00000001", environment=S, rotated_at=NOW, last_used_at=NOW), token("ptk_abcdefgh"),
              entry("a"), customer("cus-1"), user("usr_a", role=Role.OWNER)]
    commit(uow, lambda: uow.api_keys.add(stored[0]), lambda: uow.platform_tokens.add(stored[1]),
           lambda: uow.audit.add(stored[2]), lambda: uow.customers.add(stored[3]), lambda: uow.users.save(stored[4]))
    assert uow.api_keys.get("2", S, "Key00000001") == stored[0]
    assert uow.platform_tokens.get("ptk_abcdefgh") == stored[1]
    assert uow.audit.list("2", 1, None).items == [stored[2]]
    assert uow.customers.get("2", P, "cus-1") == stored[3]
    assert uow.customers.get_many("2", P, ["cus-0", "cus-1"]) == {"cus-1": stored[3]}
    assert uow.customers.get_many("2", S, ["cus-1"]) == {}
    assert uow.users.get("2", "usr_a") == stored[4]
    original = tenant("2", stripe_customer_id="cus_1", has_unpaid_invoices_at=NOW, lang="fr")
    commit(uow, lambda: uow.tenants.add(original))
    assert uow.tenants.get("2") == replace(original, version=1)


def test_changing_what_was_read_does_not_change_the_store(uow):
    commit(uow, lambda: uow.tenants.add(tenant("2")))
    read = uow.tenants.get("2")
    read.environments["sandbox"] = "disabled"
    read.company_name = "Mutated"
    assert uow.tenants.get("2").environments["sandbox"] == "provisioned"
    assert uow.tenants.get("2").company_name == "Acme Inc"


def test_find_locates_a_key_across_tenants_and_environments(uow):
    commit(uow, lambda: uow.api_keys.add(key("Key00000001", "2", S)), lambda: uow.api_keys.add(key("Key00000002", "3")))
    assert uow.api_keys.find("Key00000001").tenant_id == "2"
    assert uow.api_keys.find("Key00000002").tenant_id == "3"
    assert uow.api_keys.find("Key00000003") is None


def test_api_keys_list_by_key_id_descending_in_pages(uow):
    ids = ["B0000001", "a0000001", "A0000001", "30000001", "b0000001"]
    commit(uow, *[lambda k=k: uow.api_keys.add(key(k)) for k in ids],
           lambda: uow.api_keys.add(key("Z0000001", environment=S)),
           lambda: uow.api_keys.add(key("Z0000002", tenant_id="3")))
    first = uow.api_keys.list("2", P, 2, None)
    second = uow.api_keys.list("2", P, 2, first.next_cursor)
    third = uow.api_keys.list("2", P, 2, second.next_cursor)
    assert [[k.key_id for k in page.items] for page in (first, second, third)] == [
        ["b0000001", "a0000001"], ["B0000001", "A0000001"], ["30000001"]]
    assert [(p.total, p.extra["page"]) for p in (first, second, third)] == [(5, 1), (5, 2), (5, 3)]
    assert third.next_cursor is None
    assert [k.key_id for k in uow.api_keys.list("2", P, 10, None).items] == sorted(ids, reverse=True)
    with pytest.raises(ValidationError):
        uow.api_keys.list("2", S, 2, first.next_cursor)
    with pytest.raises(ValidationError):
        uow.api_keys.list("3", P, 2, first.next_cursor)


def test_list_all_covers_both_environments(uow):
    commit(uow, lambda: uow.api_keys.add(key("Key00000001", environment=S)),
           lambda: uow.api_keys.add(key("Key00000002")), lambda: uow.api_keys.add(key("Key00000003", tenant_id="3")))
    assert sorted(k.key_id for k in uow.api_keys.list_all("2")) == ["Key00000001", "Key00000002"]


def test_audit_lists_newest_first_in_pages(uow):
    commit(uow, *[lambda n=n: uow.audit.add(entry(f"e{n}", at_offset=n)) for n in (2, 0, 4, 1, 3)],
           lambda: uow.audit.add(entry("other", tenant_id="3")))
    first = uow.audit.list("2", 3, None)
    second = uow.audit.list("2", 3, first.next_cursor)
    assert [e.action for e in first.items] == ["e4", "e3", "e2"]
    assert [e.action for e in second.items] == ["e1", "e0"]
    assert (first.extra, second.extra, second.next_cursor, first.total) == ({"page": 1}, {"page": 2}, None, None)
    with pytest.raises(ValidationError):
        uow.audit.list("3", 3, first.next_cursor)


def test_customers_list_by_id_with_an_optional_prefix(uow):
    ids = ["cus-b", "cus-a", "acct-1", "cus-c", "cus-aa"]
    commit(uow, *[lambda c=c: uow.customers.add(customer(c)) for c in ids],
           lambda: uow.customers.add(customer("cus-s", S)))
    assert [c.customer_id for c in uow.customers.list("2", P, 10, None).items] == sorted(ids)
    first = uow.customers.list("2", P, 2, None, prefix="cus-")
    second = uow.customers.list("2", P, 2, first.next_cursor, prefix="cus-")
    assert [c.customer_id for c in first.items + list(second.items)] == ["cus-a", "cus-aa", "cus-b", "cus-c"]
    assert (second.extra, second.next_cursor) == ({"page": 2}, None)
    with pytest.raises(ValidationError):  # a cursor belongs to its search
        uow.customers.list("2", P, 2, first.next_cursor, prefix="acct")
    with pytest.raises(ConflictError):
        commit(uow, lambda: uow.customers.add(customer("cus-a")))


def test_directory_lists_listed_tenants_by_numeric_id_in_pages(uow):
    listed = ["10", "2", "9", "100", "11"]
    commit(uow, *[lambda t=t: uow.tenants.add(tenant(t)) for t in listed], lambda: uow.tenants.add(tenant("1")),
           lambda: uow.tenants.add(tenant("3", status=TenantStatus.PENDING)),
           lambda: uow.tenants.add(tenant("4").deleted(NOW)))
    first = uow.tenants.directory(2, None)
    second = uow.tenants.directory(2, first.next_cursor)
    third = uow.tenants.directory(2, second.next_cursor)
    assert [[t.id for t in p.items] for p in (first, second, third)] == [["2", "9"], ["10", "11"], ["100"]]
    assert [p.extra["page"] for p in (first, second, third)] == [1, 2, 3]
    assert third.next_cursor is None
    commit(uow, lambda: uow.tenants.save(uow.tenants.get("9").deleted(NOW)))
    assert [t.id for t in uow.tenants.directory(10, None).items] == ["2", "10", "11", "100"]
    with pytest.raises(ValidationError):
        uow.tenants.directory(2, uow.api_keys.list("2", P, 1, None).next_cursor or "garbage")


def test_a_page_that_exactly_fills_the_limit_has_no_cursor(uow):
    commit(uow, *[lambda n=n: uow.api_keys.add(key(f"Key{n:08d}")) for n in range(4)],
           *[lambda n=n: uow.audit.add(entry(f"e{n}", at_offset=n)) for n in range(4)],
           *[lambda n=n: uow.customers.add(customer(f"c{n}")) for n in range(4)],
           *[lambda n=n: uow.tenants.add(tenant(str(n))) for n in range(2, 6)])
    first = uow.api_keys.list("2", P, 2, None)
    assert uow.api_keys.list("2", P, 2, first.next_cursor).next_cursor is None
    assert uow.api_keys.list("2", P, 4, None).next_cursor is None
    assert uow.audit.list("2", 4, None).next_cursor is None
    assert uow.customers.list("2", P, 4, None).next_cursor is None
    assert uow.tenants.directory(4, None).next_cursor is None


def test_customer_totals_add_up_at_commit_and_not_on_rollback(uow):
    from decimal import Decimal

    from chalicelib.domain.customers import CustomerStats

    assert uow.customers.stats("2", P) == CustomerStats()
    commit(uow, lambda: uow.customers.count("2", P, customers=1, integration=1, deltas=3, balance=Decimal("2.5")))
    commit(uow, lambda: uow.customers.count("2", P, deltas=2, verified=4, failed=1, balance=Decimal("-1")))
    uow.customers.count("2", P, deltas=100)
    uow.rollback()
    assert uow.customers.stats("2", P) == CustomerStats(customers=1, integration=1, deltas=5, verified=4, failed=1,
                                                        balance=Decimal("1.5"))
    assert uow.customers.stats("2", S) == CustomerStats()
    assert [c.customer_id for c in uow.customers.list("2", P, 10, None).items] == []  # not a customer row


# --- the signing-key registry ------------------------------------------------------------------


def signing_key(seed: int, at_offset: int = 0) -> SigningKey:
    from chalicelib.adapters.signing import Signer

    signer = Signer(bytes([seed]) * 32)
    return SigningKey(key_id=signer.key_id, public_key=signer.public_key.raw,
                      first_seen_at=NOW + timedelta(seconds=at_offset))


def test_signing_keys_are_write_once_and_read_back_equal(uow):
    first = signing_key(1)
    assert uow.signing_keys.get(first.key_id) is None
    commit(uow, lambda: uow.signing_keys.add(first))
    assert uow.signing_keys.get(first.key_id) == first
    with pytest.raises(ConflictError):  # the same id again, even for another key or time: nothing changes
        commit(uow, lambda: uow.signing_keys.add(replace(signing_key(2), key_id=first.key_id)))
    with pytest.raises(ConflictError):
        commit(uow, lambda: uow.signing_keys.add(replace(first, first_seen_at=NOW + timedelta(days=1))))
    assert uow.signing_keys.get(first.key_id) == first


def test_signing_keys_list_every_registered_key_by_key_id(uow):
    registered = [signing_key(seed, at_offset=seed) for seed in (3, 1, 2)]
    commit(uow, *[lambda k=k: uow.signing_keys.add(k) for k in registered])
    assert uow.signing_keys.list() == sorted(registered, key=lambda k: k.key_id)
    assert uow.api_keys.list_all("2") == [] and uow.tenants.directory(10, None).items == []  # kept apart
