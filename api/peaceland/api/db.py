"""The database: one engine per process, one session (one transaction) per request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    # pool_pre_ping: a connection PostgreSQL dropped (a restart) is replaced, not handed out.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def session(request: Request) -> Iterator[Session]:
    """The request's session: committed by the route when it changes something, rolled back
    (and closed) otherwise."""
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as db:
        yield db


def now() -> datetime:
    return datetime.now(UTC)
