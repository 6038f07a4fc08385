"""Child processes of the benchmark (simulator, worker, peer, load tools)
and the /proc sampling of their CPU time and memory.

Every child's pid is appended to a pid file, so that bench/run's exit trap
can stop whatever this process leaves behind if it dies itself.
"""

import os
import signal
import subprocess
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class BenchError(Exception):
    """A failed step; bench/run prints the message and exits non-zero."""


class Children:
    """Starts child processes and stops all of them on close()."""

    def __init__(self, pid_file):
        self.pid_file = pid_file
        self.procs = []

    def start(self, argv, log_path, env=None, stdout=None):
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=stdout if stdout is not None else log,
                                    stderr=log, env=env)
        finally:
            log.close()
        self.procs.append(proc)
        with open(self.pid_file, "a") as out:
            out.write("%d\n" % proc.pid)
        return proc

    def stop(self, proc, timeout=30.0, sig=signal.SIGTERM):
        """Send sig, wait up to timeout seconds, then SIGKILL. Returns the exit code."""
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def close(self):
        for proc in list(self.procs):
            self.stop(proc, timeout=10)


def read_cpu_seconds(pid):
    """User plus system CPU seconds of all threads of pid."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    # Fields after the parenthesised command name, which may contain spaces.
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def read_status_kib(pid, name):
    """Read a "kB" field of /proc/<pid>/status, such as VmHWM or VmRSS, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise BenchError("no %s in /proc/%d/status" % (name, pid))


class Sampler:
    """Samples a process's CPU seconds (every `interval` s) and RSS in a thread.

    cpu_between(t0, t1) interpolates the CPU time spent between two wall-clock
    times, so a measurement window can be cut out of a longer process life.
    """

    def __init__(self, pid, interval=0.05, rss_interval=None, system=False):
        self.pid = pid
        self.system = system
        self.system_cpu = []  # (wall seconds, busy jiffies, total jiffies)
        self.interval = interval
        self.rss_interval = rss_interval
        self.cpu = []   # (wall seconds, cpu seconds)
        self.rss = []   # (wall seconds, KiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        next_rss = 0.0
        while not self._stop.is_set():
            now = time.time()
            try:
                self.cpu.append((now, read_cpu_seconds(self.pid)))
                if self.system:
                    self.system_cpu.append((now,) + read_system_cpu())
                if self.rss_interval is not None and now >= next_rss:
                    self.rss.append((now, read_status_kib(self.pid, "VmRSS")))
                    next_rss = now + self.rss_interval
            except (OSError, ValueError, BenchError):
                return  # the process is gone
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _cpu_at(self, when):
        samples = self.cpu
        if not samples:
            raise BenchError("no CPU samples of pid %d" % self.pid)
        if when <= samples[0][0]:
            return samples[0][1]
        for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
            if t0 <= when <= t1:
                if t1 == t0:
                    return c1
                return c0 + (c1 - c0) * (when - t0) / (t1 - t0)
        return samples[-1][1]

    def cpu_between(self, start, end):
        return self._cpu_at(end) - self._cpu_at(start)

    def system_busy_between(self, start, end):
        """Fraction of all CPUs busy (every process) between two wall-clock
        times, from the samples nearest to them; None without samples."""
        inside = [s for s in self.system_cpu if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        first, last = inside[0], inside[-1]
        return (last[1] - first[1]) / max(1, last[2] - first[2])


def read_system_cpu():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_fraction(interval):
    """Fraction of all CPUs busy over the next `interval` seconds."""
    busy0, total0 = read_system_cpu()
    time.sleep(interval)
    busy1, total1 = read_system_cpu()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_for_quiet(threshold, timeout):
    """Wait until the machine is less than `threshold` busy over one second,
    at most `timeout` seconds. Returns the last busy fraction measured."""
    deadline = time.monotonic() + timeout
    while True:
        busy = busy_fraction(1.0)
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def wait_for_file(path, proc, timeout, what):
    """Wait until path is non-empty; fail if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return
        if proc.poll() is not None:
            raise BenchError("%s exited with code %s during start-up" % (what, proc.returncode))
        time.sleep(0.02)
    raise BenchError("timed out after %.0f s waiting for %s to write %s" % (timeout, what, path))
