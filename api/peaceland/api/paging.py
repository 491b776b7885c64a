"""Cursor pagination: a page of items and an opaque cursor for the next one.

A cursor is the sort key of the last item returned, so pages stay right while items are
added or removed between requests (an offset would skip or repeat some).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from peaceland.api.problems import Problem

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    #: Pass as ``cursor`` to get the next page; None on the last page.
    next_cursor: str | None = None


def encode(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


R = TypeVar("R")


def page_of(
    rows: Sequence[R], limit: int, item: Callable[[R], T], key: Callable[[R], int | str]
) -> Page[T]:
    """The page of ``rows`` — asked for one more than ``limit``, whose presence says that a
    next page exists — and the cursor after its last row, by ``key``."""
    shown = rows[:limit]
    following = encode([key(shown[-1])]) if len(rows) > limit else None
    page: Page[T] = Page[Any](items=[item(r) for r in shown], next_cursor=following)
    return page


def _key(cursor: str) -> Any:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise Problem.field(400, "query.cursor", "not a cursor this API returned") from None
    if not isinstance(key, list) or len(key) != 1:
        raise Problem.field(400, "query.cursor", "not a cursor of this list")
    return key[0]


def after_int(cursor: str | None) -> int | None:
    """The id a cursor of a list sorted by a number says to start after."""
    if cursor is None:
        return None
    key = _key(cursor)
    if type(key) is not int or not 0 <= key < 2**63:
        raise Problem.field(400, "query.cursor", "not a cursor of this list")
    return key


def after_str(cursor: str | None) -> str | None:
    """The id a cursor of a list sorted by a name says to start after."""
    if cursor is None:
        return None
    key = _key(cursor)
    if not isinstance(key, str) or len(key) > 200 or not key.isprintable():
        raise Problem.field(400, "query.cursor", "not a cursor of this list")
    return key


Cursor = Annotated[
    str | None,
    Query(max_length=500, description="The next_cursor of the previous page."),
]
Limit = Annotated[int, Query(ge=1, le=1_000, description="Most items on this page.")]
