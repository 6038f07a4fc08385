"""Start-up and configuration: a missing API key or topic stops the worker
before it consumes anything, --check-config never prints secrets, and
--help and --version work without any configuration."""

import json
import uuid

from conftest import (REQUESTS_PARTITIONS, Topics, committed_offsets, consume, produce, request_value,
                      run_worker, unique, worker_env)


def test_missing_api_key_stops_start(bootstrap, topics, sim):
    text = f"private-text-{uuid.uuid4().hex}"
    produce(bootstrap, topics.requests, [{
        "key": b"k",
        "value": request_value(f"req-{uuid.uuid4().hex}", "whatsapp", sim.channel_ids["whatsapp"],
                               "5511987650001", json.dumps({"text": text})),
    }])
    env = worker_env(bootstrap, topics, sim, {"CHATT2ME_API_KEY": None})

    done = run_worker([], env)
    results = consume(bootstrap, topics.results, 0, linger=1.0)
    offsets = committed_offsets(bootstrap, topics.group, topics.requests, REQUESTS_PARTITIONS)

    assert done.returncode != 0, "the worker started without an API key"
    assert "API key" in done.stderr, f"the error does not mention the API key: {done.stderr!r}"
    assert "CHATT2ME_API_KEY" in done.stderr, f"the error does not say how to set the key: {done.stderr!r}"
    assert results == [], "a worker without an API key produced results"
    assert sim.log() == [], "a worker without an API key sent a request"
    assert all(offset < 0 for offset in offsets.values()), (
        f"a worker without an API key committed offsets: {offsets}")


def test_check_config_redacts_secrets(bootstrap, topics, sim, tmp_path):
    api_key = unique("c2m-it-secret-api-key")
    sasl_password = unique("c2m-it-sasl-password")
    env = worker_env(bootstrap, topics, sim, {
        "CHATT2ME_API_KEY": api_key,
        "CHATT2ME_KAFKA_PROPERTY_SASL_PASSWORD": sasl_password,
    })

    done = run_worker(["--check-config"], env)

    assert done.returncode == 0, f"--check-config failed with {done.returncode}: {done.stderr}"
    assert api_key not in done.stdout, "--check-config printed the API key"
    assert api_key not in done.stderr, "--check-config wrote the API key to stderr"
    assert sasl_password not in done.stdout, "--check-config printed sasl.password"
    assert sasl_password not in done.stderr, "--check-config wrote sasl.password to stderr"
    assert "[redacted]" in done.stdout, f"--check-config shows no redacted value:\n{done.stdout}"
    assert topics.results in done.stdout, f"--check-config does not show the results topic:\n{done.stdout}"
    assert sim.url in done.stdout, f"--check-config does not show the base URL:\n{done.stdout}"

    key_file = tmp_path / "api-key"
    key_file.write_text(api_key + "\n")
    env.pop("CHATT2ME_API_KEY")
    env["CHATT2ME_API_KEY_FILE"] = str(key_file)
    done = run_worker(["--check-config"], env)

    assert done.returncode == 0, f"--check-config with a key file failed: {done.stderr}"
    assert api_key not in done.stdout + done.stderr, "--check-config printed the key read from a file"


def test_check_config_reports_invalid_value(bootstrap, topics, sim):
    env = worker_env(bootstrap, topics, sim, {"CHATT2ME_RETRY_MAX_ATTEMPTS": "0"})

    done = run_worker(["--check-config"], env)

    assert done.returncode != 0, "--check-config accepted max_attempts 0"
    assert "CHATT2ME_RETRY_MAX_ATTEMPTS" in done.stderr or "max_attempts" in done.stderr, (
        f"the error does not name the setting: {done.stderr!r}")
    assert sim.api_key not in done.stdout + done.stderr, "the API key appears in the output"


def test_missing_results_topic_stops_start(bootstrap, topic_factory, sim):
    base = unique("c2m-it")
    topics = Topics(requests=topic_factory(f"{base}-requests", REQUESTS_PARTITIONS),
                    results=f"{base}-results",  # never created
                    dead_letters=topic_factory(f"{base}-dead-letters", 1),
                    group=f"{base}-group")
    env = worker_env(bootstrap, topics, sim)

    done = run_worker([], env)

    assert done.returncode == 2, f"exit status {done.returncode}, expected 2: {done.stderr}"
    assert topics.results in done.stderr, f"the error does not name the missing topic: {done.stderr!r}"
    assert sim.api_key not in done.stderr, "the API key appears in the error output"
    assert sim.log() == [], "the worker sent a request without a results topic"


def test_help_and_version(bootstrap, topics, sim):
    env = worker_env(bootstrap, topics, sim)

    help_run = run_worker(["--help"], env)
    version_run = run_worker(["--version"], env)

    assert help_run.returncode == 0, f"--help exited with {help_run.returncode}"
    assert "Usage: chatt2me-worker" in help_run.stdout, f"--help output:\n{help_run.stdout}"
    assert "CHATT2ME_API_KEY" in help_run.stdout, "--help does not explain how to set the key"
    assert sim.api_key not in help_run.stdout, "--help printed the API key"
    assert version_run.returncode == 0, f"--version exited with {version_run.returncode}"
    assert version_run.stdout.startswith("chatt2me-worker "), f"--version output: {version_run.stdout!r}"
    assert sim.api_key not in version_run.stdout, "--version printed the API key"
