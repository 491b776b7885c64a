"""The drones' last positions of each force, for its dashboards and its API.

One reader of a force's reports topic per control-plane process, signed in as the force's
dashboard principal (Kafka's ACLs give it that force's topics only), shared by every page
of that force: started by the first page or request that asks, stopped a while after the
last one leaves. It starts ``lookback`` back (drones report once a minute, so every drone
in the air is seen) and keeps each drone's last position; a drone silent for longer than
``lookback`` leaves the map.

Each second the reader encodes what changed (the drones that moved, the drones gone) once,
as a *frame*, whatever the number of pages: a page gets the whole fleet once (a snapshot,
encoded off the event loop, in chunks), then the frames that follow it.

Reports of one drone share a partition (the gateway keys them by drone): the last one read
is the drone's last report, whatever its own clock says.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from starlette.concurrency import run_in_threadpool

from peaceland.api.force_data import ForceData, ForceDataUnavailableError, describe
from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.kafka import Config
from peaceland.tenants.reports import DronePosition, decode_drone_position

log = logging.getLogger(__name__)

#: Drones a force's map keeps at most; past it the one silent the longest is forgotten.
MOST_DRONES: Final = 100_000
#: Drones in one event of a snapshot.
SNAPSHOT_CHUNK: Final = 5_000
#: How often a reader makes a frame of what changed.
FRAME_SECONDS: Final = 1.0
#: Frames kept for pages a little behind (seconds, and at most so many); further behind,
#: a page gets a snapshot again.
_FRAMES_SECONDS: Final = 30.0
_FRAMES_MOST: Final = 1_000
#: Records read at most at once, and the wait for the first of them.
_BATCH: Final = 2_000
_POLL_SECONDS: Final = 0.25
#: The wait before a reader that failed (a server away, the topic gone) tries again, and
#: how often it looks for partitions added to the topic.
_RETRY_SECONDS: Final = 5.0
_PARTITIONS_SECONDS: Final = 30.0


def position_out(position: DronePosition) -> dict[str, object]:
    """A drone's position as the API and the feed give it."""
    return {
        "drone_id": position.drone_id,
        "latitude": position.latitude,
        "longitude": position.longitude,
        "reported_at": position.timestamp.isoformat(),
    }


class LastPositions:
    """Each drone's last position, in the order they changed, with when it was received
    (the Kafka record's time, in epoch ms); safe across threads."""

    def __init__(self, most: int = MOST_DRONES) -> None:
        self._most = most
        self._lock = threading.Lock()
        self._tick = 0
        # Oldest change first: a drone that moves is put back at the end.
        self._by_drone: dict[str, tuple[int, DronePosition, int]] = {}
        # Forgotten past the bound since ``expire`` was last called: gone from the map too.
        self._evicted: list[str] = []

    def record(self, positions: list[tuple[DronePosition, int]]) -> None:
        with self._lock:
            for position, received_ms in positions:
                self._tick += 1
                self._by_drone.pop(position.drone_id, None)
                self._by_drone[position.drone_id] = (self._tick, position, received_ms)
            while len(self._by_drone) > self._most:
                oldest = next(iter(self._by_drone))
                del self._by_drone[oldest]
                self._evicted.append(oldest)

    def since(self, tick: int) -> tuple[int, list[DronePosition]]:
        """The drones that moved after ``tick`` (0: every drone), newest first, and the tick
        to ask from next time."""
        changed: list[DronePosition] = []
        with self._lock:
            for drone in reversed(self._by_drone):
                moved, position, _ = self._by_drone[drone]
                if moved <= tick:
                    break
                changed.append(position)
            return self._tick, changed

    def expire(self, before_ms: int) -> list[str]:
        """Forget the drones last heard of before ``before_ms``; returns them, with those
        forgotten past the bound since the last call. From the oldest change on, up to the
        first drone heard of since (records of several partitions interleave: a few may
        wait for the next call)."""
        with self._lock:
            gone, self._evicted = self._evicted, []
            while self._by_drone:
                drone = next(iter(self._by_drone))
                if self._by_drone[drone][2] >= before_ms:
                    break
                del self._by_drone[drone]
                gone.append(drone)
        return gone

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_drone)


@dataclass(frozen=True)
class Frame:
    """What changed between frame ``number - 1`` and frame ``number``, encoded once for
    every page: the data of one ``drones`` event."""

    number: int
    data: str
    made_at: float


def _encoded(moved: list[DronePosition], gone: list[str], *, reset: bool = False) -> str:
    body: dict[str, object] = {"drones": [position_out(p) for p in moved]}
    if gone:
        body["gone"] = gone
    if reset:
        body["reset"] = True
    return json.dumps(body, separators=(",", ":"))


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
        self._frames: deque[Frame] = deque(maxlen=_FRAMES_MOST)
        #: The last frame's number, and the positions' tick it was made at.
        self._frame_number = 0
        self._frame_tick = 0
        # Held only to read or append frames (the event loop takes it); a frame is made,
        # and encoded, under ``_making`` alone.
        self._frame_lock = threading.Lock()
        self._making = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"drones-{force_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Tell the reader to stop (it closes its Kafka client itself); never waits."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Reading, or about to: not told to stop, its thread not ended."""
        return not self._stop.is_set() and (self._thread.is_alive() or self._thread.ident is None)

    def snapshot(self) -> tuple[int, list[str]]:
        """Every drone, as the data of ``drones`` events of at most ``SNAPSHOT_CHUNK``
        drones each (the first one says ``reset``: forget every drone known before), and
        the number of the last frame it holds. Encoding takes a while: not on the loop."""
        with self._making:
            # What changed since the last frame goes in one first: the pages that follow
            # the frames get it, and this page follows from here, nothing sent twice.
            self._make_frame()
            number = self._frame_number
            _, everyone = self.positions.since(0)
        chunks = [
            _encoded(everyone[start : start + SNAPSHOT_CHUNK], [], reset=start == 0)
            for start in range(0, max(len(everyone), 1), SNAPSHOT_CHUNK)
        ]
        return number, chunks

    def frames_after(self, number: int) -> list[Frame] | None:
        """The frames after frame ``number``, up to now; None when they are no longer all
        kept (the page needs a snapshot again)."""
        with self._frame_lock:
            if number == self._frame_number:
                return []
            frames = list(self._frames)
        if not frames or frames[0].number > number + 1 or number > frames[-1].number:
            return None
        return frames[number + 1 - frames[0].number :]

    def _frame(self) -> None:
        with self._making:
            self._make_frame()

    def _make_frame(self) -> None:
        """A frame of what changed since the last one, if anything did (under ``_making``:
        encoded without holding the lock the event loop reads frames under)."""
        cutoff = datetime.now(UTC) - self._lookback
        gone = self.positions.expire(int(cutoff.timestamp() * 1000))
        tick, moved = self.positions.since(self._frame_tick)
        data = _encoded(moved, gone) if moved or gone else None
        now = time.monotonic()
        with self._frame_lock:
            while self._frames and now - self._frames[0].made_at > _FRAMES_SECONDS:
                self._frames.popleft()
            if data is None:
                return
            self._frame_number += 1
            self._frames.append(Frame(self._frame_number, data, now))
            self._frame_tick = tick

    def _run(self) -> None:
        while not self._stop.is_set():
            consumer: Consumer | None = None
            try:
                consumer = Consumer(dict(self._config))
                self._read(consumer)
            except Exception as exc:
                self.trouble = describe(exc)
                log.warning("the drones of %s are not read now: %s", self.force_id, exc)
                self._stop.wait(_RETRY_SECONDS)
            finally:
                if consumer is not None:
                    consumer.close()

    def _read(self, consumer: Consumer) -> None:
        at, waiting = self._assign(consumer)
        if not waiting:
            self.ready.set()
        skipped = 0
        framed = looked = time.monotonic()
        while not self._stop.is_set():
            first = consumer.poll(_POLL_SECONDS)
            records = [] if first is None else [first, *consumer.consume(_BATCH - 1, timeout=0)]
            positions: list[tuple[DronePosition, int]] = []
            for record in records:
                error = record.error()
                part = record.partition()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"the reports topic could not be read: {error}")
                    waiting.pop(part or 0, None)
                    continue
                offset = record.offset() or 0
                at[part or 0] = offset + 1
                if part in waiting and offset >= waiting[part] - 1:
                    del waiting[part]
                try:
                    position = decode_drone_position(record.value() or b"")
                except InvalidRecordError as exc:
                    skipped += 1
                    if skipped == 1 or skipped % 1000 == 0:
                        log.warning("%d reports of %s not on the map (not a report: %s)",
                                    skipped, self.force_id, exc)  # fmt: skip
                    continue
                positions.append((position, record.timestamp()[1]))
            self.positions.record(positions)
            self.trouble = None
            if not waiting and not self.ready.is_set():
                self.ready.set()
            now = time.monotonic()
            if now - framed >= FRAME_SECONDS:
                framed = now
                self._frame()
            if now - looked >= _PARTITIONS_SECONDS:
                looked = now
                self._added(consumer, at)

    def _partitions(self, consumer: Consumer) -> list[int]:
        metadata = consumer.list_topics(self._topic, timeout=self._timeout)
        found = metadata.topics.get(self._topic)
        if found is None or found.error is not None:
            raise RuntimeError(f"topic {self._topic} cannot be read: {found and found.error}")
        return sorted(found.partitions)

    def _assign(self, consumer: Consumer) -> tuple[dict[int, int], dict[int, int]]:
        """From ``lookback`` ago in every partition. Returns each partition's next offset,
        and where each one still to read ended when the reader started (what it reads to
        be ready)."""
        partitions = self._partitions(consumer)
        since = int((datetime.now(UTC) - self._lookback).timestamp() * 1000)
        wanted = [TopicPartition(self._topic, p, since) for p in partitions]
        ends = {
            p: consumer.get_watermark_offsets(
                TopicPartition(self._topic, p), timeout=self._timeout
            )[1]
            for p in partitions
        }
        start: list[TopicPartition] = []
        waiting: dict[int, int] = {}
        for found in consumer.offsets_for_times(wanted, timeout=self._timeout):
            offset = found.offset if found.offset >= 0 else ends[found.partition]
            start.append(TopicPartition(self._topic, found.partition, offset))
            if offset < ends[found.partition]:
                waiting[found.partition] = ends[found.partition]
        consumer.assign(start)
        return {p.partition: p.offset for p in start}, waiting

    def _added(self, consumer: Consumer, at: dict[int, int]) -> None:
        """Partitions added to the topic since it was assigned, read from their start (a
        force's plan may grow them; drones move to them); the others go on where they are."""
        added = [p for p in self._partitions(consumer) if p not in at]
        if not added:
            return
        for p in added:
            at[p] = OFFSET_BEGINNING
        consumer.assign([TopicPartition(self._topic, p, o) for p, o in sorted(at.items())])
        log.info("the drones of %s: partitions %s added", self.force_id, added)


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

    @property
    def lookback(self) -> timedelta:
        return self._lookback

    def attach(self, force_id: str) -> DroneWatch:
        """The force's reader, started if none is running; the caller ``detach``-es it
        when done. Reads the force's credentials (blocking); raises
        ``ForceDataUnavailableError`` when they cannot be read or the process is stopping."""
        fingerprint = self._data.fingerprint_of(force_id)
        config = self._data.consumer_config(force_id) | {
            "group.id": f"peaceland.{force_id}.dashboard.drones",
            "enable.partition.eof": True,
            # Reports are big and only their positions are kept: little read ahead.
            "queued.max.messages.kbytes": 8_192,
        }
        topic = self._data.resources(force_id).reports_topic
        with self._lock:
            if self._closed:
                raise ForceDataUnavailableError("the control plane is stopping")
            watch = self._watches.get(force_id)
            if watch is None or watch.fingerprint != fingerprint or not watch.alive:
                # New credentials (a rotation, a force made again), or a reader that ended:
                # a reader anew. One no one uses any more stops now.
                if watch is not None and watch.users == 0:
                    self._cancel_timer(watch)
                    watch.stop()
                watch = DroneWatch(
                    force_id, config, topic, fingerprint, self._lookback, self._timeout
                )
                self._watches[force_id] = watch
                watch.start()
            watch.users += 1
            self._cancel_timer(watch)
        return watch

    def detach(self, watch: DroneWatch) -> None:
        """A user is done with ``watch``. Never blocks: safe on the event loop, even while
        a cancelled request unwinds."""
        with self._lock:
            watch.users -= 1
            if watch.users > 0:
                return
            if self._closed or self._watches.get(watch.force_id) is not watch:
                watch.stop()  # replaced meanwhile: nobody else will use it
                return
            timer = threading.Timer(self._linger, self._idle, (watch,))
            timer.daemon = True
            self._timers[id(watch)] = timer
            timer.start()

    def _cancel_timer(self, watch: DroneWatch) -> None:
        timer = self._timers.pop(id(watch), None)
        if timer is not None:
            timer.cancel()

    def _idle(self, watch: DroneWatch) -> None:
        """Nobody came back for ``linger`` seconds: the reader stops."""
        with self._lock:
            if self._timers.get(id(watch)) is not threading.current_thread():
                return  # a user came back (and maybe left again: a newer timer)
            del self._timers[id(watch)]
            if watch.users > 0:
                return
            if self._watches.get(watch.force_id) is watch:
                del self._watches[watch.force_id]
            watch.stop()
        log.info("the drones of %s are no longer read here", watch.force_id)

    def running(self) -> list[str]:
        """The forces whose drones are read now."""
        with self._lock:
            return sorted(f for f, w in self._watches.items() if w.alive)

    def close(self, timeout: float = 15.0) -> None:
        """Stop every reader, then wait for them all, ``timeout`` at most in all."""
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
        deadline = time.monotonic() + timeout
        for watch in watches:
            watch.join(max(0.0, deadline - time.monotonic()))


class PageDrones:
    """What one page has of a force's drones: a snapshot first, then the frames after it
    (a snapshot again if it fell too far behind, or when its reader is replaced)."""

    #: How long a reader may be in trouble before the page asks for the force's current one
    #: (new credentials after a rotation: the old reader's are revoked).
    TROUBLE_SECONDS: Final = 10.0

    def __init__(self, watches: DroneWatches, watch: DroneWatch) -> None:
        self._watches = watches
        self.watch = watch
        self._number: int | None = None
        self._at = 0.0
        self._trouble_since: float | None = None

    async def due(self) -> list[str]:
        """The data of the ``drones`` events to send now: none if the last were sent less
        than a frame ago."""
        now = time.monotonic()
        if now - self._at < FRAME_SECONDS:
            return []
        self._at = now
        await self._follow_the_current_reader(now)
        frames = None if self._number is None else self.watch.frames_after(self._number)
        if frames is None:
            self._number, chunks = await run_in_threadpool(self.watch.snapshot)
            return chunks
        if frames:
            self._number = frames[-1].number
        return [frame.data for frame in frames]

    async def _follow_the_current_reader(self, now: float) -> None:
        if self.watch.trouble is None:
            self._trouble_since = None
            return
        if self._trouble_since is None:
            self._trouble_since = now
        if now - self._trouble_since < self.TROUBLE_SECONDS:
            return
        self._trouble_since = now
        try:
            current = await run_in_threadpool(self._watches.attach, self.watch.force_id)
        except Exception as exc:  # the drones are extra: never the alerts' end
            log.warning("the drones of %s: no other reader now: %s", self.watch.force_id, exc)
            return
        if current is self.watch or not current.ready.is_set():
            # The same reader (it is the force's), or one not caught up yet (a page would
            # see an empty map a while): tried again later.
            self._watches.detach(current)
            return
        self._watches.detach(self.watch)
        self.watch, self._number = current, None  # another reader: a snapshot from it

    def close(self) -> None:
        """The page left (never blocks)."""
        self._watches.detach(self.watch)
