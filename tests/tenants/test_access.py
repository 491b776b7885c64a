"""A deployable's settings, read from its environment."""

from __future__ import annotations

import pytest

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
    assert "CARRIER_PIGEON" in message
    # Raised from nothing: Python prints the message alone.
    assert stopped.value.__cause__ is None
    assert stopped.value.__suppress_context__


def test_good_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    assert settings_or_exit(KafkaAccessSettings, "gateway").kafka_bootstrap_servers == "kafka:9092"
