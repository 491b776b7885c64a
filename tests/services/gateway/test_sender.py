"""The gateway's producers follow a force's credentials (no server needed: a producer does
not connect until it sends)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from peaceland.services.gateway.sender import KafkaSender
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.tenants.kafka import KafkaAccess

NOWHERE = "127.0.0.1:1"


def test_a_rotated_credential_gets_a_new_producer_while_the_old_one_drains():
    sender, current = _rotating()
    try:
        first = sender._producer("lyon")
        assert sender._producer("lyon") is first  # same credentials: same producer
        ended: list[object] = []
        # Nowhere to go: it stays queued until its delivery times out (1 s).
        first.produce("peaceland.lyon.reports", b"held", on_delivery=lambda e, _m: ended.append(e))
        current["lyon"] = KafkaAccess(NOWHERE, "lyon.gateway.g1", "b" * 43)
        second = sender._producer("lyon")
        assert second is not first
        assert sender._retiring == [first]  # kept, still polled, while it holds a record
        # Its record ends (here: times out), its report is served by the delivery thread,
        # and only then is the producer let go.
        deadline = time.monotonic() + 10
        while sender._retiring and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender._retiring == []
        assert len(ended) == 1
    finally:
        sender.close(1)


def test_credentials_being_replaced_keep_the_producer_that_works(tmp_path: Path, monkeypatch):
    folder = tmp_path / "lyon"
    folder.mkdir()
    (folder / "username").write_text("lyon.gateway.g0")
    (folder / "password").write_text("first-password-0123456789")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", NOWHERE)
    settings = GatewaySettings(force_credentials_dir=tmp_path)
    sender = KafkaSender(settings.force_access, delivery_timeout_seconds=1.0, recheck_seconds=0)
    try:
        first = sender._producer("lyon")
        (folder / "password").unlink()  # mid-replacement
        assert sender._producer("lyon") is first
        (folder / "password").write_text("second-password-0123456789")
        assert sender._producer("lyon") is not first  # a whole new pair: switched
    finally:
        sender.close(1)


def test_the_gateway_reads_its_credential_files_again_at_each_ask(tmp_path: Path, monkeypatch):
    username, password = tmp_path / "kafka-username", tmp_path / "kafka-password"
    username.write_text("lyon.gateway.g0")
    password.write_text("first-password-0123456789")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", NOWHERE)
    monkeypatch.setenv("KAFKA_USERNAME_FILE", str(username))
    monkeypatch.setenv("KAFKA_PASSWORD_FILE", str(password))
    settings = GatewaySettings()
    assert settings.force_access("lyon").username == "lyon.gateway.g0"
    username.write_text("lyon.gateway.g1")
    password.write_text("second-password-0123456789")
    access = settings.force_access("lyon")
    assert (access.username, access.password) == ("lyon.gateway.g1", "second-password-0123456789")


def test_open_says_why_a_producer_could_not_be_readied_and_leaves_it_not_open():
    sender = KafkaSender(
        lambda _force: KafkaAccess(NOWHERE), delivery_timeout_seconds=1.0, recheck_seconds=0.0
    )
    try:
        with pytest.raises(KafkaException):
            sender.open("lyon", "peaceland.lyon.reports", timeout=0.5)
        assert not sender.is_open("lyon")
    finally:
        sender.close(1)


def _rotating() -> tuple[KafkaSender, dict[str, KafkaAccess]]:
    """A sender whose force ``lyon`` signs in with ``current["lyon"]``, checked at each ask."""
    current = {"lyon": KafkaAccess(NOWHERE, "lyon.gateway.g0", "a" * 43)}
    sender = KafkaSender(
        lambda force: current[force] if force else KafkaAccess(NOWHERE),
        delivery_timeout_seconds=1.0,
        recheck_seconds=0.0,
    )
    return sender, current


def test_open_never_replaces_the_producer_the_event_loop_may_be_producing_into():
    sender, current = _rotating()
    try:
        first = sender._producer("lyon")
        current["lyon"] = KafkaAccess(NOWHERE, "lyon.gateway.g1", "b" * 43)
        with pytest.raises(KafkaException):
            sender.open("lyon", "peaceland.lyon.reports", timeout=0.2)
        assert sender._producers["lyon"].producer is first  # a rotation is the loop's alone
        assert sender._retiring == []
    finally:
        sender.close(1)


def test_a_retired_producers_thread_ends_once_it_holds_nothing_and_close_ends_the_rest():
    sender, current = _rotating()
    sender._producer("lyon")
    current["lyon"] = KafkaAccess(NOWHERE, "lyon.gateway.g1", "b" * 43)
    sender._producer("lyon")
    assert sum(t.is_alive() for t in sender._threads) == 2
    deadline = time.monotonic() + 10
    while sum(t.is_alive() for t in sender._threads) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(t.is_alive() for t in sender._threads) == 1  # the retired one's ended
    sender.close(1)
    assert not any(t.is_alive() for t in sender._threads)
