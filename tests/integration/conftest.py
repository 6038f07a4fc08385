"""Fixtures and helpers shared by the integration tests.

Every test gets its own Kafka topics and consumer group (names carry a
UUID), its own simulator process on a free loopback port, and workers
started from C2M_WORKER_BIN with a clean environment. Every process a
fixture starts is killed at teardown, and every wait below has an upper
bound, so that a broken worker fails a test instead of hanging it. The
bounds are limits, never expectations of speed: no test asserts a
duration except where the protocol sets one (Retry-After).

Environment, set by CTest (tests/integration/CMakeLists.txt):
  C2M_KAFKA_BOOTSTRAP  address of the running test broker
  C2M_WORKER_BIN       the chatt2me-worker binary
  C2M_SIM_BIN          the chatt2me-sim binary
"""

import base64
import collections
import dataclasses
import datetime
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Upper bound on any single wait for the broker, a process or records.
WAIT_SECONDS = 90
# After the expected number of records arrived, how long to keep reading
# to catch unexpected extra records.
LINGER_SECONDS = 3.0

CHANNELS = ("whatsapp", "instagram", "messenger", "telegram", "sms", "web-chatt2me")

# A valid `to` per channel, in the format each channel's page documents.
# Tests that need many distinct recipients derive them with recipient().
SAMPLE_RECIPIENTS = {
    "whatsapp": "5511987650001",
    "instagram": "847495124317323",
    "messenger": "26203292189261166",
    "telegram": "123456789",
    "sms": "+5511944574999",
    "web-chatt2me": "visitor-3f6c1d2e",
}

REQUESTS_PARTITIONS = 4
RESULTS_PARTITIONS = 4
DEAD_LETTER_PARTITIONS = 1
# The requests topic accepts records up to this size, so that a test can
# send a record larger than the worker's own limit (900 KiB by default).
MAX_RECORD_BYTES = 4 * 1024 * 1024

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def required_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the integration tests through ctest, "
                    f"or set it by hand (see tests/integration/README.md)")
    return value


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex}"


def recipient(channel, number):
    """Return a valid, distinct `to` for channel built from a small integer."""
    if channel == "whatsapp":
        return f"55119{number:08d}"
    if channel == "sms":
        return f"+55119{number:08d}"
    if channel in ("instagram", "messenger"):
        return f"8474{number:011d}"
    if channel == "telegram":
        return f"7{number:09d}"
    return f"visitor-{number:08d}"


def wait_for(predicate, timeout, description, details=lambda: ""):
    """Poll predicate until it returns a true value, and return that value.

    Fails the test after timeout seconds; details() is called then to add
    context (for example the end of the worker log) to the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {description}{details()}")
        time.sleep(0.1)


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def request_value(request_id, channel, from_, to, content='{"text":"hello"}',
                  metadata=None):
    """Build a send request as raw JSON text, so that a test controls the exact
    bytes of content and metadata that the worker must pass on."""
    fields = [
        '"id":' + json.dumps(request_id),
        '"channel":' + json.dumps(channel),
        '"from":' + json.dumps(from_),
        '"to":' + json.dumps(to),
        '"content":' + content,
    ]
    if metadata is not None:
        fields.append('"metadata":' + metadata)
    return ("{" + ",".join(fields) + "}").encode("utf-8")


# ---- Kafka -----------------------------------------------------------------


@dataclasses.dataclass
class Topics:
    requests: str
    results: str
    dead_letters: str
    group: str


@dataclasses.dataclass
class Record:
    """One consumed Kafka record."""
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list

    def json(self):
        return json.loads(self.value)

    def header(self, name):
        """Return the value of the last header called name, or None."""
        found = None
        for header_name, value in self.headers:
            if header_name == name:
                found = value
        return found

    def header_text(self, name):
        value = self.header(name)
        return None if value is None else value.decode("utf-8")


@dataclasses.dataclass
class Produced:
    """Where a produced record landed."""
    partition: int
    offset: int


@pytest.fixture(scope="session")
def bootstrap():
    return required_env("C2M_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(admin, name, partitions, config=None):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1,
                  config=config or {})],
        operation_timeout=WAIT_SECONDS)
    futures[name].result(timeout=WAIT_SECONDS)

    def has_leaders():
        metadata = admin.list_topics(topic=name, timeout=10).topics.get(name)
        return (metadata is not None and metadata.error is None
                and len(metadata.partitions) == partitions
                and all(p.leader >= 0 for p in metadata.partitions.values()))

    wait_for(has_leaders, WAIT_SECONDS, f"a leader for every partition of topic {name}")


def delete_topics(admin, names):
    futures = admin.delete_topics(names, operation_timeout=WAIT_SECONDS)
    for future in futures.values():
        try:
            future.result(timeout=WAIT_SECONDS)
        except Exception:  # noqa: BLE001 - cleanup only; the test result stands
            pass


@pytest.fixture
def topic_factory(admin):
    """Create topics on demand; all of them are deleted at teardown."""
    created = []

    def create(name, partitions, config=None):
        create_topic(admin, name, partitions, config)
        created.append(name)
        return name

    yield create
    if created:
        delete_topics(admin, created)


@pytest.fixture
def topics(topic_factory):
    """Requests (4 partitions), results (4) and dead letters (1), plus a
    consumer group name, all unique to the test."""
    base = unique("c2m-it")
    return Topics(
        requests=topic_factory(f"{base}-requests", REQUESTS_PARTITIONS,
                               {"max.message.bytes": str(MAX_RECORD_BYTES)}),
        results=topic_factory(f"{base}-results", RESULTS_PARTITIONS),
        dead_letters=topic_factory(f"{base}-dead-letters", DEAD_LETTER_PARTITIONS),
        group=f"{base}-group",
    )


def produce(bootstrap, topic, records):
    """Produce records and wait until the broker acknowledged all of them.

    Each record is a dict with value (bytes or None) and optional key,
    headers (list of (name, bytes or None)) and partition. Returns a
    Produced per record, in the order given.
    """
    placed = [None] * len(records)
    errors = []
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.max.bytes": MAX_RECORD_BYTES,
        "queue.buffering.max.messages": 200000,
    })

    def on_delivery(index):
        def callback(err, msg):
            if err is not None:
                errors.append(f"record {index}: {err}")
            else:
                placed[index] = Produced(msg.partition(), msg.offset())
        return callback

    for index, record in enumerate(records):
        kwargs = {"value": record.get("value"), "on_delivery": on_delivery(index)}
        if record.get("key") is not None:
            kwargs["key"] = record["key"]
        if record.get("headers"):
            kwargs["headers"] = record["headers"]
        if record.get("partition") is not None:
            kwargs["partition"] = record["partition"]
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(WAIT_SECONDS)
    assert remaining == 0, f"{remaining} records to {topic} were not delivered within {WAIT_SECONDS} s"
    assert errors == [], f"producing to {topic} failed: {errors[:5]}"
    return placed


def consume(bootstrap, topic, count=0, timeout=WAIT_SECONDS, linger=LINGER_SECONDS, until=None):
    """Read topic from the beginning until count records arrived (or, when
    given, until(records) returns true) and at least every record present at
    the start was read, or until timeout seconds passed. Then keep reading
    for linger seconds to catch extra records. Returns every record read;
    callers assert on what arrived.

    The reader assigns itself all partitions instead of joining a group, so
    it reads at once and a check for "no records" is not over before the
    reader has seen the topic.
    """
    def enough(records):
        return until(records) if until is not None else len(records) >= count

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("c2m-it-reader"),
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    records = []
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        next_offset = {}
        end_offset = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            next_offset[p] = low
            end_offset[p] = high
        deadline = time.monotonic() + timeout
        linger_end = None
        while True:
            now = time.monotonic()
            caught_up = all(next_offset[p] >= end_offset[p] for p in partitions)
            if linger_end is None and caught_up and enough(records):
                linger_end = now + linger
            if linger_end is not None and now >= linger_end:
                break
            if linger_end is None and now >= deadline:
                break
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                assert msg.error() is None, f"reading {topic} failed: {msg.error()}"
                records.append(Record(msg.topic(), msg.partition(), msg.offset(),
                                      msg.key(), msg.value(), msg.headers() or []))
                next_offset[msg.partition()] = msg.offset() + 1
    finally:
        consumer.close()
    return records


def committed_offsets(bootstrap, group, topic, partitions):
    """Return the group's committed offset per partition (negative: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                   timeout=30)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


# ---- the simulator ----------------------------------------------------------


class Simulator:
    """A running chatt2me-sim and its control API."""

    def __init__(self, proc, port, log_path, stderr_path, api_key, channel_ids):
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.stderr_path = stderr_path
        self.api_key = api_key
        self.channel_ids = channel_ids
        self.url = f"http://127.0.0.1:{port}"
        # Loopback only, whatever *_proxy variables the caller has set.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            pytest.fail(f"simulator control {method} {path} failed: HTTP {err.code} "
                        f"{err.read().decode(errors='replace')}")

    def add_rule(self, responses, to=None, channel=None, repeat=False, before_auth=False):
        """Script the responses to the requests that match to and channel: each
        match consumes the next response (see tests/sim/sim_control.c)."""
        rule = {"responses": responses, "repeat": repeat, "before_auth": before_auth}
        if to is not None:
            rule["to"] = to
        if channel is not None:
            rule["channel"] = channel
        return json.loads(self._call("POST", "/_sim/rules", rule))["id"]

    def set_mode(self, **mode):
        """Apply a fault to every send no rule matches."""
        self._call("POST", "/_sim/mode", mode)

    def clear_mode(self):
        self._call("DELETE", "/_sim/mode")

    def log(self):
        """Return the request log: one dict per send request received, in
        the order in which requests consumed their responses (field seq)."""
        text = self._call("GET", "/_sim/log").decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stats(self):
        return json.loads(self._call("GET", "/_sim/stats"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT_SECONDS)


def entries_for(log, request_id):
    """Return the simulator log entries of one request id, in seq order."""
    return sorted((e for e in log if e["idempotency_key"] == request_id),
                  key=lambda e: e["seq"])


def body_of(entry):
    """Return the raw request body of a simulator log entry as text."""
    if entry.get("body_base64") is not None:
        return base64.b64decode(entry["body_base64"]).decode("utf-8", errors="replace")
    return entry["body"]


@pytest.fixture
def sim_factory(tmp_path):
    """Start simulators: sim_factory(latency_ms=0, threads=1). Each gets a
    fresh API key and a fresh `from` UUID per channel. All are killed at
    teardown."""
    started = []

    def start(latency_ms=0, threads=1):
        name = f"sim{len(started)}"
        port_file = tmp_path / f"{name}.port"
        log_path = tmp_path / f"{name}-requests.jsonl"
        stderr_path = tmp_path / f"{name}.stderr"
        api_key = unique("c2m-it-api-key")
        channel_ids = {channel: str(uuid.uuid4()) for channel in CHANNELS}
        args = [required_env("C2M_SIM_BIN"), "--port", "0", "--port-file", str(port_file),
                "--log", str(log_path), "--latency-ms", str(latency_ms),
                "--threads", str(threads)]
        for channel, channel_id in channel_ids.items():
            args += ["--channel", f"{channel}={channel_id}"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "CHATT2ME_SIM_API_KEY": api_key}
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stderr,
                                    stderr=stderr, env=env)

        def port_ready():
            if proc.poll() is not None:
                pytest.fail(f"the simulator exited with {proc.returncode}: "
                            f"{stderr_path.read_text(errors='replace')}")
            return port_file.exists() and port_file.read_text().strip()

        port = int(wait_for(port_ready, 30, "the simulator's port file"))
        sim = Simulator(proc, port, log_path, stderr_path, api_key, channel_ids)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(sim_factory):
    return sim_factory()


# ---- the worker -------------------------------------------------------------


class Worker:
    """A running chatt2me-worker; its stderr goes to log_path."""

    def __init__(self, proc, log_path, env):
        self.proc = proc
        self.log_path = log_path
        self.env = env

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout=WAIT_SECONDS):
        """Wait for the worker to exit and return its exit status (negative:
        killed by that signal). Fails the test after timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit within {timeout} s{self.log_tail()}")

    def log_text(self):
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines=30):
        text = self.log_text().splitlines()[-lines:]
        return "\nlast worker log lines:\n" + "\n".join(text)

    def wait_for_log(self, pattern, timeout=WAIT_SECONDS):
        """Wait until a worker log line matches the regular expression."""
        regex = re.compile(pattern)

        def found():
            if regex.search(self.log_text()):
                return True
            if not self.running():
                pytest.fail(f"the worker exited with {self.proc.returncode} before "
                            f"logging /{pattern}/{self.log_tail()}")
            return False

        wait_for(found, timeout, f"worker log line /{pattern}/", self.log_tail)

    def wait_assigned(self, timeout=WAIT_SECONDS):
        """Wait until the worker has joined its group and owns partitions."""
        self.wait_for_log(r"\[worker\] assigned ", timeout)

    def kill(self):
        if self.running():
            self.proc.kill()
        try:
            self.proc.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            pass


def worker_env(bootstrap, topics, sim, overrides=None):
    """Return the worker's whole environment. Nothing is inherited from the caller
    but PATH, so a stray CHATT2ME_* or *_proxy variable cannot change a test.
    Retries are fast (backoff base 50 ms, max 500 ms) to keep tests short."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CHATT2ME_KAFKA_BROKERS": bootstrap,
        "CHATT2ME_KAFKA_GROUP_ID": topics.group,
        "CHATT2ME_KAFKA_REQUESTS_TOPIC": topics.requests,
        "CHATT2ME_KAFKA_RESULTS_TOPIC": topics.results,
        "CHATT2ME_KAFKA_DEAD_LETTER_TOPIC": topics.dead_letters,
        "CHATT2ME_API_BASE_URL": sim.url,
        "CHATT2ME_API_KEY": sim.api_key,
        "CHATT2ME_RETRY_MAX_ATTEMPTS": "5",
        "CHATT2ME_RETRY_BACKOFF_BASE_MS": "50",
        "CHATT2ME_RETRY_BACKOFF_MAX_MS": "500",
        "CHATT2ME_RETRY_MAX_TOTAL_MS": "60000",
        "CHATT2ME_API_REQUEST_TIMEOUT_MS": "15000",
        "CHATT2ME_WORKER_COMMIT_INTERVAL_MS": "200",
        # The health server listens on loopback, on a free port per worker.
        "CHATT2ME_HEALTH_ADDRESS": "127.0.0.1",
        "CHATT2ME_HEALTH_PORT": "0",
        # A member that vanished (SIGKILL) loses its partitions after this,
        # instead of the 45 s default; 6 s is the broker's minimum.
        "CHATT2ME_CONSUMER_PROPERTY_SESSION_TIMEOUT_MS": "6000",
        "CHATT2ME_CONSUMER_PROPERTY_HEARTBEAT_INTERVAL_MS": "1000",
        # Debug logs cover the most code paths in the privacy checks.
        "CHATT2ME_LOG_LEVEL": "debug",
    }
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def run_worker(args, env, timeout=WAIT_SECONDS):
    """Run the worker to completion (for --help, --check-config and start-up
    failures) and return the CompletedProcess with text stdout and stderr."""
    try:
        return subprocess.run([required_env("C2M_WORKER_BIN")] + args, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker with {args} did not exit within {timeout} s")


@pytest.fixture
def worker_factory(bootstrap, tmp_path):
    """Start workers: worker_factory(topics, sim, **env_overrides). An
    override of None removes the variable. Every worker is killed at
    teardown."""
    started = []

    def start(topics, sim, **overrides):
        log_path = tmp_path / f"worker{len(started)}.log"
        env = worker_env(bootstrap, topics, sim, overrides)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([required_env("C2M_WORKER_BIN")], env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        worker = Worker(proc, log_path, env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def assert_log_private(worker, private, patterns=()):
    """Assert that the worker log contains neither the API key nor any of
    the private strings (message texts, phone numbers) a test sent, nor a
    match of any regular expression in patterns (for tests that send too
    many distinct numbers to list)."""
    text = worker.log_text()
    api_key = worker.env["CHATT2ME_API_KEY"]
    assert api_key not in text, f"the API key appears in the worker log {worker.log_path}"
    leaked = sorted({s for s in private if s and s in text})
    assert leaked == [], (f"personal data appears in the worker log {worker.log_path}: "
                          f"{leaked[:5]}")
    for pattern in patterns:
        match = re.search(pattern, text)
        assert match is None, (f"personal data /{pattern}/ appears in the worker log "
                               f"{worker.log_path}: {match.group(0) if match else ''}")


def assert_records_free_of(records, secret, what):
    """Assert that secret appears in no key, value or header of records."""
    needle = secret.encode()
    for record in records:
        where = f"{what} {record.topic} [{record.partition}] @{record.offset}"
        assert needle not in (record.key or b""), f"the API key appears in the key of {where}"
        assert needle not in (record.value or b""), f"the API key appears in the value of {where}"
        for name, value in record.headers:
            assert needle not in (value or b""), f"the API key appears in header {name} of {where}"
            assert secret not in name, f"the API key appears in a header name of {where}"


def index_results(records):
    """Map request id to its result records (a list, to expose duplicates)."""
    by_id = collections.defaultdict(list)
    for record in records:
        by_id[record.json().get("id")].append(record)
    return by_id


def by_source(records):
    """Map (partition, offset) of the request to its result records."""
    found = collections.defaultdict(list)
    for record in records:
        source = record.json()["source"]
        found[(source["partition"], source["offset"])].append(record)
    return found
