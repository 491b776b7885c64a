"""Driving a simulated fleet into the platform at a target rate, keeping its ground truth.

Reports go straight to the force's Kafka topic, or through the ingest gateway in batches,
as drones behind a base station would; reports the gateway could not hand to Kafka (503)
are sent again, like a drone keeps a report until it is accepted. The ground truth records
when each report was accepted (to measure alert latency from there) and which sightings
must raise alerts.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta

import httpx2
from confluent_kafka import KafkaError, Message, Producer

from peaceland.loadgen.errors import LoadError
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.truth import GroundTruth
from peaceland.tenants.kafka import KafkaAccess, producer_config
from peaceland.tenants.reports import Report, encode_report, utc_now

Progress = Callable[[int], None]


def fleet_reports(fleet: Fleet, total: int | None) -> Iterator[Report]:
    """``total`` reports, the last one timestamped about now (simulated time runs faster);
    with no total, reports on the real clock for ever."""
    if total is None:
        yield from fleet.live_reports()
        return
    minutes = -(-total // fleet.drones)
    start = utc_now() - timedelta(minutes=minutes)
    for index, report in enumerate(fleet.reports(start, minutes)):
        if index == total:
            return
        yield report


def _pace(began: float, index: int, rate: float) -> None:
    ahead = began + index / rate - time.perf_counter()
    if ahead > 0:
        time.sleep(ahead)


def send_to_kafka(
    fleet: Fleet,
    *,
    kafka: KafkaAccess,
    topic: str,
    total: int,
    rate: float,
    progress: Progress = lambda _: None,
) -> GroundTruth:
    """Produce ``total`` reports at ``rate`` a second, acks=all; accepted = acknowledged."""
    truth = GroundTruth(threshold=fleet.threshold)
    producer = Producer(producer_config(kafka, linger_ms=1))
    failures: list[KafkaError] = []

    def on_delivery(report_id: uuid.UUID) -> Callable[[KafkaError | None, Message], None]:
        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)
                return
            truth.accepted += 1
            truth.accepted_at[report_id] = time.time()

        return delivered

    began = time.perf_counter()
    for index, report in enumerate(fleet_reports(fleet, total)):
        _pace(began, index, rate)
        raw = encode_report(report)
        truth.record(report, raw)
        while True:
            try:
                producer.produce(
                    topic,
                    key=report.drone_id.encode(),
                    value=raw,
                    on_delivery=on_delivery(report.report_id),
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
        if index % 500 == 0:
            progress(index)
    if producer.flush(60) or failures:
        raise LoadError(f"Kafka did not acknowledge every report: {failures[:1]}")
    progress(total)
    return truth


def send_to_gateway(
    fleet: Fleet,
    *,
    url: str,
    drone_key: str | Mapping[str, str],
    total: int | None,
    rate: float,
    batch: int = 50,
    concurrency: int = 8,
    progress: Progress = lambda _: None,
    stop: threading.Event | None = None,
) -> GroundTruth:
    """POST ``total`` reports at ``rate`` a second in batches of ``batch``, or fewer if
    ``stop`` is set first. ``drone_key``: one key for the whole force (the development
    harness), or each drone's own key by drone id (keys the control plane issued: a request
    then carries one drone's reports)."""
    return asyncio.run(
        _gateway(
            fleet,
            url=url,
            drone_key=drone_key,
            total=total,
            rate=rate,
            batch_size=batch,
            concurrency=concurrency,
            progress=progress,
            stop=stop or threading.Event(),
        )
    )


async def _gateway(
    fleet: Fleet,
    *,
    url: str,
    drone_key: str | Mapping[str, str],
    total: int | None,
    rate: float,
    batch_size: int,
    concurrency: int,
    progress: Progress,
    stop: threading.Event,
) -> GroundTruth:
    truth = GroundTruth(threshold=fleet.threshold)
    slots = asyncio.Semaphore(concurrency)
    headers = {"Content-Type": "application/json"}
    if isinstance(drone_key, str):
        headers["Authorization"] = f"Bearer {drone_key}"
    tasks: list[asyncio.Task[None]] = []
    async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        began = time.perf_counter()
        pending: list[tuple[Report, bytes]] = []
        reports = fleet_reports(fleet, total)
        for index, report in enumerate(reports, start=1):
            raw = encode_report(report)
            truth.record(report, raw)
            pending.append((report, raw))
            if len(pending) == batch_size or index == total or stop.is_set():
                ahead = began + index / rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                for key, group in _by_key(pending, drone_key):
                    await slots.acquire()
                    tasks.append(asyncio.create_task(_post(client, group, truth, slots, key)))
                pending = []
                progress(index)
                if stop.is_set():
                    break
        await asyncio.gather(*tasks)
    return truth


def _by_key(
    pending: list[tuple[Report, bytes]], drone_key: str | Mapping[str, str]
) -> list[tuple[str | None, list[tuple[Report, bytes]]]]:
    """The batch as requests: one (the force's key), or one per drone (its own key)."""
    if isinstance(drone_key, str):
        return [(None, pending)]
    groups: dict[str, list[tuple[Report, bytes]]] = {}
    for item in pending:
        groups.setdefault(item[0].drone_id, []).append(item)
    return [(drone_key[drone], group) for drone, group in groups.items()]


async def _post(
    client: httpx2.AsyncClient,
    batch: list[tuple[Report, bytes]],
    truth: GroundTruth,
    slots: asyncio.Semaphore,
    key: str | None = None,
    attempts: int = 10,
) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else None
    first_posted = 0.0
    try:
        for attempt in range(attempts):
            body = b"[" + b",".join(raw for _, raw in batch) + b"]"
            if not first_posted:
                first_posted = time.time()
            try:
                response = await client.post("/v1/reports", content=body, headers=headers)
            except httpx2.TransportError:
                # No answer (a connection the gateway closed as it was reused, a gateway
                # restarting): send the whole batch again, as a drone does. A report the
                # gateway did take is then sent twice, which the contract makes a no-op.
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
                continue
            now = time.time()
            if response.status_code not in (202, 422, 503):
                raise LoadError(
                    f"the gateway answered {response.status_code}: {response.text[:500]}"
                )
            unsent = []
            for result in response.json()["results"]:
                report = batch[result["index"]]
                if result["status"] == "accepted":
                    truth.accepted += 1
                    truth.accepted_at[report[0].report_id] = now
                    # The first request that carried it: the gateway may have taken that
                    # one in and lost only its answer.
                    truth.posted_at.setdefault(report[0].report_id, first_posted)
                elif result["status"] == "rejected":
                    truth.rejected += 1
                else:
                    unsent.append(report)
            if not unsent:
                return
            # Kafka was unavailable: keep those reports and send them again, as a drone does.
            batch = unsent
            await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
        raise LoadError(f"the gateway could not take {len(batch)} reports in {attempts} tries")
    finally:
        slots.release()
