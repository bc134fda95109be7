"""DynamoDB unit of work: staged writes committed as one ``TransactWriteItems``."""

from __future__ import annotations

from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError

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
from chalicelib.adapters.dynamodb.staging import StagedWrite, apply_write
from chalicelib.adapters.dynamodb.stripe_event_repository import DynamoStripeEventRepository
from chalicelib.adapters.dynamodb.tenant_repository import DynamoTenantRepository, DynamoUserRepository
from chalicelib.adapters.dynamodb.usage_repository import DynamoUsageRepository
from chalicelib.adapters.dynamodb.webhook_repository import DynamoWebhookRepository
from chalicelib.domain.errors import ConcurrentWriteError

MAX_TRANSACTION_ITEMS = 100


def _is_conditional_failure(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    if cause in ("ConditionalCheckFailedException", "TransactionConflictException"):  # the latter: a single
        return True  # write refused while a transaction holds the item (botocore does not retry it)
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
            if len(staged) == 1 and staged[0].request is None:
                self._apply_single(staged[0])
            else:
                self._apply_transaction(staged)
        except (TransactWriteError, PutError, UpdateError, DeleteError) as exc:
            if _is_conditional_failure(exc):
                raise ConcurrentWriteError() from exc
            raise

    @staticmethod
    def _apply_single(write: StagedWrite) -> None:
        """One write needs no transaction (half the write cost); retried as safely as a transaction's token
        makes a transaction (``staging.apply_write``)."""
        apply_write(write.model, write.kind, write.condition, write.actions)

    @staticmethod
    def _apply_transaction(staged: list[StagedWrite]) -> None:
        """One TransactWriteItems, assembled as PynamoDB's ``TransactWrite`` assembles it (the same requests
        from the public ``get_*_kwargs_from_instance``, the version attributes moved on after the commit),
        plus the updates staged ready-made."""
        puts: list[dict] = []
        updates: list[dict] = []
        deletes: list[dict] = []
        versioned: list = []
        for write in staged:
            if write.request is not None:
                updates.append(write.request)
            elif write.kind == "save":
                puts.append(write.model.get_save_kwargs_from_instance(condition=write.condition))
                versioned.append(write.model)
            elif write.kind == "update":
                updates.append(write.model.get_update_kwargs_from_instance(write.actions, condition=write.condition))
                versioned.append(write.model)
            else:
                deletes.append(write.model.get_delete_kwargs_from_instance(condition=write.condition))
        shared_connection().transact_write_items(condition_check_items=[], delete_items=deletes, put_items=puts,
                                                 update_items=updates)
        for model in versioned:
            model.update_local_version_attribute()
