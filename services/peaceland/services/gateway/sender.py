"""Producing to Kafka from async code and awaiting the acknowledgements.

One idempotent, acks=all producer for the whole process, served by a thread that polls for
delivery reports and hands each one to the event loop that is waiting for it. Its queue holds
more than every force may have in flight together (``admission``), so that no force's
reports ever find it full.
"""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from peaceland.tenants.kafka import producer_config


class KafkaSender:
    def __init__(
        self,
        bootstrap_servers: str,
        delivery_timeout_seconds: float,
        queue_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self._producer = Producer(
            {
                **producer_config(bootstrap_servers, linger_ms=1),
                # After this, a report Kafka has not acknowledged fails and the drone gets a 503.
                "message.timeout.ms": int(delivery_timeout_seconds * 1000),
                "queue.buffering.max.kbytes": max(1, queue_bytes // 1024),
                # Bounded by the bytes above: the smallest report takes about 180 bytes.
                "queue.buffering.max.messages": 10_000_000,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-deliveries", daemon=True)
        self._thread.start()

    async def send(
        self, topic: str, records: list[tuple[bytes, bytes]], timestamp_ms: int = 0
    ) -> list[KafkaError | None]:
        """Produce ``records`` (key, value); returns each one's delivery error, or None.

        ``timestamp_ms`` is each record's time (CreateTime): the reception time the gateway
        judged the reports by, which the consumers judge them by again (0: now).
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[KafkaError | None]] = []
        for key, value in records:
            future: asyncio.Future[KafkaError | None] = loop.create_future()
            futures.append(future)

            def delivered(
                error: KafkaError | None,
                _message: Message,
                future: asyncio.Future[KafkaError | None] = future,
            ) -> None:
                loop.call_soon_threadsafe(_settle, future, error)

            try:
                self._producer.produce(
                    topic, key=key, value=value, on_delivery=delivered, timestamp=timestamp_ms
                )
            except BufferError:
                future.set_result(KafkaError(KafkaError._QUEUE_FULL, "producer queue is full"))
            except KafkaException as exc:
                future.set_result(exc.args[0])
        return list(await asyncio.gather(*futures))

    def reachable(self, timeout: float = 2.0) -> bool:
        """Whether a Kafka broker answers a metadata request now (blocks up to ``timeout``:
        call it from a worker thread)."""
        try:
            return bool(self._producer.list_topics(timeout=timeout).brokers)
        except KafkaException:
            return False

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)


def _settle(future: asyncio.Future[KafkaError | None], error: KafkaError | None) -> None:
    if not future.done():
        future.set_result(error)
