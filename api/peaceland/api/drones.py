"""The drones' last positions of each force, for its dashboards and its API.

One reader of a force's reports topic per control-plane process, signed in as the force's
dashboard principal (Kafka's ACLs give it that force's topics only), shared by every page
of that force: started by the first page or request that asks, stopped a while after the
last one leaves. It starts a few minutes back (drones report once a minute, so every drone
in the air is seen) and keeps each drone's last position in the order they changed, so
that a page gets the whole fleet once and then, each second, only the drones that moved.

Reports of one drone share a partition (the gateway keys them by drone): the last one read
is the drone's last report, whatever its own clock says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Final

from confluent_kafka import Consumer, KafkaError, TopicPartition

from peaceland.api.force_data import ForceData, describe
from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.kafka import Config
from peaceland.tenants.reports import DronePosition, decode_drone_position

log = logging.getLogger(__name__)

#: Drones a force's map keeps at most; past it the one silent the longest is forgotten.
MOST_DRONES: Final = 100_000
#: Records read at most at once, and the wait for the first of them.
_BATCH: Final = 2_000
_POLL_SECONDS: Final = 0.5
#: The wait before a reader that failed (a server away, the topic gone) tries again.
_RETRY_SECONDS: Final = 5.0


def position_out(position: DronePosition) -> dict[str, object]:
    """A drone's position as the API and the feed give it."""
    return {
        "drone_id": position.drone_id,
        "latitude": position.latitude,
        "longitude": position.longitude,
        "reported_at": position.timestamp.isoformat(),
    }


class LastPositions:
    """Each drone's last position, in the order they changed; safe across threads."""

    def __init__(self, most: int = MOST_DRONES) -> None:
        self._most = most
        self._lock = threading.Lock()
        self._tick = 0
        # Oldest change first: a drone that moves is put back at the end.
        self._by_drone: dict[str, tuple[int, DronePosition]] = {}

    def record(self, positions: list[DronePosition]) -> None:
        with self._lock:
            for position in positions:
                self._tick += 1
                self._by_drone.pop(position.drone_id, None)
                self._by_drone[position.drone_id] = (self._tick, position)
            while len(self._by_drone) > self._most:
                del self._by_drone[next(iter(self._by_drone))]

    def since(self, tick: int) -> tuple[int, list[DronePosition]]:
        """The drones that moved after ``tick`` (0: every drone), newest first, and the tick
        to ask from next time."""
        changed: list[DronePosition] = []
        with self._lock:
            for drone in reversed(self._by_drone):
                moved, position = self._by_drone[drone]
                if moved <= tick:
                    break
                changed.append(position)
            return self._tick, changed

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_drone)


class DroneWatch:
    """The reader of one force's reports topic, in a thread of its own."""

    def __init__(
        self,
        force_id: str,
        config: Config,
        topic: str,
        fingerprint: str,
        lookback: timedelta,
        timeout: float,
    ) -> None:
        self.force_id = force_id
        self.fingerprint = fingerprint
        self.positions = LastPositions()
        #: Set once the reader has read what the topic held when it started.
        self.ready = threading.Event()
        #: Why the reader is not reading, while it is not (None when it is).
        self.trouble: str | None = None
        #: Pages and requests using it (changed under ``DroneWatches``' lock).
        self.users = 0
        self._config = config
        self._topic = topic
        self._lookback = lookback
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"drones-{force_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            consumer = Consumer(dict(self._config))
            try:
                self._read(consumer)
            except Exception as exc:
                self.trouble = describe(exc)
                log.warning("the drones of %s are not read now: %s", self.force_id, exc)
                self._stop.wait(_RETRY_SECONDS)
            finally:
                consumer.close()

    def _read(self, consumer: Consumer) -> None:
        ends = self._assign(consumer)
        skipped = 0
        while not self._stop.is_set():
            first = consumer.poll(_POLL_SECONDS)
            records = [] if first is None else [first, *consumer.consume(_BATCH - 1, timeout=0)]
            positions: list[DronePosition] = []
            for record in records:
                error = record.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"the reports topic could not be read: {error}")
                try:
                    positions.append(decode_drone_position(record.value() or b""))
                except InvalidRecordError as exc:
                    skipped += 1
                    if skipped == 1 or skipped % 1000 == 0:
                        log.warning("%d reports of %s not on the map (not a report: %s)",
                                    skipped, self.force_id, exc)  # fmt: skip
            self.positions.record(positions)
            self.trouble = None
            if not self.ready.is_set() and (
                first is None or _reached(consumer.position(list(ends)), ends)
            ):
                self.ready.set()

    def _assign(self, consumer: Consumer) -> dict[TopicPartition, int]:
        """From ``lookback`` ago in every partition; returns where each partition ended
        when the reader started (what it must read to be ready)."""
        metadata = consumer.list_topics(self._topic, timeout=self._timeout)
        found = metadata.topics.get(self._topic)
        if found is None or found.error is not None:
            raise RuntimeError(f"topic {self._topic} cannot be read: {found and found.error}")
        since = int((datetime.now(UTC) - self._lookback).timestamp() * 1000)
        wanted = [TopicPartition(self._topic, p, since) for p in sorted(found.partitions)]
        ends: dict[TopicPartition, int] = {}
        for p in wanted:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(p.topic, p.partition), timeout=self._timeout
            )
            ends[TopicPartition(p.topic, p.partition)] = high
        start = []
        for found_at in consumer.offsets_for_times(wanted, timeout=self._timeout):
            key = TopicPartition(found_at.topic, found_at.partition)
            offset = found_at.offset if found_at.offset >= 0 else ends[key]
            start.append(TopicPartition(found_at.topic, found_at.partition, offset))
        consumer.assign(start)
        return ends


def _reached(positions: list[TopicPartition], ends: dict[TopicPartition, int]) -> bool:
    """Whether every partition's next offset is at or past where it ended at the start (a
    position not known yet is negative: not reached)."""
    return all(p.offset >= ends[TopicPartition(p.topic, p.partition)] for p in positions)


class DroneWatches:
    """Every force's drone reader in this process, shared by its users."""

    def __init__(
        self,
        data: ForceData,
        lookback: timedelta = timedelta(minutes=3),
        linger: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        self._data = data
        self._lookback = lookback
        self._linger = linger
        self._timeout = timeout
        self._lock = threading.Lock()
        self._watches: dict[str, DroneWatch] = {}
        self._timers: dict[int, threading.Timer] = {}
        self._closed = False

    @contextmanager
    def watching(self, force_id: str) -> Iterator[DroneWatch]:
        """The force's reader, started if none is running, as long as the caller uses it.
        Raises ``ForceDataUnavailableError`` when the force's credentials cannot be read."""
        fingerprint = self._data.fingerprint_of(force_id)
        config = self._data.consumer_config(force_id) | {
            "group.id": f"peaceland.{force_id}.dashboard.drones",
            "enable.partition.eof": False,
        }
        topic = self._data.resources(force_id).reports_topic
        stale: DroneWatch | None = None
        with self._lock:
            if self._closed:
                raise RuntimeError("the control plane is stopping")
            watch = self._watches.get(force_id)
            if watch is None or watch.fingerprint != fingerprint or watch.stopped:
                # New credentials (a rotation, a force made again): a reader of its own.
                if watch is not None and watch.users == 0:
                    stale = watch
                    stale_timer = self._timers.pop(id(stale), None)
                    if stale_timer is not None:
                        stale_timer.cancel()
                watch = DroneWatch(
                    force_id, config, topic, fingerprint, self._lookback, self._timeout
                )
                self._watches[force_id] = watch
                watch.start()
            watch.users += 1
            timer = self._timers.pop(id(watch), None)
        if timer is not None:
            timer.cancel()
        if stale is not None:
            self._stop(stale)
        try:
            yield watch
        finally:
            self._leave(watch)

    def _leave(self, watch: DroneWatch) -> None:
        with self._lock:
            watch.users -= 1
            if watch.users > 0:
                return
            if self._closed or self._watches.get(watch.force_id) is not watch:
                now = True  # replaced meanwhile: nobody else will use it
            else:
                now = False
                timer = threading.Timer(self._linger, self._idle, (watch,))
                timer.daemon = True
                self._timers[id(watch)] = timer
                timer.start()
        if now:
            self._stop(watch)

    def _idle(self, watch: DroneWatch) -> None:
        """Nobody came back for ``linger`` seconds: the reader stops."""
        with self._lock:
            self._timers.pop(id(watch), None)
            if watch.users > 0:
                return
            if self._watches.get(watch.force_id) is watch:
                del self._watches[watch.force_id]
        self._stop(watch)

    def _stop(self, watch: DroneWatch) -> None:
        watch.stop()
        log.info("the drones of %s are no longer read here", watch.force_id)

    def running(self) -> list[str]:
        """The forces whose drones are read now."""
        with self._lock:
            return sorted(f for f, w in self._watches.items() if not w.stopped)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            watches = list(self._watches.values())
            self._watches.clear()
            timers = list(self._timers.values())
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        for watch in watches:
            watch.stop()
