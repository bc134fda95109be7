"""Counting, crashing and faulting the AWS calls a piece of code makes (DynamoDB, and S3 and SQS on request).

One patch of botocore's ``Endpoint._do_get_response`` — the step that sends one *attempt* of one API call and
parses its answer, inside botocore's retry loop — serves every attached :class:`AwsCalls`. Calls are counted
once (on their first attempt); a crash stops the process at call k, before it reaches the service or after
the service applied it; a fault makes call k's attempts fail as AWS would fail them, so botocore's own retry
policy sees them exactly as it sees real ones (throttling and timeouts are retried with backoff, a
TransactionCanceledException is not) and the product's retries see whatever botocore gives up on:

* ``throttle``: a throttling answer (DynamoDB ``ThrottlingException``, ``ProvisionedThroughputExceededException``
  or ``RequestLimitExceeded``, by the fault's ``variant``; S3 ``SlowDown``; SQS ``RequestThrottled``);
* ``conflict``: a DynamoDB write refused for a concurrent transaction (``TransactionCanceledException`` with a
  ``TransactionConflict`` reason for TransactWriteItems, ``TransactionConflictException`` for a single write);
* ``timeout``: ``ConnectTimeoutError``, ``EndpointConnectionError`` or ``ReadTimeoutError`` (by ``variant``), the
  request never applied;
* ``lost-answer``: the request is applied, then its answer is lost (``ReadTimeoutError``).

A fault is *transient* (call k's first attempt only) or *persistent* (every attempt of call k and of every later
call of the same operation on the same table, bucket or queue: retries run out). DynamoDB makes a
TransactWriteItems retried with the same ``ClientRequestToken`` idempotent (botocore sends one token for all the
attempts of a call); moto does not, so while armed the first applied answer of a token is replayed as DynamoDB
would. Used by the crash-safety tests, the fault-injection tests and the round-trip counts.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore.endpoint
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from chalicelib.adapters.dynamodb.connection import shared_connection


class CrashError(BaseException):
    """A simulated crash of the process. A BaseException, not an Exception: no ``except Exception`` in the
    product (a job's per-tenant error handling, a handler's catch-all) can swallow it, so the code under
    test stops right there, as a killed process would."""


KINDS = ("throttle", "conflict", "timeout", "lost-answer")
THROTTLES = {"dynamodb": ("ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"),
             "s3": ("SlowDown",), "sqs": ("RequestThrottled",)}
TIMEOUTS = (ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError)
DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")


@dataclass(frozen=True)
class Call:
    """One API call (all its attempts): what it asked of which resource, and the product code that asked."""

    index: int  # 1-based, in the order the calls were made
    service: str
    operation: str
    target: str  # the table(s), bucket or queue
    site: str  # the innermost product function outside the adapters

    @property
    def endpoint(self) -> tuple[str, str, str]:
        """What a persistent fault keeps failing: this operation on this resource."""
        return self.service, self.operation, self.target


@dataclass(frozen=True)
class Fault:
    kind: str
    at: int  # the call index
    persistent: bool = False
    variant: int = 0  # which throttling code, which timeout

    def describe(self, service: str) -> str:
        if self.kind == "throttle":
            codes = THROTTLES[service]
            return codes[self.variant % len(codes)]
        if self.kind == "timeout":
            return TIMEOUTS[self.variant % len(TIMEOUTS)].__name__
        return self.kind

    def hits(self, call: Call, attempt: int, calls: list[Call]) -> bool:
        if self.persistent:
            return call.index >= self.at and call.endpoint == calls[self.at - 1].endpoint
        return call.index == self.at and attempt == 1


def applicable(kind: str, call: Call) -> bool:
    """A conflict is a DynamoDB write's answer only; every other kind can hit any call."""
    return kind != "conflict" or (call.service == "dynamodb" and call.operation in DYNAMODB_WRITES)


class AwsCalls:
    """Counts the calls to ``services`` while armed; with ``crash_at=k`` raises CrashError before or after call
    k; with ``fault`` fails attempts as AWS would.

    ``attach()`` … ``run()`` … ``detach()`` for several runs on one instance, or ``recording()`` for one run.
    ``operations`` lists the calls' operation names, ``calls`` the calls, ``attempts`` every attempt as
    ``(call index, attempt number, what happened)``."""

    def __init__(self, services: tuple[str, ...] = ("dynamodb",)) -> None:
        shared_connection()  # bind the models first: that binding makes no call worth counting
        self.services = services
        self.calls: list[Call] = []
        self.operations: list[str] = []  # the calls' operation names (one list per run: callers may hold it)
        self.attempts: list[tuple[int, int, str]] = []
        self.armed = False
        self.crash_at: int | None = None
        self.phase = "before"
        self.fault: Fault | None = None
        self._by_invocation: dict[str, Call] = {}
        self._tokens: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    @contextmanager
    def recording(cls, services: tuple[str, ...] = ("dynamodb",)) -> Iterator[AwsCalls]:
        """Attached and armed for the ``with`` block: ``operations`` lists the calls made in it, in order."""
        calls = cls(services).attach()
        try:
            with calls.run():
                yield calls
        finally:
            calls.detach()

    def attach(self) -> AwsCalls:
        _attach(self)
        return self

    def detach(self) -> None:
        _detach(self)

    @contextmanager
    def run(self, *, crash_at: int | None = None, phase: str = "before",
            fault: Fault | None = None) -> Iterator[AwsCalls]:
        self.calls, self.operations, self.attempts, self._by_invocation, self._tokens = [], [], [], {}, {}
        self.crash_at, self.phase, self.fault, self.armed = crash_at, phase, fault, True
        try:
            yield self
        finally:
            self.armed = False

    # --- one attempt ----------------------------------------------------------------------------------

    def _call(self, service: str, operation: str, request: Any, context: dict) -> tuple[Call, int]:
        retries = context.setdefault("retries", {})
        invocation = retries.setdefault("invocation-id", str(id(context)))
        with self._lock:
            call = self._by_invocation.get(invocation)
            if call is None:
                call = Call(len(self.calls) + 1, service, operation, _target(service, request), _site())
                self.calls.append(call)
                self.operations.append(operation)
                self._by_invocation[invocation] = call
        return call, int(retries.get("attempt", 1))

    def _send(self, endpoint: Any, request: Any, operation_model: Any, context: dict, send: Any) -> Any:
        call, attempt = self._call(operation_model.service_model.service_name, operation_model.name, request,
                                   context)
        if self.crash_at == call.index and attempt == 1 and self.phase == "before":
            self.armed = False
            raise CrashError(f"crash before {call.service} call {call.index} ({call.operation})")
        fault = self.fault
        if fault is not None and not (fault.hits(call, attempt, self.calls) and applicable(fault.kind, call)):
            fault = None
        self.attempts.append((call.index, attempt, fault.kind if fault is not None else "sent"))
        if fault is not None and fault.kind == "throttle":
            return _error_answer(endpoint, request, operation_model,
                                 *_throttle(call.service, fault.describe(call.service)))
        if fault is not None and fault.kind == "conflict":
            return _error_answer(endpoint, request, operation_model, *_conflict(call.operation, request))
        if fault is not None and fault.kind == "timeout":
            return None, TIMEOUTS[fault.variant % len(TIMEOUTS)](endpoint_url=request.url)
        answer = self._idempotent(call, request, lambda: send(endpoint, request, operation_model, context))
        if self.crash_at == call.index and self.phase == "after":
            self.armed = False
            raise CrashError(f"crash after {call.service} call {call.index} ({call.operation})")
        if fault is not None:  # a lost answer: applied, and then the connection timed out
            return None, ReadTimeoutError(endpoint_url=request.url)
        return answer

    def _idempotent(self, call: Call, request: Any, send: Any) -> Any:
        """DynamoDB's ``ClientRequestToken``: a TransactWriteItems sent again with the token of one already
        applied answers as the first did, and applies nothing (moto applies it again)."""
        if call.operation != "TransactWriteItems":
            return send()
        token = json.loads(request.body).get("ClientRequestToken")
        assert token, "a TransactWriteItems without a ClientRequestToken: botocore's retry could apply it twice"
        if token in self._tokens:
            return copy.deepcopy(self._tokens[token])
        answer = send()
        success, _exception = answer
        if success is not None and success[0].status_code == 200:
            self._tokens[token] = copy.deepcopy(answer)
        return answer


DynamoCalls = AwsCalls  # the crash tests' and benches' name: DynamoDB calls only, by default


# --- the one patch ------------------------------------------------------------------------------------

_active: list[AwsCalls] = []
_patch_lock = threading.Lock()
_ORIGINAL = botocore.endpoint.Endpoint._do_get_response


def _do_get_response(endpoint: Any, request: Any, operation_model: Any, context: dict) -> Any:
    service = operation_model.service_model.service_name
    watchers = [w for w in list(_active) if w.armed and service in w.services]
    if not watchers:
        return _ORIGINAL(endpoint, request, operation_model, context)
    for other in watchers[1:]:  # several instances attached at once all count; the first one acts
        other._call(service, operation_model.name, request, context)
    return watchers[0]._send(endpoint, request, operation_model, context, _ORIGINAL)


def _attach(calls: AwsCalls) -> None:
    with _patch_lock:
        if calls not in _active:
            _active.append(calls)
        botocore.endpoint.Endpoint._do_get_response = _do_get_response


def _detach(calls: AwsCalls) -> None:
    with _patch_lock:
        if calls in _active:
            _active.remove(calls)
        if not _active:
            botocore.endpoint.Endpoint._do_get_response = _ORIGINAL


# --- what a call is -----------------------------------------------------------------------------------


def _json_body(request: Any) -> dict:
    body = request.body
    if isinstance(body, (bytes, str)) and body[:1] in (b"{", "{"):
        return json.loads(body)
    return {}


def _target(service: str, request: Any) -> str:
    if service == "s3":
        return urlsplit(request.url).path.lstrip("/").split("/", 1)[0]
    body = _json_body(request)
    if service == "sqs":
        return str(body.get("QueueUrl") or body.get("QueueName") or "").rsplit("/", 1)[-1]
    tables = {body["TableName"]} if "TableName" in body else set(body.get("RequestItems") or ())
    for item in body.get("TransactItems") or ():
        tables.update(op["TableName"] for op in item.values())
    return ",".join(sorted(tables))


def _site() -> str:
    """``module.function`` of the innermost product frame that is not an adapter (the use case's call)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("chalicelib.") and not name.startswith("chalicelib.adapters."):
            return f"{name.removeprefix('chalicelib.')}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "-"


# --- AWS's answers --------------------------------------------------------------------------------------


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _error_answer(endpoint: Any, request: Any, operation_model: Any, status: int, headers: dict,
                  body: bytes) -> Any:
    """An error answer parsed as botocore parses what AWS sends (``Endpoint._do_get_response``'s own steps)."""
    http = AWSResponse(request.url, status, {"x-amzn-RequestId": "fault-injected", **headers}, _Body(body))
    response = botocore.endpoint.convert_to_response_dict(http, operation_model)
    parser = endpoint._response_parser_factory.create_parser(operation_model.service_model.resolved_protocol)
    parsed = parser.parse(response, operation_model.output_shape)
    endpoint._add_modeled_error_fields(response, parsed, operation_model, parser)
    return (http, parsed), None


def _json_error(status: int, error_type: str, message: str, **fields: Any) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(
        {"__type": error_type, "message": message, **fields}).encode()


def _throttle(service: str, code: str) -> tuple[int, dict, bytes]:
    if service == "s3":
        return 503, {"Content-Type": "application/xml"}, (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            "<Message>Please reduce your request rate.</Message></Error>").encode()
    prefix = "com.amazonaws.dynamodb.v20120810#" if service == "dynamodb" else "com.amazonaws.sqs#"
    return _json_error(400, prefix + code, "The request rate is too high; retry with backoff.")


def _conflict(operation: str, request: Any) -> tuple[int, dict, bytes]:
    prefix = "com.amazonaws.dynamodb.v20120810#"
    if operation != "TransactWriteItems":
        return _json_error(400, prefix + "TransactionConflictException",
                           "Operation was rejected because there is an ongoing transaction for the item.")
    items = len(_json_body(request).get("TransactItems") or ())
    reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}] + [
        {"Code": "None"}] * (items - 1)
    return _json_error(400, prefix + "TransactionCanceledException",
                       "Transaction cancelled, please refer cancellation reasons for specific reasons "
                       f"[{', '.join(r['Code'] for r in reasons)}]", CancellationReasons=reasons)
