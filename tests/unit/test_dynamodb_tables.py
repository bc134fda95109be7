"""PynamoDB through its public API only, and through one connection: ``tables.py`` reads and writes records
as ``Model.get/query/count/save/update/delete`` would, on the process's one botocore client; no module of
``chalicelib`` touches a private PynamoDB name (they change without notice between releases)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from datetime import UTC, datetime
from pathlib import Path

import pynamodb
import pytest
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, PutError

from chalicelib.adapters.dynamodb import keys, tables
from chalicelib.adapters.dynamodb.connection import shared_connection
from chalicelib.adapters.dynamodb.models import CounterRecord, TenantRecord

CHALICELIB = Path(__file__).resolve().parents[2] / "chalicelib"
NOW = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)


def _private_names() -> set[str]:
    """Every single-underscore name PynamoDB defines: module globals, class attributes, and the instance
    attributes its code assigns (``self._connection = …``)."""
    names: set[str] = set()
    for info in pkgutil.walk_packages(pynamodb.__path__, "pynamodb."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            names.add(name)
            if inspect.isclass(value):
                names.update(n for klass in value.__mro__ if klass.__module__.startswith("pynamodb")
                             for n in vars(klass))
    for path in Path(pynamodb.__path__[0]).rglob("*.py"):
        names.update(node.attr for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


PRIVATE = _private_names()


def private_uses(source: str) -> list[str]:
    """Where ``source`` reaches into PynamoDB's private API: an underscore module or name imported from
    pynamodb, or a private PynamoDB attribute read, written or named in getattr/setattr/hasattr. ``self._x``
    in a class that does not derive from a PynamoDB class (or from a model) is that class's own business."""
    tree = ast.parse(source)
    pynamodb_names: set[str] = set()  # what a class may derive from to be PynamoDB's
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pynamodb":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"line {node.lineno}: from {node.module} import …")
            found += [f"line {node.lineno}: import of {a.name}" for a in node.names if a.name.startswith("_")]
            pynamodb_names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "chalicelib.adapters.dynamodb.models":
            pynamodb_names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "pynamodb" and any(p.startswith("_") for p in a.name.split("."))]
    own: set[ast.AST] = set()  # self/cls attributes inside classes of our own
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            if any(ast.unparse(base).split(".")[-1] in pynamodb_names for base in node.bases):
                pynamodb_names.add(node.name)
                continue
            own.update(n for n in ast.walk(node) if isinstance(n, ast.Attribute)
                       and isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))
    for node in ast.walk(tree):
        accessor = (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) > 1
                    and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                    and isinstance(node.args[1], ast.Constant))
        name = (node.args[1].value if accessor else
                node.attr if isinstance(node, ast.Attribute) and node not in own else None)
        if name in PRIVATE:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_private_pynamodb_api():
    offenders = {str(path.relative_to(CHALICELIB.parent)): uses for path in sorted(CHALICELIB.rglob("*.py"))
                 if (uses := private_uses(path.read_text()))}
    assert offenders == {}


@pytest.mark.parametrize("source", [
    "table = TenantRecord._get_connection()",
    "from x import Model\nModel._connection = None",
    "from pynamodb.models import _ModelFuture",
    "from pynamodb._schema import ModelSchema",
    "import pynamodb.connection._botocore_private",
    "setattr(record, '_connection', None)",
    "connection.client._make_api_call('GetItem', {})",
    "from pynamodb.models import Model\nclass R(Model):\n    def f(self):\n        return self._get_connection()",
])
def test_the_scan_finds_private_use(source):
    assert private_uses(source)


def test_the_scan_leaves_a_class_its_own_private_attributes():
    assert private_uses("class Sender:\n    def send(self):\n        return self._client, self._connection") == []


def tenant(n: int, **fields) -> TenantRecord:
    return TenantRecord(keys.tenant_pk(str(n)), keys.TENANT_SK, tenant_id=str(n), company_name=f"T{n}",
                        status="active", billing_mode="monthly", plan="free", created_at=NOW, updated_at=NOW,
                        **fields)


def test_get_reads_a_record_or_none(aws):
    tables.put(tenant(1))
    assert tables.get(TenantRecord, keys.tenant_pk("1"), keys.TENANT_SK).company_name == "T1"
    assert tables.get(TenantRecord, keys.tenant_pk("2"), keys.TENANT_SK) is None


def test_put_conditions_and_moves_the_version_as_save_does(aws):
    first = tenant(1)
    tables.put(first, TenantRecord.pk.does_not_exist())
    assert first.version == 1
    stale = tables.get(TenantRecord, keys.tenant_pk("1"), keys.TENANT_SK)
    first.plan = "pro"
    tables.put(first)
    assert first.version == 2
    with pytest.raises(PutError) as raised:
        tables.put(stale)  # read at version 1
    assert raised.value.cause_response_code == "ConditionalCheckFailedException"


def test_update_leaves_the_record_as_written_and_delete_honours_its_condition(aws):
    counter = CounterRecord(keys.TENANT_COUNTER_PK, keys.COUNTER_SK)
    tables.update(counter, [CounterRecord.value.add(1)])
    tables.update(counter, [CounterRecord.value.add(1)])
    assert counter.value == 2
    with pytest.raises(DeleteError) as raised:
        tables.delete(counter, CounterRecord.value == 1)
    assert raised.value.cause_response_code == "ConditionalCheckFailedException"
    tables.delete(counter, CounterRecord.value == 2)
    assert tables.get(CounterRecord, keys.TENANT_COUNTER_PK, keys.COUNTER_SK) is None


def test_query_pages_an_index_by_range_key_in_either_direction(aws):
    for n in range(1, 6):
        tables.put(tenant(n, block_pk=keys.BLOCK_PK, block_sk=f"2026-0{n}"))
    before_april = TenantRecord.block_sk < "2026-04"
    page = tables.query(TenantRecord, keys.BLOCK_PK, before_april, index=TenantRecord.block_index, limit=2,
                        page_size=2)
    assert [r.tenant_id for r in page] == ["1", "2"]
    rest = tables.query(TenantRecord, keys.BLOCK_PK, before_april, index=TenantRecord.block_index,
                        last_evaluated_key=page.last_evaluated_key)
    assert [r.tenant_id for r in rest] == ["3"]
    newest = tables.query(TenantRecord, keys.BLOCK_PK, index=TenantRecord.block_index, scan_index_forward=False)
    assert [r.tenant_id for r in newest] == ["5", "4", "3", "2", "1"]
    assert tables.count(TenantRecord, keys.BLOCK_PK, before_april, index=TenantRecord.block_index) == 3


def test_every_call_goes_through_the_one_shared_connection(aws, world, monkeypatch):
    """Reads, immediate writes, single writes and transactions of many models: all on one connection (a
    model dispatching on its own would open a botocore session of its own: ~100 ms each on a cold start)."""
    shared = shared_connection()
    real = Connection.dispatch
    used: list[bool] = []

    def dispatch(self: Connection, operation: str, kwargs: dict) -> dict:
        used.append(self is shared)
        return real(self, operation, kwargs)

    monkeypatch.setattr(Connection, "dispatch", dispatch)
    acme = world.tenant("Acme Inc")  # the id counter, then a transaction
    key_id, _secret = world.api_key(acme)
    world.session_cookie(acme)
    uow = world.uow()
    from chalicelib.domain.identity import Environment

    env = Environment.PRODUCTION
    uow.api_keys.find(key_id)
    uow.api_keys.list(acme.id, env, 10, None)
    uow.users.list(acme.id)
    uow.users.get_with_tenant(acme.id, "usr_none")
    uow.tenants.directory(10, None)
    uow.tenants.by_stripe_customer("cus_none")
    uow.audit.list(acme.id, 10, None)
    uow.customers.directory(acme.id, env, by_name=True, descending=False, limit=10, cursor=None, prefix=None,
                            keep=None, budget=10)
    uow.credits.entries(acme.id, 10, None)
    uow.deltas.pending(older_than=NOW, limit=5)
    uow.webhooks.due(now=NOW, limit=5)
    uow.signing_keys.list()
    uow.platform_tokens.count_request("ptk_none", "202604151200", limit=5, expires_at=NOW)
    uow.idempotency.claim(acme.id, env, "scope", "key", request_hash="h", now=NOW, lock_seconds=5, keep_seconds=60)
    uow.idempotency.release(acme.id, env, "scope", "key")
    uow.tenants.save(uow.tenants.get(acme.id))  # one versioned write, no transaction
    uow.commit()
    assert len(used) > 20 and all(used)


def test_the_shared_connection_takes_the_timeouts_and_attempts_of_the_settings(monkeypatch):
    """A stuck call gives up after the settings' timeouts and attempts (well inside API Gateway's 29 s), and
    what still fails answers 503; PynamoDB's own defaults would wait 60 s a read."""
    from chalicelib.adapters.dynamodb import connection
    from chalicelib.settings import get_settings

    monkeypatch.setenv("TALLY_DYNAMODB_READ_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("TALLY_DYNAMODB_MAX_ATTEMPTS", "5")
    get_settings.cache_clear()
    connection.reset()
    try:
        config = shared_connection().client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (get_settings().dynamodb_connect_timeout_seconds, 7)
        assert config.retries == {"total_max_attempts": 5, "mode": "standard"}
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        connection.reset()
