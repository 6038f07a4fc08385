"""Helpers of the fault tests test_outage.py, test_startup.py, test_auth.py,
test_hostile.py and test_metrics.py.

They reuse the integration helpers of tests/integration/conftest.py
(topics, produce, consume, the Simulator and Worker classes). On top of
them: a simulator that can be stopped and started again on the same port
with another API key, reads of a whole topic up to its end, the worker's
health server, a Prometheus text parser, a raw HTTP server, and the check
that committed offsets never pass a request without a result or dead
letter.
"""

import collections
import json
import importlib.util
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition


def _load_integration_helpers():
    """Return tests/integration/conftest.py as a module. The copy that the
    faults conftest loaded under a name of its own is reused if there is
    one. Otherwise the file is loaded under a name pytest does not know, so
    that pytest does not collect it twice."""
    path = (pathlib.Path(__file__).resolve().parent.parent / "integration" / "conftest.py")
    for module in list(sys.modules.values()):
        module_file = getattr(module, "__file__", None)
        if module_file and pathlib.Path(module_file).resolve() == path:
            return module
    spec = importlib.util.spec_from_file_location("c2m_faults_b_integration", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


it = _load_integration_helpers()

WAIT_SECONDS = it.WAIT_SECONDS


def scale():
    """Return C2M_FAULTS_SCALE, a whole number from 1 to 100 (default 1)
    that multiplies outage lengths and request counts for runs by hand. CI
    runs with 1."""
    text = os.environ.get("C2M_FAULTS_SCALE", "1")
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        pytest.fail(f"invalid C2M_FAULTS_SCALE {text!r}: expected a whole number from 1 to 100")
    return value


# ---- a simulator that survives restarts on one port -------------------------


class RestartableSim:
    """One simulator endpoint (loopback port, channel UUIDs) whose process
    can be stopped, so that connections are refused, and started again on
    the same port, with the same or another API key. Each process writes its
    own request log file, and logs() returns the entries of all of them."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.channel_ids = {channel: str(uuid.uuid4()) for channel in it.CHANNELS}
        self.port = 0
        self.api_key = None
        self.current = None
        self.instances = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, api_key=None):
        """Start a simulator process (on the previous port, if any) and
        return its Simulator. Fails the test if the port cannot be bound
        again within a bounded number of tries."""
        assert self.current is None or self.current.proc.poll() is not None, \
            "start() called while the simulator still runs"
        self.api_key = api_key or self.api_key or it.unique("c2m-faults-api-key")
        deadline = time.monotonic() + 30
        while True:
            sim = self._spawn()
            if sim is not None:
                break
            if time.monotonic() >= deadline:
                pytest.fail(f"the simulator could not listen on port {self.port} again "
                            f"within 30 s: {self._last_stderr}")
            time.sleep(0.2)
        self.port = sim.port
        self.current = sim
        self.instances.append(sim)
        return sim

    def _spawn(self):
        name = f"sim{len(self.instances)}-{uuid.uuid4().hex[:8]}"
        port_file = self.tmp_path / f"{name}.port"
        log_path = self.tmp_path / f"{name}-requests.jsonl"
        stderr_path = self.tmp_path / f"{name}.stderr"
        args = [it.required_env("C2M_SIM_BIN"), "--port", str(self.port),
                "--port-file", str(port_file), "--log", str(log_path)]
        for channel, channel_id in self.channel_ids.items():
            args += ["--channel", f"{channel}={channel_id}"]
        # The key goes through the environment, as in the integration
        # fixture, so that it does not show in the process list.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "CHATT2ME_SIM_API_KEY": self.api_key}
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stderr,
                                    stderr=stderr, env=env)
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if proc.poll() is not None:
                self._last_stderr = stderr_path.read_text(errors="replace")
                return None
            if time.monotonic() >= deadline:
                proc.kill()
                proc.wait(timeout=WAIT_SECONDS)
                pytest.fail(f"the simulator wrote no port file within 30 s: "
                            f"{stderr_path.read_text(errors='replace')}")
            time.sleep(0.05)
        port = int(port_file.read_text().strip())
        return it.Simulator(proc, port, log_path, stderr_path, self.api_key, self.channel_ids)

    def stop(self):
        """Kill the running simulator: from now on, connections to its port
        are refused."""
        if self.current is not None:
            self.current.stop()

    def restart(self, api_key=None):
        self.stop()
        return self.start(api_key)

    def logs(self):
        """Return the request log entries of every process started so far,
        read from their log files, in start order. seq restarts at 1 with
        each process."""
        entries = []
        for instance, sim in enumerate(self.instances):
            if not sim.log_path.exists():
                continue
            for line in sim.log_path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    entry = json.loads(line)
                    entry["instance"] = instance
                    entries.append(entry)
        return entries

    def close(self):
        for sim in self.instances:
            sim.stop()


@pytest.fixture
def restartable_sim(tmp_path):
    sim = RestartableSim(tmp_path)
    yield sim
    sim.close()


# ---- Kafka ------------------------------------------------------------------


def read_topic(bootstrap, topic, timeout=WAIT_SECONDS):
    """Return every record of topic that exists now: each partition is read
    from its low watermark to the high watermark taken at the start. Unlike
    consume(), this needs no group join, so the snapshot is complete."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": it.unique("c2m-faults-reader"),
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    records = []
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        assert metadata.error is None, f"cannot read the metadata of topic {topic}: {metadata.error}"
        ends = {}
        assignment = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=30)
            if high > low:
                ends[partition] = high
                assignment.append(TopicPartition(topic, partition, low))
        if not assignment:
            return records
        consumer.assign(assignment)
        positions = {partition: None for partition in ends}
        deadline = time.monotonic() + timeout
        while any(positions[p] is None or positions[p] < ends[p] - 1 for p in ends):
            if time.monotonic() >= deadline:
                pytest.fail(f"reading topic {topic} up to its end took more than {timeout} s")
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, f"reading {topic} failed: {msg.error()}"
                positions[msg.partition()] = msg.offset()
                records.append(it.Record(msg.topic(), msg.partition(), msg.offset(),
                                         msg.key(), msg.value(), msg.headers() or []))
    finally:
        consumer.close()
    return records


def produce_large(bootstrap, topic, records, max_bytes):
    """Produce records as it.produce() does, with the producer's
    message.max.bytes raised to max_bytes for records larger than the
    integration helper allows."""
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "message.max.bytes": max_bytes})
    placed = [None] * len(records)

    def on_delivery(index):
        def callback(err, msg):
            if err is not None:
                errors.append(f"record {index}: {err}")
            else:
                placed[index] = it.Produced(msg.partition(), msg.offset())
        return callback

    for index, record in enumerate(records):
        kwargs = {"value": record.get("value"), "on_delivery": on_delivery(index)}
        if record.get("key") is not None:
            kwargs["key"] = record["key"]
        if record.get("partition") is not None:
            kwargs["partition"] = record["partition"]
        producer.produce(topic, **kwargs)
        producer.poll(0)
    remaining = producer.flush(WAIT_SECONDS)
    assert remaining == 0, f"{remaining} records to {topic} were not delivered within {WAIT_SECONDS} s"
    assert errors == [], f"producing to {topic} failed: {errors[:5]}"
    return placed


def dead_letter_source(record):
    """Return (partition, offset) of the request a dead letter came from,
    from its last chatt2me.source_* headers."""
    return (int(record.header_text("chatt2me.source_partition")),
            int(record.header_text("chatt2me.source_offset")))


def finished_sources(results, dead_letters):
    """Return the (partition, offset) of every request that has a result or
    a dead letter."""
    done = set()
    for record in results:
        source = record.json()["source"]
        done.add((source["partition"], source["offset"]))
    for record in dead_letters:
        done.add(dead_letter_source(record))
    return done


def assert_commits_covered(bootstrap, topics, partitions, when):
    """Assert that the group's committed offset of each requests partition
    passes only requests whose result or dead letter is in Kafka. The
    offsets are read first and the outputs after, so an output that arrives
    in between can only hide a violation that already ended, never report a
    false one. Returns the committed offsets."""
    committed = it.committed_offsets(bootstrap, topics.group, topics.requests, partitions)
    done = finished_sources(read_topic(bootstrap, topics.results),
                            read_topic(bootstrap, topics.dead_letters))
    for partition, offset in sorted(committed.items()):
        if offset < 0:
            continue
        missing = [o for o in range(offset) if (partition, o) not in done]
        assert missing == [], (
            f"{when}: the committed offset {offset} of partition {partition} passes "
            f"{len(missing)} requests without a result or dead letter, first offsets "
            f"{missing[:10]}")
    return committed


# ---- the worker's health server ----------------------------------------------

HEALTH_PORT_RE = re.compile(r"health server listening on 127\.0\.0\.1 port (\d+)")

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def health_port(worker):
    """Wait for the worker's log line that names its health server port and
    return the port."""
    worker.wait_for_log(HEALTH_PORT_RE.pattern, timeout=30)
    return int(HEALTH_PORT_RE.search(worker.log_text()).group(1))


def http_get(port, path):
    """GET http://127.0.0.1:port/path and return (status, body text)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with _opener.open(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", errors="replace")


def parse_metrics(text):
    """Parse Prometheus text with prometheus_client's parser (Debian's
    python3-prometheus-client) and return {(sample name, labels as a sorted
    tuple): value}. The parser raises on malformed text."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(samples, name, **labels):
    """Return the value of one sample, or None when it is absent."""
    return samples.get((name, tuple(sorted(labels.items()))))


def metric_sum(samples, name, **labels):
    """Return the sum of the samples called name whose labels include the
    given ones."""
    total = 0.0
    for (sample_name, sample_labels), value in samples.items():
        if sample_name != name:
            continue
        found = dict(sample_labels)
        if all(found.get(k) == v for k, v in labels.items()):
            total += value
    return total


def scrape(port):
    """Return the worker's /metrics text; fails the test unless it is 200."""
    status, text = http_get(port, "/metrics")
    assert status == 200, f"/metrics returned HTTP {status}: {text[:200]}"
    return text


# ---- a raw HTTP endpoint ---------------------------------------------------------


class RawHttpCapture:
    """A loopback HTTP/1.1 server that responds to every request with 200
    and a new messageId and stores the raw bytes of each request head, so
    that a test can check every header line as the worker wrote it. The
    simulator cannot do this, because it reads headers through
    libmicrohttpd and logs only two of them."""

    MAX_HEAD_BYTES = 65536

    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def _accept_loop(self):
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn):
        conn.settimeout(0.5)
        buffer = b""
        with conn:
            while not self._closed.is_set():
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > self.MAX_HEAD_BYTES:
                        return
                    try:
                        chunk = conn.recv(65536)
                    except socket.timeout:
                        continue
                    except OSError:
                        return
                    if not chunk:
                        return
                    buffer += chunk
                    continue
                head, buffer = buffer[:end], buffer[end + 4:]
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(buffer) < length and not self._closed.is_set():
                    try:
                        chunk = conn.recv(65536)
                    except socket.timeout:
                        continue
                    except OSError:
                        return
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                with self._lock:
                    self.requests.append((head, body))
                answer = json.dumps({"messageId": str(uuid.uuid4()), "status": "sent"}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n"
                             + answer)

    def captured(self):
        """Return a copy of the (raw head, body) pairs received so far."""
        with self._lock:
            return list(self.requests)

    def close(self):
        self._closed.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def raw_http():
    capture = RawHttpCapture()
    yield capture
    capture.close()


def header_lines(head):
    """Split a raw request head into its request line and header lines at
    CRLF. A bare CR or LF stays inside a line, where a test can find it."""
    lines = head.split(b"\r\n")
    return lines[0], lines[1:]


# ---- requests -----------------------------------------------------------------


def text_record(sim, rid, channel, to, text, key=None):
    """A valid text send request as a record dict for it.produce()."""
    return {"key": (key if key is not None else rid).encode(),
            "value": it.request_value(rid, channel, sim.channel_ids[channel], to,
                                      json.dumps({"text": text}))}


def count_by(items, key):
    return collections.Counter(key(item) for item in items)
