"""A deployable's settings, read from its environment."""

from __future__ import annotations

import pytest
from pydantic import Field

from peaceland.tenants.access import KafkaAccessSettings, settings_or_exit


def test_a_process_with_a_bad_setting_stops_naming_it_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON")
    with pytest.raises(SystemExit) as stopped:
        settings_or_exit(KafkaAccessSettings, "gateway")
    message = str(stopped.value.code)
    assert message.startswith("peaceland gateway: bad settings:")
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
    # The setting named with what it takes, never the value given (it might be a secret).
    assert "KAFKA_SECURITY_PROTOCOL" in message
    assert "SASL_SSL" in message
    assert "CARRIER_PIGEON" not in message
    # Raised from nothing: Python prints the message alone.
    assert stopped.value.__cause__ is None
    assert stopped.value.__suppress_context__


def test_good_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    assert settings_or_exit(KafkaAccessSettings, "gateway").kafka_bootstrap_servers == "kafka:9092"


def test_a_bad_setting_s_message_never_holds_a_secret_given_beside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_USERNAME", "gateway")
    monkeypatch.setenv("KAFKA_PASSWORD", "hunter2-kafka-password")
    with pytest.raises(SystemExit) as stopped:
        settings_or_exit(KafkaAccessSettings, "gateway")
    message = str(stopped.value.code)
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
    assert "hunter2" not in message


def test_a_setting_that_is_not_json_stops_the_process_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Listed(KafkaAccessSettings):
        drones: list[str] = Field(default_factory=list)

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("DRONES", '["d1", "secret-key')
    with pytest.raises(SystemExit) as stopped:
        settings_or_exit(Listed, "gateway")
    message = str(stopped.value.code)
    assert message.startswith("peaceland gateway: bad settings:")
    assert "drones" in message
    assert "secret-key" not in message
