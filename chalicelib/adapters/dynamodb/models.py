"""PynamoDB models. Table keys and indexes must match ``infra/resources.json``
(``tests/integration/test_infra_template.py`` proves they do)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.constants import BINARY, NUMBER, STRING
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib import jsoncodec
from chalicelib.settings import get_settings

_settings = get_settings()

#: logical table name → physical name; the template's TableName suffixes.
TABLES = {
    "tenants": _settings.table_name("tenants"),
    "api-keys": _settings.table_name("api-keys"),
    "audit": _settings.table_name("audit"),
    "customers": _settings.table_name("customers"),
    "ledger": _settings.table_name("ledger"),
    "usage": _settings.table_name("usage"),
    "deltas": _settings.table_name("deltas"),
    "idempotency": _settings.table_name("idempotency"),
    "webhooks": _settings.table_name("webhooks"),
    "billing": _settings.table_name("billing"),
}


class ExactJSONAttribute(Attribute[Any]):
    """JSON stored as text with exact decimals (PynamoDB's JSONAttribute cannot encode Decimal)."""

    attr_type = STRING

    def serialize(self, value: Any) -> str | None:
        return None if value is None else jsoncodec.dumps(value)

    def deserialize(self, value: str) -> Any:
        return jsoncodec.loads(value)


class DecimalAttribute(Attribute[Decimal]):
    """A DynamoDB number kept exact (PynamoDB's NumberAttribute goes through float)."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return format(Decimal(value), "f")

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class HashPathAttribute(Attribute[list[str]]):
    """An inclusion proof: its SHA-256 hashes as one binary value (32 bytes each), read back as hex.

    One value instead of a list of hex strings: half the bytes on the item (a verified delta stays
    within 1 KB write units longer) and one attribute for every layer to encode instead of one per
    hash. Items written as a list of hex strings (the earlier layout) still read."""

    attr_type = BINARY

    def serialize(self, value: list[str]) -> bytes:
        return bytes.fromhex("".join(value))

    def deserialize(self, value: Any) -> list[str]:
        if isinstance(value, list):  # the earlier layout
            return [item["S"] for item in value]
        return [value[i : i + 32].hex() for i in range(0, len(value), 32)]

    def get_value(self, value: dict[str, Any]) -> Any:
        return value["L"] if "L" in value else super().get_value(value)


def _meta(table: str) -> type:
    class Meta:
        table_name = TABLES[table]
        region = _settings.region

    return Meta


class _Keyed(Model):
    """Generic ``pk``/``sk`` keys shared by every table."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


# --- tenants table: tenant profiles, users, sessions, platform tokens, counters, signing keys ---


class DirectoryIndex(GlobalSecondaryIndex):
    """Sparse: only tenants listed by the platform directory carry these attributes."""

    class Meta:
        index_name = "directory-index"
        projection = AllProjection()

    directory_pk = UnicodeAttribute(hash_key=True)
    directory_sk = UnicodeAttribute(range_key=True)


class BlockIndex(GlobalSecondaryIndex):
    """Sparse: tenants flagged for missing payments whose dashboard block is not recorded yet, by limit date."""

    class Meta:
        index_name = "block-index"
        projection = AllProjection()

    block_pk = UnicodeAttribute(hash_key=True)
    block_sk = UnicodeAttribute(range_key=True)


class StripeCustomerIndex(GlobalSecondaryIndex):
    """Sparse: finds the tenant of a Stripe customer (invoice events name only the customer)."""

    class Meta:
        index_name = "stripe-customer-index"
        projection = AllProjection()

    stripe_customer_id = UnicodeAttribute(hash_key=True)


class TenantRecord(_Keyed):
    Meta = _meta("tenants")
    tenant_id = UnicodeAttribute()
    company_name = UnicodeAttribute()
    status = UnicodeAttribute()
    billing_mode = UnicodeAttribute()
    plan = UnicodeAttribute()
    environments = MapAttribute(default=dict)
    stripe_customer_id = UnicodeAttribute(null=True)
    stripe_subscription_id = UnicodeAttribute(null=True)
    stripe_subscription_status = UnicodeAttribute(null=True)
    stripe_current_period_end = UTCDateTimeAttribute(null=True)
    cancel_at_period_end = BooleanAttribute(default=False)
    subdomain = UnicodeAttribute(null=True)
    final_domain = UnicodeAttribute(null=True)
    https = BooleanAttribute(default=True)
    lang = UnicodeAttribute(default="en")
    has_unpaid_invoices_at = UTCDateTimeAttribute(null=True)
    dashboard_blocked_at = UTCDateTimeAttribute(null=True)
    plan_changes = JSONAttribute(null=True)  # [[at ISO, plan, billing mode], ...], oldest first
    deleted_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    directory_pk = UnicodeAttribute(null=True)
    directory_sk = UnicodeAttribute(null=True)
    directory_index = DirectoryIndex()
    block_pk = UnicodeAttribute(null=True)
    block_sk = UnicodeAttribute(null=True)
    block_index = BlockIndex()
    stripe_customer_index = StripeCustomerIndex()
    version = VersionAttribute()


class UserRecord(_Keyed):
    Meta = _meta("tenants")
    tenant_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    role = UnicodeAttribute()
    status = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class SessionRecord(_Keyed):
    Meta = _meta("tenants")
    tenant_id = UnicodeAttribute()
    session_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    role = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    meta = JSONAttribute(default=dict)
    ttl = TTLAttribute(null=True)


class PlatformTokenRecord(_Keyed):
    Meta = _meta("tenants")
    token_id = UnicodeAttribute()
    name = UnicodeAttribute()
    abilities = ListAttribute(of=UnicodeAttribute, default=list)
    secret_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)
    last_used_at = UTCDateTimeAttribute(null=True)


class RateWindowRecord(_Keyed):
    """``T#1#PTOKEN#{token}#RATE`` / ``M#{YYYYMMDDHHMM}``: a platform token's requests in one UTC minute."""

    Meta = _meta("tenants")
    hits = NumberAttribute(null=True)
    ttl = TTLAttribute(null=True)


class CounterRecord(_Keyed):
    Meta = _meta("tenants")
    value = NumberAttribute(default=0)


class SigningKeyRecord(_Keyed):
    """The signing-key registry (``SIGNING_KEYS`` partition): written once per key, never updated."""

    Meta = _meta("tenants")
    key_id = UnicodeAttribute()
    algorithm = UnicodeAttribute()
    public_key = UnicodeAttribute()  # base64 of the raw 32-byte key
    first_seen_at = UTCDateTimeAttribute()


# --- api-keys table ---


class KeyIdIndex(GlobalSecondaryIndex):
    """Authentication looks a presented key up by its public id, across tenants."""

    class Meta:
        index_name = "key-id-index"
        projection = AllProjection()

    key_id = UnicodeAttribute(hash_key=True)


class ApiKeyRecord(_Keyed):
    Meta = _meta("api-keys")
    key_id = UnicodeAttribute()
    key_id_index = KeyIdIndex()
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    name = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    last4 = UnicodeAttribute()
    status = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    rotated_at = UTCDateTimeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)
    last_used_at = UTCDateTimeAttribute(null=True)


# --- audit table ---


class AuditRecord(_Keyed):
    Meta = _meta("audit")
    entry_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    target = UnicodeAttribute()
    environment = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()
    details = ExactJSONAttribute(default=dict)


# --- customers, ledger and usage tables (the Balance API builds on these) ---


class CustomerNameIndex(GlobalSecondaryIndex):
    """A tenant environment's customers by case-folded display name (the directory's default order).
    Keys only: a delta's update of the row never rewrites the index (nor its tenant-wide partition)."""

    class Meta:
        index_name = "customer-name-index"
        projection = KeysOnlyProjection()

    list_pk = UnicodeAttribute(hash_key=True)
    name_key = UnicodeAttribute(range_key=True)


class CustomerIdIndex(GlobalSecondaryIndex):
    """A tenant environment's customers by id (keys only, like the name index)."""

    class Meta:
        index_name = "customer-id-index"
        projection = KeysOnlyProjection()

    list_pk = UnicodeAttribute(hash_key=True)
    customer_id = UnicodeAttribute(range_key=True)


class CustomerRecord(_Keyed):
    """One customer, in a partition of its own (``keys.customer_pk``): kept current by every accepted delta."""

    Meta = _meta("customers")
    name_index = CustomerNameIndex()
    id_index = CustomerIdIndex()
    list_pk = UnicodeAttribute(null=True)
    name_key = UnicodeAttribute(null=True)
    policy = UnicodeAttribute(null=True)
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    display_name = UnicodeAttribute()
    source = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    sharing_state_hint = UnicodeAttribute(null=True)
    event_cadence = UnicodeAttribute(null=True)
    unit_label = UnicodeAttribute(null=True)
    # Kept current by every accepted delta (one update per customer per transaction).
    last_seq = NumberAttribute(null=True)
    delta_count = NumberAttribute(null=True)
    balance = DecimalAttribute(null=True)
    last_delta_at = UTCDateTimeAttribute(null=True)
    cycle_period = UnicodeAttribute(null=True)
    cycle_count = NumberAttribute(null=True)
    cycle_net = DecimalAttribute(null=True)
    # Kept current by the verifier and by checkpoints.
    verified_count = NumberAttribute(null=True)
    failed_count = NumberAttribute(null=True)
    checkpoint_period = UnicodeAttribute(null=True)
    checkpoint_last_seq = NumberAttribute(null=True)


class CustomerStatsRecord(_Keyed):
    """``sk = STATS``: one shard of a tenant environment's totals for the summary (``keys.stats_pk``), moved
    by ADDs in the same transactions that create customers, accept, verify and fail deltas."""

    Meta = _meta("customers")
    customers = NumberAttribute(null=True)
    manual = NumberAttribute(null=True)
    integration = NumberAttribute(null=True)
    deltas = NumberAttribute(null=True)
    verified = NumberAttribute(null=True)
    failed = NumberAttribute(null=True)
    balance = DecimalAttribute(null=True)


class CreditAccountRecord(_Keyed):
    """The credit account (``sk = ACCOUNT``): the posted ledger's state, moved only by ledger writers
    (conditioned on ``entry_count``); the escrow ``pool`` only ever by conditional ADDs (domain/credits.py)."""

    Meta = _meta("ledger")
    tenant_id = UnicodeAttribute(null=True)
    credit_balance = NumberAttribute(default=0)
    reserved = NumberAttribute(default=0)  # posted reservations not yet resolved
    entry_count = NumberAttribute(default=0)
    pool = NumberAttribute(null=True)
    resolved = NumberAttribute(null=True)
    posted_deltas = NumberAttribute(null=True)
    # each lane's seal settlements posted so far: {"lane": [credits, released, deltas, seals]}
    posted_lanes = ExactJSONAttribute(null=True)


class CreditLaneRecord(_Keyed):
    """An escrow lane (``CREDITS#LANE#{n}`` / ``LANE``): its own partition, so acceptances spread their
    holds over ``HOLD_LANES`` items with conditional ADDs instead of queueing on one account row."""

    Meta = _meta("ledger")
    free = NumberAttribute(null=True)
    held_total = NumberAttribute(null=True)
    held_deltas = NumberAttribute(null=True)


class CreditSettlementRecord(_Keyed):
    """A lane's settlements (``CREDITS#SETTLE#{n}`` / ``SETTLE``): what seals resolved, cumulative, by ADDs.
    Apart from the lane's holds, so seals and acceptances never meet on an item (two transactions on one
    item conflict on DynamoDB, ADDs or not)."""

    Meta = _meta("ledger")
    settled = NumberAttribute(null=True)  # credits spent
    released = NumberAttribute(null=True)  # credits released
    settled_deltas = NumberAttribute(null=True)
    seals = NumberAttribute(null=True)


class LedgerEntryRecord(_Keyed):
    """Credit ledger entries (topup, reservation, settlement, release, refund); never updated."""

    Meta = _meta("ledger")
    tenant_id = UnicodeAttribute()
    entry_id = UnicodeAttribute()
    entry_type = UnicodeAttribute()
    amount = NumberAttribute()
    balance_after = NumberAttribute()
    description = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class UsageCounterRecord(_Keyed):
    """Per-tenant, per-period usage counters (both environments counted together)."""

    Meta = _meta("usage")
    tenant_id = UnicodeAttribute(null=True)
    period = UnicodeAttribute(null=True)
    consumed = NumberAttribute(default=0)
    consumed_sandbox = NumberAttribute(null=True)
    consumed_production = NumberAttribute(null=True)
    released = NumberAttribute(null=True)


# --- deltas table: one item per delta, keyed by record id; reference guards ---


class CustomerSeqIndex(GlobalSecondaryIndex):
    """A customer's deltas in sequence order (detail pages, checkpoints, gaps)."""

    class Meta:
        index_name = "customer-seq-index"
        projection = AllProjection()

    customer_key = UnicodeAttribute(hash_key=True)
    seq_key = UnicodeAttribute(range_key=True)


class PendingIndex(GlobalSecondaryIndex):
    """Sparse: only deltas awaiting verification carry ``pending_shard`` (the sweep's work list). Projects
    just what the sweep reads, so each entry is one small write on accept and one on resolve."""

    class Meta:
        index_name = "pending-index"
        projection = IncludeProjection(["tenant_id", "environment", "record_id"])

    pending_shard = UnicodeAttribute(hash_key=True)
    pending_since = UnicodeAttribute(range_key=True)


class RootIndex(GlobalSecondaryIndex):
    """Public verification finds a sealed batch by its Merkle root (sparse: batch records only)."""

    class Meta:
        index_name = "root-index"
        projection = AllProjection()

    root_hex = UnicodeAttribute(hash_key=True)


class DeltaRecord(_Keyed):
    Meta = _meta("deltas")
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    record_id = UnicodeAttribute()
    receipt_id = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    customer_key = UnicodeAttribute()
    seq_key = UnicodeAttribute()
    customer_seq_index = CustomerSeqIndex()
    sequence_number = NumberAttribute()
    delta = DecimalAttribute()
    reason = UnicodeAttribute()
    reference_id = UnicodeAttribute(null=True)
    metadata = ExactJSONAttribute(null=True)
    adjusts = UnicodeAttribute(null=True)
    period = UnicodeAttribute()
    status = UnicodeAttribute()
    credits_reserved = NumberAttribute(default=0)
    credit_state = UnicodeAttribute()
    credit_lane = NumberAttribute(null=True)  # the escrow lane its hold came from
    error = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    pending_shard = UnicodeAttribute(null=True)
    pending_since = UnicodeAttribute(null=True)
    pending_index = PendingIndex()
    content_hash = UnicodeAttribute(null=True)
    leaf_index = NumberAttribute(null=True)
    proof = HashPathAttribute(null=True)
    batch_id = UnicodeAttribute(null=True)
    proof_root = UnicodeAttribute(null=True)
    verified_at = UTCDateTimeAttribute(null=True)


class BatchRecord(_Keyed):
    """A sealed, signed Merkle batch; ``previous_root`` chains batches per chain of a tenant environment."""

    Meta = _meta("deltas")
    batch_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    root_hex = UnicodeAttribute()
    root_index = RootIndex()
    tree_size = NumberAttribute()
    chain = NumberAttribute(null=True)  # absent: chain 0 (every batch sealed before there were several chains)
    sequence = NumberAttribute()  # per chain
    previous_root = UnicodeAttribute(null=True)
    sealed_at = UTCDateTimeAttribute()
    key_id = UnicodeAttribute()
    signature = UnicodeAttribute()
    record_ids = ListAttribute(of=UnicodeAttribute)
    leaf_hashes = ListAttribute(of=UnicodeAttribute)


class BatchCountsRecord(_Keyed):
    """Beside a sealed batch (``sk = COUNTS``): its per-customer verified counts, still to be added to the
    customer rows. Written by the seal, deleted by the one transaction that adds them (exactly once); on
    the pending index while it exists, so the sweep finishes what a crash left (``record_id`` = batch id)."""

    Meta = _meta("deltas")
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    record_id = UnicodeAttribute()
    counts = ExactJSONAttribute()
    pending_shard = UnicodeAttribute(null=True)
    pending_since = UnicodeAttribute(null=True)


class ChainHeadRecord(_Keyed):
    """The latest batch of one of a tenant environment's chains: that chain's head (conditioned on
    ``sequence``)."""

    Meta = _meta("deltas")
    sequence = NumberAttribute()
    last_root = UnicodeAttribute()
    last_batch_id = UnicodeAttribute()


class CheckpointPeriodIndex(GlobalSecondaryIndex):
    """Every customer's checkpoints of one tenant environment and period (exports, the Balance API list)."""

    class Meta:
        index_name = "checkpoint-period-index"
        projection = AllProjection()

    period_key = UnicodeAttribute(hash_key=True)
    period_sort = UnicodeAttribute(range_key=True)


class CheckpointRecord(_Keyed):
    """A customer's signed checkpoint of one period (``sk = {period}#{sequence}``); never updated."""

    Meta = _meta("deltas")
    period_key = UnicodeAttribute()
    period_sort = UnicodeAttribute()
    period_index = CheckpointPeriodIndex()
    checkpoint_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    period = UnicodeAttribute()
    sequence = NumberAttribute()
    checkpoint_root = UnicodeAttribute()  # not `root_hex`: that would put it in the batches' root-index
    tree_size = NumberAttribute()
    first_sequence = NumberAttribute(null=True)
    last_sequence = NumberAttribute(null=True)
    net_change = DecimalAttribute()
    previous_root = UnicodeAttribute(null=True)
    previous_tree_size = NumberAttribute(null=True)
    consistency_proof = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UTCDateTimeAttribute()
    key_id = UnicodeAttribute()
    signature = UnicodeAttribute()


class ReferenceGuardRecord(_Keyed):
    """Makes ``referenceId`` unique per customer; holds the first acceptance's answer."""

    Meta = _meta("deltas")
    record_id = UnicodeAttribute()
    response = UnicodeAttribute()  # JSON text (exact decimals)
    created_at = UTCDateTimeAttribute()


# --- idempotency table ---


class IdempotencyRecord(_Keyed):
    Meta = _meta("idempotency")
    state = UnicodeAttribute()  # IN_PROGRESS | COMPLETED
    request_hash = UnicodeAttribute()
    status_code = NumberAttribute(null=True)
    response = UnicodeAttribute(null=True)  # the response body, replayed byte for byte
    locked_until = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    ttl = TTLAttribute()


# --- webhooks table: endpoints, deliveries, and the outbox of events awaiting fan-out ---


class WebhookEndpointRecord(_Keyed):
    Meta = _meta("webhooks")
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    endpoint_id = UnicodeAttribute()
    url = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    secret = UnicodeAttribute()  # needed to sign; the table is encrypted at rest and the API never returns it
    events = ListAttribute(of=UnicodeAttribute)
    status = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    disabled_at = UTCDateTimeAttribute(null=True)


class EndpointIndex(GlobalSecondaryIndex):
    """One endpoint's delivery history, newest event first."""

    class Meta:
        index_name = "endpoint-index"
        projection = AllProjection()

    endpoint_key = UnicodeAttribute(hash_key=True)
    event_id = UnicodeAttribute(range_key=True)


class DueIndex(GlobalSecondaryIndex):
    """Sparse: only deliveries waiting for an attempt carry ``due_shard`` (the retry sweep's work list)."""

    class Meta:
        index_name = "due-index"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_at = UnicodeAttribute(range_key=True)


class WebhookDeliveryRecord(_Keyed):
    Meta = _meta("webhooks")
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    event_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    endpoint_id = UnicodeAttribute()
    endpoint_key = UnicodeAttribute()
    endpoint_index = EndpointIndex()
    url = UnicodeAttribute()
    body = UnicodeAttribute()  # the exact bytes every attempt sends and signs
    status = UnicodeAttribute()
    attempts = ExactJSONAttribute(default=list)
    attempt_count = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute()
    next_attempt_at = UTCDateTimeAttribute(null=True)
    delivered_at = UTCDateTimeAttribute(null=True)
    window_start = NumberAttribute(default=1)
    window_started_at = UTCDateTimeAttribute(null=True)
    lease_until = UTCDateTimeAttribute(null=True)  # an attempt in flight (one sender at a time)
    due_shard = UnicodeAttribute(null=True)
    due_at = UnicodeAttribute(null=True)
    due_index = DueIndex()
    ttl = TTLAttribute(null=True)


class OutboxRecord(_Keyed):
    """Events written in the same transaction as the change they announce; fanned out, then deleted."""

    Meta = _meta("webhooks")
    outbox_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    environment = UnicodeAttribute()
    events = ExactJSONAttribute()
    created_at = UTCDateTimeAttribute()
    progress = NumberAttribute(default=0)  # deliveries already written, when fan-out takes several transactions
    targets = ListAttribute(of=UnicodeAttribute, null=True)  # endpoint ids fixed by the first partial fan-out


#: Every model, for schema checks and the local stack.
# --- billing table: Stripe events received, period closes, the local Stripe stand-in's objects ---


class StripeEventRecord(_Keyed):
    """``STRIPE_EVENT#{id}`` / ``EVENT``: the exactly-once guard of the Stripe webhook (services/stripe_webhooks.py)."""

    Meta = _meta("billing")
    event_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    state = UnicodeAttribute()  # received | handled
    received_at = UTCDateTimeAttribute()
    handled_at = UTCDateTimeAttribute(null=True)
    tenant_id = UnicodeAttribute(null=True)
    outcome = UnicodeAttribute(null=True)  # what the handler did (or "ignored" for unknown types)
    ttl = TTLAttribute(null=True)


class InvoiceStateRecord(_Keyed):
    """``INVOICE#{id}`` / ``INVOICE``: paid wins over a failure of the same invoice, whatever the order."""

    Meta = _meta("billing")
    invoice_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    status = UnicodeAttribute()  # paid | failed
    updated_at = UTCDateTimeAttribute()


class PeriodCloseRecord(_Keyed):
    """``T#{tenant}`` / ``PERIOD#{YYYY-MM}``: a closed month's final usage and how far its close has got."""

    Meta = _meta("billing")
    tenant_id = UnicodeAttribute()
    period = UnicodeAttribute()
    data = ExactJSONAttribute()  # figures and step states, see services/rollover.py
    updated_at = UTCDateTimeAttribute()
    version = VersionAttribute()  # each step's write is conditioned on the state it read


class LocalStripeObjectRecord(_Keyed):
    """``LOCALSTRIPE#{object id}`` / ``OBJECT``: the local Stripe stand-in's customers, sessions, subscriptions,
    invoices and meter events, as Stripe-shaped JSON."""

    Meta = _meta("billing")
    object_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    data = ExactJSONAttribute()
    updated_at = UTCDateTimeAttribute()


ALL_MODELS: tuple[type[Model], ...] = (
    StripeEventRecord,
    InvoiceStateRecord,
    PeriodCloseRecord,
    LocalStripeObjectRecord,
    TenantRecord,
    UserRecord,
    SessionRecord,
    PlatformTokenRecord,
    RateWindowRecord,
    CounterRecord,
    SigningKeyRecord,
    ApiKeyRecord,
    AuditRecord,
    CustomerRecord,
    CreditAccountRecord,
    CreditLaneRecord,
    CreditSettlementRecord,
    LedgerEntryRecord,
    UsageCounterRecord,
    DeltaRecord,
    BatchRecord,
    BatchCountsRecord,
    ChainHeadRecord,
    CheckpointRecord,
    ReferenceGuardRecord,
    IdempotencyRecord,
    WebhookEndpointRecord,
    WebhookDeliveryRecord,
    OutboxRecord,
)
