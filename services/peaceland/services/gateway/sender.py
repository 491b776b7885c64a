"""Producing to Kafka from async code and awaiting the acknowledgements.

One idempotent, acks=all producer per police force, each signed in as that force's gateway
principal (the brokers let it write to that force's reports topic only), each served by a
thread of its own that waits for its delivery reports and hands each one to the event loop
that is waiting for it (one thread polling every producer in turn held a force's reports
while it waited on another producer that had none). Each queue holds more than every force
may have in flight together (``admission``), so that no force's reports ever find it full.

A force's credentials are looked at again every few seconds: when they changed (a rotation
mounted new ones), a new producer takes the force's next reports while the old one delivers
what it holds with the old credentials, still valid until the operator retires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from peaceland.tenants.kafka import KafkaAccess, producer_config

log = logging.getLogger(__name__)

#: Seconds a retired producer's thread goes on serving it at least, whatever it holds.
_RETIRED_GRACE = 1.0

#: The Kafka access a force's producer signs in with, by force id.
AccessFor = Callable[[str | None], KafkaAccess]


@dataclass(slots=True)
class _Signed:
    """A force's producer and the credentials it signed in with."""

    producer: Producer
    access: KafkaAccess
    checked: float


class KafkaSender:
    def __init__(
        self,
        access_for: AccessFor,
        delivery_timeout_seconds: float,
        queue_bytes: int = 512 * 1024 * 1024,
        recheck_seconds: float = 5.0,
    ) -> None:
        """``access_for(force_id)``: how that force's producer signs in; ``access_for(None)``:
        the gateway's own access, used to tell whether Kafka answers. Asked again at most
        every ``recheck_seconds`` per force."""
        self._access_for = access_for
        self._recheck = recheck_seconds
        self._config = {
            # After this, a report Kafka has not acknowledged fails and the drone gets a 503.
            "message.timeout.ms": int(delivery_timeout_seconds * 1000),
            "queue.buffering.max.kbytes": max(1, queue_bytes // 1024),
            # Bounded by the bytes above: the smallest report takes about 180 bytes.
            "queue.buffering.max.messages": 10_000_000,
        }
        self._producers: dict[str | None, _Signed] = {}
        #: Producers replaced by a rotation, delivering what they hold before they go.
        self._retiring: list[Producer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: When each retired producer was retired (by ``id``): its thread outlives that by
        #: ``_RETIRED_GRACE`` at least.
        self._retired_at: dict[int, float] = {}
        #: The producer ``open`` readied for each force (signed in, its topic's metadata
        #: read); a producer that replaced it by a rotation is not open yet.
        self._open: dict[str, Producer] = {}

    def _producer(self, force_id: str | None, *, may_rotate: bool = True) -> Producer:
        """The force's producer, made on first use; with ``may_rotate``, replaced when the
        force's credentials changed. Only the event loop rotates: it produces into what
        this returns without letting go in between, so a producer it holds is never
        retired under it."""
        signed = self._producers.get(force_id)
        now = time.monotonic()
        if signed is not None and (not may_rotate or now - signed.checked < self._recheck):
            return signed.producer
        with self._lock:
            signed = self._producers.get(force_id)
            if signed is not None and now - signed.checked < self._recheck:
                return signed.producer
            try:
                access = self._access_for(force_id)
            except (OSError, ValueError) as exc:
                if signed is None:
                    raise
                # A mounted file being replaced: keep the producer that works.
                log.warning("credentials of %s unreadable, kept: %s", force_id, exc)
                signed.checked = now
                return signed.producer
            if signed is not None and signed.access == access:
                signed.checked = now
                return signed.producer
            producer = Producer(producer_config(access, linger_ms=1) | self._config)
            thread = threading.Thread(
                target=self._serve,
                args=(producer,),
                name=f"kafka-deliveries-{force_id or 'gateway'}",
                daemon=True,
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
            if signed is not None:
                self._retired_at[id(signed.producer)] = now
                self._retiring = [*self._retiring, signed.producer]
            # New containers: the delivery thread iterates the old ones without a lock.
            self._producers = {**self._producers, force_id: _Signed(producer, access, now)}
            return producer

    async def send(
        self, force_id: str, topic: str, records: list[tuple[bytes, bytes]], timestamp_ms: int = 0
    ) -> list[KafkaError | None]:
        """Produce ``records`` (key, value) as ``force_id``'s producer; returns each one's
        delivery error, or None.

        ``timestamp_ms`` is each record's time (CreateTime): the reception time the gateway
        judged the reports by, which the consumers judge them by again (0: now).
        """
        producer = self._producer(force_id)
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
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(_settle, future, error)

            try:
                producer.produce(
                    topic, key=key, value=value, on_delivery=delivered, timestamp=timestamp_ms
                )
            except BufferError:
                future.set_result(KafkaError(KafkaError._QUEUE_FULL, "producer queue is full"))
            except KafkaException as exc:
                future.set_result(exc.args[0])
        return list(await asyncio.gather(*futures))

    def open(self, force_id: str, topic: str, timeout: float = 2.0) -> None:
        """Ready ``force_id``'s producer before its first report: sign in, get a producer id,
        read ``topic``'s metadata (half a second on a busy machine, which the first reports
        would otherwise wait for). Never replaces a producer (only the event loop rotates).
        Blocks up to ``timeout``: call it from a worker thread. Raises ``KafkaException``
        when Kafka did not answer, or does not let this force see its topic."""
        producer = self._producer(force_id, may_rotate=False)
        metadata = producer.list_topics(topic, timeout=timeout)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise KafkaException(
                found.error if found is not None else KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
            )
        self._open[force_id] = producer

    def is_open(self, force_id: str) -> bool:
        """Whether the force's current producer was readied by ``open``."""
        signed = self._producers.get(force_id)
        return signed is not None and self._open.get(force_id) is signed.producer

    def reachable(self, timeout: float = 2.0) -> bool:
        """Whether a Kafka broker answers a metadata request now (blocks up to ``timeout``:
        call it from a worker thread)."""
        try:
            return bool(self._producer(None).list_topics(timeout=timeout).brokers)
        except KafkaException:
            return False

    def close(self, timeout: float = 10.0) -> None:
        for producer in [s.producer for s in self._producers.values()] + self._retiring:
            producer.flush(timeout)
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _serve(self, producer: Producer) -> None:
        """Serve ``producer``'s delivery reports as they come, until the sender closes or
        the producer, retired by a rotation, has delivered everything it held."""
        while not self._stop.is_set():
            try:
                producer.poll(0.1)
            except Exception:  # a callback's fault must not stop the force's deliveries
                log.exception("a delivery report of the gateway's producer failed")
            retired = self._retired_at.get(id(producer))
            if (
                retired is not None
                and time.monotonic() - retired > _RETIRED_GRACE
                and len(producer) == 0
            ):
                with self._lock:
                    self._retiring = [p for p in self._retiring if p is not producer]
                    self._retired_at.pop(id(producer), None)
                return


def _settle(future: asyncio.Future[KafkaError | None], error: KafkaError | None) -> None:
    if not future.done():
        future.set_result(error)
