"""Which Kafka errors heal by themselves: one decision for every client of ours."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from peaceland.tenants.kafka import client_config, is_transient, producer_config


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
    assert client_config("b:9092")["allow.auto.create.topics"] is False
    assert producer_config("b:9092")["allow.auto.create.topics"] is False
    assert producer_config("b:9092")["acks"] == "all"
