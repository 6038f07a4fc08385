"""The limits around the worker: the simulator's capacity under wrk, and the
broker's produce and consume capacity under kcat, with the same requests."""

import os
import re
import subprocess
import time

from .cells import API_KEY, REQUEST_PARTITIONS
from .procs import BenchError

WRK_BODIES = 600  # distinct bodies wrk cycles through, 100 per channel


def simulator_capacity(bench, seconds, connections):
    """Measure the requests per second that chatt2me-sim (latency 0) serves to wrk."""
    cell = bench.new_cell("wrk")
    bodies = os.path.join(bench.logs, cell["name"] + ".bodies")
    with open(bodies, "w") as out:
        for index in range(min(WRK_BODIES, len(bench.requests))):
            out.write("%s\t%s\n" % (bench.requests.channels[index], bench.requests.bodies[index]))
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "post.lua")
    background = bench.wait_quiet()
    sim, url = bench.start_sim(cell, 0)
    try:
        argv = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--timeout", "10s",
                "-s", script, url, "--", bodies, API_KEY]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        with open(os.path.join(bench.logs, cell["name"] + ".wrk.log"), "w") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise BenchError("wrk failed with code %d: %s" % (done.returncode, done.stderr.strip()))
        stats = bench.sim_stats(url)
    finally:
        bench.children.stop(sim)
    match = re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout)
    if not match:
        raise BenchError("no Requests/sec in the wrk output: %s" % done.stdout)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    errors = re.search(r"Socket errors:.*", done.stdout)
    accepted = stats.get("by_status", {}).get("200", 0)
    if non_2xx or accepted != stats["received"]:
        raise BenchError("wrk got responses other than 200 from the simulator: %s; stats %s"
                         % (non_2xx.group(0) if non_2xx else "-", stats))
    return {"requests_per_s": float(match.group(1)), "connections": connections,
            "socket_errors": errors.group(0) if errors else None,
            "background_busy": background}


def broker_capacity(bench, count):
    """Records per second that kcat produces (acks=all) and consumes, with
    the first `count` requests as records."""
    cell = bench.new_cell("kcat")
    data = os.path.join(bench.logs, cell["name"] + ".records")
    bench.requests.write_kcat_file(data, count)
    size = os.path.getsize(data)
    bench.kafka.create_topics({cell["requests"]: REQUEST_PARTITIONS})
    background = bench.wait_quiet()
    try:
        produce_s = _timed([
            "kcat", "-P", "-b", bench.kafka.bootstrap, "-t", cell["requests"], "-K", "\t",
            "-X", "acks=all", "-X", "enable.idempotence=true", "-X", "linger.ms=5",
        ], stdin_path=data)
        stored = bench.kafka.record_count(cell["requests"])
        if stored != count:
            raise BenchError("kcat produced %d records, but the topic contains %d" % (count, stored))
        out_path = os.path.join(bench.logs, cell["name"] + ".consumed")
        consume_s = _timed([
            "kcat", "-C", "-b", bench.kafka.bootstrap, "-t", cell["requests"],
            "-o", "beginning", "-e", "-q", "-c", str(count), "-f", "%o\\n",
        ], stdout_path=out_path)
        with open(out_path, "rb") as f:
            consumed = sum(1 for _ in f)
        if consumed != count:
            raise BenchError("kcat consumed %d of %d records" % (consumed, count))
    finally:
        bench.kafka.delete_topics([cell["requests"]])
        for path in (data, os.path.join(bench.logs, cell["name"] + ".consumed")):
            if os.path.exists(path):
                os.remove(path)
    return {"count": count, "record_bytes": size / count,
            "produce_per_s": count / produce_s, "consume_per_s": count / consume_s,
            "background_busy": background}


def _timed(argv, stdin_path=None, stdout_path=None):
    """Run argv to completion (at most 300 s); returns its wall-clock seconds."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    stdout = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        started = time.monotonic()
        done = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                              timeout=300)
        elapsed = time.monotonic() - started
    finally:
        for f in (stdin, stdout):
            if f is not subprocess.DEVNULL:
                f.close()
    if done.returncode != 0:
        raise BenchError("%s failed with code %d: %s"
                         % (argv[0], done.returncode, done.stderr.decode(errors="replace")))
    return elapsed
