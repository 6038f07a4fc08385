"""Ordering: requests with the same ordering key (the record key, else the
channel and the recipient) reach the API one after another in offset
order, while a slow key holds up no other key."""

import json
import uuid

from conftest import (WAIT_SECONDS, assert_log_private, consume, entries_for, index_results,
                      parse_rfc3339, produce, recipient, request_value, wait_for)


def completed_ms(result):
    return int(parse_rfc3339(result["completed_at"]).timestamp() * 1000)


def text_record(sim, rid, to, text, key=None, partition=None):
    record = {"value": request_value(rid, "whatsapp", sim.channel_ids["whatsapp"], to,
                                     json.dumps({"text": text}))}
    if key is not None:
        record["key"] = key
    if partition is not None:
        record["partition"] = partition
    return record


def produce_behind_slow_request(bootstrap, topics, sim, worker, records, slow_id):
    """Produce records[0], wait until the simulator has received it, then produce
    the rest. The slow request is then the worker's first transfer, on a
    cold connection pool, so the others are consumed while it is pending."""
    placed = produce(bootstrap, topics.requests, records[:1])
    wait_for(lambda: entries_for(sim.log(), slow_id), WAIT_SECONDS,
             f"the simulator to receive {slow_id}", worker.log_tail)
    return placed + produce(bootstrap, topics.requests, records[1:])


def check_key_order(name, ids, offsets, results, log):
    """Assert that the requests of one ordering key reached the simulator in
    offset order, each after the previous one's result was complete."""
    sends = [entries_for(log, rid) for rid in ids]
    for rid, entries in zip(ids, sends):
        assert len(entries) == 1, f"{name}: {rid} reached the simulator {len(entries)} times"
    seqs = [entries[0]["seq"] for entries in sends]
    by_seq = [offset for _, offset in sorted(zip(seqs, offsets))]
    assert by_seq == sorted(offsets), f"{name}: sends in the order of offsets {by_seq}"
    for previous, current, entries in zip(ids, ids[1:], sends[1:]):
        done = completed_ms(results[previous])
        assert entries[0]["time_ms"] >= done, (
            f"{name}: {current} reached the simulator at {entries[0]['time_ms']}, before "
            f"{previous} completed at {done}")


def test_slow_key_holds_up_only_itself(bootstrap, topics, sim, worker_factory):
    text = f"private-text-{uuid.uuid4().hex}"
    slow_key = f"key-slow-{uuid.uuid4().hex}".encode()
    slow_to = recipient("whatsapp", 7000)
    # The first request to slow_to gets its response after 3 s, later ones at once.
    sim.add_rule(to=slow_to, responses=[{"delay_ms": 3000}])
    slow_ids = [f"req-slow-{i}-{uuid.uuid4().hex}" for i in range(6)]
    other_ids = [f"req-other-{i}-{uuid.uuid4().hex}" for i in range(50)]
    other_tos = [recipient("whatsapp", 7100 + i) for i in range(50)]

    records = [text_record(sim, slow_ids[0], slow_to, text, key=slow_key)]
    for i, rid in enumerate(other_ids):
        records.append(text_record(sim, rid, other_tos[i], text, key=f"key-other-{i}".encode()))
        if i % 10 == 0 and i // 10 + 1 < len(slow_ids):
            records.append(text_record(sim, slow_ids[i // 10 + 1], slow_to, text, key=slow_key))

    worker = worker_factory(topics, sim)
    placed = produce_behind_slow_request(bootstrap, topics, sim, worker, records, slow_ids[0])
    results = consume(bootstrap, topics.results, len(records))
    log = sim.log()
    by_id = index_results(results)
    offsets = {json.loads(r["value"])["id"]: p.offset for r, p in zip(records, placed)}
    single = {rid: found[0].json() for rid, found in by_id.items()}

    assert len(results) == len(records), f"expected {len(records)} results, got {len(results)}{worker.log_tail()}"
    assert all(len(found) == 1 for found in by_id.values()), "a request got more than one result"
    assert all(r["status"] == "sent" for r in single.values()), (
        f"not all sent: {[r for r in single.values() if r['status'] != 'sent'][:3]}")

    first_done = completed_ms(single[slow_ids[0]])
    late = [rid for rid in other_ids if completed_ms(single[rid]) >= first_done]
    assert late == [], (f"{len(late)} requests of other keys completed only after the slow key's "
                        f"first request: the slow key held them up")
    check_key_order("slow key", slow_ids, [offsets[rid] for rid in slow_ids], single, log)
    assert_log_private(worker, [text, slow_to] + other_tos)


def test_records_without_key_ordered_by_recipient(bootstrap, topics, sim, worker_factory):
    text = f"private-text-{uuid.uuid4().hex}"
    slow_to = recipient("whatsapp", 8000)
    other_to = recipient("whatsapp", 8001)
    sim.add_rule(to=slow_to, responses=[{"delay_ms": 2000}])
    same_ids = [f"req-same-{i}-{uuid.uuid4().hex}" for i in range(4)]
    other_id = f"req-other-{uuid.uuid4().hex}"
    # One partition, so that offset order is production order.
    records = [text_record(sim, same_ids[0], slow_to, text, partition=0),
               text_record(sim, same_ids[1], slow_to, text, partition=0),
               text_record(sim, other_id, other_to, text, partition=0),
               text_record(sim, same_ids[2], slow_to, text, partition=0),
               text_record(sim, same_ids[3], slow_to, text, partition=0)]

    worker = worker_factory(topics, sim)
    placed = produce_behind_slow_request(bootstrap, topics, sim, worker, records, same_ids[0])
    results = consume(bootstrap, topics.results, len(records))
    log = sim.log()
    single = {rid: found[0].json() for rid, found in index_results(results).items()}
    offsets = [p.offset for i, p in enumerate(placed) if i != 2]

    assert len(results) == len(records), f"expected {len(records)} results, got {len(results)}{worker.log_tail()}"
    assert all(r["status"] == "sent" for r in single.values()), f"not all sent: {single}"
    assert completed_ms(single[other_id]) < completed_ms(single[same_ids[0]]), (
        "a request to another recipient waited for the slow recipient")
    check_key_order("same recipient, no key", same_ids, offsets, single, log)
    assert_log_private(worker, [text, slow_to, other_to])
