"""Benchmark driver of chatt2me-worker; bench/run starts the broker and calls it.

Phases: the throughput sweep (each cell sized by an unreported pilot run) with
the peer after each pass, the paced latency cells, the memory cell, the limits (wrk
against the simulator, kcat against the broker), then the report. Or, with
--soak, only the soak.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time

import confluent_kafka
import requests as requests_lib

from c2mbench import limits, report
from c2mbench.cells import Bench
from c2mbench.kafka_io import Kafka
from c2mbench.procs import BenchError, Children
from c2mbench.request_set import RequestSet

MODES = {
    # runs: figures are medians of this many runs. seconds: target length of a
    # sweep cell. max_requests: the largest cell (and the request set's size).
    "quick": {"runs": 1, "seconds": 2.0, "max_requests": 40000, "paced_seconds": 4,
              "wrk_seconds": 4, "kcat_records": 40000, "rss_requests": 3000},
    "full": {"runs": 3, "seconds": 6.0, "max_requests": 150000, "paced_seconds": 8,
             "wrk_seconds": 8, "kcat_records": 150000, "rss_requests": 8000},
}
MIN_REQUESTS = 20
PILOT_SECONDS = 2.0  # length of the unreported pilot run of each cell
# The memory cell: a latency high enough that about 1,000 requests are in
# flight at a rate the worker sustains.
RSS_LATENCY_MS = 1000
RSS_IN_FLIGHT = 1024
PEER_LATENCIES = (0, 100)
PEER_COMPARE_IN_FLIGHT = 256
PACED_IN_FLIGHT = 256
PACED_FRACTION = 0.5  # paced rate: this fraction of the sweep's throughput


def parse_args():
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="full")
    parser.add_argument("--runs", type=int, help="runs per figure (default: 3 full, 1 quick)")
    parser.add_argument("--latencies", default="0,20,100",
                        help="simulator latencies in ms, comma-separated (default 0,20,100)")
    parser.add_argument("--in-flight", default="1,16,64,256,1024",
                        help="worker.max_in_flight values (default 1,16,64,256,1024)")
    parser.add_argument("--seconds", type=float, help="target seconds per sweep cell")
    parser.add_argument("--skip", default="",
                        help="phases to skip, comma-separated: peer, paced, rss, limits")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="run only the soak: steady load for MINUTES")
    parser.add_argument("--soak-rate", type=float, default=1000.0, help="soak rate (msg/s)")
    parser.add_argument("--soak-latency", type=int, default=20, help="soak API latency (ms)")
    parser.add_argument("--soak-in-flight", type=int, default=256)
    parser.add_argument("--sim-threads", type=int, default=4,
                        help="chatt2me-sim --threads for every cell and for wrk (default 4: "
                             "with 1, libmicrohttpd 0.9.75 leaves connections unread when "
                             "more than about 100 connect at once)")
    parser.add_argument("--max-buffered", default="4096", type=_buffered_setting,
                        help="worker.max_buffered: N (raised to the in-flight limit when "
                             "below it; default 4096, the worker's default) or Kx for K "
                             "times the in-flight limit")
    parser.add_argument("--quiet-threshold", type=float, default=0.25,
                        help="before each cell, wait until all CPUs together are less "
                             "than this fraction busy (default 0.25)")
    parser.add_argument("--quiet-timeout", type=float, default=20,
                        help="maximum wait for that, in seconds (default 20)")
    parser.add_argument("--worker-log-level", default="warn",
                        choices=["error", "warn", "info", "debug"],
                        help="CHATT2ME_LOG_LEVEL of the worker; logs go to OUT/logs")
    parser.add_argument("--worker-env", action="append", type=_env_setting, metavar="NAME=VALUE",
                        help="extra environment variable for the worker, for experiments; "
                             "repeatable (the results then say so)")
    parser.add_argument("--sim-request-log", action="store_true",
                        help="write the simulator's request log to OUT/logs (slower)")
    parser.add_argument("--profile", choices=["callgrind", "massif", "perf"],
                        help="run only one cell with the worker under valgrind's callgrind "
                             "(instructions) or massif (heap), or perf record (cpu-clock), "
                             "and print the report")
    parser.add_argument("--profile-cell", default="0,256,2000", metavar="LATENCY,IN_FLIGHT,N",
                        help="the profiled cell (default 0,256,2000)")
    parser.add_argument("--report", metavar="RESULTS_JSON",
                        help="only rewrite results.md and the plot from an earlier "
                             "results.json, into its directory")
    parser.add_argument("--broker-pid", type=int,
                        help="pid of the broker, whose CPU time the sweep cells record")
    parser.add_argument("--bootstrap")
    parser.add_argument("--worker")
    parser.add_argument("--sim")
    parser.add_argument("--out")
    parser.add_argument("--command", default="bench/run")
    args = parser.parse_args()
    if args.report is None:
        missing = [name for name in ("bootstrap", "worker", "sim", "out")
                   if getattr(args, name) is None]
        if missing:
            parser.error("missing --%s (bench/run passes them)" % ", --".join(missing))
    preset = MODES[args.mode]
    args.runs = args.runs or preset["runs"]
    args.seconds = args.seconds or preset["seconds"]
    args.preset = preset
    args.latencies = [int(v) for v in args.latencies.split(",") if v]
    args.in_flight = [int(v) for v in args.in_flight.split(",") if v]
    args.skip = {v for v in args.skip.split(",") if v}
    unknown = args.skip - {"peer", "paced", "rss", "limits"}
    if unknown:
        parser.error("unknown phase in --skip: %s" % ", ".join(sorted(unknown)))
    if args.runs < 1 or args.seconds <= 0:
        parser.error("--runs and --seconds must be positive")
    if args.soak is not None and not 0 < args.soak <= 24 * 60:
        parser.error("--soak takes 0 to 1440 minutes")
    return args


def _buffered_setting(text):
    try:
        value = float(text[:-1]) if text.endswith("x") else int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a positive N or Kx, got %r" % text)
    return text


def _env_setting(text):
    name, equals, value = text.partition("=")
    if not equals or not name.startswith("CHATT2ME_"):
        raise argparse.ArgumentTypeError("expected CHATT2ME_NAME=VALUE, got %r" % text)
    return name, value


def command_output(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine_facts(args):
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    commit = command_output(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "-C", root, "status", "--porcelain", "--", "src"])
    return {
        "machine": "%d cores (nproc), %s, Linux %s, %s MiB memory" % (
            os.cpu_count(), model, platform.release(),
            os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 1048576),
        "worker_version": "%s, tree %s%s" % (
            command_output([args.worker, "--version"]), commit,
            " with uncommitted changes in src/" if dirty not in ("", "unknown") else ""),
        "versions": {
            "librdkafka": confluent_kafka.libversion()[0],
            "confluent-kafka-python": confluent_kafka.version()[0],
            "requests": requests_lib.__version__,
            "python": platform.python_version(),
            "curl": command_output(["curl", "--version"]),
            "kafka": os.environ.get("C2M_KAFKA_VERSION", "4.4.0"),
            "java": command_output(["java", "-version"]),
            "wrk": command_output(["wrk", "-v"]),
            "kcat": command_output(["kcat", "-V"]),
            "gnuplot": command_output(["gnuplot", "--version"]),
        },
    }


def progress(text):
    print("bench: %s" % text, flush=True)


def describe(row):
    return ("%s latency %d ms, in-flight %d: %d requests, %.0f msg/s, CPU %.2f s/10k, "
            "peak RSS %.1f MiB" % (row["runner"], row["latency_ms"], row["in_flight"],
                                   row["count"], row["throughput"], row["cpu_s_per_10k"],
                                   row["peak_rss_mib"]))


class Planner:
    """Sizes each cell to run about `seconds` long.

    A short pilot run of each cell (not reported) measures its rate; the
    reported runs then use rate x seconds requests.
    """

    def __init__(self, bench, seconds, max_requests):
        self.bench = bench
        self.seconds = seconds
        self.max_requests = max_requests
        self.counts = {}
        self.pilots = []

    def count(self, latency_ms, in_flight, runner="worker"):
        """Returns (requests, expected seconds) for the cell, piloting it first."""
        key = (runner, latency_ms, in_flight)
        if key not in self.counts:
            # The backlog only has to outlast the pilot; the guess assumes
            # 1 ms of overhead per request.
            guess = min(in_flight / (latency_ms / 1000.0 + 0.001), 20000.0)
            load = self._clamp(min(30000, guess * PILOT_SECONDS * 2))
            rate = self.bench.pilot(latency_ms, in_flight, runner, PILOT_SECONDS, load)
            self.pilots.append({"runner": runner, "latency_ms": latency_ms,
                                "in_flight": in_flight, "throughput": rate})
            count = self._clamp(rate * self.seconds)
            self.counts[key] = (count, count / max(rate, 0.01))
            progress("pilot: %s latency %d ms, in-flight %d: %.1f msg/s, so %d requests"
                     % (runner, latency_ms, in_flight, rate, count))
        return self.counts[key]

    def _clamp(self, count):
        return int(max(MIN_REQUESTS, min(self.max_requests, round(count))))


def run_benchmark(args, bench, data):
    planner = Planner(bench, args.seconds, len(bench.requests))
    data["pilots"] = planner.pilots

    for run in range(args.runs):
        for latency in args.latencies:
            for in_flight in args.in_flight:
                count, seconds = planner.count(latency, in_flight)
                row = bench.burst(latency, in_flight, count, expected_seconds=seconds)
                row["run"] = run
                data["sweep"].append(row)
                progress("run %d/%d: %s (%.1f s)" % (run + 1, args.runs, describe(row),
                                                     row["seconds"]))
        if "peer" in args.skip:
            continue
        for latency in PEER_LATENCIES:
            count, seconds = planner.count(latency, 1, "peer")
            row = bench.burst(latency, 1, count, runner="peer", expected_seconds=seconds)
            row["run"] = run
            data["peer"].append(row)
            progress("run %d/%d: %s (%.1f s)" % (run + 1, args.runs, describe(row),
                                                 row["seconds"]))
            worker = [r for r in data["sweep"] if r["run"] == run and r["latency_ms"] == latency
                      and r["in_flight"] == PEER_COMPARE_IN_FLIGHT]
            if worker:
                data["peer_ratios"].append({
                    "run": run, "latency_ms": latency,
                    "worker_throughput": worker[0]["throughput"],
                    "worker_cpu_s_per_10k": worker[0]["cpu_s_per_10k"],
                    "throughput_ratio": worker[0]["throughput"] / row["throughput"],
                    "cpu_ratio": worker[0]["cpu_s_per_10k"] / row["cpu_s_per_10k"],
                })

    if "paced" not in args.skip:
        for latency in args.latencies:
            measured = [r["throughput"] for r in data["sweep"]
                        if r["latency_ms"] == latency and r["in_flight"] == PACED_IN_FLIGHT]
            if not measured:
                continue
            rate = max(10, round(PACED_FRACTION * report.median(measured), -1))
            for run in range(args.runs):
                row = bench.paced(latency, PACED_IN_FLIGHT, rate, args.preset["paced_seconds"])
                row["run"] = run
                data["paced"].append(row)
                progress("paced latency %d ms, %d msg/s: achieved %.0f, e2e p50 %d ms, "
                         "p99 %d ms" % (latency, rate, row["achieved_rate"],
                                        row["e2e_p50_ms"], row["e2e_p99_ms"]))

    if "rss" not in args.skip:
        for run in range(args.runs):
            row = bench.burst(RSS_LATENCY_MS, RSS_IN_FLIGHT, args.preset["rss_requests"],
                              stats_poll=True)
            row["run"] = run
            data["rss"].append(row)
            progress("memory: %s, %.0f in flight at the simulator"
                     % (describe(row), row.get("sim_pending_mid_mean", 0)))

    if "limits" not in args.skip:
        for run in range(args.runs):
            sim = limits.simulator_capacity(bench, args.preset["wrk_seconds"], 64)
            data["limits"]["simulator"].append(sim)
            progress("simulator capacity (wrk): %.0f req/s" % sim["requests_per_s"])
            broker = limits.broker_capacity(bench, min(args.preset["kcat_records"],
                                                       len(bench.requests)))
            data["limits"]["broker"].append(broker)
            progress("broker (kcat): produce %.0f/s, consume %.0f/s"
                     % (broker["produce_per_s"], broker["consume_per_s"]))


def run_soak(args, bench, data):
    progress("soak: %.1f min at %.0f msg/s, API latency %d ms, in-flight %d"
             % (args.soak, args.soak_rate, args.soak_latency, args.soak_in_flight))
    row = bench.soak(args.soak_latency, args.soak_in_flight, args.soak_rate, args.soak)
    data["soak"] = row
    samples = row["rss_samples"]
    settled = [s for s in samples if s[0] >= 60] or samples
    slope = _slope(settled)
    row["rss_first_settled_mib"] = settled[0][1] / 1024.0
    row["rss_last_mib"] = samples[-1][1] / 1024.0
    row["rss_max_mib"] = max(kib for _, kib in samples) / 1024.0
    row["rss_drift_mib"] = (settled[-1][1] - settled[0][1]) / 1024.0
    row["rss_slope_kib_per_min"] = slope * 60
    lines = ["# chatt2me-worker soak", "",
             "%.1f minutes at %.0f msg/s (achieved %.0f), API latency %d ms, in-flight %d; "
             "%d requests, all answered, CPU %.2f s per 10k."
             % (args.soak, args.soak_rate, row["achieved_rate"], args.soak_latency,
                args.soak_in_flight, row["count"], row["cpu_s_per_10k"]),
             "",
             "RSS after the first minute %.1f MiB, at the end %.1f MiB, max %.1f MiB, peak "
             "(VmHWM) %.1f MiB; drift %+.2f MiB, least-squares slope %+.1f KiB/min."
             % (row["rss_first_settled_mib"], row["rss_last_mib"], row["rss_max_mib"],
                row["peak_rss_mib"], row["rss_drift_mib"], row["rss_slope_kib_per_min"]),
             "", "| seconds | RSS MiB |", "|---:|---:|"]
    lines += ["| %.0f | %.2f |" % (max(0.0, t), kib / 1024.0) for t, kib in samples]
    return "\n".join(lines)


def run_profile(args, bench):
    """Run one cell with the worker under a profiler; returns the report text."""
    try:
        latency, in_flight, count = (int(v) for v in args.profile_cell.split(","))
    except ValueError:
        raise BenchError("invalid --profile-cell %r: expected LATENCY,IN_FLIGHT,N"
                         % args.profile_cell) from None
    data_file = os.path.join(args.out, "%s.out" % args.profile)
    progress("profiling with %s: latency %d ms, in-flight %d, %d requests"
             % (args.profile, latency, in_flight, count))
    if args.profile in ("callgrind", "massif"):
        row = bench.burst(latency, in_flight, count, wrapper=[
            "valgrind", "--tool=" + args.profile, "--%s-out-file=%s" % (args.profile, data_file)])
    else:
        # perf attaches to the running worker, so start-up is not in the profile.
        row = bench.burst(latency, in_flight, count, perf_out=data_file)
    progress("profiled cell: %s (slowed down by the profiler)" % describe(row))
    reports = []
    if args.profile == "callgrind":
        for inclusive in ("no", "yes"):
            done = subprocess.run(["callgrind_annotate", "--inclusive=" + inclusive,
                                   "--threshold=99", data_file],
                                  capture_output=True, text=True, timeout=300)
            reports.append(done.stdout if done.returncode == 0 else done.stderr)
    elif args.profile == "massif":
        done = subprocess.run(["ms_print", "--threshold=2", data_file],
                              capture_output=True, text=True, timeout=300)
        reports.append(done.stdout if done.returncode == 0 else done.stderr)
    else:
        for mode in (["--no-children", "--sort", "symbol"], ["--children", "--sort", "symbol"]):
            done = subprocess.run(["perf", "report", "-i", data_file, "--stdio", "-g", "none",
                                   "--percent-limit", "0.5"] + mode,
                                  capture_output=True, text=True, timeout=300)
            reports.append(done.stdout if done.returncode == 0 else done.stderr)
    text = "\n\n".join(reports)
    path = os.path.join(args.out, "%s-report.txt" % args.profile)
    with open(path, "w") as out:
        out.write(text)
    progress("profile data: %s; report: %s" % (data_file, path))
    return text


def _slope(samples):
    """Least-squares slope of (seconds, KiB) samples, in KiB per second."""
    if len(samples) < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / len(samples)
    mean_v = sum(v for _, v in samples) / len(samples)
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var if var else 0.0


def main():
    args = parse_args()
    if args.report:
        with open(args.report) as f:
            data = json.load(f)
        text, png = report.write_all(data, os.path.dirname(os.path.abspath(args.report)))
        print(text)
        progress("plot: %s" % png)
        return 0
    os.makedirs(args.out, exist_ok=True)
    children = Children(os.path.join(args.out, "pids"))
    # SIGTERM from bench/run's trap ends this process through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    try:
        facts = machine_facts(args)
        size = args.preset["max_requests"]
        if args.soak is not None:
            size = 20000  # the soak cycles through the set
        elif args.profile:
            size = max(1, int(args.profile_cell.rsplit(",", 1)[-1])) if \
                args.profile_cell.rsplit(",", 1)[-1].isdigit() else 20000
        request_set = RequestSet(size)
        kafka = Kafka(args.bootstrap)
        bench = Bench(args, kafka, children, request_set)
        data = {
            "meta": dict(facts, mode=args.mode, runs=args.runs, command=args.command,
                         started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                         mean_request_bytes=request_set.mean_value_bytes(),
                         sim_threads=args.sim_threads, seconds_per_cell=args.seconds,
                         quiet_threshold=args.quiet_threshold,
                         max_buffered=args.max_buffered,
                         worker_env=dict(args.worker_env or [])),
            "sweep": [], "peer": [], "peer_ratios": [], "paced": [], "rss": [],
            "limits": {"simulator": [], "broker": []},
        }
        if args.profile:
            text = run_profile(args, bench)
            print("\n".join(text.splitlines()[:80]))
        elif args.soak is not None:
            text = run_soak(args, bench, data)
            with open(os.path.join(args.out, "soak.json"), "w") as out:
                json.dump(data, out, indent=1)
            with open(os.path.join(args.out, "soak.md"), "w") as out:
                out.write(text + "\n")
            print(text)
        else:
            run_benchmark(args, bench, data)
            data["meta"]["elapsed_s"] = time.time() - started
            text, png = report.write_all(data, args.out)
            print(text)
            progress("plot: %s" % png)
        progress("done in %.0f s; results in %s" % (time.time() - started, args.out))
    except BenchError as exc:
        print("bench: error: %s" % exc, file=sys.stderr, flush=True)
        return 1
    finally:
        children.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
