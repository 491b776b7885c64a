"""Watching a force's alerts as an officer's screen would: read_committed, timestamped."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from peaceland.tenants.alerts import decode_alert
from peaceland.tenants.kafka import KafkaAccess, client_config


@dataclass
class AlertWatcher:
    """Reads the alerts topic as a read_committed consumer, timestamping each event."""

    kafka: KafkaAccess
    topic: str
    #: Called with each event as it arrives (the demo prints them).
    on_event: Callable[[Any], None] = lambda _alert: None
    events: list[tuple[float, Any]] = field(default_factory=list)
    #: The Kafka timestamp of each event's record (when the alerter produced it), in the
    #: order of ``events``.
    produced_at: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        consumer = Consumer(
            client_config(self.kafka)
            | {
                "group.id": f"bench-watcher-{uuid.uuid4()}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
            }
        )
        partitions = consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        consumer.assign([TopicPartition(self.topic, p, 0) for p in partitions])

        def watch() -> None:
            try:
                while not self._stop.is_set():
                    message = consumer.poll(0.1)
                    if message is not None and message.error() is None:
                        alert = decode_alert(message.value() or b"")
                        seen = time.time()
                        self.produced_at.append(message.timestamp()[1] / 1000)
                        self.events.append((seen, alert))
                        self.on_event(alert)
            finally:
                consumer.close()

        self._thread = threading.Thread(target=watch, name="alert-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
