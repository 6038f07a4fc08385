"""Fixtures and helpers for the fault tests.

The integration fixtures (bootstrap, admin, topic_factory, sim_factory,
worker_factory and the helpers next to them) come from
tests/integration/conftest.py, loaded under the module name
c2m_integration so that pytest does not see two modules named conftest.
This file adds what the fault tests need: a scale option and a seeded
random generator for fault schedules. A load producer and a result reader
run in background threads. A pool of workers can be killed and restarted,
the broker can be restarted on its kept data, and the simulator's request
log is checked for repeats and key order.

Environment, in addition to the integration tests' variables:
  C2M_BROKER_SH     tests/kafka/broker.sh, which restarts the broker
  C2M_KAFKA_PORT    port of the test broker; broker.sh reads it, and
                    C2M_KAFKA_DATA_DIR if set, to find the broker
  C2M_FAULTS_SCALE  whole number from 1 to 100 (default 1) that multiplies
                    the request and fault counts
  C2M_FAULTS_SEED   seed of the random fault schedules (default: a random
                    seed, printed so that a failing schedule can be rerun)
"""

import collections
import dataclasses
import importlib.util
import json
import logging
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)


def _load_integration_conftest():
    path = pathlib.Path(__file__).resolve().parent.parent / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("c2m_integration", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["c2m_integration"] = module
    spec.loader.exec_module(module)
    return module


c2m_integration = _load_integration_conftest()
# The fixtures must be names of this module for pytest to find them.
from c2m_integration import *  # noqa: E402,F401,F403
from c2m_integration import (WAIT_SECONDS, Record, assert_log_private, recipient,  # noqa: E402
                             request_value, required_env, unique, wait_for)

# librdkafka's log lines from the test's own clients (connection refused
# during a broker restart, for one) go to this logger, which pytest
# captures, instead of to stderr.
KAFKA_LOGGER = logging.getLogger("c2m-faults.librdkafka")

# Upper bound on one broker restart (stop, then start on the kept data).
BROKER_RESTART_SECONDS = 180
# Requests produced before the broker restart may wait this long for an
# acknowledgement, so that the load producer outlives the restart.
LOAD_MESSAGE_TIMEOUT_MS = 300000


# ---- scale and randomness ---------------------------------------------------


def faults_scale():
    """Return C2M_FAULTS_SCALE, the factor on request and fault counts."""
    text = os.environ.get("C2M_FAULTS_SCALE", "1")
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        pytest.fail(f"invalid C2M_FAULTS_SCALE {text!r}: expected a whole number from 1 to 100")
    return value


@pytest.fixture
def fault_rng(request):
    """A random.Random for the fault schedule, seeded from C2M_FAULTS_SEED
    or at random. The seed is printed, and pytest shows it when the test
    fails."""
    text = os.environ.get("C2M_FAULTS_SEED")
    if text:
        try:
            seed = int(text)
        except ValueError:
            pytest.fail(f"invalid C2M_FAULTS_SEED {text!r}: expected an integer")
    else:
        seed = random.SystemRandom().randrange(2**32)
    print(f"{request.node.name}: fault schedule seed {seed} "
          f"(rerun this schedule with C2M_FAULTS_SEED={seed})")
    return random.Random(seed)


# ---- topics and the broker ---------------------------------------------------


@pytest.fixture
def fault_topics(topic_factory):
    """Requests (6 partitions), results (6) and dead letters (1), plus a
    consumer group name, all unique to the test."""
    base = unique("c2m-faults")
    return c2m_integration.Topics(
        requests=topic_factory(f"{base}-requests", 6),
        results=topic_factory(f"{base}-results", 6),
        dead_letters=topic_factory(f"{base}-dead-letters", 1),
        group=f"{base}-group",
    )


def _broker_sh(command):
    args = ["bash", required_env("C2M_BROKER_SH"), command]
    try:
        return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=BROKER_RESTART_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"'broker.sh {command}' did not finish within {BROKER_RESTART_SECONDS} s")


def restart_broker():
    """Restart the test broker on its kept data (broker.sh restart), as a
    broker restart looks to clients in production: connections drop, and
    topics, committed offsets and transactions survive."""
    started = time.monotonic()
    result = _broker_sh("restart")
    if result.returncode != 0:
        pytest.fail(f"'broker.sh restart' failed with {result.returncode}:\n{result.stderr}")
    return time.monotonic() - started


@pytest.fixture
def broker_control():
    """Provide restart_broker, and make sure at teardown that the broker
    responds again, so that a test failing mid-restart does not take the
    broker away from the tests after it."""
    yield restart_broker
    if _broker_sh("status").returncode != 0:
        result = _broker_sh("restart")
        assert result.returncode == 0, (
            f"the broker did not come back after the test: 'broker.sh restart' failed "
            f"with {result.returncode}:\n{result.stderr}")


# ---- load -------------------------------------------------------------------


# Load producers and result readers started by the running test; stopped at
# its teardown, so that a failed test leaves no thread behind.
_background = []


@pytest.fixture(autouse=True)
def stop_background_threads():
    yield
    while _background:
        _background.pop().stop()


@dataclasses.dataclass
class LoadRequest:
    """One send request of a load: its id, record key, the sequence number
    of the request within its key, and the record value."""
    id: str
    key: str
    number: int
    value: bytes


def build_load(sim, count, keys, text, prefix="req"):
    """Return count text requests spread over keys record keys and all six
    channels. The id names the key and the request's number within the key,
    e.g. req-0a1b-k017-n00042, so a failure message shows where it is."""
    run = uuid.uuid4().hex[:8]
    channels = list(sim.channel_ids)
    content = json.dumps({"text": text})
    load = []
    for i in range(count):
        key_index = i % keys
        number = i // keys
        channel = channels[i % len(channels)]
        rid = f"{prefix}-{run}-k{key_index:03d}-n{number:05d}"
        load.append(LoadRequest(
            id=rid, key=f"key-{key_index:03d}", number=number,
            value=request_value(rid, channel, sim.channel_ids[channel], recipient(channel, i),
                                content)))
    return load


class LoadProducer:
    """A producer of a load at a fixed rate, in a background thread.

    The producer is idempotent, so the records of one key land in their
    partition in the order given, and it waits up to five minutes for an
    acknowledgement, so it outlives a broker restart. placed maps each
    request id to the Produced (partition, offset) the broker acknowledged.
    """

    def __init__(self, bootstrap, topic, load, rate):
        self.topic = topic
        self.load = load
        self.rate = rate
        self.placed = {}
        self.errors = []
        self.produced = 0
        self._stop = threading.Event()
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": LOAD_MESSAGE_TIMEOUT_MS,
            "queue.buffering.max.messages": 1000000,
        }, logger=KAFKA_LOGGER)
        self._thread = threading.Thread(target=self._run, name="load-producer", daemon=True)

    @property
    def seconds(self):
        """Planned duration of the load."""
        return len(self.load) / self.rate

    def start(self):
        self.started = time.monotonic()
        _background.append(self)
        self._thread.start()
        return self

    def _on_delivery(self, rid):
        def callback(err, msg):
            if err is not None:
                self.errors.append(f"request {rid}: {err}")
            else:
                self.placed[rid] = c2m_integration.Produced(msg.partition(), msg.offset())
        return callback

    def _run(self):
        for index, request in enumerate(self.load):
            due = self.started + index / self.rate
            while not self._stop.is_set():
                left = due - time.monotonic()
                if left <= 0:
                    break
                self._producer.poll(min(left, 0.05))
            if self._stop.is_set():
                break
            while True:
                try:
                    self._producer.produce(self.topic, key=request.key.encode(),
                                           value=request.value,
                                           on_delivery=self._on_delivery(request.id))
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self.produced = index + 1
            self._producer.poll(0)
        if self._stop.is_set():
            self._producer.purge()
            self._producer.flush(1)
        else:
            self._producer.flush(LOAD_MESSAGE_TIMEOUT_MS / 1000)

    def wait(self):
        """Wait until every request is produced and acknowledged, and fail
        the test if one was not."""
        limit = self.seconds + LOAD_MESSAGE_TIMEOUT_MS / 1000 + WAIT_SECONDS
        self._thread.join(limit)
        if self._thread.is_alive():
            self._stop.set()
            pytest.fail(f"the load producer did not finish within {limit:.0f} s")
        assert self.errors == [], f"producing the load failed: {self.errors[:5]}"
        assert len(self.placed) == len(self.load), (
            f"{len(self.load) - len(self.placed)} requests were not acknowledged by the broker")

    def stop(self):
        self._stop.set()
        self._thread.join(WAIT_SECONDS)


# ---- reading results ----------------------------------------------------------


class ResultReader:
    """A background reader of the results and dead-letter topics, from
    their beginning, with the given isolation.level. It notes the monotonic
    time at which each record arrived."""

    # The thread ends by itself after this long times the scale, even if
    # never stopped.
    MAX_SECONDS = 3600

    def __init__(self, bootstrap, topics, isolation="read_committed"):
        self.topics = topics
        self._lock = threading.Lock()
        self._arrivals = []
        self._ids = collections.Counter()
        self.errors = collections.Counter()
        self._stop = threading.Event()
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": unique("c2m-faults-reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "isolation.level": isolation,
        }, logger=KAFKA_LOGGER)
        self._thread = threading.Thread(target=self._run, name="result-reader", daemon=True)

    def start(self):
        # Assigned, not subscribed: a group member would stop reading while
        # it rejoins its group after a broker restart.
        assignment = []
        for topic in (self.topics.results, self.topics.dead_letters):
            metadata = self._consumer.list_topics(topic, timeout=30).topics[topic]
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        self._consumer.assign(assignment)
        _background.append(self)
        self._thread.start()
        return self

    def _run(self):
        deadline = time.monotonic() + self.MAX_SECONDS * faults_scale()
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                messages = self._consumer.consume(num_messages=1000, timeout=0.2)
                now = time.monotonic()
                with self._lock:
                    for msg in messages:
                        if msg.error() is not None:
                            # Transport errors while the broker restarts;
                            # the consumer reconnects by itself.
                            self.errors[msg.error().name()] += 1
                            continue
                        self._arrivals.append(now)
                        try:
                            rid = json.loads(msg.value()).get("id")
                        except (TypeError, ValueError, AttributeError):
                            rid = None
                        self._ids[rid] += 1
        finally:
            self._consumer.close()

    def count(self):
        with self._lock:
            return len(self._arrivals)

    def arrivals(self):
        with self._lock:
            return list(self._arrivals)

    def missing(self, ids):
        with self._lock:
            return [rid for rid in ids if self._ids[rid] == 0]

    def wait_for(self, ids, timeout, details=lambda: ""):
        """Wait until every id in ids has a result or a dead letter."""
        wait_for(lambda: not self.missing(ids), timeout,
                 f"a result or dead letter for each of {len(ids)} requests",
                 lambda: (f" ({len(self.missing(ids))} still missing; reader errors "
                          f"{dict(self.errors)}){details()}"))

    def stop(self):
        self._stop.set()
        self._thread.join(WAIT_SECONDS)


def read_to_end(bootstrap, topic, isolation="read_committed", timeout=WAIT_SECONDS):
    """Return every record of topic, from the beginning to its current end,
    as a consumer with that isolation.level reads them. read_committed stops
    at the last stable offset and skips aborted transactions."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("c2m-faults-scan"),
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
    }, logger=KAFKA_LOGGER)
    records = []
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        partitions = sorted(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(partitions):
            if time.monotonic() >= deadline:
                pytest.fail(f"reading {topic} to its end took more than {timeout} s "
                            f"({len(at_end)} of {len(partitions)} partitions done)")
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                error = msg.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                assert error is None, f"reading {topic} failed: {error}"
                records.append(Record(msg.topic(), msg.partition(), msg.offset(),
                                      msg.key(), msg.value(), msg.headers() or []))
    finally:
        consumer.close()
    return records


# ---- a pool of workers --------------------------------------------------------


class WorkerPool:
    """Workers of one group in numbered slots. A slot keeps its settings
    (such as its transactional id) when its worker is restarted. Every
    worker the pool did not signal and that exited anyway is reported by
    unexpected_exits()."""

    def __init__(self, worker_factory, topics, sim, settings_for_slot):
        self._factory = worker_factory
        self._topics = topics
        self._sim = sim
        self._settings_for_slot = settings_for_slot
        self.slots = []
        self.started = []
        self._signalled = set()

    def _launch(self, slot):
        worker = self._factory(self._topics, self._sim, **self._settings_for_slot(slot))
        self.started.append(worker)
        return worker

    def add(self):
        """Start a worker in a new slot; return the slot."""
        self.slots.append(self._launch(len(self.slots)))
        return len(self.slots) - 1

    def restart(self, slot):
        assert not self.slots[slot].running(), f"slot {slot} still has a running worker"
        self.slots[slot] = self._launch(slot)

    def kill(self, slot):
        """SIGKILL the worker of slot and wait for it; return its status."""
        worker = self.slots[slot]
        assert worker.running(), (
            f"the worker of slot {slot} exited before it was killed, with "
            f"{worker.proc.returncode}{worker.log_tail()}")
        self._signalled.add(id(worker))
        worker.stop(signal.SIGKILL)
        return worker.wait()

    def terminate(self, slot):
        """SIGTERM the worker of slot and wait for it to drain and exit;
        return its status."""
        worker = self.slots[slot]
        self._signalled.add(id(worker))
        worker.stop(signal.SIGTERM)
        return worker.wait(timeout=2 * WAIT_SECONDS)

    def running_slots(self):
        return [slot for slot, worker in enumerate(self.slots) if worker.running()]

    def terminate_all(self):
        """SIGTERM every running worker at once; return {slot: status}."""
        slots = self.running_slots()
        for slot in slots:
            self._signalled.add(id(self.slots[slot]))
            self.slots[slot].stop(signal.SIGTERM)
        return {slot: self.slots[slot].wait(timeout=2 * WAIT_SECONDS) for slot in slots}

    def unexpected_exits(self):
        """Return (worker, status) for each worker that exited unsignalled."""
        return [(worker, worker.proc.returncode) for worker in self.started
                if id(worker) not in self._signalled and not worker.running()]

    def assert_no_unexpected_exit(self):
        exits = self.unexpected_exits()
        assert exits == [], (
            f"{len(exits)} workers exited without being stopped, e.g. status {exits[0][1]}, "
            f"log {exits[0][0].log_path}{exits[0][0].log_tail()}")

    def assert_logs_private(self, private):
        for worker in self.started:
            assert_log_private(worker, private)


def committed_total(bootstrap, group, topic, partitions):
    """Return the sum of the group's committed offsets on topic (0 for a
    partition without a commit)."""
    offsets = c2m_integration.committed_offsets(bootstrap, group, topic, partitions)
    return sum(max(offset, 0) for offset in offsets.values())


def wait_for_commit_progress(bootstrap, topics, partitions, timeout, details=lambda: ""):
    """Wait until the group commits offsets beyond those committed now,
    which shows that its members commit again (after a broker restart).
    Right after a restart the broker may reject offset requests with
    NOT_COORDINATOR for a while, so a failed read is tried again."""
    def read_total():
        try:
            return committed_total(bootstrap, topics.group, topics.requests, partitions)
        except KafkaException as err:
            print(f"reading the committed offsets failed, trying again: {err}")
            return None

    readings = []

    def read_first():
        total = read_total()
        if total is not None:
            readings.append(total)
        return total is not None

    wait_for(read_first, timeout, "the group's committed offsets", details)
    before = readings[0]
    wait_for(lambda: (read_total() or 0) > before, timeout,
             f"the group to commit offsets beyond {before}", details)


# ---- fault schedules ----------------------------------------------------------


def wall_ms():
    """Return the wall clock in milliseconds, the unit of the simulator
    log's time_ms."""
    return int(time.time() * 1000)


def plan_faults(rng, kills, broker_restarts, seconds):
    """Return [(seconds after the load starts, action)]: kills spread over
    the load with random jitter, and the broker restarts placed evenly among
    them."""
    total = kills + broker_restarts
    broker_positions = {int((j + 0.5) * total / broker_restarts) for j in range(broker_restarts)}
    spacing = seconds / (total + 1)
    plan = []
    for position in range(total):
        at = spacing * (position + 1) + rng.uniform(-0.3, 0.3) * spacing
        plan.append((at, "broker restart" if position in broker_positions else "kill"))
    return plan


def run_fault_plan(plan, pool, producer, reader, rng, restart_broker_fn, after_broker_restart):
    """Carry out a plan from plan_faults while the load runs.

    A kill SIGKILLs the worker of a random slot and restarts that slot
    0.2 to 3 s later. A broker restart runs restart_broker_fn, then
    after_broker_restart (a wait for the group to commit again). Returns
    the events as [(wall clock ms, description)] for repeats_after_events.
    """
    events = []
    for at, action in plan:
        time.sleep(max(0.0, producer.started + at - time.monotonic()))
        pool.assert_no_unexpected_exit()
        elapsed = time.monotonic() - producer.started
        description = f"event {len(events) + 1}"
        if action == "kill":
            slot = rng.choice(pool.running_slots())
            pause = rng.uniform(0.2, 3.0)
            events.append((wall_ms(), f"{description}: kill of slot {slot}"))
            status = pool.kill(slot)
            assert status == -signal.SIGKILL, (
                f"the worker of slot {slot} was not killed: status {status}")
            time.sleep(pause)
            pool.restart(slot)
            print(f"{elapsed:6.1f} s: killed slot {slot}, restarted it {pause:.1f} s later; "
                  f"{producer.produced} produced, {reader.count()} results")
        else:
            events.append((wall_ms(), f"{description}: broker restart"))
            took = restart_broker_fn()
            after_broker_restart()
            print(f"{elapsed:6.1f} s: restarted the broker in {took:.1f} s, and the group "
                  f"commits again; {producer.produced} produced, {reader.count()} results")
    return events


# ---- checks on the simulator log -------------------------------------------


@dataclasses.dataclass
class SendStats:
    """What the simulator's request log shows about a load."""
    first_accepted_seq: dict
    accepted: collections.Counter

    @property
    def accepted_more_than_once(self):
        """Requests the simulator accepted more than once."""
        return sorted(rid for rid, count in self.accepted.items() if count > 1)

    @property
    def extra_sends(self):
        """Accepted sends beyond the first of each request."""
        return sum(count - 1 for count in self.accepted.values() if count > 1)


def repeats_after_events(log, events):
    """Attribute each repeated accepted send to the last event before it.

    events is a list of (wall clock ms, description) in time order. Returns
    a Counter of descriptions, with "before any event" for repeats that
    came first."""
    accepted = collections.defaultdict(list)
    for entry in log:
        if entry["accepted"]:
            accepted[entry["idempotency_key"]].append(entry)
    counts = collections.Counter()
    for entries in accepted.values():
        entries.sort(key=lambda e: e["seq"])
        for entry in entries[1:]:
            cause = "before any event"
            for at_ms, description in events:
                if at_ms <= entry["time_ms"]:
                    cause = description
            counts[cause] += 1
    return counts


def report_send_pause(log, events):
    """Print the longest time without an accepted send at the simulator and
    the last event before it. Informational: a pause after a fault is
    expected, and the tests assert no timing from it."""
    times = sorted(entry["time_ms"] for entry in log if entry["accepted"])
    if len(times) < 2:
        return
    gap, start = max((later - earlier, earlier) for earlier, later in zip(times, times[1:]))
    cause = "before any event"
    for at_ms, description in events:
        if at_ms <= start:
            cause = description
    print(f"longest time without an accepted send: {gap / 1000:.1f} s, starting "
          f"{(start - times[0]) / 1000:.1f} s into the run, after {cause}")


def send_stats(log):
    first = {}
    accepted = collections.Counter()
    for entry in log:
        if not entry["accepted"]:
            continue
        rid = entry["idempotency_key"]
        accepted[rid] += 1
        if rid not in first or entry["seq"] < first[rid]:
            first[rid] = entry["seq"]
    return SendStats(first, accepted)


def key_order_violations(load, placed, first_seq):
    """Return, per record key, the requests whose first accepted send came
    before the first accepted send of a request at a lower offset of the
    same key: (key, earlier request, later request). Requests never
    accepted are skipped here; the no-loss checks catch them."""
    by_key = collections.defaultdict(list)
    for request in load:
        if request.id in first_seq:
            by_key[request.key].append((placed[request.id].offset, request.id))
    violations = []
    for key, requests in sorted(by_key.items()):
        requests.sort()
        for (_, earlier), (_, later) in zip(requests, requests[1:]):
            if first_seq[later] < first_seq[earlier]:
                violations.append((key, earlier, later))
    return violations


def key_offsets_out_of_order(load, placed):
    """Return the requests of a key that landed at a lower offset than an
    earlier-numbered request of the same key (the idempotent producer must
    prevent this, and the order check relies on it)."""
    last = {}
    wrong = []
    for request in load:
        offset = placed[request.id].offset
        previous = last.get(request.key)
        if previous is not None and offset <= previous[1]:
            wrong.append((request.key, previous[0], request.id))
        last[request.key] = (request.id, offset)
    return wrong


def largest_gap(times, start, end):
    """Return the longest time in [start, end] without an arrival."""
    points = [start] + sorted(t for t in times if start < t < end) + [end]
    return max(later - earlier for earlier, later in zip(points, points[1:]))
