"""Checks docker/grafana/chatt2me-worker.json: valid JSON with the structure
Grafana needs, and queries that use only metrics, labels and label values
the worker exports.

Usage: dashboard_check.py DASHBOARD (--exposition FILE | --fallback)

--exposition names the output of render_metrics.c (the worker's real
/metrics page); --fallback uses the list in checklib.py instead."""

import argparse
import json

import checklib
from promql_refs import check_expression

PANEL_TYPES = {"row", "timeseries", "stat", "state-timeline", "gauge", "table", "bargauge", "text"}
GRID_WIDTH = 24


def load_metrics(args, report):
    if args.exposition:
        with open(args.exposition, encoding="utf-8") as f:
            metrics = checklib.parse_exposition(f.read())
        report.ok(f"{len(metrics)} metric families from the worker's rendered /metrics page")
    else:
        metrics = checklib.fallback_metrics()
        report.note(
            f"{len(metrics)} metric families from the documented list in checklib.py "
            "(the worker's metrics module could not be rendered)"
        )
    return metrics


def check_layout(panels, report):
    seen_ids = set()
    boxes = []
    for panel in panels:
        title = panel.get("title", "?")
        pid = panel.get("id")
        if not isinstance(pid, int) or pid in seen_ids:
            report.error(f"panel {title!r}: id {pid!r} is missing or not unique")
        seen_ids.add(pid)
        if panel.get("type") not in PANEL_TYPES:
            report.error(f"panel {title!r}: unknown type {panel.get('type')!r}")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            report.error(f"panel {title!r}: gridPos needs integers x, y, w and h")
            continue
        if grid["x"] < 0 or grid["w"] < 1 or grid["x"] + grid["w"] > GRID_WIDTH:
            report.error(f"panel {title!r}: gridPos leaves the {GRID_WIDTH}-column grid")
        for other_title, other in boxes:
            if (grid["x"] < other["x"] + other["w"] and other["x"] < grid["x"] + grid["w"]
                    and grid["y"] < other["y"] + other["h"] and other["y"] < grid["y"] + grid["h"]):
                report.error(f"panels {other_title!r} and {title!r} overlap")
        boxes.append((title, grid))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dashboard")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--exposition")
    source.add_argument("--fallback", action="store_true")
    args = parser.parse_args()
    report = checklib.Report("dashboard")

    with open(args.dashboard, encoding="utf-8") as f:
        try:
            dashboard = json.load(f)
        except json.JSONDecodeError as e:
            report.error(f"{args.dashboard} is not valid JSON: {e}")
            report.finish()
    report.ok(f"{args.dashboard} parses as JSON")
    metrics = load_metrics(args, report)

    for key, kind in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list)):
        if not isinstance(dashboard.get(key), kind):
            report.error(f"dashboard field {key!r} is missing or not a {kind.__name__}")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    report.expect(
        variables.get("datasource", {}).get("type") == "datasource"
        and variables["datasource"].get("query") == "prometheus",
        "a Prometheus data source variable, so the dashboard imports into any Grafana",
        "templating needs a variable 'datasource' of type datasource with query prometheus",
    )

    panels = dashboard.get("panels", [])
    check_layout(panels, report)

    used = set()
    queries = 0
    for panel in panels:
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        targets = panel.get("targets") or []
        if not targets:
            report.error(f"panel {title!r} has no query")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            report.error(f"panel {title!r} does not use the ${{datasource}} variable")
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids):
            report.error(f"panel {title!r}: refIds are not unique")
        for target in targets:
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                report.error(f"panel {title!r}: query {target.get('refId')} has no expr")
                continue
            queries += 1
            used |= check_expression(expr, metrics, f"panel {title!r}", report,
                                     legend=target.get("legendFormat"))
    for name, variable in variables.items():
        if variable.get("type") == "query":
            query = variable.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            used |= check_expression(
                query.replace("label_values(", "").rsplit(",", 1)[0],
                metrics, f"variable {name!r}", report)

    report.ok(f"{queries} panel queries checked against the worker's metrics")
    required_families = {
        "chatt2me_results_total", "chatt2me_http_responses_total",
        "chatt2me_http_request_duration_seconds", "chatt2me_request_duration_seconds",
        "chatt2me_requests_in_flight", "chatt2me_requests_buffered",
        "chatt2me_consumer_lag", "chatt2me_retries_total",
        "chatt2me_outage_mode", "chatt2me_auth_paused",
    }
    missing = sorted(required_families - used)
    report.expect(not missing, "throughput, HTTP codes, latency, in flight, buffered, lag, retries, "
                  "dead letters, outage and 401 pause all have a panel",
                  f"no panel shows {', '.join(missing)}")
    unused = sorted(name for name in metrics if name.startswith("chatt2me_") and name not in used)
    if unused:
        report.note(f"metrics without a panel: {', '.join(unused)}")
    report.finish()


if __name__ == "__main__":
    main()
