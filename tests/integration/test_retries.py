"""Retries: transient HTTP statuses and dropped connections are retried
with the same Idempotency-Key, Retry-After is honoured, retries end when
the attempts run out, and a payment request with an unknown outcome is
never sent twice."""

import json
import uuid

from conftest import (assert_log_private, assert_records_free_of, consume, entries_for,
                      index_results, produce, recipient, request_value)

# A 503 from a proxy: no JSON error body, so the error code is http_503.
PROXY_503 = {"status": 503, "body": "<html><body>503 Service Unavailable</body></html>"}


def text_request(sim, rid, to, text, key=None):
    return {"key": (key or rid).encode(),
            "value": request_value(rid, "whatsapp", sim.channel_ids["whatsapp"], to,
                                   json.dumps({"text": text}))}


def statuses(log, rid):
    return [entry["status"] for entry in entries_for(log, rid)]


def test_transient_failures_are_retried(bootstrap, topics, sim, worker_factory):
    text = f"private-text-{uuid.uuid4().hex}"
    cases = {
        "503-503-200": ([PROXY_503, PROXY_503], recipient("whatsapp", 1)),
        "429-200": ([{"status": 429}], recipient("whatsapp", 2)),
    }
    exhausted_to = recipient("whatsapp", 4)
    for responses, to in cases.values():
        sim.add_rule(to=to, responses=responses)
    sim.add_rule(to=exhausted_to, repeat=True, responses=[PROXY_503])
    ids = {name: f"req-{name}-{uuid.uuid4().hex}" for name in list(cases) + ["exhausted"]}
    records = [text_request(sim, ids[name], to, text) for name, (_, to) in cases.items()]
    records.append(text_request(sim, ids["exhausted"], exhausted_to, text))

    worker = worker_factory(topics, sim, CHATT2ME_RETRY_MAX_ATTEMPTS=3)
    produce(bootstrap, topics.requests, records)
    results = consume(bootstrap, topics.results, len(records))
    log = sim.log()
    by_id = index_results(results)

    assert len(results) == len(records), f"expected {len(records)} results, got {len(results)}{worker.log_tail()}"

    rid = ids["503-503-200"]
    result = by_id[rid][0].json()
    assert result["status"] == "sent", f"503-503-200: {result}"
    assert result["attempts"] == 3, f"503-503-200: attempts {result['attempts']}"
    assert result["http_status"] == 200, f"503-503-200: http_status {result['http_status']}"
    assert statuses(log, rid) == [503, 503, 200], f"503-503-200: simulator saw {statuses(log, rid)}"
    assert {e["idempotency_key"] for e in entries_for(log, rid)} == {rid}, "Idempotency-Key changed"
    assert len({e["body"] for e in entries_for(log, rid)}) == 1, "the body changed between attempts"
    assert result["message_id"] == entries_for(log, rid)[-1]["message_id"], "503-503-200: message_id"
    assert by_id[rid][0].header_text("chatt2me.attempts") == "3", "503-503-200: attempts header"

    rid = ids["429-200"]
    result = by_id[rid][0].json()
    assert result["status"] == "sent", f"429-200: {result}"
    assert result["attempts"] == 2, f"429-200: attempts {result['attempts']}"
    assert statuses(log, rid) == [429, 200], f"429-200: simulator saw {statuses(log, rid)}"

    rid = ids["exhausted"]
    result = by_id[rid][0].json()
    assert result["status"] == "failed", f"exhausted: {result}"
    assert result["error"]["class"] == "exhausted", f"exhausted: error {result['error']}"
    assert result["error"]["code"] == "http_503", f"exhausted: error {result['error']}"
    assert result["attempts"] == 3, f"exhausted: attempts {result['attempts']}"
    assert result["http_status"] == 503, f"exhausted: http_status {result['http_status']}"
    assert statuses(log, rid) == [503, 503, 503], f"exhausted: simulator saw {statuses(log, rid)}"

    assert_records_free_of(results, sim.api_key, "result")
    assert_log_private(worker, [text] + [to for _, to in cases.values()] + [exhausted_to])


def test_retry_after_is_honoured(bootstrap, topics, sim, worker_factory):
    text = f"private-text-{uuid.uuid4().hex}"
    to = recipient("whatsapp", 5)
    rid = f"req-retry-after-{uuid.uuid4().hex}"
    sim.add_rule(to=to, responses=[{"status": 503, "retry_after": "2", "body": ""}])

    # The backoff alone (base 50 ms, max 500 ms) would retry far sooner.
    worker = worker_factory(topics, sim)
    produce(bootstrap, topics.requests, [text_request(sim, rid, to, text)])
    results = consume(bootstrap, topics.results, 1)
    sends = entries_for(sim.log(), rid)

    assert len(results) == 1, f"expected 1 result, got {len(results)}{worker.log_tail()}"
    result = results[0].json()
    assert result["status"] == "sent", f"{result}"
    assert result["attempts"] == 2, f"attempts {result['attempts']}"
    assert [e["status"] for e in sends] == [503, 200], f"simulator saw {sends}"
    gap_ms = sends[1]["time_ms"] - sends[0]["time_ms"]
    # Retry-After: 2 means no retry before 2 s. The 100 ms below that
    # allow for the two timestamps being taken at different points of the
    # simulator's request handling.
    assert gap_ms >= 1900, f"the retry came {gap_ms} ms after the 503 with Retry-After: 2"
    assert_log_private(worker, [text, to])


def send_one_by_one(bootstrap, topics, worker, phases):
    """Produce one record per phase, each once the previous one has its
    result, and return all results. Starting a send after the previous one
    completed leaves an idle keep-alive connection in the worker's pool, so
    the send runs on a reused connection, as it does in a busy worker."""
    results = []
    for count, (phase, record) in enumerate(phases, start=1):
        produce(bootstrap, topics.requests, [record])
        results = consume(bootstrap, topics.results, count, linger=0.5)
        assert len(results) == count, f"{phase}: expected {count} results, got {len(results)}{worker.log_tail()}"
    return results


def test_unknown_outcome_payment_not_resent(bootstrap, topics, sim, worker_factory):
    text = f"private-text-{uuid.uuid4().hex}"
    warm_to = recipient("whatsapp", 10)
    fresh_to = recipient("whatsapp", 11)
    reused_to = recipient("whatsapp", 12)
    sim.add_rule(to=fresh_to, responses=[{"drop": True}])
    sim.add_rule(to=reused_to, responses=[{"drop": True}])

    def payment_record(rid, to):
        payment = {"paymentRequest": {
            "bodyText": text,
            "referenceId": f"ref-{uuid.uuid4().hex}",
            "paymentMethod": "pix",
            "pix": {"key": "pix-key-0001", "keyType": "EVP", "merchantName": "Test Store"},
            "totalAmountCents": 1500,
            "currency": "BRL",
        }}
        return {"key": rid.encode(),
                "value": request_value(rid, "whatsapp", sim.channel_ids["whatsapp"], to,
                                       json.dumps(payment))}

    fresh_id = f"req-payment-fresh-{uuid.uuid4().hex}"
    reused_id = f"req-payment-reused-{uuid.uuid4().hex}"
    worker = worker_factory(topics, sim)
    results = send_one_by_one(bootstrap, topics, worker, [
        ("payment on a new connection", payment_record(fresh_id, fresh_to)),
        ("warm-up", text_request(sim, f"req-warm-{uuid.uuid4().hex}", warm_to, text)),
        ("payment on a reused connection", payment_record(reused_id, reused_to)),
    ])
    log = sim.log()
    by_id = index_results(results)

    for name, rid in (("new connection", fresh_id), ("reused connection", reused_id)):
        result = by_id[rid][0].json()
        assert statuses(log, rid) == [0], (
            f"{name}: the payment request reached the simulator {len(statuses(log, rid))} times "
            f"(statuses {statuses(log, rid)}); after a dropped connection it must not be sent again")
        assert result["status"] == "failed", f"{name}: {result}"
        assert result["error"]["class"] == "unknown_outcome", f"{name}: error {result['error']}"
        assert result["attempts"] == 1, f"{name}: attempts {result['attempts']}"
        assert result["message_id"] is None, f"{name}: message_id {result['message_id']}"

    assert_records_free_of(results, sim.api_key, "result")
    assert_log_private(worker, [text, warm_to, fresh_to, reused_to, "pix-key-0001"])


def test_dropped_connection_retried(bootstrap, topics, sim, worker_factory):
    """A text request in the situation of the payment request above: it
    may be sent again, and the worker counts every attempt."""
    text = f"private-text-{uuid.uuid4().hex}"
    warm_to = recipient("whatsapp", 20)
    fresh_to = recipient("whatsapp", 21)
    reused_to = recipient("whatsapp", 22)
    sim.add_rule(to=fresh_to, responses=[{"drop": True}])
    sim.add_rule(to=reused_to, responses=[{"drop": True}])
    fresh_id = f"req-text-fresh-{uuid.uuid4().hex}"
    reused_id = f"req-text-reused-{uuid.uuid4().hex}"

    worker = worker_factory(topics, sim)
    results = send_one_by_one(bootstrap, topics, worker, [
        ("text on a new connection", text_request(sim, fresh_id, fresh_to, text)),
        ("warm-up", text_request(sim, f"req-warm-{uuid.uuid4().hex}", warm_to, text)),
        ("text on a reused connection", text_request(sim, reused_id, reused_to, text)),
    ])
    log = sim.log()
    by_id = index_results(results)

    # Status 0 in the simulator log is a dropped connection.
    for name, rid in (("new connection", fresh_id), ("reused connection", reused_id)):
        result = by_id[rid][0].json()
        assert statuses(log, rid) == [0, 200], f"{name}: simulator saw {statuses(log, rid)}"
        assert result["status"] == "sent", f"{name}: {result}"
        assert result["attempts"] == 2, (
            f"{name}: the simulator saw 2 attempts but the result counts {result['attempts']}")
        assert result["message_id"] == entries_for(log, rid)[-1]["message_id"], f"{name}: message_id"

    assert_log_private(worker, [text, warm_to, fresh_to, reused_to])
