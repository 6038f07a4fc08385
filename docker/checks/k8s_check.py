"""Validates the Kubernetes manifests of docker/k8s.

Every object of every rendered kustomization, and every raw manifest named
with --raw, is validated against the Kubernetes JSON schemas that the PyPI
package kubernetes-validate ships (strict: unknown fields are errors), for
each version given with --kubernetes-version. Custom resources (KEDA's
ScaledObject, the Prometheus Operator's PodMonitor) are validated against
the openAPIV3Schema of their CRD, given with --crd. Then the objects are
checked against each other and against the worker's design: security
context, probes, grace period, key file, configuration mount, autoscaling
bounds and metric names.

Usage:
  k8s_check.py --root DIR --render NAME=FILE... [--raw FILE...]
               [--crd FILE...] [--kubernetes-version X.Y...]
               [--partitions N] (--exposition FILE | --fallback)
"""

import argparse
import os
import posixpath
import re
import tempfile

import jsonschema
import yaml

import checklib
from promql_refs import check_expression

WORKER_UID = 10001
HEALTH_PORT_ENV = "CHATT2ME_HEALTH_PORT"


# ---- schemas ---------------------------------------------------------------

def crd_to_schema(schema):
    """Turn a CRD's structural openAPIV3Schema into a JSON Schema that, like
    the API server, rejects unknown fields: objects with properties get
    additionalProperties false unless they preserve unknown fields."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: crd_to_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = crd_to_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [crd_to_schema(sub) for sub in value]
        elif key.startswith("x-kubernetes-") or key == "nullable":
            continue
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in out and "additionalProperties" not in out
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_crds(paths, report):
    """Return {(group/version, kind): JSON Schema} from CRD YAML files."""
    schemas = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec.get("versions", []):
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if schema:
                        api_version = f"{spec['group']}/{version['name']}"
                        schemas[(api_version, spec["names"]["kind"])] = crd_to_schema(schema)
        report.ok(f"CRD schemas loaded from {os.path.basename(path)}")
    return schemas


def validate_object(obj, where, versions, crds, report):
    import kubernetes_validate  # from the tools venv of scripts/check-deploy

    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    name = f"{where}: {kind}/{obj.get('metadata', {}).get('name')}"
    crd_schema = crds.get((api_version, kind))
    if crd_schema is not None:
        errors = sorted(jsonschema.Draft7Validator(crd_schema).iter_errors(obj), key=str)
        for error in errors:
            path = ".".join(str(p) for p in error.absolute_path)
            report.error(f"{name}: {path}: {error.message}")
        if not errors:
            report.ok(f"{name} matches its CRD schema")
        return
    passed = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
            passed.append(version)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            report.error(f"{name} (Kubernetes {version}): {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            report.error(f"{name}: {e.message}; for a custom resource, pass its CRD with --crd")
            return
    if len(passed) == len(versions):
        report.ok(f"{name} is valid for Kubernetes {' and '.join(versions)} (strict)")


# ---- cross-checks ------------------------------------------------------------

def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def worker_config(objects, deployment, report, where):
    """Return the worker.cfg that the Deployment mounts, parsed."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    path = env_of(container).get("CHATT2ME_CONFIG")
    if not path:
        report.error(f"{where}: the worker container does not set CHATT2ME_CONFIG")
        return {}
    mount = next((m for m in container.get("volumeMounts", [])
                  if posixpath.dirname(path) == m["mountPath"].rstrip("/")), None)
    if mount is None:
        report.error(f"{where}: no volume is mounted at {posixpath.dirname(path)} for CHATT2ME_CONFIG")
        return {}
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    config_map_name = volume.get("configMap", {}).get("name")
    config_map = next((c for c in by_kind(objects, "ConfigMap")
                       if c["metadata"]["name"] == config_map_name), None)
    key = posixpath.basename(path)
    if config_map is None or key not in config_map.get("data", {}):
        report.error(f"{where}: CHATT2ME_CONFIG names {path}, but ConfigMap {config_map_name} has no key {key}")
        return {}
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(config_map["data"][key])
    try:
        config = checklib.parse_libconfig(f.name)
    finally:
        os.unlink(f.name)
    report.ok(f"{where}: CHATT2ME_CONFIG {path} is mounted from ConfigMap {config_map_name}")
    return config


def check_security(deployment, report, where):
    pod = deployment["spec"]["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    problems = []
    if pod_security.get("runAsNonRoot") is not True:
        problems.append("pod runAsNonRoot is not true")
    if pod_security.get("runAsUser") != WORKER_UID or pod_security.get("runAsGroup") != WORKER_UID:
        problems.append(f"pod runAsUser/runAsGroup are not the image's {WORKER_UID}")
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken is not false")
    for container in pod["containers"]:
        security = container.get("securityContext", {})
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{container['name']}: allowPrivilegeEscalation is not false")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{container['name']}: readOnlyRootFilesystem is not true")
        if security.get("privileged"):
            problems.append(f"{container['name']}: privileged")
        capabilities = security.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
            problems.append(f"{container['name']}: capabilities do not drop ALL, or add some")
        resources = container.get("resources", {})
        if not resources.get("requests", {}).get("memory") or not resources.get("limits", {}).get("memory"):
            problems.append(f"{container['name']}: memory request or limit missing")
        if not resources.get("requests", {}).get("cpu"):
            problems.append(f"{container['name']}: CPU request missing (the CPU-based HPA needs it)")
    for problem in problems:
        report.error(f"{where}: {problem}")
    if not problems:
        report.ok(f"{where}: restricted security context (non-root {WORKER_UID}, read-only root, "
                  "no capabilities, RuntimeDefault seccomp, no privilege escalation), resources set")


def check_probes_and_grace(deployment, config, report, where):
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    port = int(env.get(HEALTH_PORT_ENV) or 8080)
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = container.get(probe_name, {}).get("httpGet", {})
        probe_port = ports.get(probe.get("port"), probe.get("port"))
        report.expect(
            probe.get("path") == path and probe_port == port,
            f"{where}: {probe_name} GETs {path} on the health port {port}",
            f"{where}: {probe_name} must GET {path} on port {port} (found {probe.get('path')} "
            f"on {probe.get('port')})",
        )
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        report.expect(
            annotations["prometheus.io/port"] == str(port) and annotations.get("prometheus.io/path") == "/metrics",
            f"{where}: Prometheus annotations scrape /metrics on port {port}",
            f"{where}: prometheus.io/port and path must be {port} and /metrics",
        )
    drain_ms = int(env.get("CHATT2ME_WORKER_DRAIN_TIMEOUT_MS")
                   or config.get("worker", {}).get("drain_timeout_ms", 20000))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    report.expect(
        grace * 1000 >= drain_ms + 10000 and grace >= 35,
        f"{where}: terminationGracePeriodSeconds {grace} s covers the {drain_ms / 1000:g} s drain "
        "plus flush and commit",
        f"{where}: terminationGracePeriodSeconds {grace} s must be at least 35 s and "
        f"10 s above worker.drain_timeout_ms ({drain_ms} ms)",
    )
    return ports


def check_key_file(deployment, secrets, report, where):
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    if "CHATT2ME_API_KEY" in env:
        report.error(f"{where}: the key must come from the Secret file, not CHATT2ME_API_KEY")
    key_file = env.get("CHATT2ME_API_KEY_FILE")
    if not key_file:
        report.error(f"{where}: CHATT2ME_API_KEY_FILE is not set")
        return
    directory, filename = posixpath.split(key_file)
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"].rstrip("/") == directory), None)
    volume = mount and next((v for v in pod["volumes"] if v["name"] == mount["name"]), None)
    secret = (volume or {}).get("secret")
    if not secret:
        report.error(f"{where}: CHATT2ME_API_KEY_FILE {key_file} is not in a mounted Secret volume")
        return
    items = {item["path"]: item["key"] for item in secret.get("items", [])}
    secret_key = items.get(filename, filename if not items else None)
    template = next((s for s in secrets if s["metadata"]["name"] == secret["secretName"]), None)
    ok = (template is not None and secret_key is not None
          and secret_key in {**template.get("data", {}), **template.get("stringData", {})})
    report.expect(
        ok,
        f"{where}: CHATT2ME_API_KEY_FILE {key_file} is key {secret_key!r} of Secret {secret['secretName']}, "
        "as the template defines it",
        f"{where}: CHATT2ME_API_KEY_FILE {key_file} does not match a key of the Secret template "
        f"{secret.get('secretName')}",
    )
    # The kubelet creates the file owned by root and, with fsGroup, by that
    # group: the worker (UID 10001) reads it through the group.
    mode = secret.get("defaultMode", 0o644)
    report.expect(
        mode & 0o007 == 0,
        f"{where}: key file mode {mode:04o} gives other users no access",
        f"{where}: key file mode {mode:04o} lets any user in the container read the key",
    )
    report.expect(
        mode & 0o040 and pod.get("securityContext", {}).get("fsGroup") == WORKER_UID,
        f"{where}: the worker reads the key file through fsGroup {WORKER_UID}",
        f"{where}: the worker cannot read the key file: it needs group read in the mode and "
        f"fsGroup {WORKER_UID}",
    )


def check_autoscaling(objects, deployment, config, partitions, lag_metric_name, report, where):
    kafka = config.get("kafka", {})
    name = deployment["metadata"]["name"]
    for scaled in by_kind(objects, "ScaledObject"):
        spec = scaled["spec"]
        report.expect(spec["scaleTargetRef"]["name"] == name,
                      f"{where}: ScaledObject scales Deployment {name}",
                      f"{where}: ScaledObject targets {spec['scaleTargetRef']['name']}, not {name}")
        for trigger in spec["triggers"]:
            if trigger["type"] != "kafka":
                continue
            meta = trigger["metadata"]
            expected = {"consumerGroup": kafka.get("group_id"), "topic": kafka.get("requests_topic"),
                        "bootstrapServers": kafka.get("brokers")}
            for key, value in expected.items():
                report.expect(meta.get(key) == value,
                              f"{where}: kafka trigger {key} {value!r} matches worker.cfg",
                              f"{where}: kafka trigger {key} is {meta.get(key)!r}, worker.cfg says {value!r}")
            report.expect(str(meta.get("lagThreshold", "")).isdigit() and int(meta["lagThreshold"]) > 0,
                          f"{where}: lagThreshold {meta.get('lagThreshold')} records per replica",
                          f"{where}: lagThreshold must be a positive integer string")
        check_bounds(spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100), partitions,
                     "ScaledObject", report, where)
    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        target = spec["scaleTargetRef"]
        report.expect(target.get("kind") == "Deployment" and target.get("name") == name,
                      f"{where}: HorizontalPodAutoscaler scales Deployment {name}",
                      f"{where}: HorizontalPodAutoscaler targets {target}, not Deployment {name}")
        check_bounds(spec.get("minReplicas", 1), spec["maxReplicas"], partitions,
                     "HorizontalPodAutoscaler", report, where)
        for metric in spec.get("metrics", []):
            if metric["type"] != "External":
                continue
            external = metric["external"]["metric"]
            report.expect(external["name"] == lag_metric_name,
                          f"{where}: External metric {external['name']} is the one the adapter rule serves",
                          f"{where}: External metric {external['name']} is not served by the adapter rule "
                          f"({lag_metric_name})")
            topic = external.get("selector", {}).get("matchLabels", {}).get("topic")
            report.expect(topic == kafka.get("requests_topic"),
                          f"{where}: External metric selects topic {topic}",
                          f"{where}: External metric selects topic {topic!r}, worker.cfg consumes "
                          f"{kafka.get('requests_topic')!r}")
    if by_kind(objects, "ScaledObject") or by_kind(objects, "HorizontalPodAutoscaler"):
        report.expect("replicas" not in deployment["spec"],
                      f"{where}: the Deployment leaves replicas to the autoscaler",
                      f"{where}: the Deployment sets replicas, which every apply would reset")


def check_bounds(minimum, maximum, partitions, kind, report, where):
    if partitions is None:
        report.note(f"{where}: partition count unknown, {kind} maximum {maximum} not compared")
        return
    report.expect(
        1 <= minimum <= maximum == partitions,
        f"{where}: {kind} scales from {minimum} to {maximum} replicas, the requests topic's "
        f"{partitions} partitions",
        f"{where}: {kind} bounds {minimum}..{maximum}: the maximum must equal the requests topic's "
        f"{partitions} partitions (docker/compose.yml) and the minimum be at least 1",
    )


def check_selectors(objects, deployment, report, where):
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [("Deployment", deployment["spec"]["selector"])]
    selectors += [("PodDisruptionBudget", p["spec"]["selector"]) for p in by_kind(objects, "PodDisruptionBudget")]
    selectors += [("PodMonitor", p["spec"]["selector"]) for p in by_kind(objects, "PodMonitor")]
    for kind, selector in selectors:
        labels = selector.get("matchLabels", {})
        report.expect(labels and all(template_labels.get(k) == v for k, v in labels.items()),
                      f"{where}: {kind} selector matches the worker pods",
                      f"{where}: {kind} selector {labels} does not match the pod labels {template_labels}")


def check_image_tag(deployment, root, report, where):
    """The image tag in the kustomizations follows the CMake project version."""
    with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
        version = re.search(r"project\([^)]*VERSION\s+([\d.]+)", f.read()).group(1)
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    report.expect(image.rsplit(":", 1)[-1] == version,
                  f"{where}: image {image} has the project version {version}",
                  f"{where}: image {image} does not have the project version {version} as its tag")


def check_render(name, objects, secrets, partitions, lag_metric_name, root, report):
    deployments = by_kind(objects, "Deployment")
    if len(deployments) != 1:
        report.error(f"{name}: expected one Deployment, found {len(deployments)}")
        return
    deployment = deployments[0]
    config = worker_config(objects, deployment, report, name)
    check_security(deployment, report, name)
    ports = check_probes_and_grace(deployment, config, report, name)
    check_key_file(deployment, secrets, report, name)
    check_autoscaling(objects, deployment, config, partitions, lag_metric_name, report, name)
    check_selectors(objects, deployment, report, name)
    check_image_tag(deployment, root, report, name)
    for monitor in by_kind(objects, "PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            report.expect(endpoint.get("port") in ports and endpoint.get("path") == "/metrics",
                          f"{name}: PodMonitor scrapes /metrics on port {endpoint.get('port')}",
                          f"{name}: PodMonitor endpoint {endpoint} is not the health port's /metrics")
    namespaces = by_kind(objects, "Namespace")
    for namespace in namespaces:
        labels = namespace["metadata"].get("labels", {})
        report.expect(labels.get("pod-security.kubernetes.io/enforce") == "restricted",
                      f"{name}: namespace {namespace['metadata']['name']} enforces the restricted Pod Security Standard",
                      f"{name}: namespace {namespace['metadata']['name']} does not enforce the restricted standard")


def check_adapter_rule(path, metrics, report):
    """Check the Prometheus Adapter rule's queries; return the metric name it serves."""
    with open(path, encoding="utf-8") as f:
        values = yaml.safe_load(f)
    served = None
    for rule in values.get("rules", {}).get("external", []):
        served = rule.get("name", {}).get("as")
        check_expression(rule["seriesQuery"], metrics, f"{os.path.basename(path)} seriesQuery", report)
        query = (rule["metricsQuery"].replace("<<.Series>>", "chatt2me_consumer_lag")
                 .replace("{<<.LabelMatchers>>}", "").replace("<<.GroupBy>>", "namespace, topic"))
        check_expression(query, metrics, f"{os.path.basename(path)} metricsQuery", report)
    report.expect(served is not None, f"{os.path.basename(path)} serves the External metric {served}",
                  f"{os.path.basename(path)} has no external rule with name.as")
    return served


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--render", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--raw", action="append", default=[])
    parser.add_argument("--crd", action="append", default=[])
    parser.add_argument("--kubernetes-version", action="append", default=[])
    parser.add_argument("--partitions", type=int)
    parser.add_argument("--adapter-values")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--exposition")
    source.add_argument("--fallback", action="store_true")
    args = parser.parse_args()
    report = checklib.Report("kubernetes")

    if args.exposition:
        with open(args.exposition, encoding="utf-8") as f:
            metrics = checklib.parse_exposition(f.read())
    else:
        metrics = checklib.fallback_metrics()
    crds = load_crds(args.crd, report)
    versions = args.kubernetes_version or ["1.37"]

    secrets = []
    for path in args.raw:
        with open(path, encoding="utf-8") as f:
            for obj in yaml.safe_load_all(f):
                if not obj:
                    continue
                validate_object(obj, checklib.relpath(path, args.root), versions, crds, report)
                if obj.get("kind") == "Secret":
                    secrets.append(obj)

    lag_metric_name = check_adapter_rule(args.adapter_values, metrics, report) if args.adapter_values else None

    for item in args.render:
        name, path = item.split("=", 1)
        with open(path, encoding="utf-8") as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        for obj in objects:
            validate_object(obj, name, versions, crds, report)
        check_render(name, objects, secrets, args.partitions, lag_metric_name, args.root, report)
    report.finish()


if __name__ == "__main__":
    main()
