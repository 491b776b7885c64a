"""What forces use and what it costs: counted by the gateways, priced from the plan."""

import calendar
import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from peaceland.api.auth import ForceCaller, Principal, force_role, gateway_service
from peaceland.api.db import now, session
from peaceland.api.metering import count_reports
from peaceland.api.models import DailyUsage, DroneKey, Force, Plan, Role, UsageBatch
from peaceland.api.problems import Problem, responses
from peaceland.api.schemas import Invoice, UsageDay, UsagePost

router = APIRouter(prefix="/v1", tags=["usage"])
Db = Annotated[Session, Depends(session)]
Gateway = Annotated[Principal, Depends(gateway_service)]
ForceAdmin = Annotated[ForceCaller, Depends(force_role(Role.force_admin))]
Month = Annotated[
    str | None,
    Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (UTC); the current month by default."),
]


@router.post(
    "/internal/usage",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 422),
    include_in_schema=True,
)
def post_usage(body: UsagePost, _: Gateway, db: Db) -> Response:
    """A gateway's counts since its last post. A batch posted twice counts once."""
    fresh = db.execute(
        insert(UsageBatch)
        .values(id=body.batch_id, received_at=now())
        .on_conflict_do_nothing()
        .returning(UsageBatch.id)
    ).first()
    if fresh is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # Keys before days: the order a force's deletion takes them in (no deadlock).
    for key_id, seen in sorted(body.keys_used.items()):
        db.execute(
            update(DroneKey)
            .where(DroneKey.id == key_id)
            .values(last_used_at=func.greatest(func.coalesce(DroneKey.last_used_at, seen), seen))
        )
    for force_id, days in sorted(body.reports.items()):
        for day, count in sorted(days.items()):
            if count:
                count_reports(db, force_id, day, count)
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _month(month: str | None) -> tuple[date, date]:
    today = now().date()
    if month is None:
        year, number = today.year, today.month
    else:
        found = re.match(r"^(\d{4})-(\d{2})$", month)
        assert found is not None
        year, number = int(found.group(1)), int(found.group(2))
        if not 1 <= number <= 12 or not 2000 <= year <= 9999:
            raise Problem.field(422, "query.month", "a month between 2000-01 and 9999-12")
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


@router.get(
    "/forces/{force_id}/invoice", response_model=Invoice, responses=responses(401, 403, 404, 422)
)
def invoice_preview(caller: ForceAdmin, db: Db, month: Month = None) -> Invoice:
    """The month's usage, day by day, priced from the force's plan (a preview: the month
    may not be over)."""
    first, final = _month(month)
    rows = list(
        db.scalars(
            select(DailyUsage)
            .where(
                DailyUsage.force_id == caller.force_id,
                DailyUsage.day >= first,
                DailyUsage.day <= final,
            )
            .order_by(DailyUsage.day)
        )
    )
    force = db.get(Force, caller.force_id)
    plan = db.get(Plan, force.plan_id) if force and force.plan_id else None
    reports = sum(r.reports_accepted for r in rows)
    # Each day at the prices it was counted under; the month at its last priced day's (the
    # current plan's for a month not yet counted).
    priced = [r for r in rows if r.plan_id is not None]
    last = priced[-1] if priced else None
    monthly = (last.monthly_price_cents if last else plan.monthly_price_cents if plan else 0) or 0
    millionths = sum(r.reports_accepted * (r.price_per_million_reports_cents or 0) for r in rows)
    # Rounded up to the cent: a partial million is billed pro rata.
    reports_price = -(-millionths // 1_000_000)
    return Invoice(
        force_id=caller.force_id,
        plan_id=last.plan_id if last else plan.id if plan else None,
        month=first.strftime("%Y-%m"),
        days=[
            UsageDay(
                day=r.day,
                reports_accepted=r.reports_accepted,
                alerts_raised=r.alerts_raised,
                storage_bytes=r.storage_bytes,
            )
            for r in rows
        ],
        reports_accepted=reports,
        alerts_raised=sum(r.alerts_raised for r in rows),
        peak_storage_bytes=max((r.storage_bytes or 0 for r in rows), default=0),
        monthly_price_cents=monthly,
        reports_price_cents=reports_price,
        total_cents=monthly + reports_price,
    )
