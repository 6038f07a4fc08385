"""One measurement each: the worker or the peer against the simulator on
fresh topics, from start to the last result, with its numbers."""

import datetime
import itertools
import json
import os
import signal
import sys
import threading
import time
import urllib.request

from .procs import (BenchError, Sampler, read_status_kib, read_system_cpu, wait_for_file,
                    wait_for_quiet)

API_KEY = "bench-key"
REQUEST_PARTITIONS = 8
RESULT_PARTITIONS = 8


def percentile(values, fraction):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, int(round(fraction * len(ordered) + 0.5 - 1e-9)))
    return ordered[min(rank, len(ordered)) - 1]


def parse_rfc3339_ms(text):
    """Milliseconds since the epoch of "YYYY-MM-DDTHH:MM:SS.mmmZ"."""
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(round(moment.timestamp() * 1000))


class Bench:
    """Shared state of the cells: tools, paths, Kafka and the request set."""

    def __init__(self, args, kafka, children, request_set):
        self.worker_bin = args.worker
        self.sim_bin = args.sim
        self.python = sys.executable
        self.peer_script = os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), "peer.py")
        self.logs = os.path.join(args.out, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.kafka = kafka
        self.children = children
        self.requests = request_set
        self.sim_threads = args.sim_threads
        self.worker_log_level = getattr(args, "worker_log_level", "warn")
        self.sim_request_log = getattr(args, "sim_request_log", False)
        self.worker_extra_env = dict(getattr(args, "worker_env", None) or [])
        self.max_buffered = getattr(args, "max_buffered", "4096")
        self.broker_pid = getattr(args, "broker_pid", None)
        self.quiet_threshold = getattr(args, "quiet_threshold", 0.25)
        self.quiet_timeout = getattr(args, "quiet_timeout", 20)
        self._serial = itertools.count(1)
        self.tag = "b%x" % (int(time.time()) & 0xFFFFFF)

    # ---- pieces -------------------------------------------------------

    def new_cell(self, label):
        number = next(self._serial)
        name = "%s-%03d-%s" % (self.tag, number, label)
        return {
            "name": name,
            "requests": name + ".requests",
            "results": name + ".results",
            "dead": name + ".dead-letters",
            "group": name + ".group",
        }

    def create_topics(self, cell):
        self.kafka.create_topics({cell["requests"]: REQUEST_PARTITIONS,
                                  cell["results"]: RESULT_PARTITIONS,
                                  cell["dead"]: 1})

    def delete_topics(self, cell):
        self.kafka.delete_topics([cell["requests"], cell["results"], cell["dead"]])

    def start_sim(self, cell, latency_ms):
        port_file = os.path.join(self.logs, cell["name"] + ".sim.port")
        argv = [self.sim_bin, "--port", "0", "--port-file", port_file,
                "--api-key", API_KEY, "--latency-ms", str(latency_ms),
                "--threads", str(self.sim_threads), "--quiet"]
        if self.sim_request_log:
            argv += ["--log", os.path.join(self.logs, cell["name"] + ".sim.jsonl")]
        proc = self.children.start(argv, os.path.join(self.logs, cell["name"] + ".sim.log"))
        wait_for_file(port_file, proc, 10, "chatt2me-sim")
        with open(port_file) as f:
            port = int(f.read().strip())
        return proc, "http://127.0.0.1:%d" % port

    @staticmethod
    def sim_stats(url):
        with urllib.request.urlopen(url + "/_sim/stats", timeout=10) as answer:
            return json.load(answer)

    def worker_env(self, cell, url, in_flight, buffered):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CHATT2ME_KAFKA_BROKERS": self.kafka.bootstrap,
            "CHATT2ME_KAFKA_GROUP_ID": cell["group"],
            "CHATT2ME_KAFKA_REQUESTS_TOPIC": cell["requests"],
            "CHATT2ME_KAFKA_RESULTS_TOPIC": cell["results"],
            "CHATT2ME_KAFKA_DEAD_LETTER_TOPIC": cell["dead"],
            "CHATT2ME_API_BASE_URL": url,
            "CHATT2ME_API_KEY": API_KEY,
            "CHATT2ME_WORKER_MAX_IN_FLIGHT": str(in_flight),
            "CHATT2ME_WORKER_MAX_BUFFERED": str(buffered),
            "CHATT2ME_LOG_LEVEL": self.worker_log_level,
            # Health server on loopback and a free port: cells never collide.
            "CHATT2ME_HEALTH_ADDRESS": "127.0.0.1",
            "CHATT2ME_HEALTH_PORT": "0",
        }
        env.update(self.worker_extra_env)
        return env

    def buffered_for(self, in_flight):
        """worker.max_buffered for a cell: a fixed number raised to the
        in-flight limit when below it, or "Kx": K times the in-flight limit."""
        if self.max_buffered.endswith("x"):
            return max(1, int(float(self.max_buffered[:-1]) * in_flight))
        return max(int(self.max_buffered), in_flight)

    def start_worker(self, cell, url, in_flight, wrapper=()):
        env = self.worker_env(cell, url, in_flight, self.buffered_for(in_flight))
        argv = list(wrapper) + [self.worker_bin]
        return self.children.start(argv, os.path.join(self.logs, cell["name"] + ".worker.log"),
                                   env=env)

    def start_peer(self, cell, url):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PEER_API_KEY": API_KEY,
        }
        argv = [self.python, self.peer_script, "--brokers", self.kafka.bootstrap,
                "--group", cell["group"], "--requests-topic", cell["requests"],
                "--results-topic", cell["results"], "--api-base-url", url]
        return self.children.start(argv, os.path.join(self.logs, cell["name"] + ".peer.log"),
                                   env=env)

    def wait_for_results(self, cell, proc, expected, timeout, what):
        """Poll the results topic until it contains `expected` records."""
        counter = self.kafka.counter()
        try:
            deadline = time.monotonic() + timeout
            count = 0
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise BenchError("%s exited with code %s after %d of %d results (log: %s)"
                                     % (what, proc.returncode, count, expected,
                                        os.path.join(self.logs, cell["name"] + ".*.log")))
                count = self.kafka.record_count(cell["results"], counter)
                if count >= expected:
                    return
                time.sleep(0.2)
            raise BenchError("timed out after %.0f s: %d of %d results in %s"
                             % (timeout, count, expected, cell["results"]))
        finally:
            counter.close()

    def check_results(self, cell, expected, skip_offsets=()):
        """Read and check the results; returns their parsed list.

        Each result must be "sent", and the set of source offsets must be the
        requests topic's, once each. Fails loudly otherwise.
        """
        raw = self.kafka.read_all(cell["results"])
        if len(raw) != expected:
            raise BenchError("%s: expected %d results, found %d"
                             % (cell["name"], expected, len(raw)))
        dead = self.kafka.record_count(cell["dead"])
        if dead:
            raise BenchError("%s: %d dead letters" % (cell["name"], dead))
        results = []
        sources = set()
        for _partition, _offset, timestamp, value in raw:
            record = json.loads(value)
            if record.get("status") != "sent":
                raise BenchError("%s: result of %s has status %r, error %r"
                                 % (cell["name"], record.get("id"), record.get("status"),
                                    record.get("error")))
            source = record["source"]
            key = (source["partition"], source["offset"])
            if key in sources:
                raise BenchError("%s: two results for request %s [%d] @%d"
                                 % (cell["name"], source["topic"], key[0], key[1]))
            sources.add(key)
            if key in skip_offsets:
                continue
            results.append({
                "source": key,
                "attempts": record.get("attempts", 1),
                "received_ms": parse_rfc3339_ms(record["received_at"]),
                "timestamp_ms": timestamp,
            })
        return results

    def wait_quiet(self):
        """Wait (bounded) until other programs leave the CPUs mostly idle,
        so that a cell does not start in the middle of someone's build or
        test. Returns the busy fraction measured just before the cell."""
        busy = wait_for_quiet(self.quiet_threshold, self.quiet_timeout)
        if busy >= self.quiet_threshold:
            print("bench: warning: the machine is %.0f%% busy before the cell"
                  % (100 * busy), flush=True)
        return busy

    # ---- measurements -------------------------------------------------

    def pilot(self, latency_ms, in_flight, runner, seconds, load):
        """Measure a cell's rate for about `seconds` on a backlog of `load`
        requests, from the growth of the results topic; nothing else is
        checked. Returns results per second."""
        cell = self.new_cell("pilot-%s-L%d-F%d" % (runner, latency_ms, in_flight))
        self.create_topics(cell)
        sim = proc = None
        counter = self.kafka.counter()
        try:
            self.kafka.load(cell["requests"], self.requests, load)
            sim, url = self.start_sim(cell, latency_ms)
            if runner == "worker":
                proc = self.start_worker(cell, url, in_flight)
            else:
                proc = self.start_peer(cell, url)
            deadline = time.monotonic() + 60
            first = None
            while True:
                now, count = time.monotonic(), self.kafka.record_count(cell["results"], counter)
                if first is None and count > 0:
                    first = (now, count)
                if first and (count >= load or now - first[0] >= seconds):
                    break
                if proc.poll() is not None:
                    raise BenchError("%s exited with code %s during the pilot"
                                     % (runner, proc.returncode))
                if first is None and now >= deadline:
                    raise BenchError("%s: no result within 60 s" % cell["name"])
                time.sleep(0.1)
        finally:
            counter.close()
            if proc:
                self.children.stop(proc)
            if sim:
                self.children.stop(sim)
        self.delete_topics(cell)
        if count > first[1] and now > first[0]:
            return (count - first[1]) / (now - first[0])
        return count / max(0.1, now - first[0] + 0.1)

    def burst(self, latency_ms, in_flight, count, runner="worker", stats_poll=False,
              wrapper=(), perf_out=None, expected_seconds=None):
        """Load `count` requests, then start the worker (or the peer) on them.

        Throughput runs from the first consume (min received_at) to the last
        result (max result timestamp); CPU is the process's CPU time in that
        window, interpolated from 50 ms samples.
        """
        profiled = wrapper or perf_out
        label = "%s-L%d-F%d%s" % (runner, latency_ms, in_flight, "-profiled" if profiled else "")
        cell = self.new_cell(label)
        self.create_topics(cell)
        background = self.wait_quiet()
        sim = proc = sampler = None
        pending = []
        try:
            self.kafka.load(cell["requests"], self.requests, count)
            sim, url = self.start_sim(cell, latency_ms)
            if runner == "worker":
                proc = self.start_worker(cell, url, in_flight, wrapper)
            else:
                proc = self.start_peer(cell, url)
            sampler = Sampler(proc.pid, rss_interval=1.0, system=True)
            # Where the rest of the CPU goes: the simulator and the broker.
            neighbours = {"sim": Sampler(sim.pid, interval=0.2)}
            if self.broker_pid:
                neighbours["broker"] = Sampler(self.broker_pid, interval=0.2)
            perf = None
            if perf_out:
                perf = self.children.start(
                    ["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", perf_out,
                     "-p", str(proc.pid)], os.path.join(self.logs, cell["name"] + ".perf.log"))
            poller = None
            if stats_poll:
                poller = _PendingPoller(url, pending)
            if expected_seconds is None:
                expected_seconds = count / _expected_rate(latency_ms, in_flight, runner)
            timeout = 60 + 5 * expected_seconds
            if wrapper:
                timeout *= 50  # valgrind slows the worker down about 50 times
            self.wait_for_results(cell, proc, count, timeout, runner)
            if poller:
                poller.stop()
            if perf:
                # perf record writes its data file when interrupted.
                self.children.stop(perf, timeout=60, sig=signal.SIGINT)
            peak_rss_kib = read_status_kib(proc.pid, "VmHWM")
            sampler.stop()
            for neighbour in neighbours.values():
                neighbour.stop()
            code = self.children.stop(proc, timeout=300 if wrapper else 30)
            if code != 0:
                raise BenchError("%s exited with code %d at shutdown" % (runner, code))
            stats = self.sim_stats(url)
        finally:
            if sampler:
                sampler.stop()
            if proc:
                self.children.stop(proc)
            if sim:
                self.children.stop(sim)
        results = self.check_results(cell, count)
        self.delete_topics(cell)
        retries = sum(r["attempts"] for r in results) - count
        if retries or stats["received"] != count:
            print("bench: warning: %s: %d retries; the simulator received %d sends for %d "
                  "requests (logs in %s)" % (cell["name"], retries, stats["received"], count,
                                             self.logs), flush=True)

        first = min(r["received_ms"] for r in results)
        last = max(r["timestamp_ms"] for r in results)
        seconds = max(last - first, 1) / 1000.0
        cpu = sampler.cpu_between(first / 1000.0, last / 1000.0)
        inside = [r["timestamp_ms"] - r["received_ms"] for r in results]
        neighbour_cpu = {"%s_cpu_utilization" % name: n.cpu_between(first / 1000.0, last / 1000.0)
                         / seconds for name, n in neighbours.items()}
        row = {
            "runner": runner, "latency_ms": latency_ms, "in_flight": in_flight,
            "max_buffered": self.buffered_for(in_flight) if runner == "worker" else None,
            "count": count, "results": len(results), "seconds": seconds,
            "throughput": count / seconds,
            "cpu_s_per_10k": cpu / count * 10000,
            "cpu_utilization": cpu / seconds,
            "peak_rss_mib": peak_rss_kib / 1024.0,
            "inside_p50_ms": percentile(inside, 0.50),
            "inside_p99_ms": percentile(inside, 0.99),
            "retries": retries, "sim_received": stats["received"],
            "background_busy": background,
            "system_busy": sampler.system_busy_between(first / 1000.0, last / 1000.0),
        }
        row.update(neighbour_cpu)
        if pending:
            row["sim_pending_max"] = max(pending)
            middle = pending[len(pending) // 4: max(len(pending) // 4 + 1, 3 * len(pending) // 4)]
            row["sim_pending_mid_mean"] = sum(middle) / len(middle)
        return row

    def paced(self, latency_ms, in_flight, rate, seconds):
        """Start the worker, then produce at `rate` per second for `seconds`.

        End-to-end latency is request record timestamp to result record
        timestamp; a first warm-up request (excluded) makes sure the worker
        has joined the group and connected before the paced load starts.
        """
        cell = self.new_cell("paced-L%d-F%d" % (latency_ms, in_flight))
        count = max(1, int(rate * seconds))
        self.create_topics(cell)
        background = self.wait_quiet()
        sim = proc = sampler = None
        try:
            sim, url = self.start_sim(cell, latency_ms)
            proc = self.start_worker(cell, url, in_flight)
            self.kafka.load(cell["requests"], self.requests, 1)
            self.wait_for_results(cell, proc, 1, 60, "worker")
            sampler = Sampler(proc.pid)
            window_start = time.time()
            achieved = self.kafka.load_paced(cell["requests"], self.requests, count, rate,
                                             start_index=1)
            self.wait_for_results(cell, proc, count + 1, 60 + 4 * seconds, "worker")
            window_end = time.time()
            sampler.stop()
            code = self.children.stop(proc)
            if code != 0:
                raise BenchError("worker exited with code %d at shutdown" % code)
        finally:
            if sampler:
                sampler.stop()
            if proc:
                self.children.stop(proc)
            if sim:
                self.children.stop(sim)
        requests = self.kafka.read_all(cell["requests"])
        produced_ms = {(p, o): ts for p, o, ts, _ in requests}
        warmup = min(requests, key=lambda r: r[2])
        results = self.check_results(cell, count + 1, skip_offsets={(warmup[0], warmup[1])})
        self.delete_topics(cell)
        latencies = [r["timestamp_ms"] - produced_ms[r["source"]] for r in results]
        cpu = sampler.cpu_between(window_start, window_end)
        return {
            "runner": "worker", "latency_ms": latency_ms, "in_flight": in_flight,
            "rate": rate, "achieved_rate": achieved, "count": count,
            "e2e_p50_ms": percentile(latencies, 0.50),
            "e2e_p99_ms": percentile(latencies, 0.99),
            "e2e_max_ms": max(latencies),
            "cpu_s_per_10k": cpu / count * 10000,
            "retries": sum(r["attempts"] for r in results) - len(results),
            "background_busy": background,
        }


    def soak(self, latency_ms, in_flight, rate, minutes, rss_interval=10.0):
        """Steady load at `rate` per second for `minutes`, sampling the
        worker's RSS every rss_interval seconds."""
        cell = self.new_cell("soak-L%d-F%d" % (latency_ms, in_flight))
        count = int(rate * minutes * 60)
        self.create_topics(cell)
        sim = proc = sampler = None
        try:
            sim, url = self.start_sim(cell, latency_ms)
            proc = self.start_worker(cell, url, in_flight)
            self.kafka.load(cell["requests"], self.requests, 1)
            self.wait_for_results(cell, proc, 1, 60, "worker")
            sampler = Sampler(proc.pid, interval=1.0, rss_interval=rss_interval)
            started = time.time()
            producer = _Background(lambda: self.kafka.load_paced(
                cell["requests"], self.requests, count, rate, start_index=1))
            producer.join(minutes * 60 * 2 + 120, proc)
            self.wait_for_results(cell, proc, count + 1, 120, "worker")
            ended = time.time()
            peak_rss_kib = read_status_kib(proc.pid, "VmHWM")
            sampler.stop()
            code = self.children.stop(proc)
            if code != 0:
                raise BenchError("worker exited with code %d at shutdown" % code)
            stats = self.sim_stats(url)
        finally:
            if sampler:
                sampler.stop()
            if proc:
                self.children.stop(proc)
            if sim:
                self.children.stop(sim)
        # Only counts here: a long soak has too many results to parse.
        results = self.kafka.record_count(cell["results"])
        dead = self.kafka.record_count(cell["dead"])
        sent = stats.get("by_status", {}).get("200", 0)
        if results != count + 1 or dead != 0 or sent != count + 1:
            raise BenchError("%s: %d requests, %d results, %d dead letters, %d responses with status 200"
                             % (cell["name"], count + 1, results, dead, sent))
        self.delete_topics(cell)
        samples = [(t - started, kib) for t, kib in sampler.rss]
        return {
            "latency_ms": latency_ms, "in_flight": in_flight, "rate": rate,
            "minutes": minutes, "count": count, "achieved_rate": producer.value,
            "seconds": ended - started, "peak_rss_mib": peak_rss_kib / 1024.0,
            "cpu_s_per_10k": sampler.cpu_between(started, ended) / count * 10000,
            "rss_samples": samples,
        }


class _Background:
    """Runs fn in a thread and keeps its return value or exception."""

    def __init__(self, fn):
        self.value = None
        self.error = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        try:
            self.value = fn()
        except Exception as exc:  # handed to join()'s caller
            self.error = exc

    def join(self, timeout, proc):
        """Wait for fn; fail if proc exits first or time runs out."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():
            if proc.poll() is not None:
                raise BenchError("the worker exited with code %s during the load" % proc.returncode)
            if time.monotonic() >= deadline:
                raise BenchError("the load did not finish within %.0f s" % timeout)
            self._thread.join(1.0)
        if self.error is not None:
            raise self.error


class _PendingPoller:
    """Polls the simulator's count of delayed responses (requests in flight)."""

    def __init__(self, url, out):
        self.url = url
        self.out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.5):
            try:
                self.out.append(Bench.sim_stats(self.url)["pending_delayed"])
            except OSError:
                return

    def stop(self):
        self._stop.set()
        self._thread.join()


def _expected_rate(latency_ms, in_flight, runner):
    """Return a deliberately low estimate of the rate, for time-outs only."""
    bound = in_flight / (latency_ms / 1000.0 + 0.002)
    return max(5.0, min(bound, 200.0 if runner == "peer" else 2000.0))
