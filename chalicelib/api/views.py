"""View builders: domain objects (and the services' results) as the dicts the API answers.

Every route module shapes its answers here, so two routes showing the same thing show it the same way and
no route module imports another for its views. Loaded with ``import app`` (every cold start): only what the
route modules load anyway is imported at the top; the rest is named for type checkers only.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chalicelib.api.responses import ok_body
from chalicelib.domain import directory
from chalicelib.domain.clock import iso_ms, iso_us, period_of
from chalicelib.domain.fingerprints import delta_content
from chalicelib.domain.identity import Environment
from chalicelib.domain.merkle import leaf_hash
from chalicelib.services.customers import customer_event
from chalicelib.services.idempotency import Answer
from chalicelib.services.ingest import Outcome, result_view
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.domain.access import ApiKey
    from chalicelib.domain.audit import AuditEntry
    from chalicelib.domain.billing import Capacity
    from chalicelib.domain.checkpoints import Checkpoint
    from chalicelib.domain.credits import CreditAccount, LedgerEntry
    from chalicelib.domain.customers import Customer
    from chalicelib.domain.deltas import Delta
    from chalicelib.domain.tenants import Tenant
    from chalicelib.domain.webhooks import Delivery, Endpoint
    from chalicelib.services.checkpoints import Candidates
    from chalicelib.services.deltas import DeltaProof, RootCheck
    from chalicelib.services.derive import Comparison, Derivation
    from chalicelib.services.packages import InvoiceProof, SharedPackage
    from chalicelib.services.records import BalanceDetail, CustomerDetail, GapReport
    from chalicelib.services.usage import UsageFigures


# --- customers ------------------------------------------------------------------------------------


def dashboard_customer_view(customer: Customer) -> dict[str, Any]:
    return {**customer_event(customer), "updatedAt": iso_ms(customer.updated_at)}


def listed_customer_view(customer: Customer) -> dict[str, Any]:
    return {**dashboard_customer_view(customer), "balance": customer.balance, "deltaCount": customer.delta_count,
            "lastSequenceNumber": customer.last_seq, "lastDeltaAt": iso_ms(customer.last_delta_at)}


def directory_view(customer: Customer, now: Any) -> dict[str, Any]:
    """Seed 001 ``include=directory``: everything derives from the customer item and the clock."""
    cycle_count, cycle_net = directory.current_cycle(customer, now)
    close = directory.next_close(now)
    interval = directory.EXPECTED_INTERVAL.get(customer.event_cadence) if customer.event_cadence else None
    health = directory.health(customer, now)
    return {
        **listed_customer_view(customer),
        "sharingState": str(customer.sharing_state_hint),
        "cycleSummary": {
            "period": period_of(now), "deltaCount": cycle_count, "netChange": cycle_net,
            "checkpointed": cycle_count > 0 and not directory.open_in_cycle(customer, now),
            "latestCheckpointPeriod": customer.checkpoint_period,
        },
        "verificationState": str(directory.verification_state(customer)),
        "nextCloseDate": iso_ms(close),
        "freshness": {
            "lastDeltaAt": iso_ms(customer.last_delta_at),
            "ageSeconds": int((now - customer.last_delta_at).total_seconds()) if customer.last_delta_at else None,
            "expectedWithinSeconds": int(interval.total_seconds()) if interval else None,
            "health": str(health),
        },
        "health": str(health),
        "counts": {"deltas": customer.delta_count, "verified": customer.verified_count,
                   "awaitingVerification": customer.awaiting_verification, "failed": customer.failed_count},
    }


def dashboard_customer_detail_view(detail: CustomerDetail, *, page: int, limit: int) -> dict[str, Any]:
    customer, activity, latest = detail.customer, detail.activity, detail.latest_checkpoint
    return {
        **listed_customer_view(customer),
        "latestCheckpoint": checkpoint_view(latest) if latest else None,
        "activity": _activity(activity.items, page=page, limit=limit, total=activity.total),
    }


def _activity(deltas: list[Delta], *, page: int, limit: int, total: int) -> dict[str, Any]:
    """A page of a customer's deltas in a customer record."""
    return {"items": [delta_view(d) for d in deltas], "page": page, "limit": limit, "total": total,
            "hasMore": page * limit < total}


def compact_customer_view(customer: Customer) -> dict[str, Any]:
    """A Balance API list item (SDK ``balance.customers``)."""
    return {
        "customerId": customer.customer_id,
        "displayName": customer.display_name,
        "source": str(customer.source),
        "createdAt": iso_ms(customer.created_at),
    }


def balance_customer_view(detail: BalanceDetail, *, page: int, limit: int) -> dict[str, Any]:
    """SDK ``customer``."""
    customer = detail.customer
    total = customer.delta_count
    summary = detail.period_summary
    return {
        "customerId": customer.customer_id,
        "displayName": customer.display_name,
        "source": str(customer.source),
        "computedBalance": customer.balance,
        "totalDeltas": total,
        "lastSequenceNumber": customer.last_seq,
        "lastDeltaAt": iso_ms(customer.last_delta_at),
        "createdAt": iso_ms(customer.created_at),
        "recentActivity": _activity(detail.recent, page=page, limit=limit, total=total),
        "periodSummary": None if summary is None else {
            "period": summary.period,
            "netChange": summary.net_change,
            "deltaCount": summary.delta_count,
            "verified": summary.verified,
            "failed": summary.failed,
            "awaitingVerification": summary.awaiting_verification,
        },
    }


def gaps_view(report: GapReport) -> dict[str, Any]:
    """SDK ``gaps``."""
    return {
        "customerId": report.customer.customer_id,
        "fromSequence": report.first,
        "toSequence": report.last,
        "lastSequenceNumber": report.customer.last_seq,
        "hasGaps": bool(report.runs),
        "gaps": [{"fromSequence": g.first, "toSequence": g.last, "count": g.count, "reason": g.reason}
                 for g in report.runs],
    }


# --- deltas ---------------------------------------------------------------------------------------


def delta_view(delta: Delta) -> dict:
    return {
        "recordId": delta.record_id,
        "receiptId": delta.receipt_id,
        "status": str(delta.status),
        "customerId": delta.customer_id,
        "delta": delta.delta,
        "sequenceNumber": delta.sequence_number,
        "reason": delta.reason,
        "referenceId": delta.reference_id,
        "metadata": delta.metadata,
        "adjusts": delta.adjusts,
        "period": delta.period,
        "environment": str(delta.environment),
        "creditsReserved": delta.credits_reserved,
        "error": delta.error,
        "createdAt": iso_ms(delta.created_at),
        "updatedAt": iso_ms(delta.updated_at or delta.created_at),
        "contentHash": delta.content_hash,
        "proofHash": leaf_hash(bytes.fromhex(delta.content_hash)).hex() if delta.content_hash else None,
        "batchId": delta.batch_id,
        "leafIndex": delta.leaf_index,
        "inclusionProof": delta.proof,
        "proofRoot": delta.proof_root,
        "verifiedAt": iso_ms(delta.verified_at),
    }


def accepted_delta_answer(outcome: Outcome) -> Answer:
    """The 202 of ``POST /api/v1/balance/delta`` (SDK ``emit``), as stored for an ``Idempotency-Key`` replay."""
    data = dict(outcome.data or {})
    if outcome.idempotent:
        data["idempotent"] = True
    return Answer(202, ok_body(data, 202))


def batch_answer(outcomes: list[Outcome]) -> Answer:
    """The 202 of ``POST /api/v1/balance/delta/batch``: an answer per item."""
    results = [result_view(o) for o in outcomes]
    queued = sum(1 for o in outcomes if o.status == "QUEUED")
    data = {"totalQueued": queued, "totalFailed": len(outcomes) - queued, "results": results}
    return Answer(202, ok_body(data, 202))


PROOF_TYPE = "tally.delta-proof/v1"


def delta_proof_view(proof: DeltaProof) -> dict[str, Any]:
    """Everything needed to check one verified delta offline (``tally verify FILE``)."""
    delta, batch = proof.delta, proof.batch
    return {
        "type": PROOF_TYPE,
        "recordId": delta.record_id,
        "content": delta_content(delta),
        "contentHash": delta.content_hash,
        "leafHash": leaf_hash(bytes.fromhex(delta.content_hash)).hex(),
        "leafIndex": delta.leaf_index,
        "treeSize": batch.tree_size,
        "inclusionProof": list(delta.proof or []),
        "proofRoot": batch.root,
        "batch": {"statement": batch.statement(), "signature": batch.signature},
        "publicKey": {"keyId": batch.key_id, "algorithm": "Ed25519",
                      "publicKey": base64.b64encode(proof.public_key).decode()},
    }


def root_check_view(proof_root: str, check: RootCheck | None) -> dict[str, Any]:
    """SDK ``verify``: only what the signed batch commits to (record ids and leaf hashes)."""
    if check is None:
        return {"verified": False, "proofRoot": proof_root, "recordedAt": None, "summary": None,
                "records": [], "verification": {"reason": "No sealed batch has this root."}}
    batch = check.batch
    public_key = base64.b64encode(check.public_key).decode() if check.public_key is not None else None
    return {
        "verified": bool(check.signature_valid and check.root_valid),
        "proofRoot": batch.root,
        "recordedAt": iso_ms(batch.sealed_at),
        "summary": {"batchId": batch.batch_id, "treeSize": batch.tree_size, "chain": batch.chain,
                    "sequence": batch.sequence, "environment": batch.environment, "previousRoot": batch.previous_root},
        "records": [{"recordId": r, "leafIndex": i, "leafHash": h}
                    for i, (r, h) in enumerate(zip(batch.record_ids, batch.leaf_hashes, strict=True))],
        # The public key travels with the statement, so the saved answer checks offline (`tally verify`).
        "verification": {"algorithm": "Ed25519", "keyId": batch.key_id, "publicKey": public_key,
                         "signature": batch.signature,
                         "statement": batch.statement(), "signatureValid": check.signature_valid,
                         "rootValid": check.root_valid},
    }


def usage_view(figures: UsageFigures, capacity: Capacity, account: CreditAccount) -> dict[str, Any]:
    """SDK ``balance.usage()``."""
    plan, counter = figures.plan, figures.counter
    return {
        "allowed": capacity.limit is None or capacity.limit > 0,
        "remaining": capacity.limit,
        "period": counter.period,
        "plan": plan.tier,
        "billingMode": str(figures.tenant.billing_mode),
        "consumed": counter.consumed,
        "allotment": plan.monthly_allotment,
        "remainingDeltas": figures.remaining,
        "overage": figures.overage_count,
        "overageChargesUsd": figures.overage_charges_usd,
        "byEnvironment": {str(env): counter.by_environment.get(str(env), 0) for env in Environment},
        "credits": {"creditBalance": account.credit_balance, "availableBalance": account.available,
                    "reserved": account.reserved},
    }


# --- checkpoints, derivations, receipts, packages -------------------------------------------------


def checkpoint_view(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "checkpointId": checkpoint.checkpoint_id,
        "customerId": checkpoint.customer_id,
        "period": checkpoint.period,
        "sequence": checkpoint.sequence,
        "root": checkpoint.root,
        "treeSize": checkpoint.tree_size,
        "firstSequence": checkpoint.first_sequence,
        "lastSequence": checkpoint.last_sequence,
        "netChange": checkpoint.net_change,
        "previousRoot": checkpoint.previous_root,
        "previousTreeSize": checkpoint.previous_tree_size,
        "consistencyProof": list(checkpoint.consistency_proof),
        "createdAt": iso_ms(checkpoint.created_at),
        "keyId": checkpoint.key_id,
        "signature": checkpoint.signature,
        "statement": checkpoint.statement(),
    }


def candidates_view(customer_id: str, found: Candidates, *, limit: int) -> dict[str, Any]:
    """What the next checkpoint would add, with fingerprints (``contentHash``) and leaf hashes (``proofHash``)."""
    return {
        "customerId": customer_id,
        "period": found.period,
        "latestCheckpoint": checkpoint_view(found.latest) if found.latest else None,
        "total": len(found.deltas),
        "items": [{"recordId": d.record_id, "sequenceNumber": d.sequence_number, "delta": d.delta,
                   "contentHash": d.content_hash, "proofHash": leaf_hash(bytes.fromhex(d.content_hash or "")).hex(),
                   "verifiedAt": iso_ms(d.verified_at)} for d in found.deltas[:limit]],
        "awaitingVerification": found.coverage.waiting,
        "failedSkipped": found.coverage.skipped_failed,
    }


def derivation_view(d: Derivation) -> dict:
    counted = d.counted
    return {
        "customerId": d.customer.customer_id,
        "scope": {"period": d.scope.period if d.scope else None,
                  "startDate": iso_ms(d.scope.start) if d.scope else None,
                  "endDate": iso_ms(d.scope.end) if d.scope else None,
                  "startingCheckpoint": d.checkpoint.checkpoint_id if d.checkpoint else None},
        "startingBalance": d.starting_balance,
        "netChange": d.net_change,
        "derivedBalance": d.derived_balance,
        "deltaCount": len(counted),
        "failedExcluded": len(d.deltas) - len(counted),
        "awaitingVerification": sum(1 for x in d.deltas if x.awaiting_verification),
        "settled": d.settled,
        "firstSequence": d.deltas[0].sequence_number if d.deltas else None,
        "lastSequence": d.deltas[-1].sequence_number if d.deltas else None,
    }


def comparison_view(comparison: Comparison) -> dict[str, Any]:
    """SDK ``compare``: each party's balance against the derived one, exactly."""
    yours, theirs = comparison.yours, comparison.theirs
    derived = comparison.derivation.derived_balance
    return {**derivation_view(comparison.derivation), "yourBalance": yours, "theirBalance": theirs,
            "yoursMatches": yours == derived, "theirsMatches": theirs == derived,
            "partiesAgree": yours == theirs, "match": yours == derived == theirs,
            "yourDifference": yours - derived, "theirDifference": theirs - derived}


def receipt_view(receipt: Any) -> dict[str, Any]:
    """The signed statement, with its amounts as JSON numbers too (the statement keeps exact strings)."""
    statement = receipt.statement
    return {
        **{k: statement[k] for k in ("receiptId", "customerId", "period", "startDate", "endDate", "deltaCount",
                                     "verifiedCount", "failedCount", "awaitingVerification", "firstSequence",
                                     "lastSequence", "generatedAt", "keyId")},
        "startingBalance": receipt.starting_balance,
        "finalBalance": receipt.final_balance,
        "netChange": receipt.net_change,
        "latestCheckpoint": statement["checkpoint"],
        "statement": statement,
        "signature": receipt.signature,
        "verificationKeysUrl": f"{get_settings().public_base_url}/api/v1/verification-keys",
    }


def _package_url(shared: SharedPackage) -> str:
    return f"{get_settings().public_base_url}/api/v1/verification-packages/{shared.token}"


def package_link_view(customer_id: str, shared: SharedPackage) -> dict[str, Any]:
    """A new verification package's link, shown once."""
    return {"packageId": shared.package_id, "customerId": customer_id, "period": shared.checkpoint.period,
            "checkpointId": shared.checkpoint.checkpoint_id, "checkpointRoot": shared.checkpoint.root,
            "treeSize": shared.checkpoint.tree_size, "sampleSize": shared.sample_size, "url": _package_url(shared),
            "expiresAt": iso_ms(shared.expires_at), "sha256": shared.sha256,
            "warning": "Anyone with this link can read the sampled deltas until it expires; it is shown once."}


def invoice_proof_view(proof: InvoiceProof) -> dict[str, Any]:
    """SDK ``invoice_proof``: the receipt, and the customer's link when the scope is one whole month."""
    receipt = receipt_view(proof.receipt)
    link = host = None
    hint = "This scope spans more than one UTC month: the receipt's signature is the proof; no sample link."
    if proof.package is not None:
        link = _package_url(proof.package)
        host = urlsplit(link).hostname
        hint = (f"No login needed until {iso_ms(proof.package.expires_at)}: open the link, save the JSON and run "
                "`tally verify` on it to check every hash, proof and signature offline.")
    return {**receipt,
            "verificationApiUrl": receipt["verificationKeysUrl"],
            "customerLinkUrl": link, "customerLinkHost": host, "accessHint": hint}


# --- tenant, keys, audit, credits, webhooks, platform ---------------------------------------------


def tenant_view(tenant: Tenant) -> dict:
    return {
        "id": tenant.id,
        "companyName": tenant.company_name,
        "status": str(tenant.status),
        "billingMode": str(tenant.billing_mode),
        "environments": {
            "sandbox": str(tenant.environments.get("sandbox", "not_provisioned")),
            "production": str(tenant.environments.get("production", "not_provisioned")),
        },
        "createdAt": iso_ms(tenant.created_at),
        "updatedAt": iso_ms(tenant.updated_at),
    }


KEY_ONCE = "Store this key now: it is shown only once."


def key_view(key: ApiKey) -> dict:
    return {
        "id": key.key_id,
        "name": key.name,
        "environment": str(key.environment),
        "prefix": key.prefix,
        "last4": key.last4,
        "status": str(key.status),
        "createdAt": iso_ms(key.created_at),
        "createdBy": key.created_by,
        "rotatedAt": iso_ms(key.rotated_at),
        "revokedAt": iso_ms(key.revoked_at),
        "lastUsedAt": iso_ms(key.last_used_at),
    }


def key_with_secret_view(key: ApiKey, full_key: str) -> dict:
    return {**key_view(key), "fullKey": full_key, "warning": KEY_ONCE}


def audit_entry_view(entry: AuditEntry) -> dict:
    return {
        "id": entry.entry_id,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "environment": entry.environment,
        "details": entry.details,
        "createdAt": iso_ms(entry.at),
    }


def credit_entry_view(entry: LedgerEntry) -> dict:
    return {
        "id": entry.entry_id,
        "type": str(entry.entry_type),
        "amount": entry.amount,
        "description": entry.description,
        "balanceAfter": entry.balance_after,
        "createdAt": iso_ms(entry.created_at),
    }


def endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.endpoint_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events),
        "environment": str(endpoint.environment),
        "status": str(endpoint.status),
        "secretHint": endpoint.secret_hint,
        "createdAt": iso_ms(endpoint.created_at),
        "createdBy": endpoint.created_by,
        "disabledAt": iso_ms(endpoint.disabled_at),
    }


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    last = delivery.attempts[-1] if delivery.attempts else None
    return {
        "eventId": delivery.event_id,
        "event": delivery.event_type,
        "endpointId": delivery.endpoint_id,
        "url": delivery.url,
        "status": str(delivery.status),
        # The SDK rewrites every `status` outside its delta vocabulary to QUEUED; this survives it.
        "delivered": delivery.status == "DELIVERED",
        "attemptCount": delivery.attempt_count,
        "lastAttemptAt": iso_ms(last.at) if last else None,
        "lastStatusCode": last.status_code if last else None,
        "lastError": last.error if last else None,
        "nextAttemptAt": iso_ms(delivery.next_attempt_at) if delivery.status == "PENDING" else None,
        "deliveredAt": iso_ms(delivery.delivered_at),
        "createdAt": iso_ms(delivery.created_at),
        "attempts": [{"number": a.number, "at": iso_ms(a.at), "statusCode": a.status_code,
                      "durationMs": a.duration_ms, "error": a.error} for a in delivery.attempts],
    }


def tenant_directory_view(tenant: Tenant) -> dict:
    """Seed 002: a tenant of the platform's directory."""
    return {
        "id": tenant.id,
        "name": tenant.company_name,
        "subdomain": tenant.subdomain,
        "final_domain": tenant.final_domain,
        "https": tenant.https,
        "lang": tenant.lang,
    }


def missing_payments_view(tenant: Tenant, now: datetime) -> dict:
    data = {
        "tenant_id": tenant.id,
        "has_unpaid_invoices_at": iso_us(tenant.has_unpaid_invoices_at),
        "dashboard_blocked": tenant.dashboard_blocked(now),
    }
    if tenant.missing_payment_limit_date is not None:
        data["missing_payment_limit_date"] = iso_us(tenant.missing_payment_limit_date)
    return data
