"""``Idempotency-Key`` on writes (SPEC): claim → run → complete, Powertools style.

* new key: the request runs and its answer is stored for replay;
* same key, same body, finished: the stored answer is replayed byte for byte;
* same key, same body, still running: 202 ``IDEMPOTENCY_PENDING``;
* same key, another body: 409 ``IDEMPOTENCY_KEY_REUSED``.
Failed requests (4xx) release their claim, so the client can fix and retry.
Keys are scoped to the tenant, the environment and the route, and kept 25 h.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import ConflictError, TallyError, ValidationError
from chalicelib.domain.identity import ApiKeyPrincipal
from chalicelib.log import get_logger
from chalicelib.services.ports import UnitOfWork

log = get_logger("tally.idempotency")

KEEP_SECONDS = 25 * 3600
LOCK_SECONDS = 60
MAX_KEY = 255


class IdempotencyPendingError(TallyError):
    code = "IDEMPOTENCY_PENDING"
    default_message = "A request with this Idempotency-Key is still being processed; retry shortly."


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    replayed: bool = False


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY} printable characters", field="Idempotency-Key")
    return key


def run_idempotent(
    uow: UnitOfWork,
    principal: ApiKeyPrincipal,
    *,
    key: str | None,
    scope: str,
    request_hash: str,
    now: datetime,
    run: Callable[[], Answer],
) -> Answer:
    if key is None:
        return run()
    key = check_key(key)
    args = (principal.tenant_id, principal.environment, scope, key)
    if not uow.idempotency.claim(*args, request_hash=request_hash, now=now, lock_seconds=LOCK_SECONDS,
                                 keep_seconds=KEEP_SECONDS):
        existing = uow.idempotency.get(*args)
        if existing is None:  # expired and swept between our two reads: treat as taken, ask to retry
            raise IdempotencyPendingError(retryAfterSeconds=1)
        if existing.request_hash != request_hash:
            raise ConflictError("This Idempotency-Key was already used with a different request body.",
                                code="IDEMPOTENCY_KEY_REUSED")
        if existing.state != "COMPLETED":
            raise IdempotencyPendingError(retryAfterSeconds=1)
        return Answer(existing.status_code or 200, existing.response, replayed=True)
    try:
        answer = run()
    except BaseException:
        try:
            uow.idempotency.release(*args)
        except Exception:  # storage is down too: the claim lapses after LOCK_SECONDS, the first error stands
            log.warning("could not release an idempotency claim; it lapses on its own", exc_info=True)
        raise
    uow.idempotency.complete(*args, status_code=answer.status, response=answer.body)
    return answer
