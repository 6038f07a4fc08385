"""Exactly-once results (kafka.exactly_once) under worker kills and a
broker restart: a read_committed consumer of the results topic reads exactly
one result per request, although the API may receive a request more than
once (sends stay at-least-once)."""

import collections
import uuid

from conftest import (WAIT_SECONDS, LoadProducer, ResultReader, WorkerPool, build_load,
                      faults_scale, key_offsets_out_of_order, key_order_violations, plan_faults,
                      read_to_end, repeats_after_events, report_send_pause, run_fault_plan,
                      send_stats, wait_for_commit_progress)

REQUEST_PARTITIONS = 6
KEYS = 500
LATENCY_MS = 5
COMMIT_INTERVAL_MS = 200


def settings_for(topics):
    """Return the settings of each slot: exactly-once, with a transactional
    id per slot that its restarted worker reuses, so that the restarted
    worker aborts the transaction its killed predecessor left open."""
    def settings(slot):
        return {
            "CHATT2ME_KAFKA_EXACTLY_ONCE": "true",
            "CHATT2ME_KAFKA_TRANSACTIONAL_ID": f"{topics.group}-slot-{slot}",
            "CHATT2ME_WORKER_MAX_IN_FLIGHT": 8,
            "CHATT2ME_WORKER_MAX_BUFFERED": 128,
            "CHATT2ME_WORKER_COMMIT_INTERVAL_MS": COMMIT_INTERVAL_MS,
        }
    return settings


def count_by_id(records):
    return collections.Counter(record.json().get("id") for record in records)


def test_exactly_one_committed_result_per_request(bootstrap, fault_topics, sim_factory,
                                                   worker_factory, fault_rng, broker_control):
    """With exactly-once results, killing workers and restarting the broker
    leaves exactly one committed result per request."""
    topics = fault_topics
    scale = faults_scale()
    count = 5000 * scale
    kills = 3 * scale
    broker_restarts = 1 + (scale - 1) // 4
    rate = 150
    text = f"private-text-{uuid.uuid4().hex}"
    sim = sim_factory(latency_ms=LATENCY_MS, threads=2)
    load = build_load(sim, count, KEYS, text)
    ids = [request.id for request in load]

    pool = WorkerPool(worker_factory, topics, sim, settings_for(topics))
    for _ in range(3):
        pool.add()
    reader = ResultReader(bootstrap, topics, isolation="read_committed").start()
    producer = LoadProducer(bootstrap, topics.requests, load, rate)
    plan = plan_faults(fault_rng, kills, broker_restarts, producer.seconds)
    print(f"{count} requests over {KEYS} keys at {rate}/s; plan: "
          + ", ".join(f"{action} at {at:.1f} s" for at, action in plan))

    producer.start()
    events = run_fault_plan(plan, pool, producer, reader, fault_rng, broker_control,
                            lambda: wait_for_commit_progress(bootstrap, topics, REQUEST_PARTITIONS,
                                                             2 * WAIT_SECONDS))
    producer.wait()
    reader.wait_for(ids, 4 * WAIT_SECONDS, lambda: pool.slots[0].log_tail())
    reader.stop()
    pool.assert_no_unexpected_exit()
    statuses = pool.terminate_all()
    # Every worker has ended its last transaction now, so the committed
    # view below is final.
    committed = read_to_end(bootstrap, topics.results, "read_committed")
    uncommitted = read_to_end(bootstrap, topics.results, "read_uncommitted")
    dead_letters = read_to_end(bootstrap, topics.dead_letters, "read_committed")
    log = sim.log()
    stats = send_stats(log)

    committed_counts = count_by_id(committed)
    uncommitted_counts = count_by_id(uncommitted)
    extra_uncommitted = sum(n - 1 for n in uncommitted_counts.values() if n > 1)
    print(f"read_committed: {len(committed)} results; read_uncommitted: {len(uncommitted)} "
          f"results, {extra_uncommitted} beyond one per request (from aborted transactions)")
    print(f"simulator: {len(stats.accepted_more_than_once)} requests accepted more than once "
          f"({stats.extra_sends} extra sends, {len(stats.accepted_more_than_once) / kills:.1f} "
          f"requests per kill)")
    repeats = repeats_after_events(log, events)
    for cause in ["before any event"] + [description for _, description in events]:
        print(f"  {repeats[cause]} repeated sends after {cause}")
    report_send_pause(log, events)

    assert key_offsets_out_of_order(load, producer.placed) == [], "the load producer reordered a key"
    missing = [rid for rid in ids if committed_counts[rid] == 0]
    assert missing == [], f"{len(missing)} requests have no committed result, e.g. {missing[:3]}"
    duplicated = sorted(rid for rid, n in committed_counts.items() if n > 1)
    assert duplicated == [], (
        f"{len(duplicated)} requests have more than one committed result, e.g. {duplicated[:3]}")
    unknown = sorted(set(committed_counts) - set(ids))
    assert unknown == [], f"committed results for ids that were never requested: {unknown[:3]}"
    result_statuses = collections.Counter(record.json()["status"] for record in committed)
    assert set(result_statuses) == {"sent"}, f"result statuses {dict(result_statuses)}"
    wrong_source = [
        record.json()["id"] for record in committed
        if (record.json()["source"]["partition"], record.json()["source"]["offset"])
        != (producer.placed[record.json()["id"]].partition,
            producer.placed[record.json()["id"]].offset)]
    assert wrong_source == [], f"results naming another request's offset: {wrong_source[:3]}"
    assert dead_letters == [], f"{len(dead_letters)} dead letters, but no send got HTTP 401"
    assert len(uncommitted) >= len(committed), (
        "a read_uncommitted consumer saw fewer results than a read_committed one")
    never_accepted = [rid for rid in ids if stats.accepted[rid] == 0]
    assert never_accepted == [], (
        f"{len(never_accepted)} requests were never accepted by the simulator, "
        f"e.g. {never_accepted[:3]}")
    violations = key_order_violations(load, producer.placed, stats.first_accepted_seq)
    assert violations == [], (
        f"{len(violations)} requests were first accepted before a request at a lower offset of "
        f"their key, e.g. (key, lower offset, higher offset) {violations[:3]}")
    assert all(status == 0 for status in statuses.values()), f"exit statuses after SIGTERM: {statuses}"
    pool.assert_logs_private([text])
