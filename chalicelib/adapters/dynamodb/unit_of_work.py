"""DynamoDB unit of work: staged writes committed as one ``TransactWriteItems``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb import repositories as repos
from chalicelib.adapters.dynamodb.connection import shared_connection
from chalicelib.adapters.dynamodb.period_closes import DynamoPeriodCloseRepository
from chalicelib.adapters.dynamodb.stripe_events import DynamoStripeEventRepository
from chalicelib.domain.errors import ConflictError

MAX_TRANSACTION_ITEMS = 100


@dataclass
class StagedWrite:
    kind: str  # "save" | "update" | "delete"
    model: Model
    condition: Any = None
    actions: list | None = None


def _is_conditional_failure(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    if cause == "ConditionalCheckFailedException":
        return True
    if cause == "TransactionCanceledException":
        reasons = getattr(exc, "cancellation_reasons", None) or []
        # A concurrent transaction on the same item is retryable, like a failed condition.
        return any(r is not None and r.code in ("ConditionalCheckFailed", "TransactionConflict") for r in reasons)
    return False


class DynamoUnitOfWork:
    """Reads go straight to DynamoDB; writes wait for :meth:`commit`."""

    def __init__(self) -> None:
        shared_connection()
        self._staged: list[StagedWrite] = []
        self.tenants = repos.DynamoTenantRepository(self)
        self.users = repos.DynamoUserRepository(self)
        self.api_keys = repos.DynamoApiKeyRepository(self)
        self.sessions = repos.DynamoSessionRepository(self)
        self.platform_tokens = repos.DynamoPlatformTokenRepository(self)
        self.signing_keys = repos.DynamoSigningKeyRepository(self)
        self.audit = repos.DynamoAuditRepository(self)
        self.customers = repos.DynamoCustomerRepository(self)
        self.deltas = repos.DynamoDeltaRepository(self)
        self.batches = repos.DynamoBatchRepository(self)
        self.checkpoints = repos.DynamoCheckpointRepository(self)
        self.usage = repos.DynamoUsageRepository(self)
        self.credits = repos.DynamoCreditRepository(self)
        self.idempotency = repos.DynamoIdempotencyRepository(self)
        self.webhooks = repos.DynamoWebhookRepository(self)
        self.period_closes = DynamoPeriodCloseRepository(self)
        self.stripe_events = DynamoStripeEventRepository(self)

    def stage(self, write: StagedWrite) -> None:
        self._staged.append(write)

    def __enter__(self) -> DynamoUnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    def rollback(self) -> None:
        self._staged.clear()

    def commit(self) -> None:
        staged, self._staged = self._staged, []
        if not staged:
            return
        if len(staged) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACTION_ITEMS} writes")
        try:
            if len(staged) == 1:
                self._apply_single(staged[0])
            else:
                self._apply_transaction(staged)
        except (TransactWriteError, PutError, UpdateError, DeleteError) as exc:
            if _is_conditional_failure(exc):
                raise ConflictError("The resource was changed concurrently; retry the request.") from exc
            raise

    @staticmethod
    def _apply_single(write: StagedWrite) -> None:
        """One write needs no transaction (half the write cost)."""
        if write.kind == "save":
            write.model.save(condition=write.condition)
        elif write.kind == "update":
            write.model.update(actions=write.actions, condition=write.condition)
        else:
            write.model.delete(condition=write.condition)

    @staticmethod
    def _apply_transaction(staged: list[StagedWrite]) -> None:
        with TransactWrite(connection=shared_connection()) as tx:
            for write in staged:
                if write.kind == "save":
                    tx.save(write.model, condition=write.condition)
                elif write.kind == "update":
                    tx.update(write.model, actions=write.actions, condition=write.condition)
                else:
                    tx.delete(write.model, condition=write.condition)
