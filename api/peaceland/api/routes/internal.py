"""What the gateways read: the drone-key feed."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from peaceland.api import keys
from peaceland.api.auth import Principal, gateway_service
from peaceland.api.db import session
from peaceland.api.problems import responses
from peaceland.tenants.drone_keys import KeyChanges

router = APIRouter(prefix="/v1/internal", tags=["gateways"])
Db = Annotated[Session, Depends(session)]
Gateway = Annotated[Principal, Depends(gateway_service)]


@router.get("/drone-keys", response_model=KeyChanges, responses=responses(401, 403))
def drone_key_changes(
    _: Gateway,
    db: Db,
    cursor: Annotated[
        int, Query(ge=0, le=2**62, description="The cursor of the last page read.")
    ] = 0,
) -> KeyChanges:
    """Keys issued and revoked after ``cursor`` (0: from the beginning). A gateway asks
    every second: a revocation is refused everywhere within a few seconds."""
    return keys.changes(db, cursor)
