"""Request bodies: the one declaration of each JSON body the API takes. ``GET /openapi.json`` publishes these
schemas (schemas.py adds them to its components) and the router checks every body against them before a view
runs (validator.py); the domain keeps what no schema can state (exact arithmetic, metadata size, what exists).

Loaded with the first request that has a body, not at cold start, and apart from the response schemas so that
request compiles only these.
"""

from __future__ import annotations

from chalicelib.api.inputs import (
    CHECKPOINT_ID,
    CHECKPOINT_START_RULES,
    CUSTOMER_ID,
    DECIMAL_TEXT,
    NON_BLANK,
    PERIOD,
    SCOPE_PROPERTIES,
    SCOPE_RULES,
    scope_rules,
)
from chalicelib.domain import deltas, webhooks
from chalicelib.domain.customers import EventCadence, Policy, SharingState
from chalicelib.domain.subscriptions import SELF_SERVE_TIERS
from chalicelib.services.api_keys import MAX_NAME
from chalicelib.services.customers import MAX_DISPLAY_NAME, MAX_UNIT_LABEL
from chalicelib.settings import get_settings

STR = {"type": "string"}
HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
SHARING_STATES = [str(s) for s in SharingState]
EVENT_CADENCES = [str(c) for c in EventCadence]
POLICIES = [str(p) for p in Policy]


def obj(required: list[str], properties: dict, *, closed: bool = True) -> dict:
    schema = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


#: An exact decimal as a JSON number or as text (``"12.50"``).
AMOUNT_IN = {"type": ["number", "string"], "pattern": DECIMAL_TEXT["pattern"], "x-error": "must be a number"}
#: Metadata nests at most 3 levels: its values hold scalars, or containers of containers of scalars.
_SCALARS_ONLY = {"items": {"type": ["string", "number", "boolean", "null"]},
                 "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}
_TWO_LEVELS = {"items": _SCALARS_ONLY, "additionalProperties": _SCALARS_ONLY}


def _text(limit: int, *, nullable: bool = False, **extra: object) -> dict:
    """Text that is not only white space, up to ``limit`` characters."""
    return {"type": ["string", "null"] if nullable else "string", "minLength": 1, "maxLength": limit,
            "pattern": NON_BLANK, "x-error": f"must be a non-empty string of at most {limit} characters", **extra}


DELTA_IN = obj(
    ["customerId", "delta", "reason"],
    {
        "customerId": CUSTOMER_ID,
        "delta": {"type": "number", "not": {"const": 0}, "minimum": -int(deltas.MAX_ABS_DELTA),
                  "maximum": int(deltas.MAX_ABS_DELTA), "multipleOf": 10 ** -deltas.MAX_FRACTION_DIGITS,
                  "description": "Exact decimal, non-zero, within ±1,000,000,000, at most 6 fractional digits.",
                  "x-error": "must be a non-zero number within ±1,000,000,000 with at most 6 fractional digits"},
        "reason": _text(deltas.MAX_REASON),
        "referenceId": _text(deltas.MAX_REFERENCE, nullable=True,
                             description="Unique per customer: a repeat replays the first answer."),
        "metadata": {"type": ["object", "null"], "maxProperties": deltas.MAX_METADATA_KEYS,
                     "additionalProperties": _TWO_LEVELS,
                     "description": "At most 50 keys and 3 levels; at most 4 KiB as JSON (checked on receipt).",
                     "x-error": "must be a JSON object of at most 50 keys nesting at most 3 levels"},
        "adjusts": _text(deltas.MAX_REFERENCE, nullable=True, description="recordId this delta corrects."),
    },
)
_PORT = r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
_PCHAR = r"([A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"  # RFC 3986: a URI's path, query and fragment
_REST = rf"(/{_PCHAR}*)*(\?({_PCHAR}|[/?])*)?(#({_PCHAR}|[/?])*)?"
_HOST = (r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
         r"(?![Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt](?![A-Za-z0-9-]))[A-Za-z]{2,63}")


def webhook_url() -> dict:
    """HTTPS to a named public host (no literal addresses, no credentials); where this stack allows it
    (local and test stages) also plain HTTP to loopback. The document says what this stack accepts."""
    forms = [rf"https://{_HOST}{_PORT}{_REST}"]
    description = "An https:// URL (RFC 3986) of a named host"
    if get_settings().webhooks_allow_loopback:
        forms.append(rf"https?://(localhost|127\.0\.0\.1|\[::1\]){_PORT}{_REST}")
        description += "; on this stack also http:// to loopback (localhost, 127.0.0.1, [::1])"
    return {"type": "string", "maxLength": webhooks.MAX_URL, "pattern": f"^({'|'.join(forms)})$",
            "description": description + ".", "x-error": f"must be {description[3:].lower()}, at most "
                                                         f"{webhooks.MAX_URL} characters"}



REQUESTS: dict[str, dict] = {
    "DeleteTenantRequest": obj(
        ["confirmation"], {"confirmation": {"type": "string", "minLength": 1, "maxLength": 200,
                                            "description": "Exact company name."}}
    ),
    "CreateApiKeyRequest": obj(
        ["name"],
        {
            "name": _text(MAX_NAME),
            "environment": {"type": "string", "enum": ["sandbox", "production"]},
        },
    ),
    "DeltaRequest": DELTA_IN,
    "BatchRequest": obj(["deltas"], {"deltas": {
        "type": "array", "minItems": 1, "maxItems": deltas.MAX_BATCH,
        "items": {"anyOf": [{"$ref": "#/components/schemas/DeltaRequest"},
                            {"description": "Any other item fails in place (its result: FAILED, error, code)."}]},
        "description": "Each item is checked as a DeltaRequest on its own: an invalid one fails alone, the others "
                       "are accepted."}}),
    "StripeEvent": obj(["id", "type", "data"], {
        "id": {"type": "string", "pattern": "^evt_"},
        "object": {"const": "event"},
        "type": STR,
        "data": obj(["object"], {"object": {"type": "object"}}, closed=False),
    }, closed=False),
    "TierRequest": obj(["tier"], {"tier": {"type": "string", "enum": list(SELF_SERVE_TIERS)}}),
    "TopupRequest": obj(["tenantId", "amount"], {
        "tenantId": {"type": "string", "pattern": "^[0-9]{1,20}$", "description": "Tenant id (decimal string)."},
        "amount": {"type": "integer", "minimum": 1, "maximum": 10**12},
        "description": {"type": "string", "maxLength": 200}}),
    "CreateCustomerRequest": obj(
        ["displayName"],
        {
            "displayName": _text(MAX_DISPLAY_NAME),
            "customerId": {**CUSTOMER_ID, "description": "Omit it for a generated `cust_…` id."},
            "sharingStateHint": {"type": "string", "enum": SHARING_STATES},
            "eventCadence": {"type": "string", "enum": EVENT_CADENCES},
            "unitLabel": {"type": "string", "minLength": 1, "maxLength": MAX_UNIT_LABEL},
            "policy": {"type": "string", "enum": POLICIES},
        },
    ),
    "CreateCheckpointRequest": obj([], {"period": PERIOD}),
    "BalanceCheckpointRequest": {**obj([], {
        "customerId": {**CUSTOMER_ID, "description": "One customer; without it, every customer with deltas."},
        **SCOPE_PROPERTIES,
        "mode": {"type": "string", "enum": ["settled", "strict"], "default": "settled"},
        "fingerprints": {"type": "array", "maxItems": 1000, "x-error-field": "fingerprints",
                         "items": {**HEX64, "x-error": "must be a content hash (64 lowercase hex digits)"},
                         "description": "Content hashes that must be under the checkpoint."},
        "cursor": {"type": "string", "maxLength": 2048, "description": "The previous answer's nextCursor."},
    }), **SCOPE_RULES},
    "CompareRequest": {**obj(["customerId", "yourBalance", "theirBalance"], {
        "customerId": CUSTOMER_ID, "yourBalance": AMOUNT_IN, "theirBalance": AMOUNT_IN, "startingBalance": AMOUNT_IN,
        "startingCheckpoint": {**CHECKPOINT_ID, "description": "Start after this checkpoint; not with a time scope."},
        "startingCheckpointType": {"type": "string", "enum": ["checkpoint"]},
        **SCOPE_PROPERTIES,
    }), **scope_rules(CHECKPOINT_START_RULES)},
    "CreatePackageRequest": obj([], {
        "period": PERIOD,
        "sampleSize": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},  # services/packages.py
        "expiresInDays": {"type": "integer", "minimum": 1, "maximum": 90, "default": 7},
    }),
    "ClosePackageExportRequest": obj(["customerIds", "period"], {
        "customerIds": {"type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": True,  # close_packages.py
                        "items": CUSTOMER_ID, "x-error-field": "customerIds"},
        "period": {**PERIOD, "description": "A closed UTC month or the current one."},
    }),
    "CreateWebhookRequest": obj(
        ["url"],
        {
            "url": webhook_url(),
            "events": {"type": "array", "items": {"type": "string", "enum": [str(e) for e in webhooks.SUBSCRIBABLE]},
                       "description": "Absent or empty: every event.", "x-error-field": "events"},
            "description": {"type": "string", "maxLength": webhooks.MAX_DESCRIPTION},
        },
    ),
}
