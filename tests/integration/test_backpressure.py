"""The buffer bound: a worker whose API is slow pauses consumption at
worker.max_buffered, keeps polling while paused, and so stays in its group
even when the pause lasts longer than max.poll.interval.ms."""

import json
import re
import threading
import time
import urllib.request
import uuid

from conftest import (REQUESTS_PARTITIONS, WAIT_SECONDS, assert_log_private, consume,
                      index_results, produce, recipient, request_value, wait_for)

MAX_IN_FLIGHT = 4
MAX_BUFFERED = 16
MAX_POLL_INTERVAL_MS = 10000
# Every response waits this long, so 200 requests at 4 in flight keep the
# worker at its bound for about 15 s in total.
LATENCY_MS = 300
REQUEST_COUNT = 200
# The first MAX_IN_FLIGHT requests wait this much longer. They hold every
# HTTP slot while the bound is reached, so the partitions stay paused in one
# stretch longer than max.poll.interval.ms: a worker that stopped polling
# while paused would be evicted from the group.
SLOW_DELAY_MS = MAX_POLL_INTERVAL_MS + 1500
# poll_consumer (src/worker.c) reads its first record of a loop turn even
# when the buffer is already at the bound, and control_flow pauses at the
# end of that same turn. Records fetched before the pause are dropped by
# librdkafka, so the buffer can exceed the bound by this one record.
BUFFERED_SLACK = 1
SCRAPE_INTERVAL_SECONDS = 0.1
CLOCK_TOLERANCE_MS = 2

HEALTH_PORT_RE = r"health server listening on 127\.0\.0\.1 port (\d+)"


def read_gauges(url, opener):
    """Return the unlabelled gauges of one /metrics scrape as a dict."""
    with opener.open(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    gauges = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*) ([0-9.eE+-]+)$", line)
        if match:
            gauges[match.group(1)] = float(match.group(2))
    return gauges


class MetricsScraper(threading.Thread):
    """Scrape /metrics until stopped, keeping every sample and every error."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        # Loopback only, whatever *_proxy variables the caller has set.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.samples = []
        self.errors = []
        self.stop_event = threading.Event()

    def run(self):
        deadline = time.monotonic() + 3 * WAIT_SECONDS
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            try:
                self.samples.append((time.monotonic(), read_gauges(self.url, self.opener)))
            except OSError as err:
                self.errors.append(str(err))
            self.stop_event.wait(SCRAPE_INTERVAL_SECONDS)

    def stop(self):
        self.stop_event.set()
        self.join(timeout=30)


def max_concurrency_lower_bound(entries, delay_of):
    """Return a lower bound of the number of requests the simulator served at
    once, from each entry's arrival time_ms and its known response delay.

    An entry i is still open when entry j arrives if time_ms(i) <= time_ms(j)
    and time_ms(i) + delay(i) - CLOCK_TOLERANCE_MS > time_ms(j). The
    simulator starts the delay after the request arrived, but time_ms
    truncates the wall clock to the millisecond and the delay timer
    truncates the monotonic clock, so a response can leave up to 2 ms
    before time_ms + delay.
    """
    highest = 0
    for j in entries:
        open_now = sum(1 for i in entries
                       if i["time_ms"] <= j["time_ms"]
                       and i["time_ms"] + delay_of(i) - CLOCK_TOLERANCE_MS > j["time_ms"])
        highest = max(highest, open_now)
    return highest


def test_buffer_bound_pauses_and_keeps_membership(bootstrap, topics, sim_factory,
                                                  worker_factory):
    sim = sim_factory(latency_ms=LATENCY_MS)
    channel = "whatsapp"
    text = f"private-text-{uuid.uuid4().hex}"
    slow_to = [recipient(channel, 900 + n) for n in range(MAX_IN_FLIGHT)]
    for to in slow_to:
        sim.add_rule(channel=channel, to=to, responses=[{"delay_ms": SLOW_DELAY_MS}])
    slow_ids = [f"req-slow-{n}-{uuid.uuid4().hex}" for n in range(MAX_IN_FLIGHT)]
    rest_ids = [f"req-{n}-{uuid.uuid4().hex}" for n in range(REQUEST_COUNT - MAX_IN_FLIGHT)]
    slow_records = [{"key": f"slow-{n}".encode(),
                     "value": request_value(rid, channel, sim.channel_ids[channel], to,
                                            json.dumps({"text": text}))}
                    for n, (rid, to) in enumerate(zip(slow_ids, slow_to))]
    rest_to = [recipient(channel, 1000 + n) for n in range(len(rest_ids))]
    # Keys spread the requests over the partitions and ordering keys, so
    # that ordering never limits concurrency below MAX_IN_FLIGHT.
    rest_records = [{"key": f"key-{n}".encode(),
                     "value": request_value(rid, channel, sim.channel_ids[channel], to,
                                            json.dumps({"text": text}))}
                    for n, (rid, to) in enumerate(zip(rest_ids, rest_to))]

    worker = worker_factory(topics, sim,
                            CHATT2ME_WORKER_MAX_IN_FLIGHT=MAX_IN_FLIGHT,
                            CHATT2ME_WORKER_MAX_BUFFERED=MAX_BUFFERED,
                            CHATT2ME_CONSUMER_PROPERTY_MAX_POLL_INTERVAL_MS=MAX_POLL_INTERVAL_MS)
    worker.wait_for_log(HEALTH_PORT_RE)
    health_port = int(re.search(HEALTH_PORT_RE, worker.log_text()).group(1))
    worker.wait_assigned()
    scraper = MetricsScraper(f"http://127.0.0.1:{health_port}/metrics")
    scraper.start()
    try:
        # The slow requests go first and take every HTTP slot. The rest
        # then fills the buffer up to its bound behind them.
        produce(bootstrap, topics.requests, slow_records)
        wait_for(lambda: len([e for e in sim.log() if e["idempotency_key"] in slow_ids])
                 == MAX_IN_FLIGHT,
                 WAIT_SECONDS, "the simulator to receive the slow requests", worker.log_tail)
        produce(bootstrap, topics.requests, rest_records)
        results = consume(bootstrap, topics.results, REQUEST_COUNT,
                          timeout=2 * WAIT_SECONDS)
    finally:
        scraper.stop()
    log = sim.log()
    by_id = index_results(results)
    worker_log = worker.log_text()

    assert len(results) == REQUEST_COUNT, (
        f"expected {REQUEST_COUNT} results, got {len(results)}{worker.log_tail()}")
    for rid in slow_ids + rest_ids:
        assert len(by_id.get(rid, [])) == 1, (
            f"{rid}: expected one result, got {len(by_id.get(rid, []))}")
        assert by_id[rid][0].json()["status"] == "sent", f"{rid}: {by_id[rid][0].json()}"

    assert scraper.errors == [], f"scraping /metrics failed: {scraper.errors[:5]}"
    paused = [g.get("chatt2me_partitions_paused", 0) for _, g in scraper.samples]
    buffered = [g.get("chatt2me_requests_buffered", 0) for _, g in scraper.samples]
    assert len(buffered) > 0, "no /metrics sample was taken"
    assert all("chatt2me_requests_buffered" in g for _, g in scraper.samples), (
        "a /metrics scrape lacks chatt2me_requests_buffered")
    assert max(paused) > 0, (
        f"chatt2me_partitions_paused stayed 0 in {len(paused)} samples; "
        f"chatt2me_requests_buffered peaked at {max(buffered)}")
    assert max(buffered) <= MAX_BUFFERED + BUFFERED_SLACK, (
        f"chatt2me_requests_buffered reached {max(buffered)}, above the bound "
        f"{MAX_BUFFERED} + {BUFFERED_SLACK}")

    assigned = re.findall(r"\[worker\] assigned ", worker_log)
    assert len(assigned) == REQUESTS_PARTITIONS, (
        f"expected each of the {REQUESTS_PARTITIONS} partitions assigned once, got "
        f"{len(assigned)} assignments: the worker rejoined its group{worker.log_tail()}")
    assert "revoked" not in worker_log, (
        f"the worker lost its partitions while paused{worker.log_tail()}")
    assert worker.running(), f"the worker exited{worker.log_tail()}"

    slow_set = set(slow_ids)
    sends = [e for e in log if e["channel"] == channel]
    assert len(sends) == REQUEST_COUNT, (
        f"the simulator received {len(sends)} sends for {REQUEST_COUNT} requests")
    concurrency = max_concurrency_lower_bound(
        sends, lambda e: LATENCY_MS + (SLOW_DELAY_MS if e["idempotency_key"] in slow_set else 0))
    assert concurrency <= MAX_IN_FLIGHT, (
        f"the simulator served at least {concurrency} requests at once, "
        f"more than worker.max_in_flight {MAX_IN_FLIGHT}")

    print(f"{len(scraper.samples)} /metrics samples, {sum(1 for p in paused if p > 0)} paused, "
          f"buffered peak {max(buffered)}, simulator concurrency at least {concurrency}")
    assert_log_private(worker, [text] + slow_to + rest_to)
