"""Kafka plumbing shared by the consumers: client settings, record times, dead letters."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message, Producer

from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.kafka import Config, KafkaAccess, client_config
from peaceland.tenants.reports import Report, decode_report

log = logging.getLogger(__name__)

REASON_HEADER: Final = "peaceland-reject-reason"
SOURCE_HEADER: Final = "peaceland-source"


def consumer_config(access: KafkaAccess, group_id: str) -> Config:
    """A consumer that commits only what we tell it to, after our writes succeeded."""
    return client_config(access) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Cooperative rebalancing: partitions that stay with us keep flowing during a rebalance.
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
        # Partitions added to a topic are found within this (librdkafka's default: 5 min).
        "topic.metadata.refresh.interval.ms": 30_000,
        # Records fetched ahead of the loop: bounded in bytes as well as in count, so a
        # batch of the largest reports (1.3 MB each) stays a few tens of MB in memory.
        "queued.max.messages.kbytes": 16_384,
        "fetch.max.bytes": 16 * 1024 * 1024,
    }


def received_at(message: Message) -> datetime:
    """When Kafka received the record: the reference time for judging a report's timestamp.

    Using the record's own time, not the consumer's clock, keeps a replay deterministic.
    """
    kind, millis = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return datetime.now(UTC)
    return datetime.fromtimestamp(millis / 1000, UTC)


class DeadLetters:
    """Sends records that can never be processed to the force's dead-letter topic.

    The original key and value are kept byte for byte; headers say why and where from.
    ``flush`` must succeed before the source offsets are committed, so a rejected record is
    either in the dead-letter topic or still in its source topic, never lost. A dead letter
    Kafka refused is sent again by the next ``flush``; one still in flight is waited for.
    After a failed flush a dead letter may land twice (at least once, like any retry).
    """

    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._refused: list[_Letter] = []
        self._error: KafkaError | None = None

    def send(self, message: Message, reason: str) -> None:
        source = f"{message.topic()}/{message.partition()}/{message.offset()}"
        log.warning("dead-lettering %s: %s", source, reason)
        self._produce(
            _Letter(
                message.key(),
                message.value(),
                [(REASON_HEADER, reason.encode()), (SOURCE_HEADER, source.encode())],
            )
        )

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged; raise if any is not (yet)."""
        again, self._refused = self._refused, []
        for letter in again:
            self._produce(letter)
        remaining = self._producer.flush(timeout)
        if remaining or self._refused:
            error = self._error or KafkaError(KafkaError._TIMED_OUT)
            raise KafkaException(
                KafkaError(
                    error.code(),
                    f"{len(self._refused)} dead letter(s) refused, {remaining} not yet "
                    f"acknowledged by Kafka: {error.str()}",
                )
            )

    def _produce(self, letter: _Letter) -> None:
        # The delivery report carries no headers: the letter itself is kept for a resend.
        def delivered(error: KafkaError | None, _record: Message) -> None:
            if error is not None:
                self._refused.append(letter)
                self._error = error

        self._producer.produce(
            self._topic,
            key=letter.key,
            value=letter.value,
            headers=letter.headers,
            on_delivery=delivered,
        )


@dataclass(frozen=True, slots=True)
class _Letter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A batch of report records, split: ``reports[i]`` came from ``messages[i]``."""

    reports: list[Report]
    messages: list[Message]
    rejects: list[tuple[Message, str]]

    @property
    def records(self) -> list[Message]:
        """Every record of the batch, valid or not (what its offsets cover)."""
        return self.messages + [message for message, _ in self.rejects]

    def only(self, partitions: Set[tuple[str, int]]) -> Decoded:
        """The part of the batch read from ``partitions`` (topic, partition)."""
        return self._kept(lambda m: (m.topic(), m.partition()) in partitions)

    def among(self, records: Sequence[Message]) -> Decoded:
        """The part of the batch that is among ``records``."""
        keys = {(m.topic(), m.partition(), m.offset()) for m in records}
        return self._kept(lambda m: (m.topic(), m.partition(), m.offset()) in keys)

    def _kept(self, keep: Callable[[Message], bool]) -> Decoded:
        kept = [(r, m) for r, m in zip(self.reports, self.messages, strict=True) if keep(m)]
        return Decoded(
            [r for r, _ in kept],
            [m for _, m in kept],
            [(m, why) for m, why in self.rejects if keep(m)],
        )


def decode_batch(messages: Sequence[Message]) -> Decoded:
    """Split a batch into valid reports and records to reject, each with its reason."""
    decoded = Decoded([], [], [])
    for message in messages:
        value = message.value()
        if value is None:
            decoded.rejects.append((message, "empty record: a report topic takes no tombstones"))
            continue
        try:
            decoded.reports.append(decode_report(value, received_at=received_at(message)))
            decoded.messages.append(message)
        except InvalidRecordError as exc:
            decoded.rejects.append((message, exc.reason))
    return decoded
