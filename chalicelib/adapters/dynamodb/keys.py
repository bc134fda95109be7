"""Every DynamoDB key string is built here, so tenant scoping has one definition.

Tenant-wide items live under ``T#{tenant}``; environment-scoped items under
``T#{tenant}#E#{environment}``. Nothing else builds a key, and every shard range is
here: items every delta of a tenant would write are spread (usage counters, the
environment's totals, credit lanes; each customer is a partition of its own), so are the
hash chains its seals extend (:data:`CHAINS`), and platform-wide work lists are :class:`Shards`
read back by one sweep.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from chalicelib.domain import batches
from chalicelib.domain.credits import HOLD_LANES

T = TypeVar("T")


@dataclass(frozen=True)
class Shards:
    """A platform-wide key spread over ``count`` partitions ``{prefix}0 .. {prefix}{count-1}``: writes pick
    one by a stable hash, and the sweeps that read them back walk every one with :meth:`sweep`."""

    prefix: str
    count: int

    def of(self, value: str) -> str:
        return f"{self.prefix}{zlib.crc32(value.encode()) % self.count}"

    def sweep(self, read: Callable[[str, int], list[T]], limit: int) -> list[T]:
        """What ``read(shard key, limit)`` returns from each shard, in shard order, until ``limit`` items."""
        found: list[T] = []
        for number in range(self.count):
            if len(found) >= limit:
                break
            found += read(f"{self.prefix}{number}", limit - len(found))
        return found

TENANT_SK = "TENANT"
TENANT_COUNTER_PK = "COUNTER#tenant"
COUNTER_SK = "COUNTER"
DIRECTORY_PK = "TENANTS"


def tenant_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}"


def env_pk(tenant_id: str, environment: str) -> str:
    return f"T#{tenant_id}#E#{environment}"


def user_sk(user_id: str) -> str:
    return f"USER#{user_id}"


def session_sk(session_id: str) -> str:
    return f"SESSION#{session_id}"


def platform_token_sk(token_id: str) -> str:
    return f"PTOKEN#{token_id}"


def rate_window_pk(tenant_id: str, token_id: str) -> str:
    """A platform token's request windows: one partition per token, so busy tokens never share one."""
    return f"T#{tenant_id}#PTOKEN#{token_id}#RATE"


def rate_window_sk(window_id: str) -> str:
    return f"M#{window_id}"


def api_key_sk(key_id: str) -> str:
    return f"KEY#{key_id}"


CUSTOMER_SK = "CUSTOMER"


def customer_pk(tenant_id: str, environment: str, customer_id: str) -> str:
    """A customer's row is a partition of its own: a tenant's deltas for many customers spread over many
    partitions (its sequence claims are per customer anyway)."""
    return customer_key(tenant_id, environment, customer_id)


CUSTOMER_LIST_SHARDS = range(32)  # the customer indexes' partitions per tenant environment (see customer_list_pk)


def customer_list_pks(tenant_id: str, environment: str) -> list[str]:
    """Every partition of the environment's customer indexes, in shard order: a listing reads them all and
    merges them by sort key. Shard 0 is the one key used before the indexes were sharded."""
    base = f"T#{tenant_id}#E#{environment}#CUSTOMERS"
    return [base if shard == 0 else f"{base}#{shard}" for shard in CUSTOMER_LIST_SHARDS]


def customer_list_pk(tenant_id: str, environment: str, customer_id: str) -> str:
    """The customer indexes' partition of ``customer_id`` (by id and by name, keys only), by a stable hash:
    written when a customer is created, never by a delta. One index partition takes 1,000 new customers a
    second, so the 32 shards let a tenant environment create 32,000 a second (batches of new customers at
    the 20,000 deltas/s goal); a listing queries them all at once and keeps a one-key cursor
    (``merged.py``)."""
    return customer_list_pks(tenant_id, environment)[zlib.crc32(customer_id.encode()) % len(CUSTOMER_LIST_SHARDS)]


STATS_SK = "STATS"  # beside the customers (whose sort keys all start with C#)
STATS_SHARDS = range(16)  # the environment's totals, spread: reads sum every shard (one BatchGetItem)


def stats_pk(tenant_id: str, environment: str, shard: int) -> str:
    """Shard 0 is the original item beside the customers; the others are partitions of their own."""
    return env_pk(tenant_id, environment) if shard == 0 else f"{env_pk(tenant_id, environment)}#STATS#{shard}"


def audit_sk(at_iso: str, entry_id: str) -> str:
    return f"{at_iso}#{entry_id}"


SIGNING_KEYS_PK = "SIGNING_KEYS"  # platform-wide: every signing key ever used, one item each


def signing_key_sk(key_id: str) -> str:
    return f"K#{key_id}"


BLOCK_PK = "BLOCKS"  # block-index: flagged tenants awaiting their recorded block (few at any time)


def block_sk(limit_date_iso: str, tenant_id: str) -> str:
    """Sorted by limit date, so the block job reads exactly the tenants whose date has passed."""
    return f"{limit_date_iso}#{tenant_id}"


ROLLOVER_RUN_PK = "ROLLOVER"  # billing table: one item per closed period, the rollover job's progress


def period_close_sk(period: str) -> str:
    """Beside ``tenant_pk``: a tenant's closed months (``PeriodCloseRecord``); beside ``ROLLOVER_RUN_PK``:
    the job's run for that month."""
    return f"PERIOD#{period}"


def directory_sk(tenant_id: str) -> str:
    """Zero-padded so the directory index sorts tenants numerically."""
    return f"{int(tenant_id):020d}"


ACCOUNT_SK = "ACCOUNT"
DELTA_SK = "DELTA"
GUARD_SK = "REF"
IDEMPOTENCY_SK = "IDEM"


def credits_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#CREDITS"


LANE_SK = "LANE"
CREDIT_LANES = range(HOLD_LANES)


def credit_lane_pk(tenant_id: str, lane: int) -> str:
    """An escrow lane: a partition of its own, so holds spread over ``HOLD_LANES`` items."""
    return f"T#{tenant_id}#CREDITS#LANE#{lane}"


SETTLE_SK = "SETTLE"
CREDIT_SETTLEMENTS = range(batches.CHAINS)  # one per chain: a seal settles on its chain's number


def credit_settle_pk(tenant_id: str, lane: int) -> str:
    """Where seals add their settlements (``lane``: one of ``CREDIT_SETTLEMENTS``, the seal's chain): items of
    their own, which acceptances never write and seals on other chains neither, so a seal's transaction
    meets no other on an item."""
    return f"T#{tenant_id}#CREDITS#SETTLE#{lane}"


def ledger_entry_sk(entry_id: str) -> str:
    """Entry ids are time-ordered, so the sort key lists entries chronologically."""
    return f"E#{entry_id}"


LEDGER_ENTRY_SHARDS = range(8)  # the ledger entries' partitions per tenant (see ledger_entry_pk)


def ledger_entry_pk(tenant_id: str, number: int) -> str:
    """Entry ``number``'s partition, round robin: not the account's. Every seal under credits billing
    settles on the account (one item, 2 WCU a seal) and adds about two entries; with the entries beside
    it, that partition bounded a tenant's verification at ~13,000 deltas/s. Entries are numbered without
    gaps, so a page is read by key (``DynamoCreditRepository.entries``) and needs no merged query. Entries
    written before the shards existed stay under :func:`credits_pk`."""
    return f"T#{tenant_id}#CREDITS#E#{number % len(LEDGER_ENTRY_SHARDS)}"


def delta_pk(tenant_id: str, environment: str, record_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#R#{record_id}"


def customer_key(tenant_id: str, environment: str, customer_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#C#{customer_id}"


def seq_key(sequence_number: int) -> str:
    return f"{sequence_number:012d}"


def reference_guard_pk(tenant_id: str, environment: str, customer_id: str, reference_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#C#{customer_id}#REF#{reference_id}"


BATCH_SK = "BATCH"
COUNTS_SK = "COUNTS"  # beside a batch: its per-customer verified counts until they are applied
HEAD_SK = "HEAD"
# The verifier's backstop work list: each delta writes its entry on acceptance and removes it when resolved
# (2 small index writes): 256 partitions of 1,000 WCU/s carry ~128,000 deltas/s platform-wide.
PENDING = Shards("P#", 256)


def batch_pk(tenant_id: str, environment: str, batch_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#B#{batch_id}"


CHAINS = range(batches.CHAINS)  # the hash chains of a tenant environment, each head a partition of its own


def chain_pk(tenant_id: str, environment: str, chain: int = 0) -> str:
    """A chain's head. Seals of one tenant environment commit in parallel on different chains (one head
    allows one seal at a time). Chain 0 is the one key used before there were several chains."""
    base = f"T#{tenant_id}#E#{environment}#CHAIN"
    return base if chain == 0 else f"{base}#{chain}"


def pending_shard(record_id: str) -> str:
    """Spreads the sparse pending index over :data:`PENDING` (stable per record)."""
    return PENDING.of(record_id)


def checkpoints_pk(tenant_id: str, environment: str, customer_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#C#{customer_id}#CKPT"


def checkpoint_sk(period: str, sequence: int) -> str:
    return f"{period}#{sequence:06d}"


def checkpoint_period_key(tenant_id: str, environment: str, period: str) -> str:
    return f"T#{tenant_id}#E#{environment}#P#{period}"


def checkpoint_period_sort(customer_id: str, sequence: int) -> str:
    return f"{customer_id}#{sequence:06d}"


def idempotency_pk(tenant_id: str, environment: str, scope: str, key: str) -> str:
    return f"T#{tenant_id}#E#{environment}#IDEM#{scope}#{key}"


USAGE_SHARDS = range(16)  # the period's usage counter, spread: reads sum every shard (one BatchGetItem)
CAPPED_USAGE_SHARD = 0  # a hard-capped plan counts on this shard only, conditioned exactly


def usage_pk(tenant_id: str, shard: int) -> str:
    """Shard 0 is the original ``T#{tenant}`` item; the others are partitions of their own."""
    return tenant_pk(tenant_id) if shard == 0 else f"T#{tenant_id}#USAGE#{shard}"


def usage_sk(period: str) -> str:
    return f"P#{period}"


# --- webhooks table: endpoints, deliveries and the event outbox ---

# Webhook events committed with their change (one small item per seal or change) and deliveries awaiting an
# attempt (one index entry per delivery while due), spread like the pending index.
OUTBOX = Shards("OUTBOX#", 64)
DUE = Shards("W#", 256)


def webhooks_pk(tenant_id: str, environment: str) -> str:
    return f"T#{tenant_id}#E#{environment}#WH"


def endpoint_sk(endpoint_id: str) -> str:
    return f"EP#{endpoint_id}"


DELIVERY_PREFIX = "D#"


def delivery_sk(event_id: str, endpoint_id: str) -> str:
    """Event ids are time-ordered, so a tenant's deliveries list chronologically."""
    return f"{DELIVERY_PREFIX}{event_id}#{endpoint_id}"


def endpoint_key(tenant_id: str, environment: str, endpoint_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#EP#{endpoint_id}"


def due_shard(event_id: str, endpoint_id: str) -> str:
    """Spreads the sparse due index over :data:`DUE`."""
    return DUE.of(event_id + endpoint_id)


def outbox_pk(outbox_id: str) -> str:
    return OUTBOX.of(outbox_id)


def outbox_sk(at_iso: str, outbox_id: str) -> str:
    return f"{at_iso}#{outbox_id}"


# --- billing table: Stripe events and invoice states (platform-wide, keyed by Stripe's ids) ---

STRIPE_EVENT_SK = "EVENT"
INVOICE_SK = "INVOICE"


def stripe_event_pk(event_id: str) -> str:
    return f"STRIPE_EVENT#{event_id}"


def invoice_pk(invoice_id: str) -> str:
    return f"INVOICE#{invoice_id}"


# --- billing table: the local Stripe stand-in (adapters/stripe_local.py) ---

LOCALSTRIPE_SK = "OBJECT"
LOCALSTRIPE_UNDELIVERED_PK = "LOCALSTRIPE#UNDELIVERED"  # its events not yet delivered, oldest first


def localstripe_pk(object_id: str) -> str:
    """A Stripe-shaped object by its id (``cus_…``, ``sub_…``, ``evt_…`` …)."""
    return f"LOCALSTRIPE#{object_id}"


def localstripe_tenant_pk(tenant_id: str) -> str:
    """A tenant's current customer, subscription and open invoices: found without a scan."""
    return f"LOCALSTRIPE#TENANT#{tenant_id}"


def localstripe_idempotency_pk(key: str) -> str:
    return f"LOCALSTRIPE#IDEMPOTENCY#{key}"


def localstripe_meter_event_pk(identifier: str) -> str:
    """A meter event by its identifier: a second report of it is a no-op."""
    return f"LOCALSTRIPE#METER_EVENT#{identifier}"


def localstripe_usage_pk(customer_id: str) -> str:
    """A customer's metered usage, sorted by event time (invoices sum a period's range)."""
    return f"LOCALSTRIPE#USAGE#{customer_id}"


def localstripe_usage_sk(timestamp: int, identifier: str) -> str:
    return f"{timestamp:012d}#{identifier}"


def localstripe_undelivered_sk(created: int, order: int, event_id: str) -> str:
    return f"{created:012d}#{order:020d}#{event_id}"
