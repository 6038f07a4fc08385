"""Checks that PromQL expressions refer only to the worker's metrics, with
labels and label values the worker exports.

This is a lexical check, not a PromQL parser. It finds every chatt2me_*
selector with its matchers, the labels of by/without clauses and the labels
a legend template uses. That covers the expressions of the Grafana
dashboard and the Prometheus Adapter rule."""

import re

from checklib import TARGET_LABELS

_GRAFANA_VARIABLE = re.compile(r"\$__\w+|\$\{\w+(?::\w+)?\}|\$\w+")
_SELECTOR = re.compile(r"\b(chatt2me_[a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _family_of(name, metrics):
    """Return (family, suffix) for a series name, or (None, None)."""
    if name in metrics:
        return name, ""
    for suffix in _HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and base in metrics:
            return base, suffix
    return None, None


def check_expression(expr, metrics, where, report, legend=None):
    """Report every reference in expr to a metric, label or label value
    that metrics (from checklib.parse_exposition) does not contain. Grafana
    variables are replaced by a placeholder first. Returns the set of
    families used."""
    text = _GRAFANA_VARIABLE.sub("VAR", expr)
    used = set()
    available_labels = set(TARGET_LABELS)

    selectors = _SELECTOR.findall(text)
    if not selectors:
        report.error(f"{where}: the expression uses no chatt2me_* metric: {expr}")
    for name, matchers in selectors:
        family, suffix = _family_of(name, metrics)
        if family is None:
            report.error(f"{where}: metric {name} is not exported by the worker")
            continue
        used.add(family)

        kind, labels = metrics[family]
        if kind == "histogram" and not suffix:
            report.error(f"{where}: {name} is a histogram: query {name}_bucket, _sum or _count")
        if kind != "histogram" and suffix:
            report.error(f"{where}: {name}: {family} is a {kind}, not a histogram")
        family_labels = set(labels)
        if kind == "histogram" and suffix == "_bucket":
            family_labels.add("le")
        if kind == "histogram" and suffix != "_bucket":
            family_labels.discard("le")
        available_labels |= family_labels

        for label, operator, value in _MATCHER.findall(matchers or ""):
            if label in TARGET_LABELS:
                continue
            if label not in family_labels:
                report.error(f"{where}: {family} has no label {label!r}")
                continue
            known = labels.get(label)
            if known is None or value == "VAR" or operator in ("!=", "!~"):
                continue
            if operator == "=":
                values = [value]
            elif re.fullmatch(r"[\w.-]+(\|[\w.-]+)*", value):
                values = value.split("|")
            else:
                continue  # a real regular expression: not checked
            for item in values:
                if item not in known:
                    report.error(
                        f"{where}: {family}{{{label}=...}}: the worker never exports the value "
                        f"{item!r} (known: {', '.join(sorted(known))})"
                    )

    grouped_labels = set()
    for group in _GROUPING.findall(text):
        for label in (part.strip() for part in group.split(",")):
            if label and label not in available_labels:
                report.error(f"{where}: grouping label {label!r} is not a label of the metrics used")
            grouped_labels.add(label)
    if "histogram_quantile" in text and not re.search(r"\bby\s*\([^)]*\ble\b", text):
        report.error(f"{where}: histogram_quantile needs the le label kept (sum by (le) ...)")
    # After an aggregation only its grouping labels are left, so a legend
    # may use only those; without one, any label of the series.
    result_labels = grouped_labels if grouped_labels else available_labels
    for label in _LEGEND_LABEL.findall(legend or ""):
        if label not in result_labels:
            report.error(f"{where}: legend uses {{{{{label}}}}}, which the query does not return")
    return used
