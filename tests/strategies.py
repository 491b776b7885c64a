"""Hypothesis strategies for reports that the data contract accepts, at and near every bound.

Generating a thousand random 200-character names one character at a time would take
hypothesis seconds per example; each name and word here is a drawn pattern repeated to a
drawn length, so the sizes reach the contract's maxima cheaply while the characters still
cover what matters: ASCII, accents, four-byte emoji, quotes, backslashes and inner spaces.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Final

from hypothesis import strategies as st

from peaceland.tenants.reports import (
    MAX_CITIZENS,
    MAX_CLOCK_SKEW,
    MAX_DRONE_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_REPORT_AGE,
    MAX_WORD_LENGTH,
    MAX_WORDS,
    SCORE_MAX,
    SCORE_MIN,
    Citizen,
    Report,
)

#: Characters a name or a word may hold anywhere but at its ends (no control characters).
_INNER = st.sampled_from(["a", "Z", "é", "ß", "😀", "中", '"', "\\", "'", " ", "-", "\u00a0"])
#: Characters a name or a word may start and end with (no white space).
_EDGE = st.sampled_from(["a", "Z", "é", "😀", "中", '"', "\\", "0"])
_DRONE_CHARS = "abcXYZ019._:-"


def _sizes(maximum: int) -> st.SearchStrategy[int]:
    """A size at or next to a bound more often than anywhere else."""
    return st.one_of(st.sampled_from([1, 2, maximum - 1, maximum]), st.integers(1, maximum))


@st.composite
def texts(draw: st.DrawFn, maximum: int) -> str:
    """A valid name or word: no control characters, no white space at either end."""
    length = draw(_sizes(maximum))
    if length == 1:
        return draw(_EDGE)
    pattern = "".join(draw(st.lists(_INNER, min_size=1, max_size=4)))
    middle = (pattern * (length // len(pattern) + 1))[: length - 2]
    return draw(_EDGE) + middle + draw(_EDGE)


@st.composite
def drone_ids(draw: st.DrawFn) -> str:
    length = draw(_sizes(MAX_DRONE_ID_LENGTH))
    pattern = draw(st.text(alphabet=_DRONE_CHARS, min_size=1, max_size=5))
    return draw(st.sampled_from("aZ7")) + (pattern * length)[: length - 1]


def _counts(maximum: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, 1, maximum - 1, maximum]), st.integers(0, maximum))


@st.composite
def reports(draw: st.DrawFn, now: datetime) -> Report:
    """A report the contract accepts when received at about ``now`` (give or take a minute:
    the timestamps near the age and skew bounds keep a minute's margin)."""
    citizen_count = draw(_counts(MAX_CITIZENS))
    # A few distinct names, repeated to the drawn count: a crowd seen again and again.
    names = draw(st.lists(texts(MAX_NAME_LENGTH), min_size=1, max_size=3))
    scores = st.one_of(
        st.sampled_from([SCORE_MIN, SCORE_MAX, 19.999999999999996, 5e-324]),
        st.floats(SCORE_MIN, SCORE_MAX, allow_nan=False),
    )
    citizens = [
        Citizen(name=names[i % len(names)], score=draw(scores)) for i in range(citizen_count)
    ]
    word_count = draw(_counts(MAX_WORDS))
    vocabulary = draw(st.lists(texts(MAX_WORD_LENGTH), min_size=1, max_size=3))
    words = [vocabulary[i % len(vocabulary)] for i in range(word_count)]
    age = draw(
        st.one_of(
            st.sampled_from([MAX_REPORT_AGE - timedelta(minutes=1), timedelta(0)]),
            st.sampled_from([-(MAX_CLOCK_SKEW - timedelta(minutes=1))]),
            st.timedeltas(timedelta(0), MAX_REPORT_AGE - timedelta(minutes=1)),
        )
    )
    return Report(
        report_id=uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4),
        drone_id=draw(drone_ids()),
        timestamp=now - age,
        latitude=draw(st.one_of(st.sampled_from([-90.0, 90.0, 0.0]), st.floats(-90, 90))),
        longitude=draw(st.one_of(st.sampled_from([-180.0, 180.0]), st.floats(-180, 180))),
        citizens=citizens,
        words=words,
    )


#: A number in every bound whose JSON takes the most characters (24: -0.0000123…).
_LONGEST_NUMBER: Final = -1.2345678901234568e-05


def largest_report(now: datetime, *, drone_id: str = "d" * MAX_DRONE_ID_LENGTH) -> Report:
    """The largest report the contract accepts: every list full, every text at its longest,
    in four-byte characters (the most bytes a character takes in UTF-8), every number at its
    longest in JSON."""
    return Report(
        report_id=uuid.uuid4(),
        drone_id=drone_id,
        timestamp=now,
        latitude=_LONGEST_NUMBER,
        longitude=_LONGEST_NUMBER,
        citizens=[
            Citizen(name=f"{i:04d}" + "😀" * (MAX_NAME_LENGTH - 4), score=-_LONGEST_NUMBER)
            for i in range(MAX_CITIZENS)
        ],
        words=[f"{i:04d}" + "😀" * (MAX_WORD_LENGTH - 4) for i in range(MAX_WORDS)],
    )
