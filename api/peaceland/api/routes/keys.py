"""A leaked key, found by its id and revoked, whatever force it is of (a platform admin).

A key reads ``pld_<key id>_<secret>``: whoever finds one (a secret scanner, a log) reads its
key id from it and asks here which force and drone it speaks for, then revokes it.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from sqlalchemy.orm import Session

from peaceland.api import audit, keys
from peaceland.api.auth import Principal, platform_admin
from peaceland.api.db import session
from peaceland.api.models import DroneKey
from peaceland.api.problems import Problem, responses
from peaceland.api.schemas import KeyFound

router = APIRouter(prefix="/v1/keys", tags=["drones and keys"])
Db = Annotated[Session, Depends(session)]
Admin = Annotated[Principal, Depends(platform_admin)]
KeyId = Annotated[
    str,
    Path(
        min_length=16,
        max_length=16,
        pattern=r"^[a-z0-9]{16}$",
        description="The key id: the part between the first two underscores of the key.",
    ),
]


def _found(db: Session, key_id: str, *, lock: bool = False) -> DroneKey:
    key = db.get(DroneKey, key_id, with_for_update=lock)
    if key is None:
        raise Problem(404, f"no key {key_id}")
    return key


@router.get("/{key_id}", response_model=KeyFound, responses=responses(401, 403, 404))
def find_key(key_id: KeyId, _: Admin, db: Db) -> KeyFound:
    """Which force and drone a key speaks for, and its state."""
    key = _found(db, key_id)
    return KeyFound(**keys.view(key).model_dump(), force_id=key.force_id)


@router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404)
)
def revoke_found_key(key_id: KeyId, request: Request, caller: Admin, db: Db) -> Response:
    """Revoke a key wherever it is: every gateway refuses it within seconds."""
    key = _found(db, key_id, lock=True)
    if key.revoked_at is None:
        keys.revoke(db, key)
        audit.record(
            db, request, caller, "key.revoked", f"key/{key_id}", force_id=key.force_id,
            details={"drone_id": key.drone_id, "found_by": "key id"},
        )  # fmt: skip
        db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
