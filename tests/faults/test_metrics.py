"""/metrics against the records. After a run with every kind of outcome,
the counters equal the counts in the results topic, the dead-letter topic
and the simulator log. Every scrape parses as Prometheus text and does not
contain the API key."""

import collections
import json
import time
import uuid

from faults_b_util import health_port, it, metric, metric_sum, parse_metrics, read_topic, scrape

COUNTERS = ("chatt2me_requests_consumed_total", "chatt2me_results_total",
            "chatt2me_http_responses_total", "chatt2me_retries_total")


def results_label(status, error_class):
    return {"status": status, "class": error_class}


def check_histogram(samples, name, where):
    """Assert that a histogram's buckets are cumulative and end in _count."""
    buckets = sorted(((float(dict(labels)["le"]), value)
                      for (sample, labels), value in samples.items()
                      if sample == f"{name}_bucket"), key=lambda b: b[0])
    assert buckets, f"{where}: {name} has no buckets"
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), f"{where}: {name} buckets are not cumulative: {buckets}"
    assert buckets[-1][0] == float("inf"), f"{where}: {name} has no +Inf bucket"
    assert metric(samples, f"{name}_count") == buckets[-1][1], (
        f"{where}: {name}_count differs from the +Inf bucket")


def test_metrics_match_records(bootstrap, topics, sim, worker_factory):
    """After a run with every kind of outcome, the metrics equal the counts
    in Kafka and the simulator log, and every scrape parses and omits the
    API key."""
    text = f"private-text-{uuid.uuid4().hex}"
    telegram = sim.channel_ids["telegram"]
    to_400 = [it.recipient("telegram", 400 + i) for i in range(2)]
    to_401 = [it.recipient("telegram", 4010 + i) for i in range(3)]
    to_retried = [it.recipient("telegram", 5030 + i) for i in range(2)]
    to_exhausted = it.recipient("telegram", 5099)
    for to in to_400:
        sim.add_rule(to=to, responses=[{"status": 400}])
    for to in to_401:
        sim.add_rule(to=to, repeat=True, responses=[{"status": 401}])
    for to in to_retried:
        sim.add_rule(to=to, responses=[{"status": 503}, {"status": 503}])
    sim.add_rule(to=to_exhausted, repeat=True, responses=[{"status": 503}])

    plain = [it.recipient("telegram", i) for i in range(10)]
    records = []
    for n, to in enumerate(plain + to_400 + to_401 + to_retried + [to_exhausted]):
        rid = f"req-metrics-{n}-{uuid.uuid4().hex}"
        records.append({"key": rid.encode(),
                        "value": it.request_value(rid, "telegram", telegram, to,
                                                  json.dumps({"text": text}))})
    # Rejected: an unknown channel, invalid JSON and a tombstone.
    records.append({"key": b"rejected-1",
                    "value": it.request_value(f"req-rejected-{uuid.uuid4().hex}", "signal",
                                              telegram, "1", json.dumps({"text": text}))})
    records.append({"key": b"rejected-2", "value": b'{"id": "broken",'})
    records.append({"key": b"rejected-3", "value": None})
    expected_outputs = len(records)

    worker = worker_factory(topics, sim, CHATT2ME_RETRY_MAX_ATTEMPTS=3)
    port = health_port(worker)
    scrapes = [scrape(port)]
    it.produce(bootstrap, topics.requests, records)

    # Scrape while the run goes on, until every request has its output.
    deadline = time.monotonic() + it.WAIT_SECONDS
    while True:
        scrapes.append(scrape(port))
        outputs = (len(read_topic(bootstrap, topics.results))
                   + len(read_topic(bootstrap, topics.dead_letters)))
        if outputs >= expected_outputs:
            break
        assert time.monotonic() < deadline, (
            f"only {outputs} of {expected_outputs} outputs after {it.WAIT_SECONDS} s"
            f"{worker.log_tail()}")
        time.sleep(0.2)

    # Outcomes are counted when Kafka acknowledges them, which may be a
    # moment after a reader sees the record.
    def counted_all():
        samples = parse_metrics(scrapes[-1])
        if metric_sum(samples, "chatt2me_results_total") >= expected_outputs:
            return True
        scrapes.append(scrape(port))
        return False

    it.wait_for(counted_all, 30, "chatt2me_results_total to count every output", worker.log_tail)
    results = read_topic(bootstrap, topics.results)
    dead_letters = read_topic(bootstrap, topics.dead_letters)
    log = sim.log()
    samples = parse_metrics(scrapes[-1])

    assert len(results) + len(dead_letters) == expected_outputs, (
        f"{len(results)} results and {len(dead_letters)} dead letters for {expected_outputs} requests")

    # Results, by status and class, against the results topic.
    by_outcome = collections.Counter(
        (r.json()["status"], (r.json()["error"] or {}).get("class", "none")) for r in results)
    by_outcome[("dead_letter", "auth")] = len(dead_letters)
    for (status, error_class), count in sorted(by_outcome.items()):
        value = metric(samples, "chatt2me_results_total", **results_label(status, error_class))
        assert value == count, (
            f"chatt2me_results_total{{status={status},class={error_class}}} is {value}, "
            f"the topics hold {count}")
    assert metric_sum(samples, "chatt2me_results_total") == expected_outputs, (
        "chatt2me_results_total counts outcomes that are not in the topics")
    assert by_outcome[("sent", "none")] == len(plain) + len(to_retried), f"outcomes {by_outcome}"
    assert by_outcome[("failed", "bad_request")] == len(to_400), f"outcomes {by_outcome}"
    assert by_outcome[("failed", "exhausted")] == 1, f"outcomes {by_outcome}"
    assert by_outcome[("rejected", "invalid_request")] == 3, f"outcomes {by_outcome}"
    assert by_outcome[("dead_letter", "auth")] == len(to_401), f"outcomes {by_outcome}"

    consumed = metric(samples, "chatt2me_requests_consumed_total")
    assert consumed == len(records), f"chatt2me_requests_consumed_total is {consumed}, produced {len(records)}"

    # Retries: every send of a request after its first, in the simulator
    # log and in the results' attempts.
    sends = collections.Counter(entry["idempotency_key"] for entry in log)
    retries_in_log = sum(count - 1 for count in sends.values())
    retries_in_results = sum(r.json()["attempts"] - 1 for r in results if r.json()["attempts"] > 0)
    retries = metric(samples, "chatt2me_retries_total")
    assert retries_in_log == 2 * len(to_retried) + 2, f"the simulator saw {retries_in_log} retries"
    assert retries == retries_in_log, f"chatt2me_retries_total is {retries}, the simulator saw {retries_in_log}"
    assert retries == retries_in_results, f"chatt2me_retries_total is {retries}, results count {retries_in_results}"

    # HTTP responses by status class, against the simulator log.
    by_class = collections.Counter(f"{entry['status'] // 100}xx" for entry in log)
    for code in ("2xx", "4xx", "5xx"):
        value = metric(samples, "chatt2me_http_responses_total", channel="telegram", code=code)
        assert value == by_class[code], (
            f"chatt2me_http_responses_total{{channel=telegram,code={code}}} is {value}, "
            f"the simulator answered {by_class[code]}")
    transport = metric_sum(samples, "chatt2me_http_responses_total", code="transport_error")
    assert transport == 0, f"{transport} transport errors counted, none happened"
    assert metric_sum(samples, "chatt2me_http_responses_total") == len(log), (
        "chatt2me_http_responses_total differs from the number of sends")
    assert metric(samples, "chatt2me_http_request_duration_seconds_count") == len(log), (
        "the HTTP duration histogram counts other than one observation per send")
    assert metric(samples, "chatt2me_request_duration_seconds_count") == expected_outputs, (
        "the request duration histogram counts other than one observation per outcome")

    # Every scrape parses and omits the key, and no counter ever goes down.
    previous = {}
    for number, text_scraped in enumerate(scrapes):
        assert sim.api_key not in text_scraped, f"scrape {number} contains the API key"
        parsed = parse_metrics(text_scraped)
        check_histogram(parsed, "chatt2me_http_request_duration_seconds", f"scrape {number}")
        check_histogram(parsed, "chatt2me_request_duration_seconds", f"scrape {number}")
        for key, value in parsed.items():
            if key[0] in COUNTERS and key in previous:
                assert value >= previous[key], f"scrape {number}: counter {key} went down"
        previous = parsed
    print(f"metrics: {len(scrapes)} scrapes, outcomes {dict(by_outcome)}, {len(log)} sends")
    it.assert_log_private(worker, [text] + plain + to_400 + to_401 + to_retried + [to_exhausted])
