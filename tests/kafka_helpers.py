"""Producing to and reading from the real Kafka in tests."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from peaceland.tenants.kafka import KafkaAccess, client_config, producer_config
from peaceland.tenants.reports import Report, encode_report
from tests.factories import make_report


def kafka_fields(access: KafkaAccess) -> dict[str, Any]:
    """``access`` as the Kafka fields of a settings class (``peaceland.tenants.access``)."""
    return {
        "kafka_bootstrap_servers": access.bootstrap_servers,
        "kafka_username": access.username,
        "kafka_password": access.password,
    }


def produce(
    bootstrap: KafkaAccess, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Produce ``(key, value)`` records with acks=all; returns how many Kafka acknowledged."""
    producer = Producer(producer_config(bootstrap, linger_ms=5))
    acked = 0
    errors: list[object] = []

    def delivered(err: object, _msg: Message) -> None:
        nonlocal acked
        if err is None:
            acked += 1
        else:
            errors.append(err)

    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]
    return acked


def produce_timed(
    bootstrap: KafkaAccess, topic: str, records: list[tuple[str, bytes, int]]
) -> None:
    """(key, value, record time in epoch ms: 0 for now) onto ``topic``, acknowledged."""
    producer = Producer(producer_config(bootstrap, linger_ms=5))
    for key, value, at in records:
        producer.produce(topic, key=key.encode(), value=value, timestamp=at)
    assert producer.flush(30) == 0


def read_all(bootstrap: KafkaAccess, topic: str, timeout: float = 30.0) -> list[Message]:
    """Every committed record of ``topic``, from the beginning up to its current end.

    Reads as a read_committed consumer: records of aborted transactions never show, and
    the transaction markers that follow committed ones count towards the end, not as records.
    """
    consumer = Consumer(
        client_config(bootstrap)
        | {
            "group.id": f"test-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = [
            TopicPartition(topic, p)
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions
        }
        consumer.assign([TopicPartition(topic, tp.partition, 0) for tp in partitions])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                records.append(message)
                continue
            positions = {tp.partition: tp.offset for tp in consumer.position(partitions)}
            if all(positions[p] >= end or end == 0 for p, end in ends.items()):
                return records
            assert time.monotonic() < deadline, f"read {len(records)} records of {topic} only"
    finally:
        consumer.close()


_COORDINATOR_MOVING = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
)


def committed_total(bootstrap: KafkaAccess, group: str, topic: str) -> int:
    """Sum over partitions of the offsets ``group`` has committed on ``topic``.

    -1 while Kafka answers with a retriable error (its group coordinator still loading,
    being elected or moving, which it does not always flag retriable).
    """
    consumer = Consumer(client_config(bootstrap) | {"group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in committed)
    except KafkaException as exc:
        if exc.args[0].retriable() or exc.args[0].code() in _COORDINATOR_MOVING:
            return -1
        raise
    finally:
        consumer.close()


def commit_to_end(bootstrap: KafkaAccess, group: str, topic: str) -> None:
    """Commit, for ``group``, the end of every partition of ``topic`` (as if it had read
    everything); the group must have no live member."""
    consumer = Consumer(client_config(bootstrap) | {"group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in partitions
        ]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.25)


def signs_in(kafka: KafkaAccess, username: str, password: str) -> bool:
    """Whether Kafka lets ``username`` sign in (and answers its metadata request)."""
    access = kafka.as_user(username, password)
    try:
        AdminClient(client_config(access) | {"log_level": 0}).list_topics(timeout=10)
    except KafkaException:
        return False
    return True


class Sender:
    """Sends the reports ``batch`` makes to ``topic`` from a thread of its own until
    stopped (what a test kills a consumer under); ``sent`` holds their ids, in order."""

    def __init__(self, access: KafkaAccess, topic: str, batch: Callable[[], list[Report]]) -> None:
        self.sent: list[str] = []
        self._access = access
        self._topic = topic
        self._batch = batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    @classmethod
    def of_reports(cls, access: KafkaAccess, topic: str, seed: int) -> Sender:
        """Batches of 200 random reports with a citizen each, from ``seed``."""
        rng = random.Random(seed)
        return cls(access, topic, lambda: [make_report(rng, citizens=1) for _ in range(200)])

    def _send(self) -> None:
        while not self._stop.is_set():
            batch = self._batch()
            produce(self._access, self._topic, [(None, encode_report(r)) for r in batch])
            self.sent.extend(str(r.report_id) for r in batch)
            time.sleep(0.05)

    def __enter__(self) -> Sender:
        self._thread.start()
        return self

    def stop(self) -> list[str]:
        """Stop sending; every report sent, each acknowledged by Kafka."""
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the sender did not stop within 30 s"
        return self.sent

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
