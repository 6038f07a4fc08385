"""HTTP 401 handling: dead letters by default, the auth pause that parks
requests until a new key is loaded, and a key rotation that loses and
dead-letters nothing."""

import collections
import json
import os
import signal
import threading
import time
import uuid

import pytest

from faults_b_util import (assert_commits_covered, health_port, http_get, it, metric,
                           parse_metrics, read_topic, restartable_sim, scrape, text_record)

AUTH_READYZ_LINE = "not ready: consumption is paused after repeated HTTP 401 responses"


def write_key_file(path, key):
    """Replace the key file in one rename, as a Kubernetes Secret update
    does, so that the worker never reads half a key."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(key + "\n")
    os.replace(tmp, path)


def auth_state(port):
    """Return (readyz status, readyz text, chatt2me_auth_paused)."""
    status, text = http_get(port, "/readyz")
    return status, text, metric(parse_metrics(scrape(port)), "chatt2me_auth_paused")


def assert_secrets_absent(worker, secrets, private):
    """Assert that the worker log contains none of the keys and none of the
    private strings. The integration helper reads the key from
    CHATT2ME_API_KEY, which a worker with a key file does not have."""
    text = worker.log_text()
    for number, secret in enumerate(secrets):
        assert secret not in text, f"API key number {number} appears in the worker log"
    leaked = sorted(s for s in private if s in text)
    assert leaked == [], f"personal data appears in the worker log: {leaked[:5]}"


def outputs_by_id(results, dead_letters):
    """Map request id to the number of results plus dead letters it got."""
    found = collections.Counter(r.json()["id"] for r in results)
    found.update(d.header_text("chatt2me.request_id") for d in dead_letters)
    return found


def test_unauthorized_dead_lettered_by_default(bootstrap, topics, sim, worker_factory):
    """Without api.auth_pause_after, every request rejected with HTTP 401
    goes to the dead-letter topic unchanged and gets no result."""
    text = f"private-text-{uuid.uuid4().hex}"
    records = [text_record(sim, f"req-401-{i}-{uuid.uuid4().hex}", "telegram",
                           it.recipient("telegram", i), text) for i in range(3)]
    wrong_key = it.unique("c2m-faults-wrong-key")

    worker = worker_factory(topics, sim, CHATT2ME_API_KEY=wrong_key)
    it.produce(bootstrap, topics.requests, records)
    dead_letters = it.consume(bootstrap, topics.dead_letters, len(records))
    results = read_topic(bootstrap, topics.results)

    assert len(dead_letters) == len(records), (
        f"expected {len(records)} dead letters, got {len(dead_letters)}{worker.log_tail()}")
    assert results == [], f"HTTP 401 gave results: {[r.json() for r in results][:3]}"
    assert sorted(d.value for d in dead_letters) == sorted(r["value"] for r in records), (
        "the dead-letter values differ from the requests")
    statuses = {d.header_text("chatt2me.http_status") for d in dead_letters}
    assert statuses == {"401"}, f"chatt2me.http_status headers {statuses}"
    assert all(e["status"] == 401 for e in sim.log()), "the simulator answered other than 401"
    it.assert_records_free_of(dead_letters, wrong_key, "dead letter")
    it.assert_log_private(worker, [text])


@pytest.mark.parametrize("reload", ["sighup", "key_file_only"])
def test_auth_pause_then_new_key(bootstrap, topics, restartable_sim, worker_factory, tmp_path,
                                 reload):
    """With api.auth_pause_after = 3, a revoked key dead-letters at most 2
    requests and pauses consumption until a new key file ends the pause
    with every other request sent."""
    old_key = it.unique("c2m-faults-old-key")
    new_key = it.unique("c2m-faults-new-key")
    key_file = tmp_path / "api-key"
    write_key_file(key_file, old_key)
    text = f"private-text-{uuid.uuid4().hex}"
    sim = restartable_sim.start(api_key=old_key)
    before = [text_record(restartable_sim, f"req-before-{i}-{uuid.uuid4().hex}", "telegram",
                          it.recipient("telegram", i), text) for i in range(10)]
    held = [text_record(restartable_sim, f"req-held-{i}-{uuid.uuid4().hex}", "telegram",
                        it.recipient("telegram", 1000 + i), text) for i in range(20)]
    all_ids = {json.loads(r["value"])["id"] for r in before + held}

    worker = worker_factory(topics, sim,
                            CHATT2ME_API_KEY=None,
                            CHATT2ME_API_KEY_FILE=key_file,
                            CHATT2ME_API_AUTH_PAUSE_AFTER=3,
                            CHATT2ME_RETRY_PROBE_MAX_MS=1000)
    port = health_port(worker)
    it.produce(bootstrap, topics.requests, before)
    first = it.consume(bootstrap, topics.results, len(before), linger=0)
    assert len(first) == len(before), (
        f"expected {len(before)} results with the old key, got {len(first)}{worker.log_tail()}")
    status, text_ready, paused = auth_state(port)
    assert status == 200, f"/readyz before the key change: HTTP {status} {text_ready!r}"
    assert paused == 0, f"chatt2me_auth_paused before the key change: {paused}"

    # The API revokes the old key: the simulator now accepts only the new one.
    restartable_sim.restart(api_key=new_key)
    it.produce(bootstrap, topics.requests, held)
    it.wait_for(lambda: auth_state(port)[2] == 1, 60, "chatt2me_auth_paused 1", worker.log_tail)

    status, text_ready, paused = auth_state(port)
    assert status == 503, f"/readyz in the auth pause: HTTP {status} {text_ready!r}"
    assert AUTH_READYZ_LINE in text_ready, f"/readyz in the auth pause: {text_ready!r}"
    dead_letters = read_topic(bootstrap, topics.dead_letters)
    assert len(dead_letters) <= 2, f"{len(dead_letters)} dead letters before the pause, at most 2 allowed"
    assert_commits_covered(bootstrap, topics, it.REQUESTS_PARTITIONS, "in the auth pause")

    # While paused, probes keep getting 401 and must not add dead letters.
    # The wait spans several probes (at most 1 s apart).
    rejected_before = sum(1 for e in restartable_sim.logs() if e["status"] == 401)
    it.wait_for(lambda: sum(1 for e in restartable_sim.logs() if e["status"] == 401)
                >= rejected_before + 2, 30, "two more probes answered 401", worker.log_tail)
    dead_letters = read_topic(bootstrap, topics.dead_letters)
    assert len(dead_letters) <= 2, f"{len(dead_letters)} dead letters during the pause, at most 2 allowed"
    results = read_topic(bootstrap, topics.results)
    assert len(results) == len(before), (
        f"{len(results) - len(before)} results appeared during the auth pause")
    assert worker.running(), f"the worker exited in the auth pause{worker.log_tail()}"

    write_key_file(key_file, new_key)
    if reload == "sighup":
        worker.stop(signal.SIGHUP)
        worker.wait_for_log(r"API key reloaded", timeout=30)

    expected_results = len(all_ids) - len(dead_letters)
    results = it.consume(bootstrap, topics.results, expected_results)
    dead_letters = read_topic(bootstrap, topics.dead_letters)
    outputs = outputs_by_id(results, dead_letters)

    assert len(results) == expected_results, (
        f"expected {expected_results} results after the new key, got {len(results)}"
        f"{worker.log_tail()}")
    assert len(dead_letters) <= 2, f"{len(dead_letters)} dead letters in total, at most 2 allowed"
    assert set(outputs) == all_ids, f"requests without any output: {sorted(all_ids - set(outputs))[:5]}"
    more_than_once = [rid for rid, count in outputs.items() if count != 1]
    assert more_than_once == [], f"requests with more than one output: {more_than_once[:5]}"
    not_sent = [r.json() for r in results if r.json()["status"] != "sent"]
    assert not_sent == [], f"results other than sent: {not_sent[:2]}"

    it.wait_for(lambda: http_get(port, "/readyz")[0] == 200, 30, "/readyz 200 after the new key",
                worker.log_tail)
    assert auth_state(port)[2] == 0, "chatt2me_auth_paused after the new key"
    assert_commits_covered(bootstrap, topics, it.REQUESTS_PARTITIONS, "after the new key")
    for key in (old_key, new_key):
        it.assert_records_free_of(results + dead_letters, key, "output")
    assert_secrets_absent(worker, [old_key, new_key], [text])


def test_key_rotation_loses_nothing(bootstrap, topics, restartable_sim, worker_factory, tmp_path):
    """A key rotation as docs/configuration.md describes it, under steady
    traffic, sends every request and dead-letters none."""
    old_key = it.unique("c2m-faults-old-key")
    new_key = it.unique("c2m-faults-new-key")
    key_file = tmp_path / "api-key"
    write_key_file(key_file, old_key)
    text = f"private-text-{uuid.uuid4().hex}"
    sim = restartable_sim.start(api_key=old_key)

    # A retry budget that outlasts the restart below, so that a request
    # that meets the refused port is retried, not exhausted.
    worker = worker_factory(topics, sim,
                            CHATT2ME_API_KEY=None,
                            CHATT2ME_API_KEY_FILE=key_file,
                            CHATT2ME_RETRY_MAX_ATTEMPTS=30,
                            CHATT2ME_RETRY_PROBE_MAX_MS=1000)
    worker.wait_assigned()

    # Steady traffic: 5 requests every 0.1 s from a thread, bounded in count.
    produced = []
    stop = threading.Event()
    errors = []

    def traffic():
        try:
            for round_number in range(200):
                if stop.is_set():
                    return
                batch = [text_record(restartable_sim,
                                     f"req-rot-{round_number}-{i}-{uuid.uuid4().hex}",
                                     "telegram", it.recipient("telegram", round_number * 5 + i),
                                     text) for i in range(5)]
                it.produce(bootstrap, topics.requests, batch)
                produced.extend(batch)
                time.sleep(0.1)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(repr(err))

    producer = threading.Thread(target=traffic, daemon=True)
    producer.start()
    try:
        it.wait_for(lambda: len(read_topic(bootstrap, topics.results)) >= 20, 60,
                    "20 results with the old key", worker.log_tail)

        # Steps 1 and 2: the new key exists and is written to the key file.
        # The simulator accepts only one key, so a stopped simulator stands
        # in for the time in which both keys are valid. A request sent then
        # gets a refused connection and is retried, never rejected with 401.
        write_key_file(key_file, new_key)
        restartable_sim.stop()
        # Step 3: SIGHUP.
        worker.stop(signal.SIGHUP)
        worker.wait_for_log(r"API key reloaded", timeout=30)
        # Step 4: the old key is revoked, and only the new one is accepted.
        restartable_sim.start(api_key=new_key)
        it.wait_for(lambda: sum(1 for e in restartable_sim.logs()
                                if e["instance"] == 1 and e["accepted"]) >= 20,
                    60, "20 sends accepted with the new key", worker.log_tail)
    finally:
        stop.set()
        producer.join(timeout=60)
    assert not producer.is_alive(), "the traffic thread did not stop"
    assert errors == [], f"producing the traffic failed: {errors}"

    all_ids = {json.loads(r["value"])["id"] for r in produced}
    results = it.consume(bootstrap, topics.results, len(produced))
    dead_letters = read_topic(bootstrap, topics.dead_letters)
    by_id = it.index_results(results)
    log = restartable_sim.logs()

    assert len(results) == len(produced), (
        f"expected {len(produced)} results, got {len(results)}{worker.log_tail()}")
    assert set(by_id) == all_ids, f"requests without a result: {sorted(all_ids - set(by_id))[:5]}"
    assert dead_letters == [], f"{len(dead_letters)} requests were dead-lettered during the rotation"
    not_sent = [r.json() for r in results if r.json()["status"] != "sent"]
    assert not_sent == [], f"results other than sent: {not_sent[:2]}"
    unauthorized = [e for e in log if e["status"] == 401]
    assert unauthorized == [], f"the simulator answered 401 {len(unauthorized)} times"
    old_key_sends = sum(1 for e in log if e["instance"] == 0)
    new_key_sends = sum(1 for e in log if e["instance"] == 1)
    assert old_key_sends > 0, "no request was sent with the old key"
    assert new_key_sends > 0, "no request was sent with the new key"
    print(f"rotation: {len(produced)} requests, {old_key_sends} sends with the old key, "
          f"{new_key_sends} with the new key")
    assert_commits_covered(bootstrap, topics, it.REQUESTS_PARTITIONS, "after the rotation")
    for key in (old_key, new_key):
        it.assert_records_free_of(results, key, "result")
    assert_secrets_absent(worker, [old_key, new_key], [text])
