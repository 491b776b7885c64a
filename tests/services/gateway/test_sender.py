"""The gateway's producers follow a force's credentials (no server needed: a producer does
not connect until it sends)."""

from __future__ import annotations

import time
from pathlib import Path

from peaceland.services.gateway.sender import KafkaSender
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.tenants.kafka import KafkaAccess

NOWHERE = "127.0.0.1:1"


def test_a_rotated_credential_gets_a_new_producer_while_the_old_one_drains():
    current = {"lyon": KafkaAccess(NOWHERE, "lyon.gateway.g0", "a" * 43)}
    sender = KafkaSender(
        lambda force: current[force] if force else KafkaAccess(NOWHERE),
        delivery_timeout_seconds=1.0,
        recheck_seconds=0.0,
    )
    try:
        first = sender._producer("lyon")
        assert sender._producer("lyon") is first  # same credentials: same producer
        current["lyon"] = KafkaAccess(NOWHERE, "lyon.gateway.g1", "b" * 43)
        second = sender._producer("lyon")
        assert second is not first
        # The old producer held nothing: the delivery thread lets it go.
        deadline = time.monotonic() + 5
        while sender._retiring and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender._retiring == []
    finally:
        sender.close(1)


def test_an_unreadable_credential_keeps_the_producer_that_works():
    calls = {"n": 0}

    def access_for(force: str | None) -> KafkaAccess:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ValueError("Kafka password file /x cannot be read: No such file or directory")
        return KafkaAccess(NOWHERE, "lyon.gateway.g0", "a" * 43)

    sender = KafkaSender(access_for, delivery_timeout_seconds=1.0, recheck_seconds=0.0)
    try:
        first = sender._producer("lyon")
        assert sender._producer("lyon") is first
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
