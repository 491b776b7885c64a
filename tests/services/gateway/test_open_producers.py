"""The gateway readies each force's producer before its first report, and one force's
trouble never holds the others back (no server: the sender here only records the calls)."""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaError, KafkaException

from peaceland.services.gateway.app import _open_producers
from peaceland.services.gateway.auth import DroneKeys
from peaceland.tenants.drone_keys import KeyChanges, KeyGrant


class RecordingSender:
    """Stands in for the sender's open/is_open only: which forces were asked, in order."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.asked: list[str] = []
        self.opened: set[str] = set()

    def is_open(self, force_id: str) -> bool:
        return force_id in self.opened

    def open(self, force_id: str, topic: str) -> None:
        self.asked.append(force_id)
        if force_id in self.failing:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        if force_id == "ghost":
            raise RuntimeError("can't start new thread")
        assert topic == f"peaceland.{force_id}.reports"
        self.opened.add(force_id)


def test_each_force_is_opened_once_and_a_failing_one_is_tried_again_later() -> None:
    keys = DroneKeys({"d1": "lyon", "d2": "nice", "d3": "ghost", "d4": "paris"})
    sender = RecordingSender(failing={"nice"})

    async def run() -> None:
        task = asyncio.create_task(_open_producers(keys, sender, 0.05, longest_wait=0.2))  # type: ignore[arg-type]
        await asyncio.sleep(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert sender.opened == {"lyon", "paris"}  # past a failing force and a crashing one
    assert sender.asked.count("lyon") == sender.asked.count("paris") == 1
    tries = sender.asked.count("nice")
    assert 2 <= tries <= 8  # tried again, less and less often (0.05, 0.1, 0.2, 0.2… s)


def _grant(key_id: str, force_id: str) -> KeyGrant:
    return KeyGrant(key_id=key_id, force_id=force_id, drone_id="d-1", digest="0" * 64)


def test_the_forces_a_key_speaks_for_follow_grants_revocations_and_regrants() -> None:
    keys = DroneKeys({"digest": "lyon"})
    keys.apply(
        KeyChanges(grants=[_grant("k1", "nice"), _grant("k2", "nice")], revoked=[], cursor=1)
    )
    assert keys.forces() == {"lyon", "nice"}
    keys.apply(KeyChanges(grants=[_grant("k2", "paris")], revoked=["k1"], cursor=2))
    assert keys.forces() == {"lyon", "paris"}  # k2 now speaks for paris: nice has no key left
    keys.apply(KeyChanges(grants=[], revoked=["k2", "k-unknown"], cursor=3))
    assert keys.forces() == {"lyon"}
