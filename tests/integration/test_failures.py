"""Requests that do not end as sent: API errors (failed), HTTP 401 (dead
letter) and records the worker rejects before any HTTP call."""

import json
import os
import uuid

import jsonschema
import pytest
from conftest import (RFC3339_MS, SAMPLE_RECIPIENTS, assert_log_private, assert_records_free_of,
                      by_source, consume, entries_for, index_results, produce, recipient,
                      request_value, required_env)


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


def check_failed(result, channel, error_class, code, http_status):
    rid = result["id"]
    assert result["status"] == "failed", f"{rid}: status {result['status']}, error {result['error']}"
    assert result["channel"] == channel, f"{rid}: channel {result['channel']}"
    assert result["error"] is not None, f"{rid}: no error object"
    assert result["error"]["class"] == error_class, f"{rid}: error class {result['error']}"
    assert result["error"]["code"] == code, f"{rid}: error code {result['error']}"
    assert result["http_status"] == http_status, f"{rid}: http_status {result['http_status']}"
    assert result["attempts"] == 1, f"{rid}: attempts {result['attempts']}"
    assert result["message_id"] is None, f"{rid}: message_id {result['message_id']}"


def test_api_errors_give_failed_results(bootstrap, topics, sim, worker_factory, result_validator):
    texts = {name: f"private-text-{uuid.uuid4().hex}" for name in ("400", "404", "2xx")}
    bad_request_to = recipient("instagram", 400)
    send_error_to = recipient("whatsapp", 130472)
    not_found_to = recipient("whatsapp", 404)
    sim.add_rule(channel="instagram", to=bad_request_to, responses=[{
        "status": 400,
        "body": json.dumps({"errorCode": "ig_invalid_parameter",
                            "errorMessage": "Simulated: the parameter is invalid."}),
    }])
    sim.add_rule(channel="whatsapp", to=send_error_to, responses=[{
        "status": 200,
        "body": json.dumps({"messageId": None, "status": "error", "errorCode": "130472",
                            "errorMessage": "The recipient is not a valid WhatsApp user"}),
    }])
    cases = {
        "400": (f"req-400-{uuid.uuid4().hex}", "instagram", sim.channel_ids["instagram"],
                bad_request_to),
        # A `from` UUID that the simulator's application does not own.
        "404": (f"req-404-{uuid.uuid4().hex}", "whatsapp", str(uuid.uuid4()), not_found_to),
        "2xx": (f"req-2xx-{uuid.uuid4().hex}", "whatsapp", sim.channel_ids["whatsapp"],
                send_error_to),
    }
    records = [{"key": name.encode(),
                "value": request_value(rid, channel, from_, to,
                                       json.dumps({"text": texts[name]}))}
               for name, (rid, channel, from_, to) in cases.items()]

    worker = worker_factory(topics, sim)
    produce(bootstrap, topics.requests, records)
    results = consume(bootstrap, topics.results, len(records))
    log = sim.log()
    by_id = index_results(results)

    assert len(results) == len(records), f"expected {len(records)} results, got {len(results)}{worker.log_tail()}"
    for record in results:
        assert_matches_schema(result_validator, record)
    for name, (rid, _, _, _) in cases.items():
        assert len(by_id[rid]) == 1, f"{name}: expected one result, got {len(by_id[rid])}"
        assert len(entries_for(log, rid)) == 1, (
            f"{name}: a permanent failure must not be retried, but the simulator got "
            f"{len(entries_for(log, rid))} sends")

    bad_request = by_id[cases["400"][0]][0].json()
    check_failed(bad_request, "instagram", "bad_request", "ig_invalid_parameter", 400)
    assert bad_request["error"]["message"] == "Simulated: the parameter is invalid.", (
        f"400: error message not copied: {bad_request['error']}")

    not_found = by_id[cases["404"][0]][0].json()
    check_failed(not_found, "whatsapp", "not_found", "channel_not_found", 404)
    assert not_found["error"]["message"], "404: empty error message"

    send_error = by_id[cases["2xx"][0]][0]
    check_failed(send_error.json(), "whatsapp", "send_error", "130472", 200)
    assert send_error.json()["error"]["message"] == "The recipient is not a valid WhatsApp user", (
        f"2xx: error message not copied: {send_error.json()['error']}")
    assert send_error.header_text("chatt2me.status") == "failed", "2xx: status header"
    assert send_error.header_text("chatt2me.http_status") == "200", "2xx: http_status header"

    assert_records_free_of(results, sim.api_key, "result")
    assert_log_private(worker, list(texts.values()) + [bad_request_to, send_error_to, not_found_to])


def test_unauthorized_goes_to_dead_letter(bootstrap, topics, sim, worker_factory, result_validator):
    text = f"private-text-{uuid.uuid4().hex}"
    to_401 = recipient("whatsapp", 401)
    to_ok = recipient("whatsapp", 200)
    sim.add_rule(to=to_401, repeat=True, responses=[{"status": 401}])

    rid_headers = f"req-401-headers-{uuid.uuid4().hex}"
    rid_bare = f"req-401-bare-{uuid.uuid4().hex}"
    rid_ok = f"req-ok-{uuid.uuid4().hex}"
    # A key that is not UTF-8, header values that are binary, empty and
    # null, and a header name used twice: all must survive byte for byte.
    original_key = b"\xff\xfe-key-\x00\x80\xc3"
    original_headers = [
        ("trace-id", b"\x00\x01\x02\xff\xfe"),
        ("content-type", b"application/json"),
        ("empty", b""),
        ("null-value", None),
        ("trace-id", b"second value \xe2\x82\xac"),
    ]
    value_401 = request_value(rid_headers, "whatsapp", sim.channel_ids["whatsapp"], to_401,
                              '{ "text" : "%s", "n": 1.50 }' % text, '{"a": 1}')
    value_bare = request_value(rid_bare, "whatsapp", sim.channel_ids["whatsapp"], to_401,
                               json.dumps({"text": text}))
    records = [
        {"key": original_key, "value": value_401, "headers": original_headers},
        {"value": value_bare, "partition": 0},
        {"key": b"ok", "value": request_value(rid_ok, "whatsapp", sim.channel_ids["whatsapp"],
                                              to_ok, json.dumps({"text": text}))},
    ]

    worker = worker_factory(topics, sim)
    placed = produce(bootstrap, topics.requests, records)
    dead_letters = consume(bootstrap, topics.dead_letters, 2)
    results = consume(bootstrap, topics.results, 1)
    log = sim.log()

    assert len(dead_letters) == 2, f"expected 2 dead letters, got {len(dead_letters)}{worker.log_tail()}"
    assert len(results) == 1, f"expected only the result of {rid_ok}, got {[r.json()['id'] for r in results]}"
    assert results[0].json()["id"] == rid_ok, f"unexpected result {results[0].json()}"
    assert results[0].json()["status"] == "sent", f"{rid_ok}: {results[0].json()}"
    for record in results:
        assert_matches_schema(result_validator, record)
    assert len(entries_for(log, rid_headers)) == 1, "a 401 must not be retried"
    assert len(entries_for(log, rid_bare)) == 1, "a 401 must not be retried"
    for record in results:
        source = record.json()["source"]
        assert (source["partition"], source["offset"]) not in (
            (placed[0].partition, placed[0].offset), (placed[1].partition, placed[1].offset)), (
            f"a dead-lettered request also got a result: {record.json()}")

    by_value = {record.value: record for record in dead_letters}
    assert set(by_value) == {value_401, value_bare}, "the dead-letter values differ from the originals"

    full = by_value[value_401]
    assert full.key == original_key, f"dead-letter key {full.key!r}, expected {original_key!r}"
    assert full.headers[:len(original_headers)] == original_headers, (
        f"the original headers were not copied first and unchanged: {full.headers}")
    added = full.headers[len(original_headers):]
    assert all(name.startswith("chatt2me.") for name, _ in added), f"unexpected added headers: {added}"
    assert full.header_text("chatt2me.error_class") == "auth", "error_class header"
    assert full.header_text("chatt2me.http_status") == "401", "http_status header"
    assert full.header_text("chatt2me.error_code") == "simulated_fault", (
        f"error_code header {full.header_text('chatt2me.error_code')!r}: the API's errorCode")
    assert full.header_text("chatt2me.error_message"), "empty error_message header"
    assert full.header_text("chatt2me.attempts") == "1", "attempts header"
    assert full.header_text("chatt2me.request_id") == rid_headers, "request_id header"
    assert full.header_text("chatt2me.source_topic") == topics.requests, "source_topic header"
    assert full.header_text("chatt2me.source_partition") == str(placed[0].partition), "source_partition header"
    assert full.header_text("chatt2me.source_offset") == str(placed[0].offset), "source_offset header"
    assert RFC3339_MS.match(full.header_text("chatt2me.failed_at") or ""), (
        f"failed_at header {full.header_text('chatt2me.failed_at')!r}")

    bare = by_value[value_bare]
    assert bare.key is None, f"a record without key got key {bare.key!r} in the dead letter"
    assert all(name.startswith("chatt2me.") for name, _ in bare.headers), (
        f"a record without headers got others: {bare.headers}")
    assert bare.header_text("chatt2me.error_class") == "auth", "bare: error_class header"
    assert bare.header_text("chatt2me.source_offset") == str(placed[1].offset), "bare: source_offset header"

    assert_records_free_of(dead_letters, sim.api_key, "dead letter")
    assert_records_free_of(results, sim.api_key, "result")
    assert_log_private(worker, [text, to_401, to_ok])


def test_invalid_records_are_rejected(bootstrap, topics, sim, worker_factory, result_validator):
    text = f"private-text-{uuid.uuid4().hex}"
    wa_from = sim.channel_ids["whatsapp"]
    wa_to = SAMPLE_RECIPIENTS["whatsapp"]
    content = json.dumps({"text": text})

    def rid(name):
        return f"req-{name}-{uuid.uuid4().hex}"

    ids = {name: rid(name) for name in ("bad-channel", "plus", "sms-no-plus", "template-ig",
                                        "bad-utf8", "duplicate")}
    # The id is unreadable when the value is null, empty, too large or not
    # a JSON object, or when the whole document fails validation (bad UTF-8,
    # a duplicate key), so those results are matched by source coordinates
    # and carry id null.
    # (name, value, expected code, expected id, expected channel)
    cases = [
        ("not-json", b"this is not json {" + text.encode(), "invalid_json", None, None),
        ("not-object", json.dumps(["id", text]).encode(), "not_object", None, None),
        ("missing-id", json.dumps({"channel": "whatsapp", "from": wa_from, "to": wa_to,
                                   "content": {"text": text}}).encode(),
         "missing_field", None, "whatsapp"),
        ("bad-channel", request_value(ids["bad-channel"], "fax", wa_from, wa_to, content),
         "unknown_channel", ids["bad-channel"], None),
        ("plus", request_value(ids["plus"], "whatsapp", wa_from, "+" + wa_to, content),
         "invalid_field", ids["plus"], "whatsapp"),
        ("sms-no-plus", request_value(ids["sms-no-plus"], "sms", sim.channel_ids["sms"],
                                      "5511944574999", content),
         "invalid_field", ids["sms-no-plus"], "sms"),
        ("template-ig", request_value(ids["template-ig"], "instagram", sim.channel_ids["instagram"],
                                      SAMPLE_RECIPIENTS["instagram"],
                                      '{"template": {"id": "%s"}}' % uuid.uuid4()),
         "kind_not_available", ids["template-ig"], "instagram"),
        ("bad-utf8", request_value(ids["bad-utf8"], "whatsapp", wa_from, wa_to,
                                   '{"text": "%s XX"}' % text).replace(b"XX", b"\xff"),
         "invalid_utf8", None, None),
        ("duplicate", request_value(ids["duplicate"], "whatsapp", wa_from, wa_to,
                                    '{"text": "%s", "text": "again"}' % text),
         "duplicate_key", None, None),
        ("tombstone", None, "empty", None, None),
        ("empty", b"", "empty", None, None),
        ("too-large", request_value(rid("too-large"), "whatsapp", wa_from, wa_to,
                                    json.dumps({"text": text + "x" * (2 * 1024 * 1024)})),
         "too_large", None, None),
    ]
    records = [{"key": name.encode(), "value": value} for name, value, _, _, _ in cases]

    worker = worker_factory(topics, sim)
    placed = produce(bootstrap, topics.requests, records)
    results = consume(bootstrap, topics.results, len(records))
    dead_letters = consume(bootstrap, topics.dead_letters, 0, linger=0.5)
    found = by_source(results)

    assert len(results) == len(records), f"expected {len(records)} results, got {len(results)}{worker.log_tail()}"
    assert dead_letters == [], "an invalid record went to the dead-letter topic"
    for record in results:
        assert_matches_schema(result_validator, record)
    for (name, value, code, expected_id, channel), where in zip(cases, placed):
        matches = found.get((where.partition, where.offset), [])
        assert len(matches) == 1, f"{name}: expected one result at offset {where}, got {len(matches)}"
        record = matches[0]
        result = record.json()
        assert result["status"] == "rejected", f"{name}: status {result['status']}"
        assert result["error"]["class"] == "invalid_request", f"{name}: error {result['error']}"
        assert result["error"]["code"] == code, f"{name}: error {result['error']}"
        assert result["error"]["message"], f"{name}: empty error message"
        assert result["id"] == expected_id, f"{name}: id {result['id']}, expected {expected_id}"
        assert record.header_text("chatt2me.request_id") == expected_id, f"{name}: request_id header"
        assert result["channel"] == channel, f"{name}: channel {result['channel']}, expected {channel}"
        assert result["attempts"] == 0, f"{name}: attempts {result['attempts']}"
        assert result["http_status"] is None, f"{name}: http_status {result['http_status']}"
        assert result["message_id"] is None, f"{name}: message_id {result['message_id']}"
        assert result["source"]["topic"] == topics.requests, f"{name}: source {result['source']}"
        assert record.header_text("chatt2me.status") == "rejected", f"{name}: status header"
        assert record.header_text("chatt2me.source_offset") == str(where.offset), f"{name}: source_offset header"
        assert record.header("chatt2me.http_status") is None, f"{name}: http_status header on a rejection"
        assert text.encode() not in record.value, f"{name}: the message text appears in the result"
        assert wa_to.encode() not in record.value, f"{name}: the phone number appears in the result"

    assert sim.log() == [], "the simulator received a request for an invalid record"
    assert_log_private(worker, [text, wa_to, "5511944574999", SAMPLE_RECIPIENTS["instagram"]])
