"""Drone keys: how a drone proves which drone of which force it is.

The control plane issues them (shown once, kept as digests) and the gateway checks them; this
module is the contract between the two. A key reads ``pld_<key id>_<secret>``: the prefix makes
a leaked key recognisable to secret scanners, the key id names it (in the audit log, in the
gateway's logs, in a revocation) without revealing it, and the secret is 32 random bytes.
A key that random needs no slow hash: SHA-256 of the whole key is what is stored and compared
(as GitHub and Stripe keep their tokens), so the gateway checks thousands a second.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

KEY_PREFIX: Final = "pld"
_KEY_ID_LENGTH: Final = 16
_KEY: Final = re.compile(rf"^{KEY_PREFIX}_([a-z0-9]{{{_KEY_ID_LENGTH}}})_([A-Za-z0-9_-]{{43}})$")
_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_key() -> tuple[str, str]:
    """A fresh key and its key id: ``(key_id, key)``."""
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(_KEY_ID_LENGTH))
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The key id a presented key claims, or None when it is not shaped like a drone key."""
    found = _KEY.match(key)
    return found.group(1) if found else None


def key_digest(key: str) -> str:
    """How a key is stored and compared: never as itself."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyGrant(BaseModel):
    """One live key as the gateway needs it: whose drone it speaks for, until when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str
    force_id: str
    drone_id: str
    digest: Annotated[str, Field(min_length=64, max_length=64)]
    expires_at: datetime | None = None


class ForceLimits(BaseModel):
    """What a force's plan lets it send, enforced by every gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_reports_per_second: Annotated[int, Field(ge=1)]


class KeyChanges(BaseModel):
    """What changed among the drone keys since a cursor: the gateway's feed.

    ``grants`` are keys now live (new ones); ``revoked`` names keys no longer valid (revoked,
    or their drone or force retired). Asking again with ``cursor`` returns only later
    changes; a cursor of 0 starts from the beginning. A page holds a bounded number of
    changes: ``more`` says another follows.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cursor: int
    grants: list[KeyGrant]
    revoked: list[str]
    #: More changes wait: ask again with ``cursor`` at once.
    more: bool = False
    #: Every force's limits, whole in each answer (a force missing has none at the edge).
    limits: dict[str, ForceLimits] = {}
