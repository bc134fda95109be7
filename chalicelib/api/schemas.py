"""JSON Schemas (OpenAPI 3.1 / JSON Schema 2020-12) of the response bodies, and the document's components:
these plus the request bodies of bodies.py, where each request body is declared once. Loaded with the first
``GET /openapi.json`` (and by the contract tests), not at cold start."""

from __future__ import annotations

from chalicelib.api.bodies import EVENT_CADENCES, HEX64, POLICIES, REQUESTS, SHARING_STATES, STR, obj

TS = {"type": "string", "format": "date-time"}
TS_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
STR_OR_NULL = {"type": ["string", "null"]}


def page_of(item_ref: str, *, with_total: bool) -> dict:
    props = {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item_ref}"}},
        "page": {"type": "integer", "minimum": 1},
        "limit": {"type": "integer", "minimum": 1},
        "nextCursor": STR_OR_NULL,
        "total": {"type": "integer", "minimum": 0},
    }
    required = ["items", "page", "limit", "nextCursor"] + (["total"] if with_total else [])
    return obj(required, props)


NUM = {"type": "number"}
WEBHOOK_EVENTS = ["delta.verified", "delta.failed", "verification.completed", "customer.created",
                  "tenant.dashboard_blocked", "tenant.dashboard_unblocked"]
WEBHOOK_ENDPOINT_REQUIRED = ["id", "url", "description", "events", "environment", "status", "secretHint", "createdAt",
                             "createdBy", "disabledAt"]
WEBHOOK_ENDPOINT = {
    "id": {"type": "string", "pattern": "^we_[A-Za-z0-9]+$"},
    "url": {"type": "string", "format": "uri"},
    "description": STR,
    "events": {"type": "array", "items": {"type": "string", "enum": WEBHOOK_EVENTS}},
    "environment": {"type": "string", "enum": ["sandbox", "production"]},
    "status": {"type": "string", "enum": ["active", "disabled"]},
    "secretHint": {"type": "string", "pattern": "^whsec_"},
    "createdAt": TS,
    "createdBy": STR,
    "disabledAt": TS_OR_NULL,
}
CHECKPOINT_REQUIRED = ["checkpointId", "customerId", "period", "sequence", "root", "treeSize", "firstSequence",
                       "lastSequence", "netChange", "previousRoot", "previousTreeSize", "consistencyProof",
                       "createdAt", "keyId", "signature", "statement"]
CHECKPOINT = {
    "checkpointId": {"type": "string", "pattern": "^chk_[A-Za-z0-9]+$"},
    "customerId": STR,
    "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
    "sequence": {"type": "integer", "minimum": 1},
    "root": HEX64,
    "treeSize": {"type": "integer", "minimum": 0},
    "firstSequence": {"type": ["integer", "null"]},
    "lastSequence": {"type": ["integer", "null"]},
    "netChange": NUM,
    "previousRoot": {"type": ["string", "null"]},
    "previousTreeSize": {"type": ["integer", "null"]},
    "consistencyProof": {"type": "array", "items": HEX64},
    "createdAt": TS,
    "keyId": STR,
    "signature": STR,
    "statement": {"type": "object"},
}
RECEIPT_REQUIRED = ["receiptId", "customerId", "period", "startDate", "endDate", "deltaCount", "verifiedCount",
                    "failedCount", "awaitingVerification", "firstSequence", "lastSequence", "generatedAt", "keyId",
                    "startingBalance", "finalBalance", "netChange", "latestCheckpoint", "statement", "signature",
                    "verificationKeysUrl"]
RECEIPT = {
    "receiptId": {"type": "string", "pattern": "^rct_"}, "customerId": STR, "period": STR_OR_NULL,
    "startDate": TS, "endDate": TS, "deltaCount": {"type": "integer", "minimum": 0},
    "verifiedCount": {"type": "integer", "minimum": 0}, "failedCount": {"type": "integer", "minimum": 0},
    "awaitingVerification": {"type": "integer", "minimum": 0}, "firstSequence": {"type": ["integer", "null"]},
    "lastSequence": {"type": ["integer", "null"]}, "generatedAt": TS, "keyId": STR,
    "startingBalance": NUM, "finalBalance": NUM, "netChange": NUM,
    "latestCheckpoint": {"type": ["object", "null"]}, "statement": {"type": "object"}, "signature": STR,
    "verificationKeysUrl": STR,
}
DERIVATION_REQUIRED = ["customerId", "scope", "startingBalance", "netChange", "derivedBalance", "deltaCount",
                       "failedExcluded", "awaitingVerification", "settled", "firstSequence", "lastSequence"]
DERIVATION = {
    "customerId": STR,
    "scope": {"type": "object", "required": ["period", "startDate", "endDate", "startingCheckpoint"],
              "properties": {"period": STR_OR_NULL, "startDate": TS_OR_NULL, "endDate": TS_OR_NULL,
                             "startingCheckpoint": STR_OR_NULL}, "additionalProperties": False},
    "startingBalance": NUM,
    "netChange": NUM,
    "derivedBalance": NUM,
    "deltaCount": {"type": "integer", "minimum": 0},
    "failedExcluded": {"type": "integer", "minimum": 0},
    "awaitingVerification": {"type": "integer", "minimum": 0},
    "settled": {"type": "boolean"},
    "firstSequence": {"type": ["integer", "null"]},
    "lastSequence": {"type": ["integer", "null"]},
}
HEALTHS = ["HEALTHY", "LATE", "STALE", "NO_ACTIVITY", "UNMONITORED"]
COUNT = {"type": "integer", "minimum": 0}
LISTED_CUSTOMER_REQUIRED = ["customerId", "displayName", "source", "sharingStateHint", "eventCadence", "unitLabel",
                            "policy", "environment", "createdAt", "updatedAt", "balance", "deltaCount",
                            "lastSequenceNumber", "lastDeltaAt"]
LISTED_CUSTOMER = {
    "customerId": STR, "displayName": STR, "source": {"type": "string", "enum": ["integration", "manual"]},
    "sharingStateHint": {"type": "string", "enum": SHARING_STATES},
    "eventCadence": {"type": ["string", "null"], "enum": [*EVENT_CADENCES, None]},
    "unitLabel": STR_OR_NULL, "policy": {"type": "string", "enum": POLICIES},
    "environment": {"type": "string", "enum": ["sandbox", "production"]},
    "createdAt": TS, "updatedAt": TS, "balance": NUM, "deltaCount": {"type": "integer", "minimum": 0},
    "lastSequenceNumber": {"type": ["integer", "null"]}, "lastDeltaAt": TS_OR_NULL,
}
INT = {"type": "integer"}
DELTA_STATUS = {"type": "string", "enum": ["QUEUED", "PROCESSING", "VERIFIED", "FAILED"]}
ACCEPTED_PROPS = {
    "recordId": STR, "receiptId": STR, "status": DELTA_STATUS, "customerId": STR, "delta": NUM,
    "sequenceNumber": {"type": "integer", "minimum": 1}, "referenceId": STR, "idempotent": {"type": "boolean"},
}
ENV_STATE = {"type": "string", "enum": ["provisioned", "provisioning", "not_provisioned", "disabled"]}
B64 = {"type": "string", "contentEncoding": "base64"}
KEY_ID = {"type": "string", "description": "A signing key's id: the RFC 7638 JWK SHA-256 thumbprint of the Ed25519 "
                                           "public key, base64url (43 characters)."}
SIGNING_KEY = obj(["keyId", "algorithm", "publicKey"], {"keyId": KEY_ID, "algorithm": {"const": "Ed25519"},
                                                        "publicKey": B64})
BATCH_STATEMENT = obj(
    ["type", "batchId", "tenantId", "environment", "root", "treeSize", "sequence", "previousRoot", "sealedAt",
     "keyId"],
    {"type": {"const": "tally.batch/v1"}, "batchId": STR, "tenantId": STR, "environment": STR, "root": HEX64,
     "treeSize": {"type": "integer", "minimum": 1}, "sequence": {"type": "integer", "minimum": 1},
     "previousRoot": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}, "sealedAt": TS, "keyId": STR,
     "chain": {"type": "integer", "minimum": 1,
               "description": "Which of the tenant environment's hash chains the batch extends; absent on chain 0 "
                              "(every batch sealed before there were several chains). `sequence` and "
                              "`previousRoot` are per chain."}},
)
BATCH_SUMMARY_PROPS = {
    "batchId": STR, "treeSize": {"type": "integer", "minimum": 1},
    "chain": {"type": "integer", "minimum": 0,
              "description": "Which of the tenant environment's hash chains the batch extends (0: the first)."},
    "sequence": {"type": "integer", "minimum": 1, "description": "The batch's place on its chain (1, 2, … per chain)."},
    "environment": {"type": "string", "enum": ["sandbox", "production"]},
    "previousRoot": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$",
                     "description": "The root of the previous batch on the same chain; null for a chain's first."},
}

SCHEMAS: dict[str, dict] = {
    "Error": obj(
        ["statusCode", "success", "error"],
        {
            "statusCode": {"type": "integer"},
            "success": {"const": False},
            "error": obj(["code", "message"], {"code": STR, "message": STR}, closed=False),
        },
    ),
    "PlatformError": obj(["message"], {"message": STR, "code": STR, "errors": {"type": "object"}}),
    "Message": obj(["message"], {"message": STR}),
    "Health": obj(["status", "stage"], {"status": {"const": "ok"}, "stage": STR}),
    "OpenApiDocument": {"type": "object", "required": ["openapi", "paths"]},
    "Tenant": obj(
        ["id", "companyName", "status", "billingMode", "environments", "createdAt", "updatedAt"],
        {
            "id": STR,
            "companyName": STR,
            "status": {"type": "string", "enum": ["active", "suspended", "pending"]},
            "billingMode": {"type": "string", "enum": ["monthly", "credits"]},
            "environments": obj(["sandbox", "production"], {"sandbox": ENV_STATE, "production": ENV_STATE}),
            "createdAt": TS,
            "updatedAt": TS,
        },
    ),
    "Session": obj(
        ["tenantId", "userId", "role", "via"],
        {
            "tenantId": STR,
            "userId": STR,
            "role": {"type": "string", "enum": ["owner", "admin", "manager", "viewer"]},
            "via": {"type": "string", "enum": ["jwt", "session"]},
            "environment": {"type": "string", "enum": ["sandbox", "production"]},
            "expiresAt": TS,
        },
    ),
    "ApiKey": obj(
        ["id", "name", "environment", "prefix", "last4", "status", "createdAt", "lastUsedAt"],
        {
            "id": STR,
            "name": STR,
            "environment": {"type": "string", "enum": ["sandbox", "production"]},
            "prefix": {"type": "string", "pattern": "^pk_(test|live)_[A-Za-z0-9]+$"},
            "last4": STR,
            "status": {"type": "string", "enum": ["active", "revoked", "disabled"]},
            "createdAt": TS,
            "createdBy": STR,
            "rotatedAt": TS_OR_NULL,
            "revokedAt": TS_OR_NULL,
            "lastUsedAt": TS_OR_NULL,
        },
        closed=False,
    ),
    "ApiKeyWithSecret": {
        "allOf": [
            {"$ref": "#/components/schemas/ApiKey"},
            {
                "type": "object",
                "required": ["fullKey"],
                "properties": {
                    "fullKey": {"type": "string", "pattern": r"^pk_(test|live)_[A-Za-z0-9]+\.[A-Za-z0-9_-]+$"},
                    "warning": STR,
                },
            },
        ]
    },
    "ApiKeyPage": page_of("ApiKey", with_total=True),
    "AuditEntry": obj(
        ["id", "actor", "action", "target", "createdAt"],
        {
            "id": STR,
            "actor": STR,
            "action": STR,
            "target": STR,
            "environment": STR_OR_NULL,
            "details": {"type": "object"},
            "createdAt": TS,
        },
    ),
    "AuditPage": page_of("AuditEntry", with_total=False),
    "BalanceCustomer": obj(
        ["customerId", "displayName", "source", "createdAt"],
        {"customerId": STR, "displayName": STR,
         "source": {"type": "string", "enum": ["integration", "manual"]}, "createdAt": TS},
        closed=False,
    ),
    "BalanceCustomerPage": page_of("BalanceCustomer", with_total=False),
    "AcceptedDelta": obj(["recordId", "receiptId", "status", "customerId", "delta", "sequenceNumber"], ACCEPTED_PROPS),
    "BatchResult": obj(
        ["totalQueued", "totalFailed", "results"],
        {
            "totalQueued": INT,
            "totalFailed": INT,
            "results": {"type": "array", "items": obj(
                ["index", "status"],
                {**ACCEPTED_PROPS, "index": INT, "status": {"type": "string", "enum": ["QUEUED", "FAILED"]},
                 "error": STR, "code": STR},
            )},
        },
    ),
    "DeltaStatus": obj(
        ["recordId", "receiptId", "status", "customerId", "delta", "sequenceNumber", "createdAt"],
        {**ACCEPTED_PROPS, "reason": STR, "referenceId": STR_OR_NULL, "metadata": {"type": ["object", "null"]},
         "adjusts": STR_OR_NULL, "period": STR, "environment": STR, "creditsReserved": INT,
         "error": STR_OR_NULL, "createdAt": TS, "updatedAt": TS, "contentHash": STR_OR_NULL,
         "proofHash": STR_OR_NULL, "batchId": STR_OR_NULL, "leafIndex": {"type": ["integer", "null"]},
         "inclusionProof": {"type": ["array", "null"], "items": STR}, "proofRoot": STR_OR_NULL,
         "verifiedAt": TS_OR_NULL},
        closed=False,
    ),
    "ApiUsage": obj(
        ["allowed", "remaining", "period", "plan", "consumed", "allotment", "overage"],
        {"allowed": {"type": "boolean"}, "remaining": {"type": ["integer", "null"]}, "period": STR, "plan": STR,
         "billingMode": {"type": "string", "enum": ["monthly", "credits"]}, "consumed": INT,
         "allotment": {"type": ["integer", "null"]}, "remainingDeltas": {"type": ["integer", "null"]},
         "overage": INT, "overageChargesUsd": NUM, "byEnvironment": {"type": "object"},
         "credits": {"type": "object"}},
        closed=False,
    ),
    "BillingUsage": obj(
        ["period", "consumedDeltas", "overageCount", "overageChargesUsd", "remainingDeltas"],
        {"period": STR, "consumedDeltas": INT, "overageCount": INT, "overageChargesUsd": NUM,
         "remainingDeltas": {"type": ["integer", "null"]}},
    ),
    "StripeEventReceived": obj(["received", "eventId", "type", "outcome", "duplicate"], {
        "received": {"const": True},
        "eventId": STR,
        "type": STR,
        "outcome": STR,
        "duplicate": {"type": "boolean"},
    }),
    "BillingPlan": obj(
        ["tier", "monthlyAllotment", "planPriceUsd", "overagePriceUsd", "stripeSubscriptionId", "cancelAtPeriodEnd",
         "stripeCurrentPeriodEnd"],
        {"tier": {"type": "string", "enum": ["free", "pilot", "starter", "growth", "scale", "enterprise"]},
         "monthlyAllotment": {"type": ["integer", "null"]}, "planPriceUsd": {"type": ["integer", "null"]},
         "overagePriceUsd": {"type": ["number", "null"]}, "stripeSubscriptionId": STR_OR_NULL,
         "cancelAtPeriodEnd": {"type": "boolean"}, "stripeCurrentPeriodEnd": {**TS, "type": ["string", "null"]}},
    ),
    "RedirectUrl": obj(["url"], {"url": {"type": "string", "format": "uri"}}),
    "PlanChange": obj(["subscriptionId", "status"], {"subscriptionId": STR, "status": STR}),
    "SubscriptionCancellation": obj(
        ["subscriptionId", "cancelAtPeriodEnd", "currentPeriodEnd"],
        {"subscriptionId": STR, "cancelAtPeriodEnd": {"type": "boolean", "const": True},
         "currentPeriodEnd": {**TS, "type": ["string", "null"]}},
    ),
    "CreditBalances": obj(["creditBalance", "availableBalance", "reserved"],
                          {"creditBalance": INT, "availableBalance": {"type": "integer", "minimum": 0},
                           "reserved": {"type": "integer", "minimum": 0}}),
    "CreditEntry": obj(
        ["id", "type", "amount", "description", "balanceAfter", "createdAt"],
        {"id": STR, "type": {"type": "string", "enum": ["topup", "reservation", "settlement", "release", "refund"]},
         "amount": INT, "description": STR, "balanceAfter": INT, "createdAt": TS},
    ),
    "CreditEntryPage": page_of("CreditEntry", with_total=True),
    "CreditTopup": obj(["tenantId", "entry", "balances"],
                       {"tenantId": STR, "entry": {"$ref": "#/components/schemas/CreditEntry"},
                        "balances": {"$ref": "#/components/schemas/CreditBalances"}}),
    "VerificationKeys": obj(["keys"], {"keys": {"type": "array", "items": obj(
        ["keyId", "algorithm", "publicKey", "publicKeyPem", "status"],
        {"keyId": {**KEY_ID, "pattern": "^[A-Za-z0-9_-]{43}$"}, "algorithm": {"const": "Ed25519"}, "publicKey": B64,
         "publicKeyPem": STR,
         "status": {"type": "string", "enum": ["active", "retired"],
                    "description": "`active`: the key signing now; `retired`: signed earlier records, still valid "
                                   "for checking them."}},
    )}}),
    "VerifyResult": obj(
        ["verified", "proofRoot", "recordedAt", "summary", "records", "verification"],
        {"verified": {"type": "boolean"}, "proofRoot": STR, "recordedAt": TS_OR_NULL,
         "summary": {**obj(list(BATCH_SUMMARY_PROPS), BATCH_SUMMARY_PROPS), "type": ["object", "null"]},
         "records": {"type": "array", "items": obj(["recordId", "leafIndex", "leafHash"],
                                                  {"recordId": STR, "leafIndex": INT, "leafHash": STR})},
         "verification": {"oneOf": [
             obj(["algorithm", "keyId", "publicKey", "signature", "statement", "signatureValid", "rootValid"],
                 {"algorithm": {"const": "Ed25519"}, "keyId": STR, "signature": B64, "statement": BATCH_STATEMENT,
                  "publicKey": {**B64, "type": ["string", "null"],
                                "description": "The key the batch names, current or retired; null: no registered "
                                               "key has this id (the signature cannot be checked)"},
                  "signatureValid": {"type": "boolean"}, "rootValid": {"type": "boolean"}}),
             obj(["reason"], {"reason": STR}),
         ]}},
    ),
    "DeltaProof": obj(
        ["type", "recordId", "content", "contentHash", "leafHash", "leafIndex", "treeSize", "inclusionProof",
         "proofRoot", "batch", "publicKey"],
        {"type": {"const": "tally.delta-proof/v1"}, "recordId": STR,
         "content": obj(
             ["v", "tenantId", "environment", "recordId", "customerId", "sequenceNumber", "delta", "reason",
              "referenceId", "metadata", "adjusts", "createdAt"],
             {"v": {"const": 1}, "tenantId": STR, "environment": {"type": "string", "enum": ["sandbox", "production"]},
              "recordId": STR, "customerId": STR, "sequenceNumber": {"type": "integer", "minimum": 1},
              "delta": {"type": "string", "description": "The exact decimal, as hashed."}, "reason": STR,
              "referenceId": STR_OR_NULL, "metadata": {"type": ["object", "null"]}, "adjusts": STR_OR_NULL,
              "createdAt": TS}),
         "contentHash": HEX64, "leafHash": HEX64, "leafIndex": {"type": "integer", "minimum": 0},
         "treeSize": {"type": "integer", "minimum": 1}, "inclusionProof": {"type": "array", "items": HEX64},
         "proofRoot": HEX64,
         "batch": obj(["statement", "signature"], {"statement": BATCH_STATEMENT, "signature": B64}),
         "publicKey": SIGNING_KEY},
    ),
    "PlatformTenant": obj(
        ["id", "name", "subdomain", "final_domain", "https", "lang"],
        {
            "id": STR,
            "name": STR,
            "subdomain": STR_OR_NULL,
            "final_domain": STR_OR_NULL,
            "https": {"type": "boolean"},
            "lang": STR,
        },
    ),
    "PlatformTenantList": obj(
        ["data", "links", "meta"],
        {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/PlatformTenant"}},
            "links": obj(["first", "prev", "next"], {"first": STR, "prev": STR_OR_NULL, "next": STR_OR_NULL}),
            "meta": obj(
                ["per_page", "next_cursor", "has_more"],
                {"path": STR, "per_page": {"type": "integer"}, "next_cursor": STR_OR_NULL,
                 "has_more": {"type": "boolean"}},
            ),
        },
    ),
    "MissingPayments": obj(
        ["data"],
        {
            "data": obj(
                ["tenant_id", "has_unpaid_invoices_at", "dashboard_blocked"],
                {
                    "tenant_id": STR,
                    "has_unpaid_invoices_at": TS_OR_NULL,
                    "dashboard_blocked": {"type": "boolean"},
                    "missing_payment_limit_date": TS,
                },
            )
        },
    ),
    # --- dashboard customer records ---
    "DashboardCustomer": obj(
        ["customerId", "displayName", "source", "sharingStateHint", "eventCadence", "unitLabel", "policy",
         "environment", "createdAt", "updatedAt"],
        {
            "customerId": STR,
            "displayName": STR,
            "source": {"type": "string", "enum": ["integration", "manual"]},
            "sharingStateHint": {"type": "string", "enum": SHARING_STATES},
            "eventCadence": {"type": ["string", "null"], "enum": [*EVENT_CADENCES, None]},
            "unitLabel": STR_OR_NULL,
            "policy": {"type": "string", "enum": POLICIES},
            "environment": {"type": "string", "enum": ["sandbox", "production"]},
            "createdAt": TS,
            "updatedAt": TS,
        },
    ),
    "DashboardCustomerListed": obj(LISTED_CUSTOMER_REQUIRED, LISTED_CUSTOMER),
    "DashboardCustomerPage": page_of("DashboardCustomerListed", with_total=False),
    "DashboardDirectoryEntry": obj(
        [*LISTED_CUSTOMER_REQUIRED, "sharingState", "cycleSummary", "verificationState", "nextCloseDate",
         "freshness", "health", "counts"],
        {**LISTED_CUSTOMER,
         "sharingState": {"type": "string", "enum": SHARING_STATES},
         "cycleSummary": obj(["period", "deltaCount", "netChange", "checkpointed", "latestCheckpointPeriod"], {
             "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}, "deltaCount": COUNT, "netChange": NUM,
             "checkpointed": {"type": "boolean"}, "latestCheckpointPeriod": STR_OR_NULL}),
         "verificationState": {"type": "string", "enum": ["NONE", "PENDING", "VERIFIED", "ATTENTION"]},
         "nextCloseDate": TS,
         "freshness": obj(["lastDeltaAt", "ageSeconds", "expectedWithinSeconds", "health"], {
             "lastDeltaAt": TS_OR_NULL, "ageSeconds": {"type": ["integer", "null"]},
             "expectedWithinSeconds": {"type": ["integer", "null"]}, "health": {"type": "string", "enum": HEALTHS}}),
         "health": {"type": "string", "enum": HEALTHS},
         "counts": obj(["deltas", "verified", "awaitingVerification", "failed"], {
             "deltas": COUNT, "verified": COUNT, "awaitingVerification": COUNT, "failed": COUNT})},
    ),
    "DashboardDirectoryPage": page_of("DashboardDirectoryEntry", with_total=False),
    "CustomerSummary": obj(
        ["environment", "customers", "deltas", "balances", "verification", "currentPeriod", "generatedAt"],
        {
            "environment": {"type": "string", "enum": ["sandbox", "production"]},
            "customers": obj(["total", "manual", "integration"], {"total": COUNT, "manual": COUNT,
                                                                  "integration": COUNT}),
            "deltas": obj(["total", "verified", "awaitingVerification", "failed"], {
                "total": COUNT, "verified": COUNT, "awaitingVerification": COUNT, "failed": COUNT}),
            "balances": obj(["total"], {"total": NUM}),
            "verification": obj(["verifiedRate", "failedRate"], {
                "verifiedRate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "failedRate": {"type": ["number", "null"], "minimum": 0, "maximum": 1}}),
            "currentPeriod": obj(["period", "acceptedDeltas"], {
                "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}, "acceptedDeltas": COUNT}),
            "generatedAt": TS,
        },
    ),
    "DashboardCustomerDetail": obj(
        [*LISTED_CUSTOMER_REQUIRED, "latestCheckpoint", "activity"],
        {**LISTED_CUSTOMER,
         "latestCheckpoint": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/CustomerCheckpointListed"}]},
         "activity": obj(["items", "page", "limit", "total", "hasMore"], {
             "items": {"type": "array", "items": {"$ref": "#/components/schemas/DeltaStatus"}},
             "page": {"type": "integer", "minimum": 1}, "limit": {"type": "integer", "minimum": 1},
             "total": {"type": "integer", "minimum": 0}, "hasMore": {"type": "boolean"}})},
    ),
    "CustomerCheckpoint": obj(
        [*CHECKPOINT_REQUIRED],
        {**CHECKPOINT, "created": {"type": "boolean"}},
    ),
    "CheckpointRun": obj(
        ["period", "created", "unchanged", "createdCount", "unchangedCount", "nextCursor"],
        {
            "period": STR,
            "created": {"type": "array", "items": {"$ref": "#/components/schemas/CustomerCheckpointListed"}},
            "unchanged": {"type": "array", "items": {"$ref": "#/components/schemas/CustomerCheckpointListed"}},
            "createdCount": {"type": "integer", "minimum": 0},
            "unchangedCount": {"type": "integer", "minimum": 0},
            "nextCursor": STR_OR_NULL,
        },
    ),
    "BalanceCustomerDetail": obj(
        ["customerId", "displayName", "source", "computedBalance", "totalDeltas", "lastSequenceNumber",
         "lastDeltaAt", "createdAt", "recentActivity", "periodSummary"],
        {
            "customerId": STR,
            "displayName": STR,
            "source": {"type": "string", "enum": ["integration", "manual"]},
            "computedBalance": NUM,
            "totalDeltas": {"type": "integer", "minimum": 0},
            "lastSequenceNumber": {"type": ["integer", "null"]},
            "lastDeltaAt": TS_OR_NULL,
            "createdAt": TS,
            "recentActivity": obj(
                ["items", "page", "limit", "total", "hasMore"],
                {"items": {"type": "array", "items": {"$ref": "#/components/schemas/DeltaStatus"}},
                 "page": {"type": "integer", "minimum": 1}, "limit": {"type": "integer", "minimum": 1},
                 "total": {"type": "integer", "minimum": 0}, "hasMore": {"type": "boolean"}},
            ),
            "periodSummary": {"oneOf": [{"type": "null"}, obj(
                ["period", "netChange", "deltaCount", "verified", "failed", "awaitingVerification"],
                {"period": STR, "netChange": NUM, "deltaCount": {"type": "integer"}, "verified": {"type": "integer"},
                 "failed": {"type": "integer"}, "awaitingVerification": {"type": "integer"}},
            )]},
        },
    ),
    "BalanceGaps": obj(
        ["customerId", "fromSequence", "toSequence", "lastSequenceNumber", "hasGaps", "gaps"],
        {
            "customerId": STR,
            "fromSequence": {"type": "integer"},
            "toSequence": {"type": "integer"},
            "lastSequenceNumber": {"type": ["integer", "null"]},
            "hasGaps": {"type": "boolean"},
            "gaps": {"type": "array", "items": obj(
                ["fromSequence", "toSequence", "count", "reason"],
                {"fromSequence": {"type": "integer", "minimum": 1}, "toSequence": {"type": "integer", "minimum": 1},
                 "count": {"type": "integer", "minimum": 1},
                 "reason": {"type": "string", "enum": ["awaiting_verification", "failed", "missing"]}},
            )},
        },
    ),
    "BalanceDerivation": obj(
        [*DERIVATION_REQUIRED, "deltas"],
        {**DERIVATION, "deltas": obj(
            ["items", "limit", "offset", "total"],
            {"items": {"type": "array", "items": {"$ref": "#/components/schemas/DeltaStatus"}},
             "limit": {"type": "integer"}, "offset": {"type": "integer"}, "total": {"type": "integer"}},
        )},
    ),
    "BalanceComparison": obj(
        [*DERIVATION_REQUIRED, "yourBalance", "theirBalance", "yoursMatches", "theirsMatches", "partiesAgree",
         "match", "yourDifference", "theirDifference"],
        {**DERIVATION, "yourBalance": NUM, "theirBalance": NUM, "yoursMatches": {"type": "boolean"},
         "theirsMatches": {"type": "boolean"}, "partiesAgree": {"type": "boolean"}, "match": {"type": "boolean"},
         "yourDifference": NUM, "theirDifference": NUM},
    ),
    "VerificationPackageLink": obj(
        ["packageId", "customerId", "period", "checkpointId", "checkpointRoot", "treeSize", "sampleSize", "url",
         "expiresAt", "sha256", "warning"],
        {"packageId": {"type": "string", "pattern": "^pkg_"}, "customerId": STR, "period": STR,
         "checkpointId": STR, "checkpointRoot": HEX64, "treeSize": {"type": "integer", "minimum": 0},
         "sampleSize": {"type": "integer", "minimum": 0}, "url": {"type": "string", "format": "uri"},
         "expiresAt": TS, "sha256": HEX64, "warning": STR},
    ),
    "VerificationPackage": obj(
        ["type", "packageId", "customerId", "period", "generatedAt", "checkpoint", "publicKey", "sampleSize",
         "samples", "signature"],
        {"type": {"const": "tally.verification-package/v1"}, "packageId": STR, "customerId": STR, "period": STR,
         "generatedAt": TS,
         "checkpoint": obj(["statement", "signature"], {
             "statement": {"type": "object"}, "signature": STR,
             "publicKey": {**SIGNING_KEY, "description": "Present when the checkpoint was signed before a key "
                                                         "rotation: the retired key that signed it."}}),
         "publicKey": {**SIGNING_KEY, "description": "The key that signed the package (and its checkpoint, "
                                                     "unless `checkpoint.publicKey` names another)."},
         "sampleSize": {"type": "integer", "minimum": 0},
         "samples": {"type": "array", "items": obj(
             ["recordId", "content", "contentHash", "leafHash", "leafIndex", "inclusionProof"],
             {"recordId": STR, "content": {"type": "object"}, "contentHash": HEX64, "leafHash": HEX64,
              "leafIndex": {"type": "integer", "minimum": 0}, "inclusionProof": {"type": "array", "items": HEX64}})},
         "signature": STR},
    ),
    "Receipt": obj(RECEIPT_REQUIRED, RECEIPT),
    "InvoiceProof": obj(
        [*RECEIPT_REQUIRED, "verificationApiUrl", "customerLinkUrl", "customerLinkHost", "accessHint"],
        {**RECEIPT, "verificationApiUrl": STR, "customerLinkUrl": STR_OR_NULL, "customerLinkHost": STR_OR_NULL,
         "accessHint": STR},
    ),
    "CheckpointExport": obj(["period", "count", "items"], {
        "period": STR, "count": {"type": "integer", "minimum": 0},
        "items": {"type": "array", "items": {"type": "object"}},
    }),
    "FileLink": obj(["url", "expiresInSeconds", "bytes", "filename"], {
        "url": {"type": "string", "format": "uri"}, "expiresInSeconds": {"type": "integer"},
        "bytes": {"type": "integer"}, "filename": STR,
    }),
    "CheckpointOrRun": {"oneOf": [{"$ref": "#/components/schemas/CustomerCheckpoint"},
                                  {"$ref": "#/components/schemas/CheckpointRun"}]},
    "CustomerCheckpointPage": page_of("CustomerCheckpointListed", with_total=False),
    "CustomerCheckpointListed": obj(CHECKPOINT_REQUIRED, CHECKPOINT),
    "CheckpointCandidates": obj(
        ["customerId", "period", "latestCheckpoint", "total", "items", "awaitingVerification", "failedSkipped"],
        {
            "customerId": STR,
            "period": STR,
            "latestCheckpoint": {"oneOf": [{"type": "null"},
                                           {"$ref": "#/components/schemas/CustomerCheckpointListed"}]},
            "total": {"type": "integer", "minimum": 0},
            "items": {"type": "array", "items": obj(
                ["recordId", "sequenceNumber", "delta", "contentHash", "proofHash", "verifiedAt"],
                {"recordId": STR, "sequenceNumber": {"type": "integer", "minimum": 1}, "delta": NUM,
                 "contentHash": HEX64, "proofHash": HEX64, "verifiedAt": TS_OR_NULL})},
            "awaitingVerification": {"type": "integer", "minimum": 0},
            "failedSkipped": {"type": "integer", "minimum": 0},
        },
    ),
    # --- outgoing webhooks ---
    "WebhookEndpoint": obj(WEBHOOK_ENDPOINT_REQUIRED, WEBHOOK_ENDPOINT),
    "WebhookEndpointWithSecret": obj(
        [*WEBHOOK_ENDPOINT_REQUIRED, "secret"],
        {**WEBHOOK_ENDPOINT, "secret": {"type": "string", "pattern": "^whsec_[A-Za-z0-9]{32}$"}, "warning": STR},
    ),
    "WebhookEndpointList": obj(
        ["items", "events"],
        {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookEndpoint"}},
            "events": {"type": "array", "items": {"type": "string", "enum": WEBHOOK_EVENTS}},
        },
    ),
    "WebhookAttempt": obj(
        ["number", "at", "statusCode", "durationMs", "error"],
        {
            "number": {"type": "integer", "minimum": 1},
            "at": TS,
            "statusCode": {"type": ["integer", "null"]},
            "durationMs": {"type": "integer", "minimum": 0},
            "error": STR_OR_NULL,
        },
    ),
    "WebhookDelivery": obj(
        ["eventId", "event", "endpointId", "url", "status", "delivered", "attemptCount", "lastAttemptAt",
         "lastStatusCode",
         "lastError", "nextAttemptAt", "deliveredAt", "createdAt", "attempts"],
        {
            "eventId": {"type": "string", "pattern": "^evt_[A-Za-z0-9]+$"},
            "event": {"type": "string", "enum": [*WEBHOOK_EVENTS, "webhook.test"]},
            "endpointId": STR,
            "url": STR,
            "status": {"type": "string", "enum": ["PENDING", "DELIVERED", "FAILED"]},
            "delivered": {"type": "boolean"},
            "attemptCount": {"type": "integer", "minimum": 0},
            "lastAttemptAt": TS_OR_NULL,
            "lastStatusCode": {"type": ["integer", "null"]},
            "lastError": STR_OR_NULL,
            "nextAttemptAt": TS_OR_NULL,
            "deliveredAt": TS_OR_NULL,
            "createdAt": TS,
            "attempts": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookAttempt"}},
        },
    ),
    "WebhookDeliveryPage": page_of("WebhookDelivery", with_total=False),
    "WebhookRetry": obj(
        ["eventId", "status", "deliveries"],
        {
            "eventId": STR,
            "status": {"type": "string", "enum": ["PENDING"]},
            "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookDelivery"}},
        },
    ),
    **REQUESTS,
}
