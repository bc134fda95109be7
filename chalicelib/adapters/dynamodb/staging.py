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

from pynamodb.models import Model

from chalicelib.adapters.dynamodb.connection import shared_connection
from chalicelib.adapters.dynamodb.cursors import decode_cursor, encode_cursor
from chalicelib.services.ports import Page


@dataclass
class StagedWrite:
    kind: str  # "save" | "update" | "delete"
    model: Model
    condition: Any = None
    actions: list | None = None


class Stager(Protocol):
    """Where a repository stages its writes: the unit of work."""

    def stage(self, write: StagedWrite) -> None: ...


class Repository:
    """Base of every DynamoDB repository: holds the unit of work its writes are staged on."""

    def __init__(self, uow: Stager) -> None:
        self._uow = uow

    def _stage(self, kind: str, model: Any, condition: Any = None, actions: list | None = None) -> None:
        self._uow.stage(StagedWrite(kind=kind, model=model, condition=condition, actions=actions))


def write_now(model: Model, kind: str = "update", *, condition: Any = None, actions: list | None = None) -> Model:
    """A write that bypasses the unit of work: applied at once, outside any transaction, and so visible as such
    (every one goes through here). For bookkeeping that must not wait for, or roll back with, a use case's
    commit: a key's last use, a rate window, the id counter, an idempotency claim, a delivery lease."""
    if kind == "save":
        model.save(condition=condition)
    elif kind == "delete":
        model.delete(condition=condition)
    else:
        model.update(actions=actions, condition=condition)
    return model


def get_item(model_cls: Any, pk: str, sk: str) -> Any:
    try:
        return model_cls.get(pk, sk, consistent_read=True)
    except model_cls.DoesNotExist:
        return None


TABLE_KEYS = ("pk", "sk")


def query_page(run: Any, to_domain: Any, *, limit: int, cursor: str | None, partition: tuple[str, str],
               key_names: tuple[str, ...] = TABLE_KEYS, sort_prefix: str | None = None,
               sort_key: str = "sk", order: str | None = None) -> Page:
    """One page of a key query, plus a cursor only when another item really follows.

    DynamoDB returns a LastEvaluatedKey whenever a query stops at its Limit, even
    when nothing follows; asking for one extra item tells the two cases apart.
    """
    start, page = decode_cursor(cursor, partition=partition, key_names=key_names,
                                sort_prefix=(sort_key, sort_prefix) if sort_prefix else None, order=order)
    records = list(run(limit=limit + 1, page_size=limit + 1, last_evaluated_key=start))
    next_cursor = None
    if len(records) > limit:
        records = records[:limit]
        next_cursor = encode_cursor({name: {"S": getattr(records[-1], name)} for name in key_names}, page, order)
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
            raise RuntimeError("BatchGetItem left keys unprocessed after retries")
    return found

