"""Offline checks of Tally proof documents (what ``tally verify FILE`` runs).

Three documents are understood, bare or inside the API envelope:

- a delta proof bundle (``GET /api/v1/balance/delta/{recordId}/proof``): one
  delta's content, its hashes, its inclusion proof, the signed batch statement
  and the public key;
- a batch document (``GET /api/v1/verify/{proofRoot}``): every leaf hash of a
  batch with its signed statement and public key;
- a customer verification package (``tally.verification-package/v1``): a signed
  customer checkpoint with a sample of its deltas, each with its content and
  inclusion proof, and the public key (and, for a checkpoint signed before a key
  rotation, the retired key that signed it).

Key ids are RFC 7638 thumbprints of their keys, so a statement's ``keyId`` commits
to its key; ``--keys`` pins each key to a saved ``GET /api/v1/verification-keys``
answer, which lists retired keys too.

Everything is recomputed from the file's own bytes, and the reading is strict
(closed objects, exact types, lowercase hex, canonical base64, canonical number
literals, no duplicate keys), so a file that differs from what Tally issued in
any byte fails. This module imports only the standard library, ``cryptography``,
``rfc8785`` and pure domain helpers: it runs without AWS, Chalice or PynamoDB.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chalicelib.domain.batches import STATEMENT_TYPE
from chalicelib.domain.checkpoints import STATEMENT_TYPE as CHECKPOINT_TYPE
from chalicelib.domain.merkle import EMPTY_ROOT, leaf_hash, root_of, verify_inclusion
from chalicelib.domain.signing_keys import KEY_ID_PATTERN, key_id_of

BUNDLE_TYPE = "tally.delta-proof/v1"
PACKAGE_TYPE = "tally.verification-package/v1"
ALGORITHM = "Ed25519"
CONTENT_VERSION = 1  # chalicelib.domain.fingerprints.CONTENT_VERSION (a test keeps them equal)
HEX64 = re.compile(r"[0-9a-f]{64}")
STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


class DocumentError(ValueError):
    """The input is not a document this checker reads (unreadable, not strict JSON, unknown kind)."""


# --- strict JSON --------------------------------------------------------------------------------


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DocumentError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _float(literal: str) -> float:
    """Only the canonical spelling of a number is accepted: another spelling of the same double
    (``0.30000000000000005`` for ``0.30000000000000004``) would hash alike yet differ in bytes."""
    value = float(literal)
    try:
        jcs = rfc8785.dumps(value).decode()
    except rfc8785.CanonicalizationError as exc:
        raise DocumentError(f"number {literal} cannot be canonicalised: {exc}") from None
    if literal not in (repr(value), jcs):
        raise DocumentError(f"number {literal} is not written canonically ({jcs})")
    return value


def _int(literal: str) -> int:
    if literal == "-0":
        raise DocumentError("number -0 is not written canonically (0)")
    return int(literal)


def _constant(name: str) -> Any:
    raise DocumentError(f"{name} is not JSON")


def loads(raw: bytes | str) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, canonical number literals."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, object_pairs_hook=_pairs, parse_float=_float, parse_int=_int,
                          parse_constant=_constant)
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not JSON: {exc}") from None


# --- shapes: closed objects, exact types ---------------------------------------------------------

Pred = Callable[[Any], bool]


@dataclass(frozen=True)
class Omittable:
    """A member a closed object may omit (``spec`` applies when it is there)."""

    spec: Any


def _is(description: str, test: Pred) -> Pred:
    test.__doc__ = description
    return test


def _const(expected: Any) -> Pred:
    return _is(json.dumps(expected), lambda v: type(v) is type(expected) and v == expected)


def _b64(size: int) -> Pred:
    def test(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return len(raw) == size and base64.b64encode(raw).decode() == value  # canonical: no spare bits set

    return _is(f"canonical base64 of {size} bytes", test)


def _opt(pred: Pred) -> Pred:
    return _is(f"{pred.__doc__} or null", lambda v: v is None or pred(v))


def _match(description: str, pattern: str) -> Pred:
    compiled = re.compile(pattern)
    return _is(description, lambda v: isinstance(v, str) and compiled.fullmatch(v) is not None)


def _timestamp(value: Any) -> bool:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (what Tally writes), and a real instant."""
    if not isinstance(value, str) or STAMP.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:  # month 13, February 30, …
        return False
    return True


TEXT = _is("a non-empty string", lambda v: isinstance(v, str) and v != "")
HEX = _is("64 lowercase hex digits", lambda v: isinstance(v, str) and HEX64.fullmatch(v) is not None)
INDEX = _is("an integer >= 0", lambda v: type(v) is int and v >= 0)
COUNT = _is("an integer >= 1", lambda v: type(v) is int and v >= 1)
BOOL = _is("a boolean", lambda v: type(v) is bool)
ENVIRONMENT = _is('"sandbox" or "production"', lambda v: v in ("sandbox", "production") and type(v) is str)
OBJECT_OR_NULL = _is("an object or null", lambda v: v is None or isinstance(v, dict))
PERIOD = _match("a YYYY-MM period", r"[0-9]{4}-(0[1-9]|1[0-2])")
DECIMAL = _match("a canonical decimal string", r"0|-?(0\.[0-9]*[1-9]|[1-9][0-9]*(\.[0-9]*[1-9])?)")
TIMESTAMP = _is("a timestamp YYYY-MM-DDTHH:MM:SS.mmmZ", _timestamp)
PACKAGE_ID = _match('"pkg_" and letters or digits', r"pkg_[0-9A-Za-z]+")

# ``chain``: only in a statement of a batch off the tenant environment's first chain (chain 0 is not named, so
# what was signed before there were several chains reads as ever); ``sequence`` and ``previousRoot`` are per chain.
STATEMENT = {"type": _const(STATEMENT_TYPE), "batchId": TEXT, "tenantId": TEXT, "environment": ENVIRONMENT,
             "root": HEX, "treeSize": COUNT, "sequence": COUNT, "previousRoot": _opt(HEX), "sealedAt": TEXT,
             "keyId": TEXT, "chain": Omittable(COUNT)}
CONTENT = {"v": _const(CONTENT_VERSION), "tenantId": TEXT, "environment": ENVIRONMENT, "recordId": TEXT,
           "customerId": TEXT, "sequenceNumber": COUNT, "delta": TEXT, "reason": TEXT, "referenceId": _opt(TEXT),
           "metadata": OBJECT_OR_NULL, "adjusts": _opt(TEXT), "createdAt": TEXT}
PUBLIC_KEY = {"keyId": TEXT, "algorithm": _const(ALGORITHM), "publicKey": _b64(32)}
BUNDLE = {"type": _const(BUNDLE_TYPE), "recordId": TEXT, "content": CONTENT, "contentHash": HEX, "leafHash": HEX,
          "leafIndex": INDEX, "treeSize": COUNT, "inclusionProof": [HEX], "proofRoot": HEX,
          "batch": {"statement": STATEMENT, "signature": _b64(64)}, "publicKey": PUBLIC_KEY}
CHECKPOINT = {"type": TEXT, "checkpointId": TEXT, "tenantId": TEXT, "environment": ENVIRONMENT, "customerId": TEXT,
              "period": PERIOD, "sequence": COUNT, "root": HEX, "treeSize": INDEX, "firstSequence": _opt(COUNT),
              "lastSequence": _opt(COUNT), "netChange": DECIMAL, "previousRoot": _opt(HEX),
              "previousTreeSize": _opt(INDEX), "createdAt": TIMESTAMP, "keyId": TEXT}
SAMPLE = {"recordId": TEXT, "content": CONTENT, "contentHash": HEX, "leafHash": HEX, "leafIndex": INDEX,
          "inclusionProof": [HEX]}
# ``checkpoint.publicKey``: only in a package whose checkpoint was signed before a key rotation (the retired
# key that signed it); otherwise ``publicKey`` signed both the checkpoint and the package.
PACKAGE = {"type": _const(PACKAGE_TYPE), "packageId": PACKAGE_ID, "customerId": TEXT, "period": PERIOD,
           "generatedAt": TIMESTAMP,
           "checkpoint": {"statement": CHECKPOINT, "signature": _b64(64), "publicKey": Omittable(PUBLIC_KEY)},
           "publicKey": PUBLIC_KEY, "sampleSize": INDEX, "samples": [SAMPLE], "signature": _b64(64)}
# ``summary.chain``: absent from an answer saved before there were several chains (it is chain 0).
BATCH = {"verified": BOOL, "proofRoot": HEX, "recordedAt": TEXT,
         "summary": {"batchId": TEXT, "treeSize": COUNT, "chain": Omittable(INDEX), "sequence": COUNT,
                     "environment": ENVIRONMENT, "previousRoot": _opt(HEX)},
         "records": [{"recordId": TEXT, "leafIndex": INDEX, "leafHash": HEX}],
         "verification": {"algorithm": _const(ALGORITHM), "keyId": TEXT, "publicKey": _b64(32),
                          "signature": _b64(64), "statement": STATEMENT, "signatureValid": BOOL,
                          "rootValid": BOOL}}
ENVELOPE = {"statusCode": _const(200), "success": _const(True), "data": _is("an object", lambda v: isinstance(v, dict))}
KEYS = {"keys": [{"keyId": TEXT, "algorithm": _const(ALGORITHM), "publicKey": _b64(32), "publicKeyPem": TEXT,
                  "status": TEXT}]}


def shape_errors(value: Any, spec: Any, path: str = "$") -> list[str]:
    """Every way ``value`` departs from ``spec`` (dict = closed object whose ``Omittable`` members may be
    absent, [spec] = array, else a predicate)."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        errors = [f"{path}.{k}: unknown field" for k in value if k not in spec]
        errors += [f"{path}.{k}: missing" for k, sub in spec.items()
                   if k not in value and not isinstance(sub, Omittable)]
        for key, sub in spec.items():
            if key in value:
                errors += shape_errors(value[key], sub.spec if isinstance(sub, Omittable) else sub, f"{path}.{key}")
        return errors
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{path}: expected an array"]
        return [e for i, item in enumerate(value) for e in shape_errors(item, spec[0], f"{path}[{i}]")]
    return [] if spec(value) else [f"{path}: expected {spec.__doc__}"]


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    kind: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def as_dict(self) -> dict[str, Any]:
        return {"verified": self.ok, "kind": self.kind, "notes": self.notes,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]}


def _unwrap(document: Any) -> Any:
    """The API envelope ``{statusCode, success, data}`` is accepted, strictly, around any document."""
    if isinstance(document, dict) and "success" in document and "data" in document:
        errors = shape_errors(document, ENVELOPE)
        if errors:
            raise DocumentError("malformed API envelope: " + "; ".join(errors[:3]))
        return document["data"]
    return document


def _structure(report: Report, document: Any, spec: dict, label: str) -> bool:
    errors = shape_errors(document, spec)
    detail = label if not errors else "; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")
    return report.add("structure", not errors, detail)


def _key_id(report: Report, key: dict[str, Any], statement: dict) -> None:
    """The statement names the key, and an id in Tally's format is that key's RFC 7638 thumbprint (so the
    signed statement commits to the very key). Ids of another shape predate derived ids and are only compared."""
    named = key["keyId"] == statement["keyId"]
    derived = KEY_ID_PATTERN.fullmatch(key["keyId"]) is not None
    thumbprint = key_id_of(base64.b64decode(key["publicKey"]))
    holds = named and (not derived or key["keyId"] == thumbprint)
    detail = f"{key['algorithm']} key {key['keyId']!r}, statement signed by {statement['keyId']!r}"
    if derived:
        detail += (", the key's thumbprint" if key["keyId"] == thumbprint
                   else f", but the key's thumbprint is {thumbprint!r}")
    report.add("key id", holds, detail)


def _signature(report: Report, statement: dict, signature: str, key: dict[str, Any], signed: str) -> None:
    """Ed25519 over the RFC 8785 bytes of the statement, with the key the document names."""
    _key_id(report, key, statement)
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key["publicKey"])).verify(
            base64.b64decode(signature), rfc8785.dumps(statement))
        valid = True
    except (InvalidSignature, ValueError):
        valid = False
    report.add("signature", valid, f"Ed25519 over the RFC 8785 statement of {signed}")


def _published(report: Report, key: dict[str, Any], keys: Any, name: str = "published key") -> None:
    """The key is listed under its id (active or retired: a retired key still checks what it signed)."""
    keys = _unwrap(keys)
    errors = shape_errors(keys, KEYS)
    if errors:
        raise DocumentError("not a verification-keys document: " + "; ".join(errors[:3]))
    match = [k for k in keys["keys"] if k["keyId"] == key["keyId"]]
    same = bool(match) and base64.b64decode(match[0]["publicKey"]) == base64.b64decode(key["publicKey"])
    report.add(name, same, f"key {key['keyId']!r} " + (f"matches the published key ({match[0]['status']})" if same
                                                       else "not published (or different)"))


def _content_hash(content: dict[str, Any]) -> str:
    try:
        return hashlib.sha256(rfc8785.dumps(content)).hexdigest()
    except rfc8785.CanonicalizationError as exc:
        return f"(not canonicalisable: {exc})"


def _check_bundle(doc: dict[str, Any], keys: Any) -> Report:
    report = Report("delta proof bundle")
    if not _structure(report, doc, BUNDLE, BUNDLE_TYPE):
        return report
    content, statement = doc["content"], doc["batch"]["statement"]
    recomputed = _content_hash(content)
    report.add("content hash", recomputed == doc["contentHash"], f"SHA-256 of RFC 8785 content = {recomputed}")
    leaf = leaf_hash(bytes.fromhex(doc["contentHash"])).hex()
    report.add("leaf hash", leaf == doc["leafHash"], f"RFC 6962 leaf of the content hash = {leaf}")
    path = [bytes.fromhex(h) for h in doc["inclusionProof"]]
    report.add("inclusion proof", verify_inclusion(bytes.fromhex(doc["leafHash"]), doc["leafIndex"], doc["treeSize"],
                                                   path, bytes.fromhex(doc["proofRoot"])),
               f"leaf {doc['leafIndex']} of {doc['treeSize']} ({len(path)} hashes) reaches {doc['proofRoot']}")
    report.add("root and size", statement["root"] == doc["proofRoot"] and statement["treeSize"] == doc["treeSize"],
               f"signed statement: root {statement['root']}, tree size {statement['treeSize']}")
    report.add("record", content["recordId"] == doc["recordId"], f"content is record {content['recordId']}")
    report.add("tenant and environment",
               (content["tenantId"], content["environment"]) == (statement["tenantId"], statement["environment"]),
               f"content {content['tenantId']}/{content['environment']}, "
               f"batch {statement['tenantId']}/{statement['environment']}")
    _signature(report, statement, doc["batch"]["signature"], doc["publicKey"], f"batch {statement['batchId']}")
    _key_checks(report, doc["publicKey"], keys)
    return report


def _check_batch(doc: dict[str, Any], keys: Any) -> Report:
    report = Report("batch document")
    if not _structure(report, doc, BATCH, "verify response"):
        return report
    verification, records, summary = doc["verification"], doc["records"], doc["summary"]
    statement = verification["statement"]
    report.add("leaf order", [r["leafIndex"] for r in records] == list(range(len(records))),
               f"{len(records)} leaves indexed 0..{len(records) - 1}")
    report.add("tree size", len(records) == statement["treeSize"] == summary["treeSize"],
               f"{len(records)} leaves, statement says {statement['treeSize']}")
    root = root_of([bytes.fromhex(r["leafHash"]) for r in records]).hex()
    report.add("root", root == statement["root"] == doc["proofRoot"], f"RFC 6962 root of the leaves = {root}")
    named = {k: statement[k] for k in ("batchId", "sequence", "environment", "previousRoot")}
    chain = statement.get("chain", 0)
    report.add("summary", {k: summary[k] for k in named} == named and summary.get("chain", 0) == chain
               and doc["recordedAt"] == statement["sealedAt"],
               f"summary and recordedAt repeat the signed statement (chain {chain}, sequence {statement['sequence']})")
    claims = doc["verified"] and verification["signatureValid"] and verification["rootValid"]
    report.add("server verdict", claims, "the server reported the batch verified")
    key = {k: verification[k] for k in ("keyId", "algorithm", "publicKey")}
    _signature(report, statement, verification["signature"], key, f"batch {statement['batchId']}")
    _key_checks(report, key, keys)
    report.notes.append("Record ids are listed by the server and not covered by the signature; "
                        "a delta's proof bundle binds its record.")
    return report


def _utc_month(stamp: str) -> str | None:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m") if moment.tzinfo else None


def _per_sample(report: Report, name: str, samples: list[dict[str, Any]], summary: str,
                problem: Callable[[dict[str, Any]], str | None]) -> None:
    """One report line for a check run on every sample: the first failing sample is named."""
    failures = [(s, p) for s in samples if (p := problem(s)) is not None]
    if not failures:
        report.add(name, True, f"{len(samples)} sample(s): {summary}" if samples else "no samples")
        return
    (sample, detail), more = failures[0], len(failures) - 1
    report.add(name, False, f"sample {sample['recordId']} (leaf {sample['leafIndex']}): {detail}"
               + (f" (+{more} more)" if more else ""))


def _check_package(doc: dict[str, Any], keys: Any) -> Report:
    report = Report("verification package")
    if not _structure(report, doc, PACKAGE, PACKAGE_TYPE):
        return report
    statement, samples = doc["checkpoint"]["statement"], doc["samples"]
    size, first, last = statement["treeSize"], statement["firstSequence"], statement["lastSequence"]
    report.add("statement type", statement["type"] == CHECKPOINT_TYPE, f"statement type {statement['type']!r}")
    report.add("customer and period", (doc["customerId"], doc["period"]) == (statement["customerId"],
                                                                              statement["period"]),
               f"package {doc['customerId']} {doc['period']}, checkpoint {statement['customerId']} "
               f"{statement['period']}")
    # An empty checkpoint has the empty root and no sequences; leaves have distinct sequence numbers.
    if size == 0:
        bounds = statement["root"] == EMPTY_ROOT.hex() and first is None and last is None
    else:
        bounds = first is not None and last is not None and size <= last - first + 1
    previous = statement["previousTreeSize"]
    bounds = bounds and (statement["previousRoot"] is None) == (previous is None) and (previous or 0) <= size
    report.add("checkpoint bounds", bounds, f"tree size {size}, " + (f"sequences {first}..{last}" if size else
                                                                      "the empty root, no sequences")
               + f", previous tree size {previous}")
    report.add("sample size", doc["sampleSize"] == len(samples) <= size,
               f"{len(samples)} samples, package says {doc['sampleSize']}, tree size {size}")
    indexes = [s["leafIndex"] for s in samples]
    order = next((f"leaf {b} follows leaf {a}" for a, b in pairwise(indexes) if a >= b), None)
    order = order or next((f"leaf {i} is outside a tree of {size}" for i in indexes if i >= size), None)
    report.add("leaf order", order is None, order or f"{len(indexes)} leaf indexes ascending, below {size}")

    root = bytes.fromhex(statement["root"])
    hashes = {id(s): _content_hash(s["content"]) for s in samples}
    _per_sample(report, "content hash", samples, "SHA-256 of RFC 8785 content",
                lambda s: None if hashes[id(s)] == s["contentHash"] else f"recomputed {hashes[id(s)]}")
    _per_sample(report, "leaf hash", samples, "RFC 6962 leaf of the content hash",
                lambda s: None if leaf_hash(bytes.fromhex(s["contentHash"])).hex() == s["leafHash"]
                else "not the leaf of its content hash")
    _per_sample(report, "inclusion proof", samples, f"reach the signed root {statement['root']} of {size}",
                lambda s: None if verify_inclusion(bytes.fromhex(s["leafHash"]), s["leafIndex"], size,
                                                   [bytes.fromhex(h) for h in s["inclusionProof"]], root)
                else f"{len(s['inclusionProof'])} hashes do not reach the signed root")
    _per_sample(report, "record", samples, "content is the named record",
                lambda s: None if s["content"]["recordId"] == s["recordId"]
                else f"content is record {s['content']['recordId']}")
    owner = ("tenantId", "environment", "customerId")
    _per_sample(report, "tenant, environment and customer", samples,
                "/".join(statement[k] for k in owner),
                lambda s: None if all(s["content"][k] == statement[k] for k in owner)
                else "content " + "/".join(s["content"][k] for k in owner))
    _per_sample(report, "sample period", samples, f"created in {statement['period']} (UTC)",
                lambda s: None if _utc_month(s["content"]["createdAt"]) == statement["period"]
                else f"created {s['content']['createdAt']}, not in {statement['period']}")

    # Leaves are in sequence order: the first and last leaves carry firstSequence and lastSequence.
    before = {id(b): a["content"]["sequenceNumber"] for a, b in pairwise(samples) if a["leafIndex"] < b["leafIndex"]}

    def sequence(s: dict[str, Any]) -> str | None:
        number, index = s["content"]["sequenceNumber"], s["leafIndex"]
        if first is None or last is None or not first <= number <= last:
            return f"sequence {number} outside {first}..{last}"
        if (index == 0 and number != first) or (index == size - 1 and number != last):
            return f"sequence {number} at leaf {index} of {size}, the checkpoint says {first}..{last}"
        if before.get(id(s), 0) >= number:
            return f"sequence {number} follows sequence {before[id(s)]}"
        return None

    _per_sample(report, "sequence numbers", samples, f"within {first}..{last}, in leaf order", sequence)
    checkpoint_key = doc["checkpoint"].get("publicKey", doc["publicKey"])  # a retired key, after a rotation
    _signature(report, statement, doc["checkpoint"]["signature"], checkpoint_key,
               f"checkpoint {statement['checkpointId']}")
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(doc["publicKey"]["publicKey"])).verify(
            base64.b64decode(doc["signature"]), rfc8785.dumps(unsigned))
        whole = True
    except (InvalidSignature, ValueError):
        whole = False
    report.add("package signature", whole, "Ed25519 over the RFC 8785 form of the whole package")
    _key_checks(report, doc["publicKey"], keys)
    if "publicKey" in doc["checkpoint"] and keys is not None:
        _published(report, checkpoint_key, keys, "published checkpoint key")
    return report


def _key_checks(report: Report, key: dict[str, Any], keys: Any) -> None:
    if keys is None:
        report.notes.append("The public key is the one embedded in the document; pass the saved "
                            "GET /api/v1/verification-keys output (--keys) to pin it to the published keys.")
    else:
        _published(report, key, keys)


def check(document: Any, *, keys: Any = None) -> Report:
    """Check a parsed document (use :func:`loads` for the strict reading); raises DocumentError if the
    document is not one this checker knows."""
    doc = _unwrap(document)
    if isinstance(doc, dict) and doc.get("type") == BUNDLE_TYPE:
        return _check_bundle(doc, keys)
    if isinstance(doc, dict) and doc.get("type") == PACKAGE_TYPE:
        return _check_package(doc, keys)
    if isinstance(doc, dict) and "verification" in doc and "records" in doc and "proofRoot" in doc:
        return _check_batch(doc, keys)
    raise DocumentError(f"not a Tally delta proof bundle ({BUNDLE_TYPE}), verification package ({PACKAGE_TYPE}) "
                        "or batch document (/api/v1/verify)")
