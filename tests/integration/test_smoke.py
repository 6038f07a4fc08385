"""Smoke test of the test Kafka broker: a round trip through a new topic.

Needs the broker started by tests/kafka/broker.sh. CTest sets its address in
C2M_KAFKA_BOOTSTRAP.
"""

import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

RECORD_COUNT = 10
# Upper bounds on waiting for the broker, not expectations of speed.
WAIT_SECONDS = 60


@pytest.fixture
def bootstrap():
    address = os.environ.get("C2M_KAFKA_BOOTSTRAP")
    if not address:
        pytest.fail("C2M_KAFKA_BOOTSTRAP is not set: run this test through ctest, which starts the broker")
    return address


@pytest.fixture
def topic(bootstrap):
    """Create a topic with a unique name, and delete it after the test."""
    name = f"c2m-smoke-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1)],
        operation_timeout=WAIT_SECONDS,
    )
    futures[name].result(timeout=WAIT_SECONDS)
    wait_for_leader(admin, name)
    yield name
    admin.delete_topics([name], operation_timeout=WAIT_SECONDS)[name].result(
        timeout=WAIT_SECONDS
    )


def wait_for_leader(admin, name):
    """Wait until the broker's metadata shows the topic's partition with a leader."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=name, timeout=10).topics.get(name)
        if (
            metadata is not None
            and metadata.error is None
            and metadata.partitions
            and all(p.leader >= 0 for p in metadata.partitions.values())
        ):
            return
        time.sleep(0.2)
    pytest.fail(f"topic {name} has no partition leader after {WAIT_SECONDS} s")


def produce_records(bootstrap, topic, records):
    delivery_errors = []
    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            delivery_errors.append(err)
        else:
            delivered.append(msg.offset())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    remaining = producer.flush(WAIT_SECONDS)
    assert remaining == 0
    assert delivery_errors == []
    assert len(delivered) == len(records)


def consume_records(bootstrap, topic, count):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + WAIT_SECONDS
        while len(received) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, f"consumer error: {msg.error()}"
            received.append((msg.key(), msg.value()))
        # One more poll to catch records beyond the expected count.
        extra = consumer.poll(1.0)
        if extra is not None and extra.error() is None:
            received.append((extra.key(), extra.value()))
    finally:
        consumer.close()
    return received


def test_produce_then_consume_round_trip(bootstrap, topic):
    records = [
        (f"key-{i}".encode(), f"value-{i}".encode()) for i in range(RECORD_COUNT)
    ]
    produce_records(bootstrap, topic, records)

    received = consume_records(bootstrap, topic, RECORD_COUNT)

    assert len(received) == RECORD_COUNT
    # One partition keeps the produce order.
    assert received == records
