"""The audit log: who did what, when, from where — written in the transaction of the change.

An event is added to the same transaction as what it records, so a change is never kept
without its event nor an event without its change. Reads of personal data (people's
accounts, the audit log itself) are recorded too.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from peaceland.api.auth import Principal
from peaceland.api.db import now
from peaceland.api.models import AuditEvent


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def record(
    db: Session,
    request: Request,
    actor: Principal | str,
    action: str,
    target: str,
    *,
    force_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one event to ``db``'s transaction (committed, or not, with the change)."""
    db.add(
        AuditEvent(
            at=now(),
            actor=actor if isinstance(actor, str) else actor.name,
            actor_ip=client_address(request),
            force_id=force_id,
            action=action,
            target=target[:200],
            details=details or {},
        )
    )
