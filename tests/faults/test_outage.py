"""API outages and a slow API. An outage parks requests instead of failing
them and ends by itself when the API responds again. An attempt that
times out is retried, except for a payment request."""

import collections
import json
import time
import uuid

from faults_b_util import (assert_commits_covered, health_port, http_get, it, metric,
                           metric_sum, parse_metrics, read_topic, restartable_sim, scale,
                           scrape, text_record)

# Outage length in CI, multiplied by C2M_FAULTS_SCALE (10 gives 200 s).
OUTAGE_SECONDS = 20
# Requests per batch in CI, multiplied by C2M_FAULTS_SCALE too.
BATCH = 20
OUTAGE_READYZ_LINE = "not ready: API outage mode is active"


def outage_state(port):
    """Return (readyz status, readyz text, chatt2me_outage_mode, samples)."""
    status, text = http_get(port, "/readyz")
    samples = parse_metrics(scrape(port))
    return status, text, metric(samples, "chatt2me_outage_mode"), samples


def test_api_outage_then_recovery(bootstrap, topics, restartable_sim, worker_factory):
    """An API outage (503, then refused connections) parks every request
    without failing, dead-lettering or committing it, and all end sent once
    the API is back."""
    outage_seconds = OUTAGE_SECONDS * scale()
    batch = BATCH * scale()
    text = f"private-text-{uuid.uuid4().hex}"
    sim = restartable_sim.start()

    def batch_of(name, first):
        return [text_record(restartable_sim, f"req-{name}-{i}-{uuid.uuid4().hex}", "telegram",
                            it.recipient("telegram", first + i), text) for i in range(batch)]

    before, held, late = batch_of("before", 0), batch_of("held", 10000), batch_of("late", 20000)
    all_ids = {json.loads(r["value"])["id"] for r in before + held + late}

    # The retry budget (5 attempts within 5 s) is far shorter than the
    # outage, so a request that used it up during the outage would fail.
    worker = worker_factory(topics, sim,
                            CHATT2ME_RETRY_OUTAGE_AFTER=5,
                            CHATT2ME_RETRY_MAX_ATTEMPTS=5,
                            CHATT2ME_RETRY_MAX_TOTAL_MS=5000,
                            CHATT2ME_RETRY_PROBE_MAX_MS=1000)
    port = health_port(worker)

    it.produce(bootstrap, topics.requests, before)
    first_results = it.consume(bootstrap, topics.results, len(before), linger=0)
    assert len(first_results) == len(before), (
        f"expected {len(before)} results before the outage, got {len(first_results)}"
        f"{worker.log_tail()}")
    status, text_ready, outage, _ = outage_state(port)
    assert status == 200, f"/readyz before the outage: HTTP {status} {text_ready!r}"
    assert outage == 0, f"chatt2me_outage_mode before the outage: {outage}"

    # Phase 1: the API responds with 503 to every send.
    outage_start = time.monotonic()
    sim.set_mode(status=503)
    it.produce(bootstrap, topics.requests, held)
    it.wait_for(lambda: outage_state(port)[2] == 1, 60, "chatt2me_outage_mode 1",
                worker.log_tail)
    consumed_at_start = metric(outage_state(port)[3], "chatt2me_requests_consumed_total")
    status, text_ready, outage, _ = outage_state(port)
    assert status == 503, f"/readyz during the 503 phase: HTTP {status} {text_ready!r}"
    assert OUTAGE_READYZ_LINE in text_ready, f"/readyz during the 503 phase: {text_ready!r}"
    assert_commits_covered(bootstrap, topics, it.REQUESTS_PARTITIONS, "during the 503 phase")

    # Phase 2: nothing listens on the API port. Records produced now must
    # stay in Kafka until the outage ends.
    time.sleep(max(0.0, outage_seconds * 0.4 - (time.monotonic() - outage_start)))
    restartable_sim.stop()
    it.produce(bootstrap, topics.requests, late)
    time.sleep(max(0.0, outage_seconds - (time.monotonic() - outage_start)))

    status, text_ready, outage, samples = outage_state(port)
    assert status == 503, f"/readyz with connections refused: HTTP {status} {text_ready!r}"
    assert OUTAGE_READYZ_LINE in text_ready, f"/readyz with connections refused: {text_ready!r}"
    assert outage == 1, f"chatt2me_outage_mode with connections refused: {outage}"
    consumed_at_end = metric(samples, "chatt2me_requests_consumed_total")
    assert consumed_at_end == consumed_at_start, (
        f"the worker consumed {consumed_at_end - consumed_at_start} requests during outage mode")
    assert consumed_at_end <= len(before) + len(held), (
        f"the worker consumed {consumed_at_end} requests, more than the "
        f"{len(before) + len(held)} produced before the outage began")
    assert worker.running(), f"the worker exited during the outage{worker.log_tail()}"
    during = read_topic(bootstrap, topics.results)
    failed_during = [r.json() for r in during if r.json()["status"] != "sent"]
    assert failed_during == [], f"results other than sent during the outage: {failed_during[:3]}"
    assert read_topic(bootstrap, topics.dead_letters) == [], "dead letters during the outage"
    assert_commits_covered(bootstrap, topics, it.REQUESTS_PARTITIONS, "with connections refused")

    # Recovery: the API is back on the same port, without the 503 mode.
    restartable_sim.start()
    total = len(before) + len(held) + len(late)
    results = it.consume(bootstrap, topics.results, total)
    by_id = it.index_results(results)
    dead_letters = read_topic(bootstrap, topics.dead_letters)

    assert len(results) == total, f"expected {total} results, got {len(results)}{worker.log_tail()}"
    assert set(by_id) == all_ids, f"results for unknown ids: {sorted(set(by_id) - all_ids)[:5]}"
    duplicated = [rid for rid, found in by_id.items() if len(found) != 1]
    assert duplicated == [], f"requests with more than one result: {duplicated[:5]}"
    not_sent = [r.json() for r in results if r.json()["status"] != "sent"]
    assert not_sent == [], f"{len(not_sent)} requests did not end sent, first: {not_sent[:2]}"
    assert dead_letters == [], f"{len(dead_letters)} dead letters after an outage"

    log = restartable_sim.logs()
    accepted = collections.Counter(e["idempotency_key"] for e in log if e["accepted"])
    assert set(accepted) == all_ids, "some requests were never accepted by the simulator"
    twice = [rid for rid, count in accepted.items() if count != 1]
    assert twice == [], f"requests accepted more than once: {twice[:5]}"

    it.wait_for(lambda: http_get(port, "/readyz")[0] == 200, 30, "/readyz 200 after recovery",
                worker.log_tail)
    assert metric(parse_metrics(scrape(port)), "chatt2me_outage_mode") == 0, \
        "chatt2me_outage_mode after recovery"
    def all_committed():
        committed = it.committed_offsets(bootstrap, topics.group, topics.requests,
                                         it.REQUESTS_PARTITIONS)
        return sum(max(offset, 0) for offset in committed.values()) == total

    it.wait_for(all_committed, 30, f"committed offsets covering all {total} requests",
                worker.log_tail)
    assert_commits_covered(bootstrap, topics, it.REQUESTS_PARTITIONS, "after recovery")
    it.assert_log_private(worker, [text])


def payment_record(sim, rid, to, reference):
    content = {"paymentRequest": {
        "bodyText": f"Order {reference}",
        "referenceId": reference,
        "paymentMethod": "pix",
        "pix": {"key": "pix-key-0001", "keyType": "EVP", "merchantName": "Test Store"},
        "totalAmountCents": 1500,
    }}
    return {"key": rid.encode(),
            "value": it.request_value(rid, "whatsapp", sim.channel_ids["whatsapp"], to,
                                      json.dumps(content))}


def test_slow_api_timeouts(bootstrap, topics, sim, worker_factory):
    """A timed-out attempt is retried and flagged possible_duplicate for a
    text request, never repeated for a payment request, and counted as a
    transport_error."""
    text = f"private-text-{uuid.uuid4().hex}"
    text_to = it.recipient("telegram", 1)
    payment_to = it.recipient("whatsapp", 2)
    text_id = f"req-slow-text-{uuid.uuid4().hex}"
    payment_id = f"req-slow-payment-{uuid.uuid4().hex}"
    # The simulator responds to the first attempt of each after 1.5 s,
    # three times the worker's timeout, and to later attempts at once.
    sim.add_rule(to=text_to, channel="telegram", responses=[{"delay_ms": 1500}])
    sim.add_rule(to=payment_to, channel="whatsapp", responses=[{"delay_ms": 1500}])

    worker = worker_factory(topics, sim,
                            CHATT2ME_API_REQUEST_TIMEOUT_MS=500,
                            CHATT2ME_API_CONNECT_TIMEOUT_MS=250)
    port = health_port(worker)
    it.produce(bootstrap, topics.requests, [
        text_record(sim, text_id, "telegram", text_to, text),
        payment_record(sim, payment_id, payment_to, f"ref-{uuid.uuid4().hex}"),
    ])
    results = it.consume(bootstrap, topics.results, 2)
    by_id = it.index_results(results)
    log = sim.log()

    assert len(results) == 2, f"expected 2 results, got {len(results)}{worker.log_tail()}"

    result = by_id[text_id][0].json()
    assert result["status"] == "sent", f"text request: {result}"
    assert result["attempts"] >= 2, f"text request: attempts {result['attempts']}"
    assert result.get("possible_duplicate") is True, (
        f"text request sent again after a timeout: possible_duplicate is "
        f"{result.get('possible_duplicate')!r}")
    # Every attempt reaches the simulator here: an attempt that fails
    # without a send means the worker left a transfer idle until it timed out.
    assert len(it.entries_for(log, text_id)) == result["attempts"], (
        f"text request: the simulator saw {len(it.entries_for(log, text_id))} sends, "
        f"the result counts {result['attempts']} attempts{worker.log_tail()}")

    result = by_id[payment_id][0].json()
    assert result["status"] == "failed", f"payment request: {result}"
    assert result["error"]["class"] == "unknown_outcome", f"payment request: {result['error']}"
    assert result["error"]["code"] == "timeout", f"payment request: {result['error']}"
    assert result.get("possible_duplicate") is False, (
        f"payment request: possible_duplicate is {result.get('possible_duplicate')!r}")
    assert len(it.entries_for(log, payment_id)) == 1, (
        f"the payment request reached the simulator {len(it.entries_for(log, payment_id))} times")
    assert result["attempts"] == 1, (
        f"payment request: the result counts {result['attempts']} attempts for 1 send"
        f"{worker.log_tail()}")

    samples = parse_metrics(scrape(port))
    timeouts = metric_sum(samples, "chatt2me_http_responses_total", code="transport_error")
    assert timeouts == 2, f"chatt2me_http_responses_total{{code=\"transport_error\"}} is {timeouts}, expected 2"
    assert metric(samples, "chatt2me_http_responses_total", channel="telegram",
                  code="transport_error") == 1, "telegram transport_error count"
    assert metric(samples, "chatt2me_http_responses_total", channel="whatsapp",
                  code="transport_error") == 1, "whatsapp transport_error count"
    outcomes = metric(samples, "chatt2me_results_total",
                      **{"status": "failed", "class": "unknown_outcome"})
    assert outcomes == 1, f"chatt2me_results_total of failed unknown_outcome is {outcomes}"
    it.assert_log_private(worker, [text, text_to, payment_to])
