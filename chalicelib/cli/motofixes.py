"""Make moto's DynamoDB behave (and perform) like DynamoDB for the local stack and the tests.

Development tooling only; the Lambda bundle never imports moto.

:func:`install` puts every table's items in SQLite (:mod:`chalicelib.cli.sqlite_dynamodb`) and
makes each DynamoDB request one atomic unit:

* one lock around moto's DynamoDB request handling: real DynamoDB applies every write and
  TransactWriteItems atomically, moto's threaded server does not (the lock serves the background
  functions first, see :class:`chalicelib.cli.sqlite_dynamodb.FairLock`);
* what a request writes is staged and committed only when it succeeds, so a cancelled
  transaction is rolled back by forgetting its staged items (moto copies every touched table);
* ``Item`` construction checks the 400 KB limit once per item (moto re-sums the item on every
  attribute it adds: quadratic in the attribute count);
* the common update expressions (top-level SET, ADD, REMOVE) are applied from a compiled plan
  (:mod:`chalicelib.cli.fast_updates`), others through moto;
* moto's expression validators walk the update-expression tree ten times per UpdateItem with an
  ``isinstance`` against abstract base classes at every node (~10 ms for a 15-clause update):
  the walk is the same, with each node type's answer looked up once;
* items and queue messages are not tracked: every moto model instance is kept in a class-level list
  for moto's dashboard, forever (30 MB per 1,000 deltas: every item loaded, every message sent);
* condition expressions are parsed once per distinct (expression, names, values);
* the requests and answers of the item operations are read and written as JSON directly (moto's
  generic serializer walks the botocore shape of every attribute of every item: a third of a Query);
* item sizes, response request ids and SQS retention are computed without moto's detours.
"""

from __future__ import annotations

import base64
import copy
import datetime
import decimal
import json
import re
import time
from pathlib import Path
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

from chalicelib.cli.sqlite_dynamodb import SqliteTable, Store

_installed: dict[str, Any] = {}
# The local stack names each process's role in botocore's User-Agent (AWS_SDK_UA_APP_ID): the store's
# lock schedules DynamoDB requests by it (see FairLock).
_CLIENT_CLASS = re.compile(r"\bapp/([A-Za-z0-9._-]+)")
_VALUE_PLACEHOLDER = re.compile(r":[A-Za-z0-9_]+")


def _patch(owner: Any, name: str, make: Any) -> None:
    original = getattr(owner, name)
    if getattr(original, "_tally_patched", False):
        return
    patched = make(original)
    patched._tally_patched = True
    patched.__wrapped__ = original  # moto's own, for tests that hold the patch to it
    setattr(owner, name, patched)


class _NoTableCopies:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: the whole-table backups that
    TransactWriteItems takes become the table itself (the store rolls back by discarding)."""

    def deepcopy(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, SqliteTable):
            return value
        return copy.deepcopy(value, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _fast_expression_walks() -> None:
    """moto's tree walks with their per-node type checks cached by type (same order, same results)."""
    from moto.dynamodb.parsing import ast_nodes

    node_class = ast_nodes.Node
    is_node: dict[type, bool] = {}

    def node_type(kind: type) -> bool:
        known = is_node.get(kind)
        if known is None:
            known = is_node[kind] = issubclass(kind, node_class)
        return known

    base_pre = ast_nodes.DepthFirstTraverser.pre_processing_of_child

    def processors(traverser: Any) -> dict:
        cache = traverser.__dict__.get("_tally_processors")
        if cache is None:
            cache = traverser.__dict__["_tally_processors"] = {}
        return cache

    def processor_for(traverser: Any, cache: dict, kind: type) -> Any:
        handled = traverser.nodes_to_be_processed()
        found = cache[kind] = (next((f for k, f in traverser._processing_map().items() if issubclass(kind, k)), None)
                               if issubclass(kind, handled) else None)
        return found

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        kind = type(node)
        known = is_node.get(kind)
        if known is None:
            known = node_type(kind)
        if not known:
            return node
        parent_node = node.parent
        children = node.children
        if children is not None:
            hook = type(self).pre_processing_of_child is not base_pre
            for i, child_node in enumerate(children):
                if hook:
                    self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        cache = processors(self)
        process = cache[kind] if kind in cache else processor_for(self, cache, kind)
        if process is not None:
            node = process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    expression_class = ast_nodes.Expression
    function_class = ast_nodes.UpdateExpressionFunction
    descends: dict[type, bool] = {}

    def find_clauses(self: Any, clause_types: Any) -> list:
        clauses: list = []
        for child in self.children or []:
            kind = type(child)
            if kind in clause_types:
                clauses.append(child)
                continue
            known = descends.get(kind)
            if known is None:
                known = descends[kind] = issubclass(kind, (expression_class, function_class))
            if known:
                clauses.extend(child.find_clauses(clause_types))
        return clauses

    def at_the_root(check: Any) -> Any:
        def run(self: Any, node: Any) -> Any:
            # The walk visits every nested UpdateExpression and each check re-collects the clauses below it
            # (quadratic); the root's collection holds every clause, so checking it alone finds the same errors.
            return node if node.parent is not None else check(self, node)
        return run

    from moto.dynamodb.parsing import validators

    primitive = (str, int, float, bool, type(None))

    def node_deepcopy(self: Any, memo: dict) -> Any:
        """copy.deepcopy's result, without its generic reduce/reconstruct machinery per node."""
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        copied = clone.__dict__
        for name, value in self.__dict__.items():
            kind = type(value)
            if kind in primitive:
                copied[name] = value
            elif kind is list:
                copied[name] = [v if type(v) in primitive else copy.deepcopy(v, memo) for v in value]
            else:
                copied[name] = copy.deepcopy(value, memo)
        return clone

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parsed: dict[str, Any] = {}
    kept: set[int] = set()  # ids of the cached trees (alive as long as the cache: never reused)
    parse = UpdateExpressionParser.make.__func__

    def make(cls: Any, expression_str: str) -> Any:
        """Each distinct update expression is tokenized and parsed once. The tree is shared: moto's callers
        only read it, and its validator works on a deep copy."""
        tree = parsed.get(expression_str)
        if tree is None:
            tree = parse(cls, expression_str)
            if len(parsed) < 4096:
                parsed[expression_str] = tree
                kept.add(id(tree))
        return tree

    syntax_checked: set[tuple] = set()
    syntax_only = (validators.ActionCountValidator, validators.OverlappingPathsValidator,
                   validators.UpdateHashRangeKeyValidator)
    validator_class = validators.UpdateExpressionValidator

    def validator_init(original: Any) -> Any:
        def run(self: Any, expression: Any, expression_attribute_names: Any, *args: Any, **kwargs: Any) -> None:
            table = kwargs.get("table", args[2] if len(args) > 2 else None)
            self._tally_key = (id(expression), tuple(sorted((expression_attribute_names or {}).items())),
                               tuple(getattr(table, "table_key_attrs", ())))
            original(self, expression, expression_attribute_names, *args, **kwargs)
        return run

    def get_ast_processors(original: Any) -> Any:
        def run(self: Any) -> Any:
            found = original(self)
            if getattr(self, "_tally_key", None) in syntax_checked:  # this exact expression passed them already
                found = [p for p in found if not isinstance(p, syntax_only)]
            return found
        return run

    def validate(original: Any) -> Any:
        def run(self: Any) -> Any:
            result = original(self)
            key = getattr(self, "_tally_key", None)
            if key is not None and key[0] in kept and len(syntax_checked) < 65536:
                syntax_checked.add(key)
            return result
        return run

    ast_nodes.Node.__deepcopy__ = node_deepcopy
    _patch(validator_class, "__init__", validator_init)
    _patch(validator_class, "get_ast_processors", get_ast_processors)
    _patch(validator_class, "validate", validate)
    if not getattr(UpdateExpressionParser.make, "_tally_patched", False):
        make._tally_patched = True  # type: ignore[attr-defined]
        UpdateExpressionParser.make = classmethod(make)
    traverse_node_recursively._tally_patched = True  # type: ignore[attr-defined]
    ast_nodes.DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively
    ast_nodes.Node.find_clauses = find_clauses
    _patch(validators.ActionCountValidator, "verify_action_counts", at_the_root)
    _patch(validators.OverlappingPathsValidator, "check_for_overlapping_paths", at_the_root)


def _untracked(model: type) -> None:
    """Instances of ``model`` are no longer appended to moto's ``instances_tracked`` (never emptied in a
    running server)."""
    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    model.__new__ = new  # type: ignore[assignment]
    model.instances_tracked = []  # type: ignore[attr-defined]


def _cached_conditions() -> None:
    """Condition expressions parsed once per (expression, names, values it refers to): moto lexes and parses
    each one on every use (twice per transactional Update), and its result is a read-only tree of operators."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    parsed: dict[tuple, tuple] = {}
    placeholders: dict[str, tuple[str, ...]] = {}

    def parse(original: Any) -> Any:
        def run(self: Any) -> Any:
            expression = self.condition_expression
            if not expression:
                return original(self)
            used = placeholders.get(expression)
            if used is None:
                used = placeholders[expression] = tuple(sorted(set(_VALUE_PLACEHOLDER.findall(expression))))
            values = self.expression_attribute_values or {}
            try:
                key = (expression, tuple(sorted((self.expression_attribute_names or {}).items())),
                       json.dumps([values.get(name) for name in used], sort_keys=True))
            except (TypeError, ValueError):
                return original(self)
            known = parsed.get(key)
            if known is None:
                op = original(self)
                if len(parsed) >= 20_000:
                    parsed.clear()
                parsed[key] = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
                return op
            op, names_found, values_found = known
            self.expr_attr_names_found.extend(names_found)
            self.expr_attr_values_found.extend(values_found)
            return op
        return run

    _patch(ConditionExpressionParser, "parse", parse)


def _lighter_bookkeeping() -> None:
    """Three costs moto pays on every request, taken out with the same results: an item's size walked through
    its generic DynamoType methods, a regular expression run over every response body looking for an XML
    request id, and a SQS message's retention checked by computing every attribute of its queue."""
    from moto.core.responses import BaseResponse
    from moto.dynamodb.models.dynamo_type import Item
    from moto.sqs.models import SQSBackend

    from chalicelib.cli.sqlite_dynamodb import value_size

    def size(original: Any) -> Any:
        def run(self: Any) -> int:
            return sum(len(k.encode("utf-8", "surrogatepass")) + value_size(v) for k, v in self.attrs.items())
        return run

    def enrich(original: Any) -> Any:
        def run(headers: dict[str, str], body: Any) -> Any:
            if isinstance(body, str) and "<RequestId>" not in body:
                from moto.utilities.aws_headers import gen_amzn_requestid_long

                if "status" in headers:
                    headers["status"] = str(headers["status"])
                gen_amzn_requestid_long(headers)
                return headers, body
            return original(headers, body)
        run._tally_patched = True  # type: ignore[attr-defined]
        return run

    def retention(original: Any) -> Any:
        def run(self: Any, queue_name: str, message: Any) -> bool:
            period = self.get_queue(queue_name).message_retention_period
            return int(period) + message.sent_timestamp / 1000 > time.time()
        return run

    _patch(Item, "size", size)
    current = BaseResponse.__dict__["_enrich_response"].__func__  # a staticmethod
    if not getattr(current, "_tally_patched", False):
        BaseResponse._enrich_response = staticmethod(enrich(current))
    _patch(SQSBackend, "is_message_valid_based_on_retention_period", retention)


_FAST_ANSWERS = frozenset({"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem",
                           "TransactWriteItems", "TransactGetItems", "BatchWriteItem"})


def _plain(value: Any) -> Any:
    if isinstance(value, DynamoType):
        kind, raw = value.type, value.value
        if kind == "B":
            return {"B": raw if isinstance(raw, str) else base64.b64encode(raw).decode()}
        if kind == "BS":
            return {"BS": [v if isinstance(v, str) else base64.b64encode(v).decode() for v in raw]}
        return {kind: raw}  # M and L hold DynamoTypes: the encoder comes back here for each
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, decimal.Decimal):
        return float(value)  # ConsumedCapacity figures only: item numbers are strings
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, LimitedSizeDict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def _fast_answers() -> None:
    """Successful item operations answer with their result as DynamoDB JSON, encoded straight from moto's
    objects (no conversion to plain dicts first, no generic serializer); errors still go through moto's."""
    from moto.dynamodb import responses

    def raw_result(original: Any) -> Any:
        def run(self: Any, result: object) -> None:
            self._result = result  # moto's objects as they are; converted only for moto's own serializer
            self._tally_raw = True

        return run

    def make(original: Any) -> Any:
        def run(self: Any, action_result: Any) -> Any:
            raw = getattr(action_result, "_tally_raw", False)
            if raw and isinstance(action_result._result, dict) and self._get_action() in _FAST_ANSWERS:
                body = json.dumps(_drop_none(action_result._result), default=_plain, separators=(",", ":"))
                headers = {"Content-Type": "application/x-amz-json-1.0"}
                headers.update(self.response_headers)
                return 200, headers, body
            if raw:
                from moto.dynamodb.models.utilities import dynamo_to_dict

                action_result._result = dynamo_to_dict(action_result._result)
                action_result._tally_raw = False
            return original(self, action_result)
        return run

    def parse_parameters(original: Any) -> Any:
        def run(self: Any, request: Any) -> None:
            raw = request.data
            if self._get_action() in _FAST_ANSWERS and isinstance(raw, bytes | str):
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "surrogatepass")
                if '"B"' not in text and '"BS"' not in text:  # binary values are the only ones the shapes convert
                    self.params = json.loads(text or "{}")
                    return
            original(self, request)
        return run

    _patch(responses.DynamoResult, "__init__", raw_result)
    _patch(responses.DynamoHandler, "parse_parameters", parse_parameters)
    _patch(responses.DynamoHandler, "serialized", make)


def install(path: str | Path = ":memory:") -> Store:
    """Back moto's DynamoDB with a SQLite store at ``path`` (replacing any earlier one)."""
    import moto.dynamodb.models as models
    import moto.dynamodb.responses as responses
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize
    from moto.dynamodb.responses import DynamoHandler

    # DynamoDB has taken 100 items in a TransactGetItems since 2022 (as in a TransactWriteItems); moto still
    # refuses more than 25, and the credit position is read as one snapshot of 33 items.
    responses.TRANSACTION_MAX_ITEMS = 100
    previous = _installed.get("store")
    if previous is not None:
        previous.close()
    store = Store(path)
    SqliteTable.store = store
    _installed["store"] = store
    models.Table = SqliteTable  # what DynamoDBBackend.create_table instantiates
    models.copy = _NoTableCopies()
    backend = models.DynamoDBBackend

    def call_action(original: Any) -> Any:
        def run(self: Any) -> Any:
            current = SqliteTable.store
            agent = self.headers.get("User-Agent", "") if getattr(self, "headers", None) else ""
            found = _CLIENT_CLASS.search(agent)
            with current.lock.holding(found.group(1) if found else ""):
                current.begin()
                ok = False
                try:
                    result = original(self)
                    ok = int(result[0]) < 400
                    return result
                finally:
                    current.end(ok)
        return run

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from chalicelib.cli import fast_updates

    plans: dict[str, Any] = {}

    def plan_of(expression: str | None) -> Any:
        if not expression:
            return None
        if expression not in plans:
            try:
                plans[expression] = fast_updates.compile_plan(UpdateExpressionParser.make(expression))
            except Exception:  # not parseable: moto's own path reports it
                plans[expression] = None
        return plans[expression]

    def update_item(original: Any) -> Any:
        def run(self: Any, table_name: str, key: dict, update_expression: str | None = None,
                expression_attribute_names: dict | None = None, expression_attribute_values: dict | None = None,
                attribute_updates: Any = None, expected: Any = None, condition_expression: str | None = None,
                return_values_on_condition_check_failure: str | None = None) -> Any:
            plan = plan_of(update_expression) if not attribute_updates and not expected else None
            if plan:
                item = fast_updates.update_item(self, table_name, key, plan, expression_attribute_names,
                                                expression_attribute_values, condition_expression,
                                                return_values_on_condition_check_failure)
            else:  # moto changes the stored object in place
                item = original(self, table_name, key, update_expression=update_expression,
                                expression_attribute_names=expression_attribute_names,
                                expression_attribute_values=expression_attribute_values,
                                attribute_updates=attribute_updates, expected=expected,
                                condition_expression=condition_expression,
                                return_values_on_condition_check_failure=return_values_on_condition_check_failure)
            table = self.get_table(table_name)
            table.store.stage(table, item.hash_key, item.range_key, item)
            return item
        return run

    def delete_table(original: Any) -> Any:
        def run(self: Any, name: str) -> Any:
            table = original(self, name)
            if isinstance(table, SqliteTable):
                table.store.drop(table.store_name)
            return table
        return run

    def update_table_global_indexes(original: Any) -> Any:
        def run(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            result = original(self, name, *args, **kwargs)
            table = self.get_table(name)
            if isinstance(table, SqliteTable):
                table.store.attach(table)
            return result
        return run

    def reset(original: Any) -> Any:
        def run(self: Any) -> Any:  # a fresh moto world (mock_aws) starts with empty tables
            for table in list(getattr(self, "tables", {}).values()):
                if isinstance(table, SqliteTable):
                    table.store.drop(table.store_name)
            return original(self)
        return run

    def item_init(original: Any) -> Any:
        def run(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
            from moto.dynamodb.exceptions import ItemSizeTooLarge

            self.hash_key, self.range_key = hash_key, range_key
            values = LimitedSizeDict.__new__(LimitedSizeDict)
            dict.__init__(values)
            total = 0
            for key, value in attrs.items():
                typed = DynamoType(value)
                total += bytesize(key) + typed.size()
                dict.__setitem__(values, key, typed)
            if total > 405000:  # moto's limit, checked as it would after each attribute
                raise ItemSizeTooLarge
            self.attrs = values
        return run

    _patch(DynamoHandler, "call_action", call_action)
    _fast_expression_walks()  # before the update_item patch: its plans come from the cached parses
    _patch(backend, "update_item", update_item)
    _patch(backend, "delete_table", delete_table)
    _patch(backend, "update_table_global_indexes", update_table_global_indexes)
    _patch(backend, "reset", reset)
    _patch(Item, "__init__", item_init)
    _untracked(Item)
    from moto.sqs.models import Message

    _untracked(Message)
    _fast_answers()
    _cached_conditions()
    _lighter_bookkeeping()
    return store


def store() -> Store | None:
    """The installed store, if any."""
    return _installed.get("store")
