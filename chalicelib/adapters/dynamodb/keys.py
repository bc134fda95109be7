"""Every DynamoDB key string is built here, so tenant scoping has one definition.

Tenant-wide items live under ``T#{tenant}``; environment-scoped items under
``T#{tenant}#E#{environment}``. Nothing else builds a key.
"""

from __future__ import annotations

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


def customer_sk(customer_id: str) -> str:
    return f"C#{customer_id}"


STATS_SK = "STATS"  # beside the customers (whose sort keys all start with C#)


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


def ledger_entry_sk(entry_id: str) -> str:
    """Entry ids are time-ordered, so the sort key lists entries chronologically."""
    return f"E#{entry_id}"


def delta_pk(tenant_id: str, environment: str, record_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#R#{record_id}"


def customer_key(tenant_id: str, environment: str, customer_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#C#{customer_id}"


def seq_key(sequence_number: int) -> str:
    return f"{sequence_number:012d}"


def reference_guard_pk(tenant_id: str, environment: str, customer_id: str, reference_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#C#{customer_id}#REF#{reference_id}"


BATCH_SK = "BATCH"
HEAD_SK = "HEAD"
PENDING_SHARDS = 8


def batch_pk(tenant_id: str, environment: str, batch_id: str) -> str:
    return f"T#{tenant_id}#E#{environment}#B#{batch_id}"


def chain_pk(tenant_id: str, environment: str) -> str:
    return f"T#{tenant_id}#E#{environment}#CHAIN"


def pending_shard(record_id: str) -> str:
    """Spreads the sparse pending index over a few partitions (stable per record)."""
    return f"P#{sum(record_id.encode()) % PENDING_SHARDS}"  # read back shard by shard: P#0 .. P#7


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


def usage_sk(period: str) -> str:
    return f"P#{period}"


# --- webhooks table: endpoints, deliveries and the event outbox ---

OUTBOX_SHARDS = 4
DUE_SHARDS = 4


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
    """Spreads the sparse due index over a few partitions: W#0 .. W#3."""
    return f"W#{sum((event_id + endpoint_id).encode()) % DUE_SHARDS}"


def outbox_pk(outbox_id: str) -> str:
    return f"OUTBOX#{sum(outbox_id.encode()) % OUTBOX_SHARDS}"


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
