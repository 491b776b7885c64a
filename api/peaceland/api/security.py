"""Passwords and login tokens.

Passwords are hashed with argon2id (argon2-cffi, RFC 9106's second recommended parameters:
64 MiB, 3 passes): memory-hard, so a stolen table costs an attacker memory per guess, not
only time. Login tokens read ``plt_<session id>_<secret>``: the session id finds the row,
the SHA-256 of the whole token is compared in constant time; a token is random enough that
no slow hash is needed, and a logout ends the session row at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

_HASHER: Final = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
_TOKEN: Final = re.compile(r"^plt_([a-z0-9]{32})_([A-Za-z0-9_-]{43})$")
MIN_PASSWORD_LENGTH: Final = 12
#: Compared against when the account does not exist, so that a wrong e-mail address costs
#: as long as a wrong password (no way to learn which addresses have accounts).
_DUMMY_HASH: Final = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> tuple[str, str, str]:
    """A fresh login token: ``(session id, token, digest)``."""
    session_id = secrets.token_hex(16)
    token = f"plt_{session_id}_{secrets.token_urlsafe(32)}"
    return session_id, token, token_digest(token)


def session_id_of(token: str) -> str | None:
    found = _TOKEN.match(token)
    return found.group(1) if found else None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
