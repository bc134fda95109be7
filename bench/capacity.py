"""Write-capacity benchmark (`make bench`): DynamoDB write units per accepted delta, and the ceilings they imply.

Runs the real services in-process against moto and records every DynamoDB write with
``bench/dynamo_writes.py`` (table, key, index partitions, item sizes before and after). Each
written key is put in a class by the declarative tables below (item, partition, index partition;
scope ``delta``, ``customer``, ``tenant-env``, ``tenant`` or ``platform``); a key no rule matches
stops the run with the table and key named, so a new key shape cannot slip past the figures.

Measured: the writes, the reads by key and the item sizes. Computed: write and read units
(DynamoDB's documented rules, approximated as ``bench/dynamo_writes.py`` says) and the ceilings
they imply, from DynamoDB's on-demand limits: 1,000 WCU/s per partition (and per item), 40,000
WCU/s per table (and per index), 3,000 RCU/s per partition (and per item) for what is read by key
(every single submit reads its tenant row, for instance; whoever sums a sharded counter reads
every shard). A class's ceiling is the limit divided by the units its hottest key takes per
accepted delta, in the scenario's shape (how many customers, single submits or batches). Keys of
scope ``delta`` are new for each delta or transaction (a delta item, a ledger entry, an outbox
item): their load does not grow with the rate, so they set no ceiling. A partition holding many
items may be split by DynamoDB for heat (then only the item limit holds); one item never is. Only
AWS can confirm real throughput.

Scenarios, in both billing modes (monthly on the scale plan; credits, topped up): single
submits spread over customers, a batch for one customer, a batch across as many customers as
deltas, then the verifier over everything accepted (units per verified delta).
"""

from __future__ import annotations

import functools
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.conftest  # noqa: E402,F401,I001  - test environment, set before moto and the models import
from moto import mock_aws  # noqa: E402

from bench.dynamo_writes import Read, Write, WriteRecorder  # noqa: E402
from chalicelib.domain.batches import CHAINS  # noqa: E402

PARTITION_LIMIT = 1_000  # WCU/s per partition (and per item), on-demand
READ_LIMIT = 3_000  # RCU/s per partition (and per item), on-demand
ITEM_LIMIT = 1_000
TABLE_LIMIT = 40_000  # WCU/s per table (and per global secondary index), on-demand default quota

SCOPES = ("delta", "customer", "tenant-env", "tenant", "platform")
TENANT_SCOPES = ("tenant-env", "tenant")  # what one tenant's traffic alone heats, whatever its customers

# Key shapes, from chalicelib/adapters/dynamodb/keys.py. Ids never hold '#' (tenant ids are numbers,
# customer ids match [A-Za-z0-9_\-.:]). A shard or lane suffix makes each shard a partition of its own.
T = r"T#[^#]+"  # tenant_pk
E = rf"{T}#E#[^#]+"  # env_pk
C = rf"{E}#C#[^#]+"  # customer_key (and a customer's own partition)
SHARD = r"(?:#(?:S|STATS|USAGE|SHARD)#\d+)?"  # a sharded counter's suffix (…#STATS#3, …#USAGE#7), if any
LANE = r"(?:#LANE#\d+)?"  # credit lanes: T#{tenant}#CREDITS#LANE#{n}
ANY = r".+"

#: Items: (logical table, partition key, sort key) → (class, scope). Regexes match whole keys; first match wins.
ITEM_CLASSES: list[tuple[str, str, str, str, str]] = [
    # table      partition key                  sort key             class                          scope
    ("tenants", T, "TENANT", "tenant profile", "tenant"),
    ("tenants", T, r"USER#.+", "user", "tenant"),
    ("tenants", T, r"SESSION#.+", "session", "tenant"),
    ("tenants", T, r"PTOKEN#.+", "platform token", "tenant"),
    ("tenants", rf"{T}#PTOKEN#[^#]+#RATE", r"M#.+", "platform-token rate window", "tenant"),
    ("tenants", r"COUNTER#tenant", "COUNTER", "tenant id counter", "platform"),
    ("tenants", r"SIGNING_KEYS", r"K#.+", "signing key", "platform"),
    ("api-keys", E, r"KEY#.+", "API key", "tenant-env"),
    ("audit", T, ANY, "audit entry", "delta"),
    ("customers", E, r"C#[^#]+", "customer row", "customer"),
    ("customers", C, rf"CUSTOMER{SHARD}", "customer row", "customer"),
    ("customers", rf"{E}{SHARD}", rf"STATS{SHARD}", "environment totals (STATS)", "tenant-env"),
    ("ledger", rf"{T}#CREDITS", "ACCOUNT", "credit account", "tenant"),
    ("ledger", rf"{T}#CREDITS", r"E#.+", "ledger entry", "delta"),  # written before the entry shards
    ("ledger", rf"{T}#CREDITS#E#\d+", r"E#.+", "ledger entry", "delta"),
    ("ledger", rf"{T}#CREDITS{LANE}", r"LANE", "credit lane (escrow)", "tenant"),
    ("ledger", rf"{T}#CREDITS#SETTLE#\d+", r"SETTLE", "credit lane settlements", "tenant"),
    ("usage", rf"{T}{SHARD}", rf"P#[^#]+{SHARD}", "usage counter", "tenant"),
    ("deltas", rf"{E}#R#[^#]+", "DELTA", "delta item", "delta"),
    ("deltas", rf"{C}#REF#.+", "REF", "reference guard", "delta"),
    ("deltas", rf"{E}#B#[^#]+", "BATCH", "sealed batch", "delta"),
    ("deltas", rf"{E}#B#[^#]+", "COUNTS", "sealed batch's customer counts", "delta"),
    ("deltas", rf"{E}#CHAIN(?:#\d+)?", "HEAD", "chain head", "tenant-env"),  # chain 0, then #CHAIN#{k}
    ("deltas", rf"{C}#CKPT", ANY, "checkpoint", "delta"),
    ("idempotency", rf"{E}#IDEM#.+", "IDEM", "idempotency record", "delta"),
    ("webhooks", rf"{E}#WH", r"EP#.+", "webhook endpoint", "tenant-env"),
    ("webhooks", rf"{E}#WH", r"D#.+", "webhook delivery", "delta"),
    ("webhooks", r"OUTBOX#\d+", ANY, "outbox item", "delta"),
    ("billing", r"STRIPE_EVENT#.+", "EVENT", "Stripe event guard", "delta"),
    ("billing", r"INVOICE#.+", "INVOICE", "invoice state", "delta"),
    ("billing", T, r"PERIOD#.+", "period close", "tenant"),
    ("billing", r"ROLLOVER", r"PERIOD#.+", "rollover run", "platform"),
    ("billing", r"LOCALSTRIPE#UNDELIVERED", ANY, "local Stripe: undelivered events", "platform"),
    ("billing", r"LOCALSTRIPE#TENANT#.+", ANY, "local Stripe: tenant objects", "tenant"),
    ("billing", r"LOCALSTRIPE#(?:USAGE|IDEMPOTENCY|METER_EVENT)#.+", ANY, "local Stripe: record", "delta"),
    ("billing", r"LOCALSTRIPE#.+", "OBJECT", "local Stripe: object", "delta"),
]

#: Base-table partitions: (logical table, partition key) → (class, scope).
PARTITION_CLASSES: list[tuple[str, str, str, str]] = [
    ("tenants", T, "tenant partition", "tenant"),
    ("tenants", rf"{T}#PTOKEN#[^#]+#RATE", "platform-token rate windows", "tenant"),
    ("tenants", r"COUNTER#tenant", "tenant id counter", "platform"),
    ("tenants", r"SIGNING_KEYS", "signing-key registry", "platform"),
    ("api-keys", E, "environment API keys", "tenant-env"),
    ("audit", T, "audit partition", "tenant"),
    # The environment's own partition holds shard 0 of its totals (stats_pk), nothing else written today.
    ("customers", E, "environment totals (STATS) shard", "tenant-env"),
    ("customers", C, "customer partition", "customer"),
    ("customers", rf"{E}{SHARD}", "environment totals (STATS) shard", "tenant-env"),
    ("ledger", rf"{T}#CREDITS", "credit account partition", "tenant"),
    ("ledger", rf"{T}#CREDITS#E#\d+", "ledger entries shard", "tenant"),
    ("ledger", rf"{T}#CREDITS{LANE}", "credit lane shard", "tenant"),
    ("ledger", rf"{T}#CREDITS#SETTLE#\d+", "credit lane settlements shard", "tenant"),
    ("usage", rf"{T}{SHARD}", "usage counter partition", "tenant"),
    ("deltas", rf"{E}#R#[^#]+", "delta item", "delta"),
    ("deltas", rf"{C}#REF#.+", "reference guard", "delta"),
    ("deltas", rf"{E}#B#[^#]+", "sealed batch", "delta"),
    ("deltas", rf"{E}#CHAIN(?:#\d+)?", "chain head", "tenant-env"),  # each chain's head a partition of its own
    ("deltas", rf"{C}#CKPT", "customer checkpoints", "customer"),
    ("idempotency", rf"{E}#IDEM#.+", "idempotency record", "delta"),
    ("webhooks", rf"{E}#WH", "environment webhooks partition", "tenant-env"),
    ("webhooks", r"OUTBOX#\d+", "outbox shard", "platform"),
    ("billing", r"STRIPE_EVENT#.+", "Stripe event guard", "delta"),
    ("billing", r"INVOICE#.+", "invoice state", "delta"),
    ("billing", T, "tenant period closes", "tenant"),
    ("billing", r"ROLLOVER", "rollover runs", "platform"),
    ("billing", r"LOCALSTRIPE#UNDELIVERED", "local Stripe: undelivered events", "platform"),
    ("billing", r"LOCALSTRIPE#TENANT#.+", "local Stripe: tenant objects", "tenant"),
    ("billing", r"LOCALSTRIPE#.+", "local Stripe: object", "delta"),
]

#: Global secondary index partitions: (logical table, index, index partition key value) → (class, scope).
INDEX_CLASSES: list[tuple[str, str, str, str, str]] = [
    ("tenants", "directory-index", r"TENANTS", "tenant directory", "platform"),
    ("tenants", "block-index", r"BLOCKS", "block list", "platform"),
    ("tenants", "stripe-customer-index", ANY, "Stripe customer lookup", "tenant"),
    ("api-keys", "key-id-index", ANY, "API key id lookup", "tenant-env"),
    ("customers", "directory-index", E, "customer directory (by name)", "tenant-env"),
    ("customers", "customer-name-index", rf"{E}#CUSTOMERS(#\d+)?", "customer list (by name) shard", "tenant-env"),
    ("customers", "customer-id-index", rf"{E}#CUSTOMERS(#\d+)?", "customer list (by id) shard", "tenant-env"),
    ("deltas", "customer-seq-index", C, "customer sequence index", "customer"),
    ("deltas", "pending-index", r"P#\d+", "pending-index shard", "platform"),
    ("deltas", "root-index", r"[0-9a-f]+", "batch root lookup", "delta"),
    ("deltas", "checkpoint-period-index", rf"{E}#P#[^#]+", "checkpoints by period", "tenant-env"),
    ("webhooks", "endpoint-index", rf"{E}#EP#[^#]+", "endpoint deliveries", "tenant-env"),
    ("webhooks", "due-index", r"W#\d+", "due-index shard", "platform"),
]


@functools.cache
def _sharded() -> dict[str, int]:
    """Classes whose keys are shards the code spreads writes over evenly (a stable hash or a random pick),
    with their shard counts from keys.py: their ceiling is the class's load spread over every shard, not the
    hottest shard of a small sample (with 100 deltas over 256 shards, one shard sees 4 by chance)."""
    from chalicelib.adapters.dynamodb import keys

    return {
        "environment totals (STATS)": len(keys.STATS_SHARDS),
        "environment totals (STATS) shard": len(keys.STATS_SHARDS),
        "usage counter": len(keys.USAGE_SHARDS), "usage counter partition": len(keys.USAGE_SHARDS),
        "credit lane (escrow)": len(keys.CREDIT_LANES), "credit lane shard": len(keys.CREDIT_LANES),
        "ledger entries shard": len(keys.LEDGER_ENTRY_SHARDS),
        "customer list (by name) shard": len(keys.CUSTOMER_LIST_SHARDS),
        "customer list (by id) shard": len(keys.CUSTOMER_LIST_SHARDS),
        "pending-index shard": keys.PENDING.count, "outbox shard": keys.OUTBOX.count, "due-index shard": keys.DUE.count,
        "chain head": len(keys.CHAINS),  # a seal picks its chain at random, and settles on that number
        "credit lane settlements": len(keys.CREDIT_SETTLEMENTS),
        "credit lane settlements shard": len(keys.CREDIT_SETTLEMENTS),
    }


class UnclassifiedKeyError(Exception):
    """A key was written that no rule of ITEM_CLASSES / PARTITION_CLASSES / INDEX_CLASSES matches."""


def _check_rules() -> None:
    for rules in (ITEM_CLASSES, PARTITION_CLASSES, INDEX_CLASSES):
        for rule in rules:
            if rule[-1] not in SCOPES:
                raise ValueError(f"scope {rule[-1]!r} of {rule} is not one of {SCOPES}")


def classify_item(table: str, pk: str, sk: str | None) -> tuple[str, str]:
    """(class, scope) of the item ``pk``/``sk`` of ``table`` (logical name); raises if none matches."""
    for rule_table, pk_re, sk_re, name, scope in ITEM_CLASSES:
        if rule_table == table and re.fullmatch(pk_re, pk) and re.fullmatch(sk_re, sk or ""):
            return name, scope
    raise UnclassifiedKeyError(f"unclassified item written: table {table!r}, pk {pk!r}, sk {sk!r} — "
                               f"add a rule to ITEM_CLASSES in bench/capacity.py")


def classify_partition(table: str, pk: str) -> tuple[str, str]:
    """(class, scope) of the partition ``pk`` of ``table`` (logical name); raises if none matches."""
    for rule_table, pk_re, name, scope in PARTITION_CLASSES:
        if rule_table == table and re.fullmatch(pk_re, pk):
            return name, scope
    raise UnclassifiedKeyError(f"unclassified partition written: table {table!r}, pk {pk!r} — "
                               f"add a rule to PARTITION_CLASSES in bench/capacity.py")


def classify_index(table: str, index: str, value: str) -> tuple[str, str]:
    """(class, scope) of the partition ``value`` of ``index`` on ``table``; raises if none matches."""
    for rule_table, rule_index, value_re, name, scope in INDEX_CLASSES:
        if rule_table == table and rule_index == index and re.fullmatch(value_re, value):
            return name, scope
    raise UnclassifiedKeyError(f"unclassified index partition written: table {table!r}, index {index!r}, "
                               f"partition {value!r} — add a rule to INDEX_CLASSES in bench/capacity.py")


@dataclass
class ClassLoad:
    """One class's write units in a scenario: per key, so the hottest key (shard) is known."""

    level: str  # item | partition | index | table
    name: str
    scope: str
    where: str  # logical table, or table/index
    limit: int
    loads: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    shards: int | None = None  # spread evenly over this many keys (see _sharded)

    def hottest(self) -> tuple[str, float]:
        key = max(self.loads, key=lambda k: self.loads[k])
        return key, self.loads[key]

    def per_delta(self, accepted: int) -> float:
        """WCU per accepted delta on the hottest key; for a sharded class, on each of its shards when spread."""
        if self.shards:
            return sum(self.loads.values()) / self.shards / accepted
        return self.hottest()[1] / accepted

    def ceiling(self, accepted: int) -> float | None:
        """Deltas/s before the hottest key reaches its limit; None when the scope sets no ceiling."""
        if self.scope == "delta":
            return None
        return self.limit / self.per_delta(accepted)


@dataclass
class Ceiling:
    deltas_per_second: float
    limit: str  # the class, where, and the hottest key


@dataclass
class ScenarioResult:
    name: str
    mode: str
    accepted: int
    total_units: float
    classes: list[ClassLoad]
    calls: dict[str, int]
    failures: dict[str, int]
    tenant_ceiling: Ceiling | None
    platform_ceiling: Ceiling | None
    customer_ceiling: Ceiling | None = None


def logical_tables() -> dict[str, str]:
    """Physical table name → logical name (``models.TABLES``)."""
    from chalicelib.adapters.dynamodb.models import TABLES

    return {physical: logical for logical, physical in TABLES.items()}


def loads_of(writes: list[Write]) -> list[ClassLoad]:
    """Every write's units put on its item, its partition, its index partitions and its table's totals."""
    tables = logical_tables()
    classes: dict[tuple[str, str, str], ClassLoad] = {}

    def load(level: str, name: str, scope: str, where: str, limit: int, key: str, units: float) -> None:
        found = classes.setdefault((level, name, where),
                                   ClassLoad(level, name, scope, where, limit, shards=_sharded().get(name)))
        found.loads[key] += units

    for write in writes:
        table = tables.get(write.table, write.table)
        sk = write.sort
        name, scope = classify_item(table, write.partition, sk)
        load("item", name, scope, table, ITEM_LIMIT, f"{write.partition} / {sk}", write.units or 0)
        name, scope = classify_partition(table, write.partition)
        load("partition", name, scope, table, PARTITION_LIMIT, write.partition, write.units or 0)
        load("table", "table total", "platform", table, TABLE_LIMIT, table, write.units or 0)
        for index_write in write.index_writes:
            where = f"{table}/{index_write.index}"
            name, scope = classify_index(table, index_write.index, index_write.partition)
            load("index", name, scope, where, PARTITION_LIMIT, index_write.partition, index_write.units)
            load("table", "index total", "platform", where, TABLE_LIMIT, where, index_write.units)
    order = {"item": 0, "partition": 1, "index": 2, "table": 3}
    return sorted(classes.values(), key=lambda c: (order[c.level], c.where, c.name))


def read_loads_of(reads: list[Read]) -> list[ClassLoad]:
    """Every read by key put on its item and its partition (3,000 RCU/s each). A sharded class is not spread
    for reads: whoever sums the shards reads every one of them; but a chain head is read only by the seal that
    picked it (at random), so its reads spread like its writes."""
    tables = logical_tables()
    classes: dict[tuple[str, str, str], ClassLoad] = {}
    for read in reads:
        table = tables.get(read.table, read.table)
        for level, (name, scope), key in (
                ("read item", classify_item(table, read.partition, read.sort), f"{read.partition} / {read.sort}"),
                ("read part.", classify_partition(table, read.partition), read.partition)):
            spread = _sharded().get(name) if name == "chain head" else None
            found = classes.setdefault((level, name, table),
                                       ClassLoad(level, name, scope, table, READ_LIMIT, shards=spread))
            found.loads[key] += read.units
    return sorted(classes.values(), key=lambda c: (c.level, c.where, c.name))


def ceilings(classes: list[ClassLoad], accepted: int) -> tuple[Ceiling | None, Ceiling | None, Ceiling | None]:
    """(per tenant, platform-wide, per customer): the lowest ceiling among tenant-scoped classes, among
    platform-scoped partitions and the per-table (per-index) limits, and among one customer's keys (what a
    tenant's traffic to a single customer can reach)."""

    def lowest(candidates: list[ClassLoad]) -> Ceiling | None:
        rated = [(c.ceiling(accepted), c) for c in candidates if c.loads]
        rated = [(value, c) for value, c in rated if value is not None]
        if not rated:
            return None
        value, worst = min(rated, key=lambda pair: pair[0])
        key = worst.hottest()[0]
        where = worst.where if key == worst.where else f"{worst.where} {key}"
        return Ceiling(value, f"{worst.name} ({worst.level}, {where})")

    return (lowest([c for c in classes if c.scope in TENANT_SCOPES]),
            lowest([c for c in classes if c.scope == "platform" and c.level != "table"]),
            lowest([c for c in classes if c.scope == "customer"]))


PLATFORM_GOAL = 100_000  # deltas/s, all tenants together (issue 12)


def table_quotas(classes: list[ClassLoad], accepted: int) -> list[tuple[str, float]]:
    """WCU/s each table and index needs at :data:`PLATFORM_GOAL`: the per-table quota (40,000 by default) is
    an adjustable account limit, not a partition, so it is reported apart from the ceilings."""
    return sorted(((c.where, sum(c.loads.values()) / accepted * PLATFORM_GOAL) for c in classes
                   if c.level == "table"), key=lambda pair: -pair[1])


def _fmt_rate(value: float | None) -> str:
    return "no ceiling (new key per delta)" if value is None else f"{value:,.0f} deltas/s"


def report(result: ScenarioResult, out: TextIO) -> None:
    """One scenario's table: class, scope, table/index, keys seen, units per delta on the hottest key and on
    all keys of the class, the ceiling, and the hottest key (shard)."""
    unit = "verified" if result.name.startswith("verification") else "accepted"
    print(f"\n== {result.name} — {result.mode}: {result.accepted} deltas {unit}, "
          f"{result.total_units / result.accepted:.2f} WCU per {unit} delta (table and index writes)", file=out)
    calls = ", ".join(f"{op} {n}" for op, n in sorted(result.calls.items()))
    failures = ", ".join(f"{reason} x{n}" for reason, n in sorted(result.failures.items())) or "none"
    print(f"   calls (the recorder's own reads left out): {calls}; failed writes: {failures}", file=out)
    print("   (units/delta: WCU, or RCU on 'read' rows, on the hottest key; for a sharded class's writes, on each "
          "shard with the load spread over all)", file=out)
    print(f"   {'level':<9} {'class':<42} {'scope':<10} {'table/index':<33} {'keys':>5} {'u./delta':>9} "
          f"{'all keys':>8}  {'ceiling':<30} hottest key", file=out)
    for c in result.classes:
        total = sum(c.loads.values()) / result.accepted
        hottest = "" if c.scope == "delta" or c.level == "table" else c.hottest()[0]
        line = (f"   {c.level:<9} {c.name:<42} {c.scope:<10} {c.where:<33} {len(c.loads):>5} "
                f"{c.per_delta(result.accepted):>9.3f} {total:>8.3f}  {_fmt_rate(c.ceiling(result.accepted)):<30} "
                f"{hottest}")
        print(line.rstrip(), file=out)


def _summary(results: list[ScenarioResult], out: TextIO) -> None:
    print("\nCeilings (computed from the measured writes; only AWS can confirm real throughput):", file=out)
    for r in results:
        print(f"  {r.name} — {r.mode}:", file=out)
        for label, ceiling in (("per tenant", r.tenant_ceiling), ("platform", r.platform_ceiling),
                               ("per customer", r.customer_ceiling)):
            text = (f"{ceiling.deltas_per_second:,.0f} deltas/s (limit: {ceiling.limit})" if ceiling
                    else "none found")
            print(f"    {label} ceiling: {text}", file=out)
        needed = ", ".join(f"{where} {wcu:,.0f}" for where, wcu in table_quotas(r.classes, r.accepted)[:3])
        print(f"    table quotas at {PLATFORM_GOAL:,} deltas/s (WCU/s; default {TABLE_LIMIT:,}, adjustable): {needed}",
              file=out)
    print("\nSummary, deltas/s (writes and reads by key; the verifier is also bound by its chains: one seal at a "
          "time on each, see below):", file=out)
    print(f"  {'scenario':<62} {'mode':<8} {'per tenant':>12} {'platform':>12} {'per customer':>13}   "
          "(platform: its partitions; table quotas above)", file=out)
    for r in results:
        cells = [f"{c.deltas_per_second:>12,.0f}" if c else f"{'-':>12}"
                 for c in (r.tenant_ceiling, r.platform_ceiling, r.customer_ceiling)]
        print(f"  {r.name[:62]:<62} {r.mode.split()[0]:<8} {cells[0]} {cells[1]} {cells[2]:>13}", file=out)
    for r in results:
        serial = serial_verification(r)
        if serial is not None:
            per_seal, fast, slow = serial
            lanes = "; its credits go on a lane by ADDs, posted in aggregate" if "credits" in r.mode else ""
            print(f"  verification, serial per tenant environment — {r.mode.split()[0]}: seals of {per_seal:.0f} "
                  f"deltas, one at a time on each of its {CHAINS} chains (a seal reads its chain's head and "
                  f"commits conditioned on it{lanes})"
                  f": {fast:,.0f} deltas/s at an assumed {SEAL_SECONDS[0] * 1000:.0f} ms from that read to the "
                  f"commit on AWS, {slow:,.0f} at {SEAL_SECONDS[1] * 1000:.0f} ms (latency: only AWS can confirm)"
                  f"{f'; below the {TENANT_BATCH_GOAL:,} deltas/s batch goal' if slow < TENANT_BATCH_GOAL else ''}",
                  file=out)


#: What one seal's serial part (the chain head's GetItem, then a TransactWriteItems of ~95 items) is assumed
#: to take on AWS: an estimate, not a measurement (only AWS can time it).
SEAL_SECONDS = (0.025, 0.050)
TENANT_BATCH_GOAL = 20_000


def serial_verification(r: ScenarioResult) -> tuple[float, float, float] | None:
    """(deltas per seal, deltas/s at the fast and the slow assumed seal time) of a verification scenario: the
    seals of a tenant environment's chain are sequential (its head), a bound the write units cannot show; its
    ``CHAINS`` chains commit side by side. Seals are counted from the chain heads' writes (2 WCU each: a
    transactional write of a small item). Credits do not add a bound: seals ADD to the escrow lanes, and a
    posting folds every seal since the last into the account at once."""
    head = next((c for c in r.classes if c.level == "item" and c.name == "chain head"), None)
    if head is None:
        return None
    seals = sum(head.loads.values()) / 2
    per_seal = r.accepted / seals
    return per_seal, CHAINS * per_seal / SEAL_SECONDS[0], CHAINS * per_seal / SEAL_SECONDS[1]


MODES = (("monthly", "monthly billing, scale plan"), ("credits", "credits billing, scale plan, topped up"))


def _measured(recorder: WriteRecorder, name: str, mode: str, run: Any, out: TextIO) -> ScenarioResult:
    """Run one scenario with the recorder attached (``run()`` returns the deltas accepted or verified)."""
    recorder.reset()
    with recorder.recording():
        accepted = run()
    if not accepted:
        raise RuntimeError(f"{name}: no delta accepted")
    classes = loads_of(recorder.writes) + read_loads_of(recorder.reads)
    total = sum(w.units or 0 for w in recorder.writes) + sum(
        iw.units for w in recorder.writes for iw in w.index_writes)
    tenant, platform, customer = ceilings(classes, accepted)
    result = ScenarioResult(name, mode, accepted, total, classes, dict(recorder.calls), dict(recorder.failures),
                            tenant, platform, customer)
    report(result, out)
    return result


def _mode_scenarios(world: Any, recorder: WriteRecorder, mode: str, label: str, single_calls: int,
                    customers: int, batch: int, out: TextIO) -> list[ScenarioResult]:
    """One billing mode's four scenarios, on a tenant of its own."""
    from chalicelib import bootstrap
    from chalicelib.domain.clock import utcnow
    from chalicelib.domain.deltas import DeltaInput
    from chalicelib.domain.identity import ApiKeyPrincipal, Environment
    from chalicelib.services import credits, ingest, verification

    tenant = world.tenant(f"Capacity {mode}", billing_mode=mode, plan="scale")
    if mode == "credits":
        credits.topup(bootstrap.unit_of_work(), tenant.id, 10_000_000, actor="bench", now=utcnow())
    principal = ApiKeyPrincipal(tenant.id, Environment.PRODUCTION, "bench")
    refs: list[tuple[str, Environment, str]] = []

    def submit(items: list[DeltaInput]) -> int:
        outcomes = ingest.submit_deltas(bootstrap.unit_of_work(), principal, items, now=utcnow())
        accepted = ingest.accepted_refs(principal, outcomes)
        if len(accepted) != len(items):
            raise RuntimeError(f"{len(items) - len(accepted)} of {len(items)} deltas not accepted: "
                               f"{[o.error for o in outcomes if o.error]}")
        refs.extend((t, Environment(e), r) for t, e, r, *_seal_candidate in accepted)  # bare references, as before
        return len(accepted)

    def item(customer: str, n: int) -> DeltaInput:
        return DeltaInput(customer_id=customer, delta=Decimal("1.5"), reason=f"capacity bench {n}")

    def verify() -> int:
        report = verification.verify_records(bootstrap.unit_of_work(), list(refs), now=utcnow(),
                                             signer=bootstrap.signer())
        if report.failed or len(report.verified) != len(refs):
            raise RuntimeError(f"verified {len(report.verified)} of {len(refs)} deltas")
        return len(report.verified)

    return [
        _measured(recorder, f"single submits ({single_calls} calls of 1 delta over {customers} customers)", label,
                  lambda: sum(submit([item(f"{mode}-s{i % customers}", i)]) for i in range(single_calls)), out),
        _measured(recorder, f"batch of {batch}, one customer", label,
                  lambda: submit([item(f"{mode}-one", i) for i in range(batch)]), out),
        _measured(recorder, f"batch of {batch}, {batch} new customers", label,
                  lambda: submit([item(f"{mode}-m{i}", i) for i in range(batch)]), out),
        _measured(recorder, f"batch of {batch}, {batch} existing customers", label,
                  lambda: submit([item(f"{mode}-m{i}", i) for i in range(batch)]), out),
        _measured(recorder, f"verification (verify_records over the {single_calls + 3 * batch} deltas accepted above)",
                  label, verify, out),
    ]


def _scenarios(single_calls: int, customers: int, batch: int, out: TextIO) -> list[ScenarioResult]:
    from chalicelib import bootstrap
    from chalicelib.domain.clock import utcnow
    from tests.factories import World

    world = World(utcnow)
    world.tenant("Platform")
    bootstrap.signer()  # registers the signing key once per process: not part of any scenario
    recorder = WriteRecorder(measure=True)
    return [result for mode, label in MODES
            for result in _mode_scenarios(world, recorder, mode, label, single_calls, customers, batch, out)]


def main(single_calls: int = 200, customers: int = 50, batch: int = 100, *, provisioned: bool = False,
         out: TextIO | None = None) -> list[ScenarioResult]:
    """Run every scenario and print the figures; returns them. ``provisioned``: the caller already set up
    AWS (a test's moto fixture) — else a moto world is made and provisioned here."""
    out = out or sys.stdout
    _check_rules()
    print("Write capacity per accepted delta (in-process moto, the real services). Measured: every DynamoDB "
          "write and item size.\nComputed: WCU by DynamoDB's rules (x2 in transactions, index writes at their "
          "entry size) and ceilings\nfrom the on-demand limits: 1,000 WCU/s per partition and per item, 40,000 "
          "WCU/s per table and per index;\nreads by key (GetItem, BatchGetItem) at 3,000 RCU/s per item and "
          "partition.\nKeys of scope 'delta' are new per delta or transaction and set no "
          "ceiling. Only AWS can confirm real throughput.", file=out)
    if provisioned:
        results = _scenarios(single_calls, customers, batch, out)
    else:
        with mock_aws():
            import boto3

            from chalicelib.cli.resources import provision

            provision(boto3.session.Session(), stack_name="tally-test", region="us-east-1")
            results = _scenarios(single_calls, customers, batch, out)
    _summary(results, out)
    return results


def record_figures(results: list[ScenarioResult]) -> None:
    """Each scenario's write units per delta and its three ceilings, for the summary (``bench/report.py``)."""
    from bench.report import record

    for r in results:
        name = f"{r.name} — {r.mode.split()[0]}"
        record("capacity", f"{name}: WCU per delta", r.total_units / r.accepted, "WCU")
        for label, ceiling in (("per tenant", r.tenant_ceiling), ("platform", r.platform_ceiling),
                               ("per customer", r.customer_ceiling)):
            if ceiling is not None:
                record("capacity", f"{name}: {label} ceiling", ceiling.deltas_per_second, "deltas/s")
        serial = serial_verification(r)
        if serial is not None:
            record("capacity", f"{name}: serial seals on {CHAINS} chains per tenant environment at an assumed "
                   f"{SEAL_SECONDS[1] * 1000:.0f} ms each (estimate)", serial[2], "deltas/s",
                   goal=(">=", TENANT_BATCH_GOAL))


if __name__ == "__main__":
    try:
        record_figures(main())
    except UnclassifiedKeyError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        sys.exit(2)
