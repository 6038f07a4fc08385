"""A successful send on every channel: the result record, its headers, and
the HTTP request the simulator received."""

import json
import os
import uuid

import jsonschema
import pytest
from conftest import (CHANNELS, RFC3339_MS, SAMPLE_RECIPIENTS, UUID_RE, assert_log_private,
                      assert_records_free_of, body_of, consume, entries_for, index_results,
                      parse_rfc3339, produce, request_value, required_env, run_worker,
                      worker_env)

# Content whose exact bytes a JSON round trip would change: a trailing zero,
# a number beyond double range, an integer beyond 64 bits, a negative zero,
# escapes next to raw UTF-8, inner whitespace and keys out of order.
CONTENT_TEMPLATE = (
    '{ "text" : "%s \\u00e9\\ud83d\\ude00 \u00e9 \U0001f600 \\"quoted\\" \\/ line\\nbreak" ,\n'
    '  "z": 1.50, "a": 1e400, "m": 12345678901234567890123, "neg": -0.0,\n'
    '  "exp": 2E-7, "nested": {"b": [1, 2.0, true, null], "a": "x"} }'
)
METADATA = ('{"orderId": "ord-1", "amount": 1.50, "big": 12345678901234567890123,'
            ' "list": [1, "two", {"k": null}]}')


def worker_version(bootstrap, topics, sim):
    done = run_worker(["--version"], worker_env(bootstrap, topics, sim))
    assert done.returncode == 0, f"--version failed: {done.stderr}"
    return done.stdout.split()[1]


def content_span(body):
    """Return the raw text of the "content" value inside a request body."""
    decoder = json.JSONDecoder()
    key = body.index('"content"')
    colon = body.index(":", key + len('"content"'))
    start = colon + 1
    while body[start] in " \t\r\n":
        start += 1
    _, end = decoder.raw_decode(body, start)
    return body[start:end]


@pytest.fixture(scope="module")
def result_validator():
    """Return a validator for docs/schemas/result.schema.json, the documented
    layout of a result record."""
    path = os.path.join(required_env("C2M_SOURCE_DIR"), "docs", "schemas", "result.schema.json")
    with open(path, encoding="utf-8") as schema_file:
        schema = json.load(schema_file)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_matches_schema(validator, record):
    errors = [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
              for e in validator.iter_errors(record.json())]
    assert errors == [], (f"result {record.topic} [{record.partition}] @{record.offset} "
                          f"does not match result.schema.json: {errors[:5]}")


def test_send_on_every_channel(bootstrap, topics, sim, worker_factory, result_validator):
    requests = []
    for channel in CHANNELS:
        text = f"private-text-{uuid.uuid4().hex}"
        content = CONTENT_TEMPLATE % text
        requests.append({
            "id": f"req-{channel}-{uuid.uuid4().hex}",
            "channel": channel,
            "to": SAMPLE_RECIPIENTS[channel],
            "content": content,
            "text": text,
            "key": f"key-{channel}".encode(),
        })
        requests.append({
            "id": f"req-{channel}-image-{uuid.uuid4().hex}",
            "channel": channel,
            "to": SAMPLE_RECIPIENTS[channel],
            "content": '{"imageUrl": "https://example.com/a.png", "text": "caption"}',
            "text": None,
            "key": f"key-{channel}".encode(),
        })
    records = [{
        "key": r["key"],
        "value": request_value(r["id"], r["channel"], sim.channel_ids[r["channel"]],
                               r["to"], r["content"], METADATA),
    } for r in requests]

    worker = worker_factory(topics, sim)
    placed = produce(bootstrap, topics.requests, records)
    results = consume(bootstrap, topics.results, len(requests))
    dead_letters = consume(bootstrap, topics.dead_letters, 0, linger=0.5)
    log = sim.log()
    version = worker_version(bootstrap, topics, sim)
    by_id = index_results(results)

    assert len(results) == len(requests), (
        f"expected {len(requests)} results, got {len(results)}{worker.log_tail()}")
    assert dead_letters == [], f"unexpected dead letters: {dead_letters}"
    for record in results:
        assert_matches_schema(result_validator, record)

    for request, where in zip(requests, placed):
        rid = request["id"]
        channel = request["channel"]
        found = by_id.get(rid, [])
        assert len(found) == 1, f"{channel}: expected one result for {rid}, got {len(found)}"
        record = found[0]
        result = record.json()
        sends = entries_for(log, rid)

        assert result["schema"] == 1, f"{channel}: schema {result['schema']}"
        assert result["status"] == "sent", f"{channel}: status {result['status']}, error {result['error']}"
        assert result["channel"] == channel, f"{channel}: result channel {result['channel']}"
        assert result["http_status"] == 200, f"{channel}: http_status {result['http_status']}"
        assert result["attempts"] == 1, f"{channel}: attempts {result['attempts']}"
        assert result["error"] is None, f"{channel}: error {result['error']}"
        assert result["metadata"] == json.loads(METADATA), f"{channel}: metadata {result['metadata']}"
        assert METADATA.encode() in record.value, (
            f"{channel}: the metadata bytes were not copied unchanged into the result")
        assert result["source"] == {"topic": topics.requests, "partition": where.partition,
                                    "offset": where.offset}, (
            f"{channel}: source {result['source']}, produced at {where}")
        assert RFC3339_MS.match(result["received_at"]), f"{channel}: received_at {result['received_at']}"
        assert RFC3339_MS.match(result["completed_at"]), f"{channel}: completed_at {result['completed_at']}"
        assert parse_rfc3339(result["completed_at"]) >= parse_rfc3339(result["received_at"]), (
            f"{channel}: completed_at {result['completed_at']} before received_at {result['received_at']}")
        assert result["api_request_id"] and UUID_RE.match(result["api_request_id"]), (
            f"{channel}: api_request_id {result['api_request_id']!r} is not the simulator's x-request-id")
        assert record.key == request["key"], f"{channel}: result key {record.key!r}"

        assert record.header_text("chatt2me.request_id") == rid, f"{channel}: request_id header"
        assert record.header_text("chatt2me.source_topic") == topics.requests, f"{channel}: source_topic header"
        assert record.header_text("chatt2me.source_partition") == str(where.partition), (
            f"{channel}: source_partition header")
        assert record.header_text("chatt2me.source_offset") == str(where.offset), f"{channel}: source_offset header"
        assert record.header_text("chatt2me.attempts") == "1", f"{channel}: attempts header"
        assert record.header_text("chatt2me.http_status") == "200", f"{channel}: http_status header"
        assert record.header_text("chatt2me.status") == "sent", f"{channel}: status header"

        assert len(sends) == 1, f"{channel}: the simulator received {len(sends)} sends of {rid}"
        send = sends[0]
        # The simulator responds with 401 unless x-api-key matches its key,
        # so an accepted 200 proves that the header was correct.
        assert send["status"] == 200, f"{channel}: simulator answered {send['status']}: {send}"
        assert send["accepted"] is True, f"{channel}: not accepted: {send}"
        assert result["message_id"] == send["message_id"], (
            f"{channel}: message_id {result['message_id']} but the simulator issued {send['message_id']}")
        assert send["channel"] == channel, f"{channel}: sent on route {send['channel']}"
        assert send["from"] == sim.channel_ids[channel], f"{channel}: from {send['from']}"
        assert send["to"] == request["to"], f"{channel}: to {send['to']}"
        assert send["idempotency_key"] == rid, f"{channel}: Idempotency-Key {send['idempotency_key']}"
        assert send["user_agent"] == f"chatt2me-worker/{version}", f"{channel}: User-Agent {send['user_agent']}"

        body = body_of(send)
        keys = list(json.loads(body, object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
        assert keys == ["from", "to", "content"], f"{channel}: body keys {keys}"
        assert content_span(body) == request["content"], (
            f"{channel}: content changed on the way:\nsent:     {request['content']!r}\n"
            f"received: {content_span(body)!r}")

    assert_records_free_of(results, sim.api_key, "result")
    private = [r["text"] for r in requests if r["text"]] + list(SAMPLE_RECIPIENTS.values())
    assert_log_private(worker, private)
