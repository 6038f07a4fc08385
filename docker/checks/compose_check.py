"""Checks docker/compose.yml and docker/compose.real-key.yml against the
pool's design.

Usage:
  compose_check.py --root DIR --base FILE [--real-key FILE] [--raw] [--facts-out FILE]

--base and --real-key are the output of `docker compose config --format
json` (the normalized model: anchors, overrides and defaults resolved),
for docker/compose.yml with the monitoring profile and for compose.yml plus
compose.real-key.yml. With --raw, --base is docker/compose.yml itself,
parsed with PyYAML, for machines without the Compose CLI; the override is
then not checked. --facts-out writes the partition count of the requests
topic for the Kubernetes check."""

import argparse
import json
import os
import re

import yaml

import checklib

HEALTH_PORT = "8080"


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader that accepts Compose's !override and !reset merge tags."""


def _compose_tag(loader, _suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


ComposeLoader.add_multi_constructor("!", _compose_tag)


def load(path, raw):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=ComposeLoader) if raw else json.load(f)


def seconds(duration):
    """Convert a Compose duration such as "35s" or "1m30s" to seconds."""
    if isinstance(duration, (int, float)):
        return duration / 1e9  # the normalized model may use nanoseconds
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)", duration or ""):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    return total


def default_of(value):
    """Return the value, or the default of a ${VAR:-default} reference."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", str(value))
    return match.group(1) if match else str(value)


def env(service):
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    return {key: (None if value is None else str(value)) for key, value in environment.items()}


def depends(service):
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return {name: "service_started" for name in depends_on}
    return {name: spec.get("condition", "service_started") for name, spec in depends_on.items()}


def check_base(model, root, report, raw):
    services = model.get("services", {})
    for name in ("kafka", "kafka-init", "simulator", "worker"):
        if name not in services:
            report.error(f"service {name} is missing")
    if report.errors:
        return None
    kafka, init, simulator, worker = (services[n] for n in ("kafka", "kafka-init", "simulator", "worker"))

    kafka_env = env(kafka)
    report.expect(
        kafka.get("image", "").startswith("apache/kafka:")
        and set(kafka_env.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"},
        f"kafka: {kafka['image']} as one KRaft node (broker and controller)",
        "kafka: must run the official apache/kafka image with KAFKA_PROCESS_ROLES broker,controller",
    )
    report.expect(kafka_env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false",
                  "kafka: topic auto-creation is off, as the worker expects in production",
                  "kafka: KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false")

    init_env = env(init)
    worker_env = env(worker)
    script = " ".join(init.get("command") or []) if isinstance(init.get("command"), list) else str(init.get("command"))
    topics = [worker_env.get(k) for k in ("CHATT2ME_KAFKA_REQUESTS_TOPIC", "CHATT2ME_KAFKA_RESULTS_TOPIC",
                                          "CHATT2ME_KAFKA_DEAD_LETTER_TOPIC")]
    report.expect(
        all(topics) and all(init_env.get(k) == worker_env.get(k) for k in
                            ("CHATT2ME_KAFKA_REQUESTS_TOPIC", "CHATT2ME_KAFKA_RESULTS_TOPIC",
                             "CHATT2ME_KAFKA_DEAD_LETTER_TOPIC"))
        and script.count("create ") >= 3 and "--if-not-exists" in script,
        f"kafka-init creates the worker's three topics: {', '.join(t or '?' for t in topics)}",
        "kafka-init must create the topics that the worker is configured with",
    )
    partitions = default_of(init_env.get("REQUESTS_PARTITIONS", ""))
    report.expect(partitions.isdigit() and int(partitions) > 1,
                  f"the requests topic gets {partitions} partitions, room for a pool",
                  f"kafka-init: REQUESTS_PARTITIONS {partitions!r} is not a count above 1")
    report.expect(depends(init).get("kafka") == "service_healthy" and kafka.get("healthcheck"),
                  "kafka-init waits for the broker's health check",
                  "kafka-init must depend on kafka with condition service_healthy, and kafka needs a health check")

    for service, target in ((simulator, "simulator"), (worker, "worker")):
        build = service.get("build") or {}
        context = os.path.normpath(os.path.join(root, "docker", build.get("context", ""))) if raw \
            else os.path.normpath(build.get("context", ""))
        report.expect(
            build.get("target") == target and build.get("dockerfile") == "docker/Dockerfile"
            and os.path.samefile(context, root),
            f"{target}: built from docker/Dockerfile, target {target}, context the repository root",
            f"{target}: build must use docker/Dockerfile, target {target}, with the repository root as context",
        )
        report.expect(service.get("read_only") is True and "ALL" in (service.get("cap_drop") or []),
                      f"{target}: read-only root filesystem, all capabilities dropped",
                      f"{target}: needs read_only: true and cap_drop: [ALL]")

    report.expect("container_name" not in worker and not worker.get("ports"),
                  "worker: no container_name and no host ports, so --scale worker=N works",
                  "worker: container_name or host ports prevent --scale worker=N")
    worker_deps = depends(worker)
    report.expect(
        worker_deps.get("kafka-init") == "service_completed_successfully"
        and worker_deps.get("simulator") == "service_healthy",
        "worker: starts after the topics exist and the simulator is healthy",
        f"worker: depends_on must wait for kafka-init (completed) and simulator (healthy), found {worker_deps}",
    )
    test = (worker.get("healthcheck") or {}).get("test") or []
    report.expect("--healthcheck" in test and simulator.get("healthcheck"),
                  "worker health check runs chatt2me-worker --healthcheck; the simulator has one too",
                  "worker: healthcheck must run chatt2me-worker --healthcheck, and the simulator needs one")
    grace = seconds(worker.get("stop_grace_period"))
    report.expect(grace >= 35, f"worker: stop_grace_period {grace:g} s covers the 20 s drain",
                  f"worker: stop_grace_period {grace:g} s is shorter than 35 s")
    sim_key = env(simulator).get("CHATT2ME_SIM_API_KEY")
    report.expect(
        worker_env.get("CHATT2ME_API_BASE_URL") == f"http://simulator:{HEALTH_PORT}"
        and sim_key and worker_env.get("CHATT2ME_API_KEY") == sim_key
        and worker_env.get("CHATT2ME_KAFKA_BROKERS") == "kafka:9092",
        "worker: sends to the simulator with its key, consumes from kafka:9092",
        "worker: CHATT2ME_API_BASE_URL, CHATT2ME_API_KEY and CHATT2ME_KAFKA_BROKERS must point at "
        "the simulator (with CHATT2ME_SIM_API_KEY) and kafka:9092",
    )
    report.expect(worker_env.get("CHATT2ME_HEALTH_PORT") == HEALTH_PORT,
                  f"worker: health server on port {HEALTH_PORT}, where Prometheus scrapes",
                  f"worker: CHATT2ME_HEALTH_PORT must be {HEALTH_PORT}")
    check_monitoring(services, root, report)
    return int(partitions) if partitions.isdigit() else None


def check_monitoring(services, root, report):
    prometheus, grafana = services.get("prometheus"), services.get("grafana")
    if not prometheus or not grafana:
        report.note("the monitoring profile is not in this model: Prometheus and Grafana not checked")
        return
    with open(os.path.join(root, "docker/prometheus/prometheus.yml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    targets = [(sd.get("names"), sd.get("port")) for job in config.get("scrape_configs", [])
               for sd in job.get("dns_sd_configs", [])]
    report.expect((["worker"], int(HEALTH_PORT)) in targets,
                  "prometheus.yml discovers every worker replica through DNS on the health port",
                  f"prometheus.yml must scrape the DNS name worker on port {HEALTH_PORT}, found {targets}")
    for folder in ("datasources", "dashboards"):
        directory = os.path.join(root, "docker/grafana/provisioning", folder)
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                yaml.safe_load(f)
    mounts = " ".join(str(v.get("source", v) if isinstance(v, dict) else v) for v in grafana.get("volumes", []))
    report.expect("chatt2me-worker.json" in mounts,
                  "grafana provisions docker/grafana/chatt2me-worker.json",
                  "grafana does not mount docker/grafana/chatt2me-worker.json")


def check_real_key(model, report):
    services = model.get("services", {})
    worker = services.get("worker", {})
    worker_env = env(worker)
    secrets = worker.get("secrets") or []
    targets = [s.get("target") if isinstance(s, dict) else f"/run/secrets/{s}" for s in secrets]
    key_file = worker_env.get("CHATT2ME_API_KEY_FILE")
    report.expect(
        worker_env.get("CHATT2ME_API_BASE_URL") == "https://api.chatt2.me"
        and worker_env.get("CHATT2ME_API_KEY") == ""
        and key_file in targets,
        f"real key: the worker reads the key from the secret file {key_file} and sends to https://api.chatt2.me",
        "real key: CHATT2ME_API_KEY must be empty, CHATT2ME_API_KEY_FILE must be the secret's path "
        f"(found {key_file!r}, secrets at {targets}) and the base URL https://api.chatt2.me",
    )
    report.expect(
        "simulator" not in services and "simulator" not in depends(worker),
        "real key: the simulator is neither started nor waited for",
        "real key: the simulator is still started or waited for",
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--real-key")
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--facts-out")
    args = parser.parse_args()
    report = checklib.Report("compose")

    partitions = check_base(load(args.base, args.raw), args.root, report, args.raw)
    if args.real_key:
        check_real_key(load(args.real_key, args.raw), report)
    if args.facts_out and partitions:
        with open(args.facts_out, "w", encoding="utf-8") as f:
            json.dump({"requests_partitions": partitions}, f)
    report.finish()


if __name__ == "__main__":
    main()
