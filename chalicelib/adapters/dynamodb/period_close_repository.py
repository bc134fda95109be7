"""Period closes and the rollover job's runs (billing table): records only, writes staged.

``T#{tenant}`` / ``PERIOD#{YYYY-MM}`` holds a tenant's closed month; ``ROLLOVER`` / ``PERIOD#{YYYY-MM}`` the
job's progress through that month. Both carry a version, so every step's write is conditioned on the
state it was decided from (ConflictError at commit when another run moved it first).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chalicelib.adapters.dynamodb import keys
from chalicelib.adapters.dynamodb.models import PeriodCloseRecord
from chalicelib.adapters.dynamodb.staging import Repository, get_item
from chalicelib.domain.clock import iso_us, parse_iso
from chalicelib.domain.period_close import REPORT_BY_METER, CheckpointProgress, PeriodClose, RolloverRun

RUN_TENANT = "*"  # tenant_id of run items (they belong to the platform job, not to a tenant)


def _at(value: str | None) -> Any:
    return parse_iso(value) if value else None


def _close_data(close: PeriodClose) -> dict[str, Any]:
    return {
        "plan": close.plan, "billingMode": close.billing_mode, "consumed": close.consumed,
        "overageCount": close.overage_count, "overageChargesUsd": str(close.overage_charges_usd),
        "customerId": close.customer_id,
        "report": {"state": close.report, "by": close.report_by, "quantity": close.overage_count,
                   "identifier": close.identifier, "reportedAt": iso_us(close.reported_at)},
        "revert": {"state": close.revert, "to": close.reverted_to},
        "checkpoints": {env: {"cursor": p.cursor, "done": p.done, "created": p.created}
                        for env, p in close.checkpoints.items()},
        "createdAt": iso_us(close.created_at),
    }


def _close_from(record: PeriodCloseRecord) -> PeriodClose:
    data = record.data
    return PeriodClose(
        tenant_id=record.tenant_id, period=record.period, plan=data["plan"], billing_mode=data["billingMode"],
        consumed=int(data["consumed"]), overage_count=int(data["overageCount"]),
        overage_charges_usd=Decimal(data["overageChargesUsd"]), customer_id=data.get("customerId"),
        report=data["report"]["state"], reported_at=_at(data["report"].get("reportedAt")),
        report_by=data["report"].get("by") or REPORT_BY_METER,  # closes stored before invoices were an option
        revert=data["revert"]["state"], reverted_to=data["revert"].get("to"),
        checkpoints={env: CheckpointProgress(cursor=p.get("cursor"), done=bool(p.get("done")),
                                             created=int(p.get("created") or 0))
                     for env, p in data["checkpoints"].items()},
        created_at=parse_iso(data["createdAt"]), updated_at=record.updated_at, version=record.version,
    )


def _run_data(run: RolloverRun) -> dict[str, Any]:
    return {"phase": run.phase, "cursor": run.cursor, "swept": run.swept, "retry": list(run.retry),
            "tenants": run.tenants,
            "startedAt": iso_us(run.started_at), "finishedAt": iso_us(run.finished_at)}


def _run_from(record: PeriodCloseRecord) -> RolloverRun:
    data = record.data
    return RolloverRun(period=record.period, phase=data["phase"], cursor=data.get("cursor"),
                       swept=bool(data.get("swept")),
                       retry=tuple(data.get("retry") or ()), tenants=int(data.get("tenants") or 0),
                       started_at=_at(data.get("startedAt")), finished_at=_at(data.get("finishedAt")),
                       version=record.version)


class DynamoPeriodCloseRepository(Repository):
    def get(self, tenant_id: str, period: str) -> PeriodClose | None:
        record = get_item(PeriodCloseRecord, keys.tenant_pk(tenant_id), keys.period_close_sk(period))
        return _close_from(record) if record else None

    def save(self, close: PeriodClose) -> None:
        """Staged; a new close (version None) must not exist yet, a read one must be unchanged since."""
        record = PeriodCloseRecord(keys.tenant_pk(close.tenant_id), keys.period_close_sk(close.period),
                                   tenant_id=close.tenant_id, period=close.period, data=_close_data(close),
                                   updated_at=close.updated_at)
        if close.version is not None:
            record.version = close.version
        self._stage("save", record)

    def get_run(self, period: str) -> RolloverRun | None:
        record = get_item(PeriodCloseRecord, keys.ROLLOVER_RUN_PK, keys.period_close_sk(period))
        return _run_from(record) if record else None

    def save_run(self, run: RolloverRun, *, now: Any) -> None:
        """Staged, versioned like :meth:`save`: of two overlapping runs, one moves the cursor."""
        record = PeriodCloseRecord(keys.ROLLOVER_RUN_PK, keys.period_close_sk(run.period), tenant_id=RUN_TENANT,
                                   period=run.period, data=_run_data(run), updated_at=now)
        if run.version is not None:
            record.version = run.version
        self._stage("save", record)
