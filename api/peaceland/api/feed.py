"""A force's live feed: every alert event and every lifecycle transition, as Server-Sent
Events, read committed from the force's alerts and lifecycle topics as its own dashboard
principal.

Each event's id is the feed's position after it: the next offset of every partition of
both topics (``a0=12.a1=7.l0=3``). A page that reconnects sends it back as
``Last-Event-ID`` and goes on exactly after the last event it received: nothing missed,
nothing twice. A new page asks from a time instead (``since``), and gets every event from
then. Transitions may be on the topic twice (``peaceland.api.alert_desk``): the feed passes
both on, and a page keeps one of each ``(alert_id, seq)``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any, Final

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.aio import AIOConsumer

from peaceland.tenants.alerts import decode_alert
from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.kafka import Config
from peaceland.tenants.lifecycle import decode_transition

log = logging.getLogger(__name__)

#: The two topics of a feed, by the letter that names them in a position.
_ALERTS, _LIFECYCLE = "a", "l"
_POSITION: Final = re.compile(r"^([al])(\d{1,4})=(\d{1,19})$")
#: Most partitions a position may name (a force's plan bounds them far lower).
_MAX_PARTS: Final = 512


class BadPositionError(ValueError):
    """A Last-Event-ID this feed did not give."""


Position = dict[tuple[str, int], int]


def encode_position(position: Position) -> str:
    return ".".join(f"{kind}{part}={offset}" for (kind, part), offset in sorted(position.items()))


def decode_position(text: str) -> Position:
    parts = text.split(".") if text else []
    if not parts or len(parts) > _MAX_PARTS:
        raise BadPositionError("not a position of this feed")
    position: Position = {}
    for part in parts:
        found = _POSITION.match(part)
        if found is None:
            raise BadPositionError("not a position of this feed")
        position[(found.group(1), int(found.group(2)))] = int(found.group(3))
    return position


class Feed:
    """One page's feed of one force."""

    def __init__(
        self,
        config: Config,
        resources: ForceResources,
        closing: set[asyncio.Future[Any]],
        timeout: float = 10.0,
    ) -> None:
        self._config = config
        self._closing = closing
        self._resources = resources
        self._timeout = timeout
        self._topics = {_ALERTS: resources.alerts_topic, _LIFECYCLE: resources.lifecycle_topic}
        self._kinds = {topic: kind for kind, topic in self._topics.items()}

    async def start(
        self, since: datetime, resume: Position | None
    ) -> AsyncGenerator[tuple[str, str, dict[str, Any]] | None, None]:
        """(event id, event name, data) for every event after ``resume`` (a position this
        feed gave), or from ``since``, and None after each quiet read (half a second: the
        caller's moment to do what it must on time); runs until the caller stops iterating."""
        # One thread of its own: librdkafka's handle is never used from two threads at once,
        # even when a page leaves in the middle of a read (the close waits behind it).
        # A page waits on this read: the broker answers an empty fetch after 100 ms, not
        # 500, once a transaction's commit makes its records readable.
        consumer = AIOConsumer(dict(self._config) | {"fetch.wait.max.ms": 100}, max_workers=1)
        try:
            position = await self._start(consumer, since, resume)
            while True:
                # The first record as soon as it comes, then what else is already here: a
                # consume(200, 1 s) would hold each alert until the second ends.
                first = await consumer.poll(0.5)
                if first is None:
                    yield None
                    continue
                messages = [first, *await consumer.consume(199, timeout=0)]
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise RuntimeError(f"the feed could not read: {error}")
                    kind = self._kinds[message.topic()]
                    offset = message.offset()
                    position[(kind, message.partition())] = offset + 1
                    event = self._event(kind, message.value() or b"")
                    if event is not None:
                        yield encode_position(position), event[0], event[1]
        finally:
            # Shielded: a page that leaves cancels this task, never the close, which the
            # application waits for before it stops (``closing``).
            closed = asyncio.ensure_future(consumer.close())
            self._closing.add(closed)
            closed.add_done_callback(self._closing.discard)
            await asyncio.shield(closed)

    async def _start(
        self, consumer: AIOConsumer, since: datetime, resume: Position | None
    ) -> Position:
        partitions: list[TopicPartition] = []
        for topic in self._topics.values():
            metadata = await consumer.list_topics(topic, timeout=self._timeout)
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise RuntimeError(f"topic {topic} cannot be read: {found and found.error}")
            for part in sorted(found.partitions):
                partitions.append(TopicPartition(topic, part, int(since.timestamp() * 1000)))
        if resume is not None:
            known = {(self._kinds[p.topic], p.partition) for p in partitions}
            if not set(resume) <= known:
                raise BadPositionError("a position of partitions this force does not have")
        # From a time: the first offset at or after it in each partition; none there (-1):
        # the end as it was before asking, so that nothing written meanwhile is skipped.
        # Resumed: the position given; a partition added since, from its start.
        ends: dict[tuple[str, int], int] = {}
        for p in partitions:
            _, high = await consumer.get_watermark_offsets(
                TopicPartition(p.topic, p.partition), timeout=self._timeout
            )
            ends[(p.topic, p.partition)] = high
        by_time = await consumer.offsets_for_times(partitions, timeout=self._timeout)
        start: list[TopicPartition] = []
        position: Position = {}
        for found in by_time:
            key = (self._kinds[found.topic], found.partition)
            if resume is not None:
                offset = resume.get(key, 0)
            else:
                offset = found.offset
                if offset < 0:
                    offset = ends[(found.topic, found.partition)]
            position[key] = offset
            start.append(TopicPartition(found.topic, found.partition, offset))
        await consumer.assign(start)
        return position

    def _event(self, kind: str, value: bytes) -> tuple[str, dict[str, Any]] | None:
        try:
            if kind == _ALERTS:
                return "alert", decode_alert(value).model_dump(mode="json")
            return "transition", decode_transition(value).model_dump(mode="json")
        except InvalidRecordError as exc:
            log.warning("a record of %s breaks the contract, not shown: %s",
                        self._resources.force_id, exc)  # fmt: skip
            return None
