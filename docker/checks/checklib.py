"""Helpers shared by the deployment checks that scripts/check-deploy runs."""

import os
import re
import sys

# The worker's metric families, their types and label names, as documented
# for the health server. Used only when the worker's metrics module cannot be
# built and rendered (render_metrics.c), which is the authoritative source.
FALLBACK_METRICS = {
    "chatt2me_requests_consumed_total": ("counter", {}),
    "chatt2me_results_total": ("counter", {"status": None, "class": None}),
    "chatt2me_http_responses_total": ("counter", {"channel": None, "code": None}),
    "chatt2me_http_request_duration_seconds": ("histogram", {"le": None}),
    "chatt2me_request_duration_seconds": ("histogram", {"le": None}),
    "chatt2me_retries_total": ("counter", {}),
    "chatt2me_commit_failures_total": ("counter", {}),
    "chatt2me_produce_failures_total": ("counter", {}),
    "chatt2me_requests_in_flight": ("gauge", {}),
    "chatt2me_requests_buffered": ("gauge", {}),
    "chatt2me_partitions_paused": ("gauge", {}),
    "chatt2me_outage_mode": ("gauge", {}),
    "chatt2me_auth_paused": ("gauge", {}),
    "chatt2me_consumer_lag": ("gauge", {"topic": None, "partition": None}),
    "chatt2me_build_info": ("gauge", {"version": None}),
}
# Labels that Prometheus adds to every scraped series, whatever the target
# exports: job and instance always, namespace and pod with the usual
# Kubernetes relabelling.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "service"}


class Report:
    """Collects the findings of one check and prints them as it goes."""

    def __init__(self, name):
        self.name = name
        self.errors = 0

    def ok(self, message):
        print(f"  ok: {message}")

    def note(self, message):
        print(f"  note: {message}")

    def error(self, message):
        self.errors += 1
        print(f"  error: {message}")

    def expect(self, condition, ok_message, error_message):
        """Report ok_message if condition holds, else error_message."""
        if condition:
            self.ok(ok_message)
        else:
            self.error(error_message)
        return condition

    def finish(self):
        """Exit with 1 if any error was reported, else 0."""
        sys.exit(1 if self.errors else 0)


# ---- libconfig ------------------------------------------------------------

_LIBCONFIG_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/
      |(?P<string>"(?:[^"\\]|\\.)*")
      |(?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)L{0,2})
      |(?P<name>[A-Za-z*][-A-Za-z0-9_*]*)
      |(?P<punct>[=:;,{}\[\]()])""",
    re.VERBOSE | re.DOTALL,
)


def _libconfig_tokens(text, path):
    pos = 0
    tokens = []
    while pos < len(text):
        match = _LIBCONFIG_TOKEN.match(text, pos)
        if not match:
            line = text.count("\n", 0, pos) + 1
            raise ValueError(f"{path}:{line}: unexpected character {text[pos]!r}")
        pos = match.end()
        for kind in ("string", "number", "name", "punct"):
            if match.group(kind) is not None:
                tokens.append((kind, match.group(kind)))
                break
    return tokens


def parse_libconfig(path):
    """Parse the subset of libconfig used by the worker's files: groups,
    lists or arrays of scalars, strings, integers and booleans. Returns
    nested dicts."""
    with open(path, encoding="utf-8") as f:
        tokens = _libconfig_tokens(f.read(), path)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else ("eof", None)

    def take(expected=None):
        nonlocal pos
        token = peek()
        if expected is not None and token[1] != expected:
            raise ValueError(f"{path}: expected {expected!r}, found {token[1]!r}")
        pos += 1
        return token

    def value():
        kind, text = take()
        if text == "{":
            return settings("}")
        if text in ("[", "("):
            closing = "]" if text == "[" else ")"
            items = []
            while peek()[1] != closing:
                items.append(value())
                if peek()[1] == ",":
                    take()
            take(closing)
            return items
        if kind == "string":
            parts = [bytes(text[1:-1], "utf-8").decode("unicode_escape")]
            while peek()[0] == "string":  # adjacent strings concatenate
                parts.append(bytes(take()[1][1:-1], "utf-8").decode("unicode_escape"))
            return "".join(parts)
        if kind == "number":
            digits = text.rstrip("L")
            return int(digits, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", digits) else float(digits)
        if kind == "name" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError(f"{path}: unexpected {text!r}")

    def settings(closing):
        group = {}
        while peek()[1] != closing:
            kind, name = take()
            if kind != "name":
                raise ValueError(f"{path}: expected a setting name, found {name!r}")
            if peek()[1] not in ("=", ":"):
                raise ValueError(f"{path}: expected '=' after {name}")
            take()
            group[name] = value()
            if peek()[1] in (";", ","):
                take()
        if closing is not None:
            take(closing)
        return group

    return settings(None)


# ---- Prometheus exposition ------------------------------------------------

def parse_exposition(text):
    """Parse the Prometheus text format into {family: (type, {label: set of
    values})}, folding histogram _bucket, _sum and _count series into
    their family."""
    types = {}
    families = {}
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+")
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
            families.setdefault(name, {})
            continue
        if not line or line.startswith("#"):
            continue
        match = sample.match(line)
        if not match:
            raise ValueError(f"not a sample line: {line!r}")
        name = match.group(1)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and types.get(base) == "histogram":
                family = base
        labels = families.setdefault(family, {})
        for key, value in label.findall(match.group(2) or ""):
            labels.setdefault(key, set()).add(value)
    return {name: (types.get(name, "untyped"), labels) for name, labels in families.items()}


def fallback_metrics():
    """Return FALLBACK_METRICS in the form parse_exposition returns, with
    label values unknown (None instead of a set)."""
    return {
        name: (kind, {key: None for key in labels})
        for name, (kind, labels) in FALLBACK_METRICS.items()
    }


def relpath(path, root):
    return os.path.relpath(path, root)
