"""Start-up and produce failures. The worker exits with a status for the
cause and names what is missing, and it never commits an offset past a
request whose result Kafka does not contain."""

import json
import re
import socket
import uuid

import pytest

from faults_b_util import it, text_record

# Upper bound on a start-up that must fail: CHATT2ME_WORKER_STARTUP_TIMEOUT_MS
# below plus the time to create and destroy the Kafka clients.
STARTUP_TIMEOUT_MS = 3000
FAILED_START_BOUND_SECONDS = 60
# Upper bound on the exit after the results topic is deleted: the producer's
# message timeout, the exit delay and the shutdown. A limit against
# hanging, not a speed requirement.
WAIT_BOUND_SECONDS = 90


def free_loopback_port():
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_broker_exits_2(bootstrap, topics, sim):
    """A worker whose brokers are unreachable exits with status 2 and a
    message that names the brokers."""
    brokers = f"127.0.0.1:{free_loopback_port()}"
    env = it.worker_env(bootstrap, topics, sim, {
        "CHATT2ME_KAFKA_BROKERS": brokers,
        "CHATT2ME_WORKER_STARTUP_TIMEOUT_MS": STARTUP_TIMEOUT_MS,
    })

    done = it.run_worker([], env, timeout=FAILED_START_BOUND_SECONDS)
    output = done.stdout + done.stderr
    error_lines = [line for line in output.splitlines() if "cannot start" in line]

    assert done.returncode == 2, f"exit status {done.returncode}, expected 2:\n{output[-3000:]}"
    assert error_lines, f"no 'cannot start' line in the output:\n{output[-3000:]}"
    assert "broker" in error_lines[-1].lower(), (
        f"the start-up error does not say that the brokers failed: {error_lines[-1]!r}")
    assert brokers in error_lines[-1], (
        f"the start-up error does not name the brokers {brokers}: {error_lines[-1]!r}")
    assert sim.api_key not in output, "the API key appears in the output"
    assert sim.log() == [], "the worker sent a request without a broker"


@pytest.mark.parametrize("missing", ["requests", "results", "dead_letters"])
def test_missing_topic_exits_2(bootstrap, topic_factory, sim, missing):
    """A worker whose requests, results or dead-letter topic does not exist
    exits with status 2 and names that topic."""
    base = it.unique("c2m-faults")
    names = {"requests": f"{base}-requests", "results": f"{base}-results",
             "dead_letters": f"{base}-dead-letters"}
    for role, name in names.items():
        if role != missing:
            topic_factory(name, 1)
    topics = it.Topics(requests=names["requests"], results=names["results"],
                       dead_letters=names["dead_letters"], group=f"{base}-group")
    env = it.worker_env(bootstrap, topics, sim,
                        {"CHATT2ME_WORKER_STARTUP_TIMEOUT_MS": STARTUP_TIMEOUT_MS})

    done = it.run_worker([], env, timeout=FAILED_START_BOUND_SECONDS)
    output = done.stdout + done.stderr
    error_lines = [line for line in output.splitlines() if "cannot start" in line]

    assert done.returncode == 2, f"exit status {done.returncode}, expected 2:\n{output[-3000:]}"
    assert error_lines, f"no 'cannot start' line in the output:\n{output[-3000:]}"
    assert names[missing] in error_lines[-1], (
        f"the start-up error does not name the missing topic {names[missing]}: {error_lines[-1]!r}")
    assert "does not exist" in error_lines[-1], f"the start-up error does not say why: {error_lines[-1]!r}"
    assert sim.api_key not in output, "the API key appears in the output"
    assert sim.log() == [], "the worker sent a request although a topic is missing"


def test_results_topic_deleted_exits_3(bootstrap, admin, topics, sim, worker_factory):
    """A worker whose results topic is deleted logs it, exits with status 3
    and commits no offset past a request without a delivered result."""
    produce_failure_exit_ms = 2000
    message_timeout_ms = 5000
    text = f"private-text-{uuid.uuid4().hex}"
    first = [text_record(sim, f"req-before-{i}-{uuid.uuid4().hex}", "telegram",
                         it.recipient("telegram", i), text) for i in range(20)]
    second = [text_record(sim, f"req-after-{i}-{uuid.uuid4().hex}", "telegram",
                          it.recipient("telegram", 100 + i), text) for i in range(20)]

    worker = worker_factory(topics, sim,
                            CHATT2ME_PRODUCER_PROPERTY_MESSAGE_TIMEOUT_MS=message_timeout_ms,
                            CHATT2ME_WORKER_PRODUCE_FAILURE_EXIT_MS=produce_failure_exit_ms)
    it.produce(bootstrap, topics.requests, first)
    before = it.consume(bootstrap, topics.results, len(first))
    assert len(before) == len(first), (
        f"expected {len(first)} results before the deletion, got {len(before)}{worker.log_tail()}")
    # Wait for a commit of the first results' offsets, so that the check
    # below compares real committed offsets, not only missing ones.
    it.wait_for(lambda: any(o > 0 for o in it.committed_offsets(
                    bootstrap, topics.group, topics.requests, it.REQUESTS_PARTITIONS).values()),
                30, "a committed offset after the first results", worker.log_tail)

    it.delete_topics(admin, [topics.results])
    it.wait_for(lambda: topics.results not in admin.list_topics(timeout=10).topics,
                30, f"topic {topics.results} to disappear from the metadata")
    it.produce(bootstrap, topics.requests, second)

    status = worker.wait(timeout=WAIT_BOUND_SECONDS)
    log = worker.log_text()
    failure = re.search(r'(cannot produce to topic|was not delivered to topic) "'
                        + re.escape(topics.results) + '"', log)

    assert status == 3, f"exit status {status}, expected 3{worker.log_tail()}"
    assert failure is not None, f"the worker did not log the produce failure{worker.log_tail()}"
    assert "exits with code 3" in log, f"the worker did not log that it stops{worker.log_tail()}"

    sent_second = {e["idempotency_key"] for e in sim.log()} & {
        json.loads(r["value"])["id"] for r in second}
    print(f"requests of the second batch sent before the exit: {len(sent_second)}")

    # The deleted topic has no results left, so the results that exist are
    # the ones read before the deletion. A result produced after the
    # deletion cannot exist: the broker does not create topics on demand.
    committed = it.committed_offsets(bootstrap, topics.group, topics.requests,
                                     it.REQUESTS_PARTITIONS)
    done = {(r.json()["source"]["partition"], r.json()["source"]["offset"]) for r in before}
    for partition, offset in sorted(committed.items()):
        missing = [o for o in range(max(offset, 0)) if (partition, o) not in done]
        assert missing == [], (
            f"the committed offset {offset} of partition {partition} passes requests "
            f"without a delivered result, offsets {missing[:10]}")
    assert sum(max(o, 0) for o in committed.values()) == len(first), (
        f"committed offsets {committed} do not cover exactly the {len(first)} requests "
        f"with results")
    it.assert_log_private(worker, [text])

