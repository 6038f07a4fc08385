"""Hostile request records. Each malformed one becomes a rejected result
with its validation code and is never sent. The legal oddities are
forwarded byte for byte, no value reaches an HTTP header line other than
its own, and the worker keeps serving valid requests afterwards."""

import json
import uuid

from faults_b_util import header_lines, it, produce_large, raw_http, read_topic

# The requests topic and the producer accept records up to this size, so
# that a 10 MiB record reaches the worker, whose own limit is 900 KiB.
BIG_RECORD_BYTES = 16 * 1024 * 1024
TEN_MIB = 10 * 1024 * 1024

TO = "123456789"

# A text request's content and a 10,000-level nesting used below.
DEEP_ARRAY = b"[" * 10000 + b"]" * 10000
DEEP_OBJECT = b'{"a":' * 10000 + b"1" + b"}" * 10000


def envelope(sim, rid=None, channel=b'"telegram"', from_=None, to=None, content=None,
             extra=b""):
    """Build a request value from raw JSON fragments, so that a test can
    put any bytes into any field. The defaults form a valid text request."""
    rid = rid if rid is not None else json.dumps(f"req-{uuid.uuid4().hex}").encode()
    from_ = from_ if from_ is not None else json.dumps(sim.channel_ids["telegram"]).encode()
    to = to if to is not None else json.dumps(TO).encode()
    content = content if content is not None else b'{"text":"hello"}'
    return (b'{"id":' + rid + b',"channel":' + channel + b',"from":' + from_
            + b',"to":' + to + b',"content":' + content + extra + b"}")


def payment_content(amount_field):
    """A WhatsApp PIX payment request content with one raw amount field."""
    return (b'{"paymentRequest":{"bodyText":"Order A-1","referenceId":"ref-1",'
            b'"paymentMethod":"pix","pix":{"key":"pix-key-0001"},' + amount_field + b"}}")


def whatsapp_envelope(sim, content):
    return envelope(sim, channel=b'"whatsapp"',
                    from_=json.dumps(sim.channel_ids["whatsapp"]).encode(),
                    to=b'"5511987650001"', content=content)


def rejected_cases(sim):
    """Return {case name: (value bytes or None, expected error code)}."""
    valid = envelope(sim)
    cases = {
        "empty value": (b"", "empty"),
        "null value": (None, "empty"),
        "10 MiB value": (envelope(sim, content=b'{"text":"' + b"a" * TEN_MIB + b'"}'),
                         "too_large"),
        "invalid UTF-8 byte": (envelope(sim, content=b'{"text":"ab\xffcd"}'), "invalid_utf8"),
        "truncated UTF-8": (envelope(sim, content=b'{"text":"ab\xe2\x82"}'), "invalid_utf8"),
        "UTF-8 byte order mark": (b"\xef\xbb\xbf" + valid, "invalid_json"),
        "lone high surrogate": (envelope(sim, content=b'{"text":"a\\ud800b"}'), "invalid_json"),
        "lone low surrogate": (envelope(sim, content=b'{"text":"a\\udc00b"}'), "invalid_json"),
        "high surrogate then letter": (envelope(sim, content=b'{"text":"\\ud800\\u0041"}'),
                                       "invalid_json"),
        "surrogates reversed": (envelope(sim, content=b'{"text":"\\udc00\\ud800"}'),
                                "invalid_json"),
        "lone surrogate in id": (envelope(sim, rid=b'"id-\\ud800"'), "invalid_json"),
        "overlong slash": (envelope(sim, content=b'{"text":"a\xc0\xafb"}'), "invalid_utf8"),
        "overlong NUL": (envelope(sim, content=b'{"text":"a\xc0\x80b"}'), "invalid_utf8"),
        "overlong three bytes": (envelope(sim, content=b'{"text":"a\xe0\x80\xafb"}'),
                                 "invalid_utf8"),
        "encoded surrogate": (envelope(sim, content=b'{"text":"a\xed\xa0\x80b"}'),
                              "invalid_utf8"),
        "beyond U+10FFFF": (envelope(sim, content=b'{"text":"a\xf4\x90\x80\x80b"}'),
                            "invalid_utf8"),
        "two documents": (valid + valid, "invalid_json"),
        "two documents on two lines": (valid + b"\n" + valid, "invalid_json"),
        "trailing garbage": (valid + b" x", "invalid_json"),
        "trailing NUL byte": (valid + b"\x00", "invalid_json"),
        "trailing comma": (valid[:-1] + b",}", "invalid_json"),
        "duplicate id": (envelope(sim, extra=b',"id":"other"'), "duplicate_key"),
        "duplicate channel": (envelope(sim, extra=b',"channel":"telegram/../admin"'),
                              "duplicate_key"),
        "duplicate nested key": (envelope(sim, content=b'{"text":"a","text":"b"}'),
                                 "duplicate_key"),
        "duplicate deep key": (envelope(sim, extra=b',"metadata":{"a":{"b":{"c":1,"c":2}}}'),
                               "duplicate_key"),
        "10,000 nested arrays": (envelope(sim, extra=b',"metadata":' + DEEP_ARRAY),
                                 "too_deep"),
        "10,000 nested objects": (envelope(sim, extra=b',"metadata":' + DEEP_OBJECT),
                                  "too_deep"),
        "10,000 nested in content": (envelope(sim, content=b'{"text":"a","x":' + DEEP_ARRAY
                                              + b"}"), "too_deep"),
        "amount of 2^64": (whatsapp_envelope(sim, payment_content(
            b'"totalAmountCents":18446744073709551616')), "invalid_field"),
        "amount of 40 digits": (whatsapp_envelope(sim, payment_content(
            b'"totalAmountCents":1234567890123456789012345678901234567890')), "invalid_field"),
        "item amount beyond 64 bits": (whatsapp_envelope(sim, payment_content(
            b'"items":[{"amountCents":99999999999999999999999,"quantity":1}]')),
            "invalid_field"),
        "tax beyond 64 bits": (whatsapp_envelope(sim, payment_content(
            b'"tax":{"valueCents":36893488147419103232}')), "invalid_field"),
        "negative amount": (whatsapp_envelope(sim, payment_content(
            b'"totalAmountCents":-1')), "invalid_field"),
        "CR LF in id": (envelope(sim, rid=b'"id\\r\\nX-Injected: 1"'), "invalid_field"),
        "LF in id": (envelope(sim, rid=b'"id\\nX-Injected: 1"'), "invalid_field"),
        "CR in id": (envelope(sim, rid=b'"id\\rX-Injected: 1"'), "invalid_field"),
        "NUL in id": (envelope(sim, rid=b'"id\\u0000x"'), "invalid_field"),
        "tab in id": (envelope(sim, rid=b'"id\\tx"'), "invalid_field"),
        "DEL in id": (envelope(sim, rid=b'"id\\u007fx"'), "invalid_field"),
        "non-ASCII id": (envelope(sim, rid=b'"id\\u2028x"'), "invalid_field"),
        "raw CR LF in id": (envelope(sim, rid=b'"id\r\nX-Injected: 1"'), "invalid_json"),
        "raw control byte in id": (envelope(sim, rid=b'"id\x01x"'), "invalid_json"),
        "CR LF in from": (envelope(sim, from_=json.dumps(
            sim.channel_ids["telegram"] + "\r\nX-Injected: 1").encode()), "invalid_field"),
        "CR LF in to": (envelope(sim, to=b'"123456789\\r\\nX-Injected: 1"'), "invalid_field"),
        "NUL in to": (envelope(sim, to=b'"1234\\u00005678"'), "invalid_field"),
        "DEL in to": (envelope(sim, to=b'"1234\\u007f5678"'), "invalid_field"),
        "line separator after to": (envelope(sim, to=b'"123456789\\u2028"'), "invalid_field"),
        "CR LF in channel": (envelope(sim, channel=b'"telegram\\r\\nX-Injected: 1"'),
                             "unknown_channel"),
        "NUL in channel": (envelope(sim, channel=b'"telegram\\u0000"'), "unknown_channel"),
    }
    for channel in ("../", "telegram/../admin", "telegram%2f..", "telegram%2F..%2Fadmin",
                    "TELEGRAM", " telegram", "telegram ", "telegram/", "%74elegram",
                    "signal", ""):
        cases[f"channel {channel!r}"] = (envelope(sim, channel=json.dumps(channel).encode()),
                                         "unknown_channel")
    return cases


def forwarded_cases(sim):
    """Return {case name: (request id, value bytes, raw content bytes)} of
    legal requests whose content must reach the API unchanged."""
    contents = {
        "numbers beyond 64 bits in content": (
            b'{"text":"n","ref":123456789012345678901234567890123456789,'
            b'"neg":-98765432109876543210987654321,"exp":1.0E+400}'),
        "numbers beyond 64 bits in a location": (
            b'{"location":{"latitude":-23.550520000000000000000000000001,'
            b'"longitude":-46.633308999999999999999999999999,'
            b'"seq":340282366920938463463374607431768211457}}'),
        "CR LF in text": b'{"text":"line one\\r\\nX-Injected: 1\\r\\n\\r\\nline two"}',
        "escaped NUL in text": b'{"text":"nul \\u0000 inside"}',
        "escaped surrogate pair": b'{"text":"smile \\ud83d\\ude00 \\/ \\u00e9"}',
    }
    cases = {}
    for name, content in contents.items():
        rid = f"req-forwarded-{uuid.uuid4().hex}"
        cases[name] = (rid, envelope(sim, rid=json.dumps(rid).encode(), content=content),
                       content)
    return cases


def test_hostile_records_rejected(bootstrap, topic_factory, sim, worker_factory):
    """Every hostile record gets one rejected result with its code and no
    API call, legal oddities are forwarded byte for byte, and later valid
    requests succeed."""
    base = it.unique("c2m-faults")
    topics = it.Topics(
        requests=topic_factory(f"{base}-requests", it.REQUESTS_PARTITIONS,
                               {"max.message.bytes": str(BIG_RECORD_BYTES)}),
        results=topic_factory(f"{base}-results", it.RESULTS_PARTITIONS),
        dead_letters=topic_factory(f"{base}-dead-letters", it.DEAD_LETTER_PARTITIONS),
        group=f"{base}-group")
    rejected = rejected_cases(sim)
    forwarded = forwarded_cases(sim)
    after_ids = [f"req-after-{i}-{uuid.uuid4().hex}" for i in range(5)]

    worker = worker_factory(topics, sim)
    hostile_records = [{"key": f"hostile-{n}".encode(), "value": value}
                       for n, (value, _) in enumerate(rejected.values())]
    hostile_records += [{"key": rid.encode(), "value": value}
                        for rid, value, _ in forwarded.values()]
    placed = produce_large(bootstrap, topics.requests, hostile_records, BIG_RECORD_BYTES)
    first = it.consume(bootstrap, topics.results, len(hostile_records))
    assert len(first) == len(hostile_records), (
        f"expected {len(hostile_records)} results for the hostile records, got {len(first)}"
        f"{worker.log_tail()}")
    assert worker.running(), f"the worker exited after the hostile records{worker.log_tail()}"

    it.produce(bootstrap, topics.requests, [
        {"key": rid.encode(), "value": envelope(sim, rid=json.dumps(rid).encode())}
        for rid in after_ids])
    total = len(hostile_records) + len(after_ids)
    results = it.consume(bootstrap, topics.results, total)
    log = sim.log()
    by_source = it.by_source(results)
    by_id = it.index_results(results)

    assert len(results) == total, f"expected {total} results, got {len(results)}{worker.log_tail()}"
    assert worker.running(), f"the worker exited{worker.log_tail()}"
    assert read_topic(bootstrap, topics.dead_letters) == [], "hostile records were dead-lettered"

    for n, (name, (_, code)) in enumerate(rejected.items()):
        where = placed[n]
        found = by_source[(where.partition, where.offset)]
        assert len(found) == 1, f"{name}: expected one result, got {len(found)}"
        result = found[0].json()
        assert result["status"] == "rejected", f"{name}: status {result['status']}, {result['error']}"
        assert result["error"]["class"] == "invalid_request", f"{name}: error {result['error']}"
        assert result["error"]["code"] == code, f"{name}: error code {result['error']['code']}, expected {code}"
        assert result["attempts"] == 0, f"{name}: attempts {result['attempts']}"
        assert result["http_status"] is None, f"{name}: http_status {result['http_status']}"
        assert found[0].header_text("chatt2me.status") == "rejected", f"{name}: status header"

    for record in results:
        result = record.json()
        rid = result["id"]
        assert rid is None or all(0x20 <= ord(c) <= 0x7E for c in rid), (
            f"a result carries an id with control or non-ASCII characters: {rid!r}")
        for header, value in record.headers:
            assert value is None or not any(b < 0x20 or b == 0x7F for b in value), (
                f"result header {header} carries a control character: {value!r}")

    # The simulator saw exactly the legal requests, each once.
    expected_sends = {rid for rid, _, _ in forwarded.values()} | set(after_ids)
    sent_ids = [entry["idempotency_key"] for entry in log]
    assert sorted(sent_ids) == sorted(expected_sends), (
        f"the simulator saw sends {sorted(set(sent_ids) - expected_sends)[:5]} beyond the legal "
        f"requests, or missed {sorted(expected_sends - set(sent_ids))[:5]}")
    for entry in log:
        key = entry["idempotency_key"] or ""
        assert "\r" not in key, f"an Idempotency-Key with CR: {key!r}"
        assert "\n" not in key, f"an Idempotency-Key with LF: {key!r}"
        assert entry["channel"] in it.CHANNELS, f"a send on path channel {entry['channel']!r}"
        assert entry["status"] == 200, f"the simulator answered {entry['status']}: {entry}"

    for name, (rid, _, content) in forwarded.items():
        result = by_id[rid][0].json()
        entries = it.entries_for(log, rid)
        assert result["status"] == "sent", f"{name}: {result}"
        assert len(entries) == 1, f"{name}: {len(entries)} sends"
        body = it.body_of(entries[0]).encode("utf-8")
        assert content in body, f"{name}: content changed on the way: {body[:300]!r}"
    for rid in after_ids:
        assert by_id[rid][0].json()["status"] == "sent", f"{rid}: {by_id[rid][0].json()}"

    it.assert_log_private(worker, ["line one", "X-Injected"])


def test_no_header_injection(bootstrap, topics, sim, raw_http, worker_factory):
    """No record field or Kafka header adds or changes an HTTP header line,
    as seen in the raw request heads an HTTP server received."""
    allowed = {b"host", b"user-agent", b"accept", b"accept-encoding", b"x-api-key",
               b"content-type", b"content-length", b"idempotency-key", b"expect",
               b"connection"}
    valid_ids = [f"req-header-{i}-{uuid.uuid4().hex}" for i in range(3)]
    spoof_id = f"req-spoof-{uuid.uuid4().hex}"
    records = [{"key": f"inject-{n}".encode(), "value": value}
               for n, (name, (value, _)) in enumerate(rejected_cases(sim).items())
               if "CR" in name or "LF" in name or "NUL" in name or "channel" in name]
    records += [{"key": rid.encode(), "value": envelope(sim, rid=json.dumps(rid).encode())}
                for rid in valid_ids]
    # Kafka headers named like HTTP headers must not reach the API.
    records.append({"key": spoof_id.encode(),
                    "value": envelope(sim, rid=json.dumps(spoof_id).encode()),
                    "headers": [("Idempotency-Key", b"spoofed"), ("X-Injected", b"1"),
                                ("x-api-key", b"spoofed-key")]})

    worker = worker_factory(topics, sim, CHATT2ME_API_BASE_URL=raw_http.url)
    it.produce(bootstrap, topics.requests, records)
    results = it.consume(bootstrap, topics.results, len(records))
    captured = raw_http.captured()

    assert len(results) == len(records), (
        f"expected {len(records)} results, got {len(results)}{worker.log_tail()}")
    assert len(captured) == len(valid_ids) + 1, (
        f"the HTTP server received {len(captured)} requests, expected {len(valid_ids) + 1}")
    seen_ids = set()
    for head, _ in captured:
        request_line, lines = header_lines(head)
        assert request_line.startswith(b"POST /v1/communication/telegram/message HTTP/1."), (
            f"unexpected request line {request_line!r}")
        names = []
        for line in lines:
            assert b"\r" not in line, f"a header line contains CR: {line!r}"
            assert b"\n" not in line, f"a header line contains LF: {line!r}"
            name, sep, value = line.partition(b":")
            assert sep == b":", f"a header line without a colon: {line!r}"
            names.append(name.strip().lower())
            if name.strip().lower() == b"idempotency-key":
                seen_ids.add(value.strip().decode())
            if name.strip().lower() == b"x-api-key":
                assert value.strip() == sim.api_key.encode(), "the x-api-key header was changed"
        assert set(names) <= allowed, f"unexpected headers {sorted(set(names) - allowed)}"
        assert len(names) == len(set(names)), f"a header appears twice: {names}"
        assert b"idempotency-key" in names, "a request without Idempotency-Key"
    assert seen_ids == set(valid_ids) | {spoof_id}, f"Idempotency-Key values {sorted(seen_ids)}"
    it.assert_log_private(worker, ["X-Injected"])
