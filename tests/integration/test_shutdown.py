"""Shutdown under load: after SIGTERM (drain) or SIGKILL, a second worker in
the same group finishes the rest and no request is lost. Duplicates are
allowed (delivery is at least once) and only counted. A second SIGTERM
ends a draining worker at once."""

import collections
import json
import signal
import uuid

from conftest import (WAIT_SECONDS, assert_log_private, consume, produce, recipient,
                      request_value, wait_for)

REQUEST_COUNT = 2000
# The first worker is stopped once the simulator has received this many
# sends, so that the stop lands while requests are in flight and others
# are still waiting to be consumed.
STOP_AFTER_SENDS = 200
LATENCY_MS = 20
MAX_IN_FLIGHT = 64


def load_records(sim, text):
    """REQUEST_COUNT requests over all channels, with 500 record keys."""
    channels = list(sim.channel_ids)
    ids = [f"req-load-{i}-{uuid.uuid4().hex}" for i in range(REQUEST_COUNT)]
    records = []
    for i, rid in enumerate(ids):
        channel = channels[i % len(channels)]
        records.append({
            "key": f"key-{i % 500}".encode(),
            "value": request_value(rid, channel, sim.channel_ids[channel], recipient(channel, i),
                                   json.dumps({"text": text})),
        })
    return ids, records


def all_ids_present(ids):
    expected_ids = set(ids)

    def check(records):
        return expected_ids <= {record.json().get("id") for record in records}
    return check


def check_no_loss(name, ids, results, sim, workers):
    counts = collections.Counter(record.json()["id"] for record in results)
    missing = [rid for rid in ids if counts[rid] == 0]
    duplicates = sum(count - 1 for count in counts.values() if count > 1)
    statuses = collections.Counter(record.json()["status"] for record in results)
    accepted = collections.Counter(e["idempotency_key"] for e in sim.log() if e["accepted"])
    sent_twice = sum(count - 1 for count in accepted.values() if count > 1)
    print(f"{name}: {len(results)} results for {len(ids)} requests, {duplicates} duplicate "
          f"results, {sent_twice} requests accepted more than once by the simulator")

    assert missing == [], f"{name}: {len(missing)} requests have no result, e.g. {missing[:3]}{workers[-1].log_tail()}"
    assert set(counts) == set(ids), f"{name}: results for unknown ids {set(counts) - set(ids)}"
    assert statuses == {"sent": len(results)}, f"{name}: result statuses {dict(statuses)}"
    assert [rid for rid in ids if accepted[rid] == 0] == [], f"{name}: a request never reached the simulator"


def start_load(bootstrap, topics, sim_factory, worker_factory, text):
    sim = sim_factory(latency_ms=LATENCY_MS, threads=2)
    ids, records = load_records(sim, text)
    produce(bootstrap, topics.requests, records)
    worker = worker_factory(topics, sim, CHATT2ME_WORKER_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
    def enough_sends():
        received = sim.stats()["received"]
        return received if received >= STOP_AFTER_SENDS else 0

    received = wait_for(enough_sends, WAIT_SECONDS, f"{STOP_AFTER_SENDS} sends at the simulator",
                        worker.log_tail)
    print(f"stopping the first worker after {received} sends")
    assert received < REQUEST_COUNT, (
        f"the worker sent all {REQUEST_COUNT} requests before it could be stopped; the test "
        f"needs more load")
    return sim, ids, worker


def test_sigterm_drains_then_second_worker_finishes(bootstrap, topics, sim_factory, worker_factory):
    text = f"private-text-{uuid.uuid4().hex}"
    sim, ids, first = start_load(bootstrap, topics, sim_factory, worker_factory, text)

    first.stop(signal.SIGTERM)
    status = first.wait()
    assert status == 0, f"the worker exited with {status} after SIGTERM{first.log_tail()}"
    assert "stopping" in first.log_text(), "the worker did not log that it was stopping"

    second = worker_factory(topics, sim, CHATT2ME_WORKER_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
    results = consume(bootstrap, topics.results, until=all_ids_present(ids), timeout=2 * WAIT_SECONDS)
    second.stop(signal.SIGTERM)
    status = second.wait()

    check_no_loss("SIGTERM", ids, results, sim, [first, second])
    assert status == 0, f"the second worker exited with {status} after SIGTERM{second.log_tail()}"
    for worker in (first, second):
        assert_log_private(worker, [text, recipient("whatsapp", 0), recipient("sms", 4)])


def test_sigkill_then_second_worker_finishes(bootstrap, topics, sim_factory, worker_factory):
    text = f"private-text-{uuid.uuid4().hex}"
    sim, ids, first = start_load(bootstrap, topics, sim_factory, worker_factory, text)

    first.stop(signal.SIGKILL)
    status = first.wait()
    assert status == -signal.SIGKILL, f"the worker was not killed: status {status}"

    second = worker_factory(topics, sim, CHATT2ME_WORKER_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
    results = consume(bootstrap, topics.results, until=all_ids_present(ids), timeout=2 * WAIT_SECONDS)
    second.stop(signal.SIGTERM)
    status = second.wait()

    check_no_loss("SIGKILL", ids, results, sim, [first, second])
    assert status == 0, f"the second worker exited with {status} after SIGTERM{second.log_tail()}"
    for worker in (first, second):
        assert_log_private(worker, [text, recipient("whatsapp", 0), recipient("sms", 4)])


def test_second_sigterm_exits_at_once(bootstrap, topics, sim, worker_factory):
    text = f"private-text-{uuid.uuid4().hex}"
    to = recipient("whatsapp", 9)
    # The simulator responds to every send only after 60 s, so a drain
    # would wait for its full timeout (20 s by default).
    sim.set_mode(delay_ms=60000)
    records = [{"key": f"k{i}".encode(),
                "value": request_value(f"req-slow-{i}-{uuid.uuid4().hex}", "whatsapp",
                                       sim.channel_ids["whatsapp"], to, json.dumps({"text": text}))}
               for i in range(3)]

    worker = worker_factory(topics, sim)
    produce(bootstrap, topics.requests, records)
    wait_for(lambda: sim.stats()["received"] >= 1, WAIT_SECONDS, "a send at the simulator",
             worker.log_tail)
    worker.stop(signal.SIGTERM)
    worker.wait_for_log(r"stopping")
    assert worker.running(), f"the worker exited before the second SIGTERM{worker.log_tail()}"

    worker.stop(signal.SIGTERM)
    # Far below the drain timeout: a worker still draining would not exit.
    status = worker.wait(timeout=10)
    assert status != 0, "the worker exited with 0 after a second SIGTERM during the drain"
    assert_log_private(worker, [text, to])
