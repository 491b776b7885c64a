"""How the poll loop takes a batch from the real Kafka."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from peaceland.services.kafka import consumer_config
from peaceland.services.stream import take_batch
from peaceland.stack import Endpoints
from peaceland.tenants.forces import ForceResources
from peaceland.tenants.kafka import producer_config


def _produce(producer: Producer, topic: str, count: int) -> None:
    for n in range(count):
        producer.produce(topic, key=f"d-{n}".encode(), value=b"{}")
    producer.flush(30)


def test_a_batch_takes_what_is_there_up_to_its_size(
    force: ForceResources, endpoints: Endpoints
) -> None:
    topic = force.reports_topic
    producer = Producer(producer_config(endpoints.kafka))
    consumer = Consumer(consumer_config(endpoints.kafka, f"t-{uuid.uuid4().hex}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        _produce(producer, topic, 1)
        assert len(take_batch(consumer, 100, timeout=30)) == 1  # what is there: one

        _produce(producer, topic, 7)
        full = take_batch(consumer, 5, timeout=30)
        rest: list[int] = []
        while len(full) + sum(rest) < 7:
            rest.append(len(take_batch(consumer, 5, timeout=30)))
        assert len(full) <= 5
        assert all(n <= 5 for n in rest)
        assert len(full) + sum(rest) == 7
    finally:
        consumer.close()
