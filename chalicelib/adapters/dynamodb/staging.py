"""What every DynamoDB repository builds on: staged writes, the base class, and the shared reads.

Repositories map PynamoDB records to domain objects and back, with no business rules.
Reads are immediate (strongly consistent on the base table); writes are staged on the
owning unit of work as :class:`StagedWrite` and committed together.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.models import Model

from chalicelib.adapters.dynamodb import tables
from chalicelib.adapters.dynamodb.connection import shared_connection
from chalicelib.adapters.dynamodb.cursors import decode_cursor, encode_cursor, key_of
from chalicelib.adapters.faults import retried
from chalicelib.domain.errors import ConcurrentWriteError, ServiceUnavailableError
from chalicelib.services.ports import Page
from chalicelib.services.retry import backoff


@dataclass
class StagedWrite:
    kind: str  # "save" | "update" | "delete"
    model: Model | None  # None for a write given as ``request``
    condition: Any = None
    actions: list | None = None
    request: dict[str, Any] | None = None  # an update already in DynamoDB's request form (a hot path's own)


class Stager(Protocol):
    """Where a repository stages its writes: the unit of work."""

    def stage(self, write: StagedWrite) -> None: ...


class Repository:
    """Base of every DynamoDB repository: holds the unit of work its writes are staged on."""

    def __init__(self, uow: Stager) -> None:
        self._uow = uow

    def _stage(self, kind: str, model: Any, condition: Any = None, actions: list | None = None) -> None:
        self._uow.stage(StagedWrite(kind=kind, model=model, condition=condition, actions=actions))

    def _stage_request(self, request: dict[str, Any]) -> None:
        """Stage an update given as DynamoDB's own ``Update`` request, for a write made so often that building
        it through PynamoDB's expressions (and a record) is most of its cost."""
        self._uow.stage(StagedWrite(kind="update", model=None, request=request))


def write_now(model: Model, kind: str = "update", *, condition: Any = None, actions: list | None = None) -> Model:
    """A write that bypasses the unit of work: applied at once, outside any transaction, and so visible as such
    (every one goes through here). For bookkeeping that must not wait for, or roll back with, a use case's
    commit: a key's last use, a rate window, the id counter, an idempotency claim, a delivery lease."""
    apply_write(model, kind, condition, actions)
    return model


CONFLICT_RESENDS = 4  # a single write refused while a transaction holds its item: sent this often in all


def apply_write(model: Model, kind: str, condition: Any = None, actions: list | None = None) -> None:
    """One PutItem, UpdateItem or DeleteItem (a unit of work's only write, or :func:`write_now`'s), made safe to
    retry as botocore retries it:

    * ``TransactionConflictException`` (a transaction holds the item; nothing was applied, and botocore does not
      retry it) sends the same write again after the services' backoff;
    * a put or delete whose condition failed on a retried attempt, with the item now exactly as this write
      leaves it, met itself: an earlier attempt applied it and its answer was lost (a timeout botocore
      retried), so it is done.
    """
    for attempt in range(CONFLICT_RESENDS):
        try:
            _dispatch_write(model, kind, condition, actions)
            return
        except (PutError, UpdateError, DeleteError) as exc:
            cause = getattr(exc, "cause_response_code", None)
            if cause == "TransactionConflictException" and attempt + 1 < CONFLICT_RESENDS:
                time.sleep(backoff(attempt))
                continue
            if cause == "ConditionalCheckFailedException" and retried(exc) and _landed(model, kind):
                if kind == "save":
                    model.update_local_version_attribute()
                return
            raise


def _dispatch_write(model: Model, kind: str, condition: Any, actions: list | None) -> None:
    if kind == "save":
        tables.put(model, condition)
    elif kind == "delete":
        tables.delete(model, condition)
    else:
        tables.update(model, actions or [], condition)


def _landed(model: Model, kind: str) -> bool:
    """Whether the item is as a put (item for item) or a delete (gone) leaves it; an update cannot tell."""
    if kind == "update":
        return False
    stored = shared_connection().get_item(model.Meta.table_name, model.pk, range_key=model.sk,
                                          consistent_read=True).get("Item")
    if kind == "delete":
        return stored is None
    return stored == model.get_save_kwargs_from_instance()["Item"]


get_item = tables.get  # a consistent GetItem of one record, or None


TABLE_KEYS = ("pk", "sk")


def query_page(run: Any, to_domain: Any, *, limit: int, cursor: str | None, partition: tuple[str, str],
               key_names: tuple[str, ...] = TABLE_KEYS, sort_prefix: str | None = None) -> Page:
    """One page of a key query, plus a cursor only when another item really follows.

    DynamoDB returns a LastEvaluatedKey whenever a query stops at its Limit, even
    when nothing follows; asking for one extra item tells the two cases apart.
    """
    start, page = decode_cursor(cursor, partition=partition, key_names=key_names,
                                sort_prefix=("sk", sort_prefix) if sort_prefix else None)
    records = list(run(limit=limit + 1, page_size=limit + 1, last_evaluated_key=start))
    next_cursor = None
    if len(records) > limit:
        records = records[:limit]
        next_cursor = encode_cursor(key_of(records[-1], key_names), page)
    return Page(items=[to_domain(r) for r in records], next_cursor=next_cursor, extra={"page": page})


BATCH_GET_ATTEMPTS = 8


def unprocessed_backoff(attempt: int) -> float:
    """Seconds to wait before asking again for keys DynamoDB left unprocessed (it throttles: asking at once
    would be throttled again). Exponential from 25 ms, capped at 1 s, with jitter."""
    return min(0.025 * 2**attempt, 1.0) * random.uniform(0.5, 1.0)


def batch_get(wanted: list[tuple[Any, str, str]]) -> dict[tuple[str, str, str], Any]:
    """Consistent BatchGetItem across tables: {(table, pk, sk): raw item}, 100 keys a call; unprocessed keys
    are asked again with backoff."""
    connection = shared_connection()
    found: dict[tuple[str, str, str], Any] = {}
    unique = list(dict.fromkeys((model.Meta.table_name, pk, sk) for model, pk, sk in wanted))
    for start in range(0, len(unique), 100):
        request: dict[str, Any] = {}
        for table, pk, sk in unique[start : start + 100]:
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(
                {"pk": {"S": pk}, "sk": {"S": sk}})
        for attempt in range(BATCH_GET_ATTEMPTS):
            if attempt:
                time.sleep(unprocessed_backoff(attempt))
            response = connection.dispatch("BatchGetItem", {"RequestItems": request})
            for table, items in response.get("Responses", {}).items():
                for item in items:
                    found[(table, item["pk"]["S"], item["sk"]["S"])] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        if request:
            raise ServiceUnavailableError("DynamoDB kept some keys of a read unprocessed (throttled); retry.")
    return found


def transact_get(wanted: list[tuple[Any, str, str]]) -> dict[tuple[str, str, str], Any]:
    """Up to 100 items as of one instant (TransactGetItems: serializable with every transaction), in the shape
    :func:`batch_get` answers. Where items are summed and the sums posted, a BatchGetItem (each item read at
    its own moment) could pair one item's old state with another's new one. A transaction in flight on an
    item cancels the read: :class:`ConcurrentWriteError`, for the caller's retry."""
    unique = list(dict.fromkeys((model.Meta.table_name, pk, sk) for model, pk, sk in wanted))
    if len(unique) > 100:
        raise ValueError("a transactional read holds at most 100 items")
    request = [{"Get": {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for table, pk, sk in unique]
    try:
        response = shared_connection().dispatch("TransactGetItems", {"TransactItems": request})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("TransactionCanceledException",
                                                         "TransactionConflictException"):
            raise ConcurrentWriteError("A transaction was in flight on an item read; read again.") from exc
        raise
    return {(table, pk, sk): answer["Item"] for (table, pk, sk), answer in zip(unique, response["Responses"],
                                                                              strict=True) if answer.get("Item")}

