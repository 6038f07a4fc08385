"""Medians, target checks and the outputs: results.json, results.md and the
throughput plot (gnuplot, PNG)."""

import json
import os
import statistics
import subprocess

from .procs import BenchError

MB = 1e6  # the targets state memory in MB: 10^6 bytes


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values, digits=0):
    """"median [min–max]" of a list, or the single value."""
    fmt = "%%.%df" % digits
    if len(values) == 1:
        return fmt % values[0]
    return (fmt + " [" + fmt + "–" + fmt + "]") % (median(values), min(values), max(values))


def bound(latency_ms, in_flight):
    """Return the in-flight/latency bound in requests per second (None at latency 0)."""
    return in_flight * 1000.0 / latency_ms if latency_ms else None


def group(rows, *fields):
    """Group rows by the values of `fields`, keeping first-seen order."""
    out = {}
    for row in rows:
        out.setdefault(tuple(row[f] for f in fields), []).append(row)
    return out


def load_note(data):
    """Describe in one sentence how busy all programs kept the machine around the cells."""
    rows = [r for key in ("sweep", "peer", "paced", "rss") for r in data.get(key, [])]
    rows += data["limits"].get("simulator", []) + data["limits"].get("broker", [])
    busy = [r["background_busy"] for r in rows if r.get("background_busy") is not None]
    if not busy:
        return ""
    threshold = data["meta"].get("quiet_threshold", 0.25)
    over = sum(1 for b in busy if b >= threshold)
    during = [r["system_busy"] for r in data.get("sweep", []) if r.get("system_busy") is not None]
    text = ("Machine load from all programs in the second before each measurement: median "
            "%.0f%%, max %.0f%% of all CPUs; %d of %d measurements started above %.0f%% after "
            "waiting." % (100 * median(busy), 100 * max(busy), over, len(busy), 100 * threshold))
    if during:
        text += (" During the sweep cells (worker, simulator, broker and anything else): "
                 "median %.0f%%, max %.0f%%." % (100 * median(during), 100 * max(during)))
    return text


def evaluate(data):
    """Check the four targets; returns a list of (name, met, detail)."""
    checks = []
    sweep = group(data["sweep"], "latency_ms", "in_flight")

    misses, parts = [], []
    for (latency, in_flight), rows in sweep.items():
        if latency != 100:
            continue
        required = 0.9 * min(bound(latency, in_flight), 2000.0)
        got = median([r["throughput"] for r in rows])
        parts.append("in-flight %d: %.0f of %.0f msg/s required" % (in_flight, got, required))
        if got < required:
            misses.append(in_flight)
    if parts:
        checks.append(("100 ms: >= 90% of min(in-flight/latency, 2,000 msg/s)", not misses,
                       "; ".join(parts)))

    zero = [median([r["throughput"] for r in rows])
            for (latency, _), rows in sweep.items() if latency == 0]
    capacity = median([r["requests_per_s"] for r in data["limits"]["simulator"]])
    if zero and data["limits"]["simulator"]:
        best = max(zero)
        checks.append((">= 50% of the simulator's capacity at 0 ms", best >= 0.5 * capacity,
                       "best %.0f msg/s = %.1f%% of %.0f req/s"
                       % (best, 100 * best / capacity, capacity)))

    ratios = [r for r in data.get("peer_ratios", []) if r["latency_ms"] == 100]
    if ratios:
        speed = median([r["throughput_ratio"] for r in ratios])
        cpu = median([r["cpu_ratio"] for r in ratios])
        checks.append((">= 5x the peer's throughput at 100 ms", speed >= 5,
                       "%.1fx (median of per-run ratios)" % speed))
        checks.append(("<= 1/3 of the peer's CPU per message at 100 ms", cpu <= 1 / 3.0,
                       "%.2f of the peer's CPU per message" % cpu))

    if data.get("rss"):
        peak = median([r["peak_rss_mib"] * 1024 * 1024 / MB for r in data["rss"]])
        pending = median([r.get("sim_pending_mid_mean", 0) for r in data["rss"]])
        checks.append(("RSS <= 40 MB with 1,000 requests in flight", peak <= 40.0,
                       "peak %.1f MB; %.0f requests in flight (mean over the middle half)"
                       % (peak, pending)))
    return checks


def markdown(data):
    lines = []
    meta = data["meta"]
    lines.append("# chatt2me-worker benchmark results\n")
    lines.append("Mode: %s; %d run(s) per figure, each figure the median [min–max] of its runs."
                 % (meta["mode"], meta["runs"]))
    lines.append("Command: `%s`  " % meta["command"])
    lines.append("Machine: %s  " % meta["machine"])
    lines.append("Worker: %s  " % meta["worker_version"])
    if meta.get("worker_env"):
        lines.append("Worker environment added for this run: %s  " % ", ".join(
            "`%s=%s`" % item for item in sorted(meta["worker_env"].items())))
    buffered = meta.get("max_buffered", "4096")
    lines.append("worker.max_buffered: %s.  " % (
        "%s times the in-flight limit" % buffered[:-1] if buffered.endswith("x")
        else "%s, or the in-flight limit when higher" % buffered))
    lines.append("Request records: %.0f bytes on average (JSON), mixed channels.\n"
                 % meta["mean_request_bytes"])

    lines.append("## Throughput sweep (backlog loaded, then the worker started)\n")
    lines.append("| API latency | in-flight | requests | bound msg/s | throughput msg/s | "
                 "of bound | consume→result p50 / p99 ms | CPU s per 10k | CPU % worker / "
                 "sim / broker | peak RSS MB | retries |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (latency, in_flight), rows in group(data["sweep"], "latency_ms", "in_flight").items():
        tput = [r["throughput"] for r in rows]
        limit = bound(latency, in_flight)
        lines.append("| %d ms | %d | %d | %s | %s | %s | %s / %s | %s | %s | %s | %d |" % (
            latency, in_flight, rows[0]["count"],
            "%.0f" % limit if limit else "–",
            spread(tput),
            "%.0f%%" % (100 * median(tput) / limit) if limit else "–",
            "%.0f" % median([r["inside_p50_ms"] for r in rows]),
            "%.0f" % median([r["inside_p99_ms"] for r in rows]),
            spread([r["cpu_s_per_10k"] for r in rows], 2),
            " / ".join("%.0f" % (100 * median([r.get(key, float("nan")) for r in rows]))
                       for key in ("cpu_utilization", "sim_cpu_utilization",
                                   "broker_cpu_utilization")),
            "%.1f" % median([r["peak_rss_mib"] * 1048576 / MB for r in rows]),
            sum(r.get("retries", 0) for r in rows)))
    lines.append("")
    lines.append(load_note(data))
    lines.append("")

    if data.get("paced"):
        lines.append("## End-to-end latency at a steady rate (request produced → result produced)\n")
        lines.append("| API latency | in-flight | offered msg/s | achieved msg/s | p50 ms | p99 ms "
                     "| max ms | CPU s per 10k |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (latency, in_flight), rows in group(data["paced"], "latency_ms", "in_flight").items():
            lines.append("| %d ms | %d | %.0f | %.0f | %s | %s | %s | %s |" % (
                latency, in_flight, rows[0]["rate"],
                median([r["achieved_rate"] for r in rows]),
                spread([r["e2e_p50_ms"] for r in rows]),
                spread([r["e2e_p99_ms"] for r in rows]),
                spread([r["e2e_max_ms"] for r in rows]),
                spread([r["cpu_s_per_10k"] for r in rows], 2)))
        lines.append("")

    if data.get("rss"):
        lines.append("## Memory with about 1,000 requests in flight\n")
        lines.append("| API latency | in-flight | requests | throughput msg/s | in flight at the "
                     "simulator (mean, max) | peak RSS MB |")
        lines.append("|---:|---:|---:|---:|---:|---:|")
        rows = data["rss"]
        lines.append("| %d ms | %d | %d | %s | %.0f, %d | %s |" % (
            rows[0]["latency_ms"], rows[0]["in_flight"], rows[0]["count"],
            spread([r["throughput"] for r in rows]),
            median([r.get("sim_pending_mid_mean", 0) for r in rows]),
            max(r.get("sim_pending_max", 0) for r in rows),
            spread([r["peak_rss_mib"] * 1048576 / MB for r in rows], 1)))
        lines.append("")

    if data.get("peer"):
        lines.append("## Peer: Python confluent-kafka + requests.Session, one record at a time\n")
        lines.append("| API latency | requests | peer msg/s | peer CPU s per 10k | worker msg/s "
                     "(in-flight 256) | worker CPU s per 10k | throughput ratio | CPU ratio |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (latency,), rows in group(data["peer"], "latency_ms").items():
            ratios = [r for r in data["peer_ratios"] if r["latency_ms"] == latency]
            lines.append("| %d ms | %d | %s | %s | %s | %s | %s | %s |" % (
                latency, rows[0]["count"],
                spread([r["throughput"] for r in rows], 1),
                spread([r["cpu_s_per_10k"] for r in rows], 2),
                spread([r["worker_throughput"] for r in ratios]),
                spread([r["worker_cpu_s_per_10k"] for r in ratios], 2),
                spread([r["throughput_ratio"] for r in ratios], 1) + "x",
                spread([r["cpu_ratio"] for r in ratios], 3)))
        lines.append("")

    limits = data["limits"]
    if limits.get("simulator") or limits.get("broker"):
        lines.append("## Limits of the surroundings\n")
        lines.append("| what | tool | figure |")
        lines.append("|---|---|---:|")
        if limits.get("simulator"):
            sim = limits["simulator"]
            lines.append("| chatt2me-sim at latency 0, same bodies | wrk, 1 thread, %d connections "
                         "| %s req/s |" % (sim[0]["connections"],
                                           spread([r["requests_per_s"] for r in sim])))
        if limits.get("broker"):
            broker = limits["broker"]
            lines.append("| broker produce, %d records of %.0f bytes, acks=all | kcat -P | %s "
                         "records/s |" % (broker[0]["count"], broker[0]["record_bytes"],
                                          spread([r["produce_per_s"] for r in broker])))
            lines.append("| broker consume, same records | kcat -C | %s records/s |"
                         % spread([r["consume_per_s"] for r in broker]))
        lines.append("")

    checks = evaluate(data)
    if checks:
        lines.append("## Targets\n")
        lines.append("| target | result | measured |")
        lines.append("|---|---|---|")
        for name, met, detail in checks:
            lines.append("| %s | %s | %s |" % (name, "met" if met else "**missed**", detail))
        lines.append("")
    return "\n".join(lines)


PLOT_SCRIPT = r"""
set terminal pngcairo size 960,600 font ",11" noenhanced
set output '%(png)s'
set title "chatt2me-worker throughput against the in-flight limit (%(title)s)"
set xlabel "worker.max_in_flight"
set ylabel "results per second"
set logscale xy
set xtics (1, 4, 16, 64, 256, 1024)
set grid xtics ytics mytics
set key bottom right
set xrange [0.8:1300]
plot %(plots)s
"""


def plot(data, out_dir):
    """Write throughput.dat and throughput.png; returns the PNG path."""
    sweep = group(data["sweep"], "latency_ms", "in_flight")
    latencies = sorted({latency for latency, _ in sweep})
    in_flights = sorted({in_flight for _, in_flight in sweep})
    dat = os.path.join(out_dir, "throughput.dat")
    with open(dat, "w") as out:
        out.write("# in_flight " + " ".join("L%d_median L%d_min L%d_max" % (l, l, l)
                                           for l in latencies) + "\n")
        for in_flight in in_flights:
            cols = [str(in_flight)]
            for latency in latencies:
                tput = [r["throughput"] for r in sweep.get((latency, in_flight), [])]
                cols += ["%.1f" % median(tput), "%.1f" % min(tput), "%.1f" % max(tput)] \
                    if tput else ["NaN"] * 3
            out.write(" ".join(cols) + "\n")
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"]
    plots = []
    for index, latency in enumerate(latencies):
        color = colors[index % len(colors)]
        col = 2 + 3 * index
        plots.append("'%s' using 1:%d:%d:%d with yerrorlines lw 2 pt 7 lc rgb '%s' "
                     "title 'API latency %d ms'" % (dat, col, col + 1, col + 2, color, latency))
        if latency:
            plots.append("[1:1024] x*%g with lines dt 2 lc rgb '%s' title 'bound: in-flight / %d ms'"
                         % (1000.0 / latency, color, latency))
    capacity = data["limits"].get("simulator")
    if capacity:
        plots.append("%.1f with lines dt 3 lc rgb 'black' title 'simulator capacity (wrk)'"
                     % median([r["requests_per_s"] for r in capacity]))
    png = os.path.join(out_dir, "throughput.png")
    script = PLOT_SCRIPT % {"png": png, "plots": ", \\\n     ".join(plots),
                            "title": "%s, median of %d" % (data["meta"]["mode"], data["meta"]["runs"])}
    script_path = os.path.join(out_dir, "throughput.gp")
    with open(script_path, "w") as out:
        out.write(script)
    done = subprocess.run(["gnuplot", script_path], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError("gnuplot failed: %s" % done.stderr.strip())
    return png


def write_all(data, out_dir):
    with open(os.path.join(out_dir, "results.json"), "w") as out:
        json.dump(data, out, indent=1)
    text = markdown(data)
    with open(os.path.join(out_dir, "results.md"), "w") as out:
        out.write(text + "\n")
    png = plot(data, out_dir) if data["sweep"] else None
    return text, png
