"""Kafka helpers of the benchmark: topics, loading requests, counting and
reading records. Uses confluent-kafka (librdkafka) from Debian."""

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .procs import BenchError

TIMEOUT_S = 60


class Kafka:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def create_topics(self, partitions_by_name):
        new = [NewTopic(name, num_partitions=count, replication_factor=1)
               for name, count in partitions_by_name.items()]
        for name, future in self.admin.create_topics(new, operation_timeout=TIMEOUT_S).items():
            try:
                future.result(timeout=TIMEOUT_S)
            except Exception as exc:
                raise BenchError("creating topic %s failed: %s" % (name, exc)) from exc
        for name, count in partitions_by_name.items():
            self._wait_for_leaders(name, count)

    def _wait_for_leaders(self, name, count):
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            topic = self.admin.list_topics(topic=name, timeout=10).topics.get(name)
            if (topic is not None and topic.error is None and len(topic.partitions) == count
                    and all(p.leader >= 0 for p in topic.partitions.values())):
                return
            time.sleep(0.1)
        raise BenchError("topic %s has no leader for every partition after %d s" % (name, TIMEOUT_S))

    def delete_topics(self, names):
        futures = self.admin.delete_topics(list(names), operation_timeout=TIMEOUT_S)
        for name, future in futures.items():
            try:
                future.result(timeout=TIMEOUT_S)
            except Exception as exc:
                # A topic left behind costs disk only; the next cell uses new names.
                print("bench: warning: deleting topic %s failed: %s" % (name, exc), flush=True)

    def partitions(self, topic):
        meta = self.admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise BenchError("topic %s not found in the metadata" % topic)
        return sorted(meta.partitions)

    def record_count(self, topic, consumer=None):
        """Sum of the partitions' high watermarks: the number of records, since
        the idempotent producers here write no transaction markers."""
        own = consumer is None
        if own:
            consumer = self._reader()
        try:
            total = 0
            for partition in self.partitions(topic):
                total += self._high_watermark(consumer, topic, partition)
            return total
        finally:
            if own:
                consumer.close()

    @staticmethod
    def _high_watermark(consumer, topic, partition):
        """Return the partition's high watermark. A topic created moments ago
        can return "not leader" for a while, so errors are retried for 30 s."""
        deadline = time.monotonic() + 30
        while True:
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                         timeout=10, cached=False)
                return high
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    raise BenchError("reading the offsets of %s [%d] failed: %s"
                                     % (topic, partition, exc)) from exc
                time.sleep(0.1)

    def _reader(self):
        return Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": "bench-reader-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        })

    def counter(self):
        """Return a consumer for repeated record_count() calls; close() it after use."""
        return self._reader()

    def read_all(self, topic):
        """Read every record of topic; returns (partition, offset, timestamp ms, value)."""
        consumer = self._reader()
        records = []
        try:
            assignment = []
            remaining = set()
            for partition in self.partitions(topic):
                high = self._high_watermark(consumer, topic, partition)
                if high > 0:
                    assignment.append(TopicPartition(topic, partition, 0))
                    remaining.add(partition)
            consumer.assign(assignment)
            deadline = time.monotonic() + TIMEOUT_S
            while remaining and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=10000, timeout=1.0):
                    if msg.error():
                        if msg.error().code() == KafkaError._PARTITION_EOF:
                            remaining.discard(msg.partition())
                            continue
                        raise BenchError("reading %s failed: %s" % (topic, msg.error()))
                    records.append((msg.partition(), msg.offset(), msg.timestamp()[1],
                                    msg.value()))
            if remaining:
                raise BenchError("reading %s timed out after %d s" % (topic, TIMEOUT_S))
        finally:
            consumer.close()
        return records

    def producer(self, linger_ms):
        return Producer({
            "bootstrap.servers": self.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": 1000000,
        })

    def load(self, topic, request_set, count):
        """Produce the first count requests as fast as possible and wait for all acks."""
        if count > len(request_set):
            raise BenchError("%d requests asked for, but the request set has %d"
                             % (count, len(request_set)))
        producer = self.producer(linger_ms=20)
        failures = []

        def on_delivery(err, _msg):
            if err is not None:
                failures.append(err)

        for index in range(count):
            self._produce(producer, topic, request_set.keys[index],
                          request_set.values[index], on_delivery)
        if producer.flush(TIMEOUT_S) != 0 or failures:
            raise BenchError("loading %d requests into %s failed: %s"
                             % (count, topic, failures[:3] or "flush timed out"))

    def load_paced(self, topic, request_set, count, rate, start_index=0):
        """Produce count requests at rate per second, in 5 ms steps, then wait for acks.

        Returns the achieved rate; the caller checks it against the target.
        """
        producer = self.producer(linger_ms=1)
        failures = []

        def on_delivery(err, _msg):
            if err is not None:
                failures.append(err)

        step = 0.005
        started = time.monotonic()
        sent = 0
        while sent < count:
            due = min(count, int((time.monotonic() - started) * rate) + 1)
            while sent < due:
                index = (start_index + sent) % len(request_set)
                self._produce(producer, topic, request_set.keys[index],
                              request_set.values[index], on_delivery)
                sent += 1
            producer.poll(0)
            time.sleep(step)
        elapsed = time.monotonic() - started
        if producer.flush(TIMEOUT_S) != 0 or failures:
            raise BenchError("producing %d paced requests into %s failed: %s"
                             % (count, topic, failures[:3] or "flush timed out"))
        return count / elapsed if elapsed > 0 else float("inf")

    @staticmethod
    def _produce(producer, topic, key, value, on_delivery):
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.1)
