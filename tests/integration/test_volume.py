"""Acceptance check at volume: 10,000 requests over all channels, with
invalid records, HTTP 401 responses and transient faults mixed in, give
exactly one result or dead letter each, and every valid request is
accepted by the API exactly once."""

import collections
import json
import time
import uuid

from conftest import (LINGER_SECONDS, assert_log_private, assert_records_free_of, by_source,
                      consume, produce, recipient, request_value)

REQUEST_COUNT = 10000
LATENCY_MS = 2
MAX_IN_FLIGHT = 256
# Numbers of the recipient() formats this test sends, for the log check.
# The look-arounds keep digit runs inside request ids and UUIDs from
# matching.
PHONE_PATTERNS = tuple(rf"(?<![\w-]){number}(?!\w)" for number in (
    r"\+?55119\d{8}", r"8474\d{11}", r"7\d{9}", r"visitor-\d{8}"))


def invalid_value(n, sim, text):
    """One of five kinds of invalid record; the first and last have no
    readable id."""
    rid = f"req-invalid-{n}-{uuid.uuid4().hex}"
    wa_from = sim.channel_ids["whatsapp"]
    to = recipient("whatsapp", 50000 + n)
    content = json.dumps({"text": text})
    kinds = [
        (b"{not json " + text.encode(), "invalid_json", None),
        (request_value(rid, "whatsapp", wa_from, "+" + to, content), "invalid_field", rid),
        (request_value(rid, "fax", wa_from, to, content), "unknown_channel", rid),
        (json.dumps({"id": rid, "channel": "whatsapp", "from": wa_from, "to": to}).encode(),
         "missing_field", rid),
        (None, "empty", None),
    ]
    return kinds[n % len(kinds)]


def test_ten_thousand_requests(bootstrap, topics, sim_factory, worker_factory):
    sim = sim_factory(latency_ms=LATENCY_MS, threads=2)
    text = f"private-text-{uuid.uuid4().hex}"
    channels = list(sim.channel_ids)
    unauthorized_to = recipient("whatsapp", 40000)
    sim.add_rule(to=unauthorized_to, repeat=True, before_auth=True, responses=[{"status": 401}])

    records = []
    expected = []  # (kind, id or None, expected error code or None) per record
    for i in range(REQUEST_COUNT):
        # 5% each of invalid, unauthorized and transient, the rest valid.
        kind = {0: "invalid", 1: "unauthorized", 2: "transient"}.get(i % 20, "valid")
        rid = f"req-{kind}-{i}-{uuid.uuid4().hex}"
        content = json.dumps({"text": text})
        code = None
        if kind == "invalid":
            value, code, rid = invalid_value(i, sim, text)
        elif kind == "unauthorized":
            value = request_value(rid, "whatsapp", sim.channel_ids["whatsapp"], unauthorized_to, content)
        elif kind == "transient":
            to = recipient("whatsapp", 60000 + i)
            sim.add_rule(to=to, responses=[{"status": 503, "body": ""}])
            value = request_value(rid, "whatsapp", sim.channel_ids["whatsapp"], to, content)
        else:
            channel = channels[i % len(channels)]
            value = request_value(rid, channel, sim.channel_ids[channel], recipient(channel, i), content)
        records.append({"key": f"key-{i % 1000}".encode(), "value": value})
        expected.append((kind, rid, code))
    kinds = collections.Counter(kind for kind, _, _ in expected)
    print(f"request mix: {dict(kinds)}")

    worker = worker_factory(topics, sim, CHATT2ME_WORKER_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
    started = time.monotonic()
    placed = produce(bootstrap, topics.requests, records)
    result_count = REQUEST_COUNT - kinds["unauthorized"]
    results = consume(bootstrap, topics.results, result_count, timeout=180, linger=LINGER_SECONDS)
    # Measured, not asserted. It includes producing, the group join and
    # reading the results back, so it is an upper bound of the worker's time.
    print(f"{len(results)} results within {time.monotonic() - started - LINGER_SECONDS:.1f} s "
          f"of the worker's start")
    dead_letters = consume(bootstrap, topics.dead_letters, kinds["unauthorized"])
    log = sim.log()

    assert len(results) + len(dead_letters) == REQUEST_COUNT, (
        f"{len(results)} results and {len(dead_letters)} dead letters for {REQUEST_COUNT} "
        f"requests{worker.log_tail()}")
    assert len(dead_letters) == kinds["unauthorized"], f"{len(dead_letters)} dead letters"

    found = by_source(results)
    dead_by_source = collections.Counter(
        (int(r.header_text("chatt2me.source_partition")), int(r.header_text("chatt2me.source_offset")))
        for r in dead_letters)
    sends = collections.defaultdict(list)
    for entry in sorted(log, key=lambda e: e["seq"]):
        sends[entry["idempotency_key"]].append(entry["status"])

    wrong = collections.defaultdict(list)
    for (kind, rid, code), where in zip(expected, placed):
        coordinates = (where.partition, where.offset)
        matches = [r.json() for r in found.get(coordinates, [])]
        if kind == "unauthorized":
            if matches or dead_by_source[coordinates] != 1:
                wrong["401 without exactly one dead letter, or with a result"].append(rid)
            if sends[rid] != [401]:
                wrong["401 not sent exactly once"].append((rid, sends[rid]))
            continue
        if len(matches) != 1:
            wrong[f"{kind}: not exactly one result"].append((rid, len(matches)))
            continue
        result = matches[0]
        if result["id"] != rid:
            wrong[f"{kind}: wrong id in result"].append((rid, result["id"]))
        if kind == "invalid":
            if result["status"] != "rejected" or result["error"]["code"] != code:
                wrong["invalid: not rejected with the right code"].append((rid, result["error"]))
            if rid is not None and sends[rid]:
                wrong["invalid: reached the simulator"].append(rid)
        elif kind == "transient":
            if result["status"] != "sent" or result["attempts"] != 2:
                wrong["transient: not sent on the second attempt"].append((rid, result["status"], result["attempts"]))
            if sends[rid] != [503, 200]:
                wrong["transient: simulator did not see 503 then 200"].append((rid, sends[rid]))
        else:
            if result["status"] != "sent" or result["attempts"] != 1:
                wrong["valid: not sent on the first attempt"].append((rid, result["status"], result["error"]))
            if sends[rid] != [200]:
                wrong["valid: not accepted exactly once"].append((rid, sends[rid]))
    summary = {problem: f"{len(items)}, e.g. {items[:2]}" for problem, items in wrong.items()}
    assert summary == {}, f"requests with the wrong outcome: {summary}"

    accepted = collections.Counter(e["idempotency_key"] for e in log if e["accepted"])
    valid = kinds["valid"] + kinds["transient"]
    assert len(accepted) == valid, f"the simulator accepted {len(accepted)} distinct requests, expected {valid}"
    assert sum(accepted.values()) == valid, f"the simulator accepted {sum(accepted.values())} sends, expected {valid}"
    assert len(log) == valid + kinds["transient"] + kinds["unauthorized"], f"the simulator got {len(log)} sends"

    assert_records_free_of(results, sim.api_key, "result")
    assert_records_free_of(dead_letters, sim.api_key, "dead letter")
    assert_log_private(worker, [text, unauthorized_to], PHONE_PATTERNS)
