"""DynamoDB unit of work: staged writes committed as one ``TransactWriteItems``."""

from __future__ import annotations

from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.api_key_repository import DynamoApiKeyRepository
from chalicelib.adapters.dynamodb.audit_repository import DynamoAuditRepository
from chalicelib.adapters.dynamodb.batch_repository import DynamoBatchRepository
from chalicelib.adapters.dynamodb.checkpoint_repository import DynamoCheckpointRepository
from chalicelib.adapters.dynamodb.connection import shared_connection
from chalicelib.adapters.dynamodb.credit_repository import DynamoCreditRepository
from chalicelib.adapters.dynamodb.customer_repository import DynamoCustomerRepository
from chalicelib.adapters.dynamodb.delta_repository import DynamoDeltaRepository
from chalicelib.adapters.dynamodb.idempotency_repository import DynamoIdempotencyRepository
from chalicelib.adapters.dynamodb.period_close_repository import DynamoPeriodCloseRepository
from chalicelib.adapters.dynamodb.platform_token_repository import DynamoPlatformTokenRepository
from chalicelib.adapters.dynamodb.session_repository import DynamoSessionRepository
from chalicelib.adapters.dynamodb.signing_key_repository import DynamoSigningKeyRepository
from chalicelib.adapters.dynamodb.staging import StagedWrite
from chalicelib.adapters.dynamodb.stripe_event_repository import DynamoStripeEventRepository
from chalicelib.adapters.dynamodb.tenant_repository import DynamoTenantRepository, DynamoUserRepository
from chalicelib.adapters.dynamodb.usage_repository import DynamoUsageRepository
from chalicelib.adapters.dynamodb.webhook_repository import DynamoWebhookRepository
from chalicelib.domain.errors import ConcurrentWriteError

MAX_TRANSACTION_ITEMS = 100


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
        self.tenants = DynamoTenantRepository(self)
        self.users = DynamoUserRepository(self)
        self.api_keys = DynamoApiKeyRepository(self)
        self.sessions = DynamoSessionRepository(self)
        self.platform_tokens = DynamoPlatformTokenRepository(self)
        self.signing_keys = DynamoSigningKeyRepository(self)
        self.audit = DynamoAuditRepository(self)
        self.customers = DynamoCustomerRepository(self)
        self.deltas = DynamoDeltaRepository(self)
        self.batches = DynamoBatchRepository(self)
        self.checkpoints = DynamoCheckpointRepository(self)
        self.usage = DynamoUsageRepository(self)
        self.credits = DynamoCreditRepository(self)
        self.idempotency = DynamoIdempotencyRepository(self)
        self.webhooks = DynamoWebhookRepository(self)
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
                raise ConcurrentWriteError() from exc
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
