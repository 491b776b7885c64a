"""A force's usage per day: reports counted by the gateways, alerts raised counted from its
alerts topic (``peaceland.api.alert_meter``), bytes stored measured by the operator
(``status.usage`` of its PoliceForce). Each day keeps the plan and prices it was first
counted under, so an invoice does not change when a plan does."""

from __future__ import annotations

import logging
from datetime import date

from pydantic import ValidationError
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.orm import Session

from peaceland.api.models import DailyUsage, Force, Plan
from peaceland.tenants.policeforce import ForceUsage

log = logging.getLogger(__name__)


def _day(db: Session, force_id: str, day: date, **counts: int) -> Insert:
    """A new day of ``force_id`` with ``counts``, priced from its force's plan now."""
    force = db.get(Force, force_id)
    plan = db.get(Plan, force.plan_id) if force and force.plan_id else None
    return insert(DailyUsage).values(
        force_id=force_id,
        day=day,
        reports_accepted=counts.get("reports_accepted", 0),
        alerts_raised=counts.get("alerts_raised", 0),
        storage_bytes=counts.get("storage_bytes"),
        plan_id=plan.id if plan else None,
        monthly_price_cents=plan.monthly_price_cents if plan else None,
        price_per_million_reports_cents=plan.price_per_million_reports_cents if plan else None,
    )


def _priced(statement: Insert) -> dict[str, object]:
    """A day first counted before its force had a plan is priced once it has one."""
    new = statement.excluded
    return {
        "plan_id": func.coalesce(DailyUsage.plan_id, new.plan_id),
        "monthly_price_cents": func.coalesce(
            DailyUsage.monthly_price_cents, new.monthly_price_cents
        ),
        "price_per_million_reports_cents": func.coalesce(
            DailyUsage.price_per_million_reports_cents, new.price_per_million_reports_cents
        ),
    }


def count_reports(db: Session, force_id: str, day: date, count: int) -> None:
    """Add ``count`` reports accepted on ``day`` (a gateway's batch, counted once)."""
    statement = _day(db, force_id, day, reports_accepted=count)
    db.execute(
        statement.on_conflict_do_update(
            index_elements=[DailyUsage.force_id, DailyUsage.day],
            set_={"reports_accepted": DailyUsage.reports_accepted + count, **_priced(statement)},
        )
    )


def count_alerts(db: Session, force_id: str, day: date, count: int) -> None:
    """Add ``count`` alerts raised on ``day`` (read once from the force's alerts topic)."""
    statement = _day(db, force_id, day, alerts_raised=count)
    db.execute(
        statement.on_conflict_do_update(
            index_elements=[DailyUsage.force_id, DailyUsage.day],
            set_={"alerts_raised": DailyUsage.alerts_raised + count, **_priced(statement)},
        )
    )


def record_storage(db: Session, force_id: str, usage: ForceUsage) -> None:
    """The operator's latest measure of a force's storage: its day keeps the most bytes
    measured of it (a measure read twice, or by two replicas, changes nothing)."""
    if usage.storage_bytes is None:
        return
    day = date.fromisoformat(usage.measured_at[:10])
    statement = _day(db, force_id, day, storage_bytes=usage.storage_bytes)
    new = statement.excluded
    db.execute(
        statement.on_conflict_do_update(
            index_elements=[DailyUsage.force_id, DailyUsage.day],
            set_={
                "storage_bytes": func.greatest(DailyUsage.storage_bytes, new.storage_bytes),
                **_priced(statement),
            },
            # Written only when it grew: the reconciler reads every force often.
            where=func.coalesce(DailyUsage.storage_bytes, -1) < new.storage_bytes,
        )
    )


def measured_usage(status: dict[str, object]) -> ForceUsage | None:
    """The usage a PoliceForce's status holds, if any can be read."""
    raw = status.get("usage")
    if not raw:
        return None
    try:
        return ForceUsage.model_validate(raw)
    except ValidationError as exc:
        log.warning("a force's measured usage cannot be read: %s", exc)
        return None
