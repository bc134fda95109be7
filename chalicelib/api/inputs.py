"""Request inputs, each declared once: a declaration documents its query parameter, header or path parameter in
``GET /openapi.json`` and is what the router checks the request against (validator.py) before the view gets the
value as a keyword argument. Body schemas live in bodies.py; the fragments both need (ids, months, dates, the
scope rules) live here.

Light on purpose: route modules import this at cold start, the checking code loads with the first request.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain.customers import CUSTOMER_ID_PATTERN
from chalicelib.domain.scopes import PRESETS
from chalicelib.domain.usage import PERIOD_PATTERN

#: Letters, digits and ``_ - . :``, 1-128 characters (the domain's rule, one pattern everywhere).
CUSTOMER_ID = {"type": "string", "pattern": CUSTOMER_ID_PATTERN,
               "x-error": "must be 1-128 characters of letters, digits, '_', '-', '.', ':'"}
PERIOD = {"type": "string", "pattern": PERIOD_PATTERN, "description": "A UTC month, `YYYY-MM` (2000-2999).",
          "x-error": "must be YYYY-MM"}
_DAY = (r"2[0-9]{3}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
        r"|(2[0-9](0[48]|[2468][048]|[13579][26])|2[048]00)-02-29")
#: What the scope parser reads: a calendar date of 2000-2999, optionally with a time and a UTC offset.
INSTANT = {"type": "string",
           "pattern": rf"^({_DAY})(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{{1,6}})?)?"
                      r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?$",
           "description": "ISO 8601: `YYYY-MM-DD` or `YYYY-MM-DDThh:mm[:ss[.ffffff]][Z|±hh:mm]` (UTC when no "
                          "offset is given).",
           "x-error": "must be an ISO 8601 date or date-time (YYYY-MM-DD[Thh:mm[:ss[.ffffff]][Z|±hh:mm]]) of "
                      "2000-2999"}
CHECKPOINT_ID = {"type": "string", "pattern": "^chk_[A-Za-z0-9]{1,64}$", "x-error": "must be a checkpoint id (chk_…)"}
#: An exact decimal written as text (numbers in query strings; amounts some SDKs send as strings).
DECIMAL_TEXT = {"type": "string", "pattern": r"^-?[0-9]{1,30}(\.[0-9]{1,30})?$", "x-error": "must be a number"}
#: Text that is not only white space.
NON_BLANK = r"\S"


def _none_of(*names: str) -> dict[str, Any]:
    return {"not": {"anyOf": [{"required": [name]} for name in names]}}


def _combination(schema: dict[str, Any], message: str) -> dict[str, Any]:
    return {**schema, "x-error": message, "x-error-code": "INVALID_SCOPE_COMBINATION"}


#: Seed-free but SDK-fixed: one way to name a time scope — ``period``, or ``timePreset`` (``custom`` with both
#: dates), or a bare ``startDate`` + ``endDate`` pair. Mixing them is 400 ``INVALID_SCOPE_COMBINATION``.
SCOPE_RULES: dict[str, Any] = {
    "dependentSchemas": {
        "period": _combination(_none_of("timePreset", "startDate", "endDate"),
                               "period cannot be combined with timePreset, startDate or endDate"),
        "startDate": _combination({"required": ["endDate"]}, "startDate and endDate must be provided together"),
        "endDate": _combination({"required": ["startDate"]}, "startDate and endDate must be provided together"),
    },
    "allOf": [
        _combination({"if": {"required": ["timePreset"],
                             "properties": {"timePreset": {"enum": ["current_month", "previous_month"]}}},
                      "then": _none_of("startDate", "endDate")},
                     "startDate/endDate can only be used when timePreset is 'custom' or omitted"),
        _combination({"if": {"required": ["timePreset"], "properties": {"timePreset": {"const": "custom"}}},
                      "then": {"required": ["startDate", "endDate"]}},
                     "startDate and endDate must be provided together"),
    ],
}
#: ``derive`` and ``compare``: a starting checkpoint replaces the time scope.
CHECKPOINT_START_RULES: dict[str, Any] = {
    "dependentSchemas": {
        "startingCheckpoint": _combination(_none_of("period", "timePreset", "startDate", "endDate"),
                                           "Choose either a checkpoint or a time scope for this request."),
        "startingCheckpointType": _combination({"required": ["startingCheckpoint"]},
                                               "startingCheckpointType needs startingCheckpoint"),
    },
}
SCOPE_PROPERTIES: dict[str, Any] = {
    "period": {**PERIOD, "description": "UTC month `YYYY-MM`."},
    "timePreset": {"type": "string", "enum": list(PRESETS),
                   "description": "`current_month`, `previous_month` or `custom` (with startDate and endDate)."},
    "startDate": {**INSTANT, "description": "Inclusive, with endDate. " + INSTANT["description"]},
    "endDate": {**INSTANT, "description": "Exclusive, after startDate. " + INSTANT["description"]},
}


class Param:
    """One query parameter, header or path parameter: its documentation, its check, and the keyword (``arg``)
    under which the view receives its value (``None``: checked, not passed; the auth layer reads it)."""

    __slots__ = ("arg", "default", "description", "location", "message", "name", "required", "schema")

    def __init__(self, name: str, location: str, description: str, schema: dict[str, Any] | None = None, *,
                 required: bool = False, default: Any = None, arg: str | None = "", message: str | None = None
                 ) -> None:
        self.name, self.location, self.description = name, location, description
        self.schema = schema or {"type": "string"}
        self.required, self.default, self.message = required, default, message
        self.arg = name if arg == "" else arg

    def openapi(self) -> dict[str, Any]:
        return {"name": self.name, "in": self.location, "required": self.required, "description": self.description,
                "schema": self.schema}


class ParamGroup:
    """Query parameters that constrain one another (a time scope is a period, a preset or a date range, never
    two): documented as one form-exploded object parameter whose schema states the rules, so clients and
    fuzzers can see them; on the wire its members are ordinary query parameters."""

    __slots__ = ("arg", "description", "name", "params", "rules")

    def __init__(self, name: str, description: str, params: tuple[Param, ...], rules: dict[str, Any], *,
                 arg: str | None = None) -> None:
        self.name, self.description, self.params, self.rules, self.arg = name, description, params, rules, arg

    def openapi(self) -> dict[str, Any]:
        properties = {p.name: {**p.schema, "description": p.description} for p in self.params}
        return {"name": self.name, "in": "query", "required": False, "style": "form", "explode": True,
                "description": self.description, "schema": {"type": "object", "properties": properties, **self.rules}}


def customer_path() -> Param:
    """The ``{customerId}`` of a customer's routes (seed 001's ``cust_123`` is its example)."""
    return path_param("customerId", "The customer id.", {**CUSTOMER_ID, "examples": ["cust_123"]})


def query(name: str, description: str, schema: dict[str, Any] | None = None, *, default: Any = None,
          arg: str | None = "", message: str | None = None) -> Param:
    return Param(name, "query", description, schema, default=default, arg=arg, message=message)


def path_param(name: str, description: str, schema: dict[str, Any] | None = None) -> Param:
    return Param(name, "path", description, schema or {"type": "string", "minLength": 1}, required=True)


def scope_rules(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The time scope's rules, plus ``extra``'s ``dependentSchemas`` (a body or a query that also takes a
    starting checkpoint)."""
    return {**SCOPE_RULES, "dependentSchemas": {**SCOPE_RULES["dependentSchemas"],
                                                **(extra or {}).get("dependentSchemas", {})}}


def scope_group(*extra: Param, rules: dict[str, Any] | None = None) -> ParamGroup:
    """The time scope's four query parameters (plus ``extra`` ones the rules also govern); the view receives
    the given ones as one ``scope`` dict (the shape the scope parser and the JSON bodies share)."""
    members = tuple(query(name, schema["description"], {k: v for k, v in schema.items() if k != "description"},
                          arg=None) for name, schema in SCOPE_PROPERTIES.items())
    combined = scope_rules(rules)
    return ParamGroup("scope", "A time scope: `period`, or `timePreset`, or `startDate` with `endDate` "
                      "(mixing them is 400 `INVALID_SCOPE_COMBINATION`).", (*extra, *members), combined,
                      arg="scope")


def page_size(default: int, maximum: int = 100, *, minimum: int = 1, what: str = "Page size",
              name: str = "limit") -> Param:
    """The ``limit`` of a listing (one definition for every listing route)."""
    return query(name, f"{what}, {minimum}-{maximum} (default {default}).",
                 {"type": "integer", "minimum": minimum, "maximum": maximum}, default=default)


CURSOR = query("cursor", "The nextCursor of the previous page.", {"type": "string", "maxLength": 2048})
PAGE_NUMBER = query("page", "1-based page number; `cursor` is cheaper for deep pages.",
                    {"type": "integer", "minimum": 1, "maximum": 1000}, default=1)
ENVIRONMENT_HEADER = Param("X-Environment", "header", "Data scope for dashboard routes (default production).",
                           {"type": "string", "enum": ["sandbox", "production"]}, arg=None)
IDEMPOTENCY_HEADER = Param("Idempotency-Key", "header",
                           "Replays the first response for a repeated key with the same body: 1-255 printable "
                           "ASCII characters, no leading or trailing space.",
                           {"type": "string", "pattern": r"^[!-~]([ -~]{0,253}[!-~])?$",
                            "x-error": "must be 1-255 printable ASCII characters, no leading or trailing space"},
                           arg="idempotency_key")
