"""Which Kafka errors heal by themselves: one decision for every client of ours."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from peaceland.tenants.kafka import KafkaAccess, client_config, is_transient, producer_config


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_CONTROLLER,
    ],
)
def test_an_unreachable_cluster_or_a_moving_coordinator_heals(code: int):
    assert is_transient(KafkaError(code))
    assert is_transient(KafkaException(KafkaError(code)))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_CONFIG,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    ],
)
def test_a_refusal_of_the_request_itself_does_not_heal(code: int):
    assert not is_transient(KafkaError(code))


def test_a_fatal_error_never_heals_even_if_its_code_would():
    assert not is_transient(KafkaError(KafkaError._TRANSPORT, fatal=True))


def test_an_exception_without_a_kafka_error_is_not_transient():
    assert not is_transient(KafkaException("no error inside"))


def test_no_client_of_ours_may_create_a_topic():
    access = KafkaAccess("b:9092", "force.archiver.g0", "secret")
    assert client_config(access)["allow.auto.create.topics"] is False
    assert producer_config(access)["allow.auto.create.topics"] is False
    assert producer_config(access)["acks"] == "all"


def test_a_client_with_a_username_signs_in_with_scram_and_without_one_signs_in_as_nobody():
    signed = client_config(KafkaAccess("b:9092", "force.archiver.g0", "secret"))
    assert signed["security.protocol"] == "SASL_PLAINTEXT"
    assert signed["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (signed["sasl.username"], signed["sasl.password"]) == ("force.archiver.g0", "secret")
    tls = client_config(KafkaAccess("b:9093", "u", "p", ssl_ca_location="/etc/ca.pem"))
    assert tls["security.protocol"] == "SASL_SSL"
    assert tls["ssl.ca.location"] == "/etc/ca.pem"
    assert client_config(KafkaAccess("b:9092"))["security.protocol"] == "PLAINTEXT"


def test_sasl_without_a_password_is_refused_before_any_connection():
    with pytest.raises(ValueError, match="needs a username and a password"):
        client_config(KafkaAccess("b:9092", security_protocol="SASL_SSL"))


def test_a_password_never_shows_in_the_access_printed():
    assert "secret" not in repr(KafkaAccess("b:9092", "u", "secret"))
