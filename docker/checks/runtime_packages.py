"""Checks the runtime stages' Debian packages and estimates the image sizes.

Usage: runtime_packages.py DOCKERFILE STAGE_ROOT [--max-worker-mb N]

STAGE_ROOT is the scratch root that `dockerfile_check.py build` filled
(STAGE_ROOT/stage/usr/local/bin/...).

For each runtime stage (simulator, worker):
1. `apt-get install --dry-run` of the stage's packages against a dpkg
   status that holds only the packages of debian:bookworm-slim, so apt's
   own resolver lists the packages the stage adds, and fails if a name
   does not exist or a dependency cannot be met;
2. every shared library that the staged binaries load (ldd) must belong to
   a package of bookworm-slim or of that set (dpkg -S), so the image has
   everything the binary needs;
3. the image size is estimated as bookworm-slim's size plus the
   Installed-Size of the added packages plus the binaries.

The bookworm-slim package set is rebuilt here the way Debian's images are
made (debuerreotype, minbase variant): the packages of priority required
and their dependencies, with usr-is-merged for the merged /usr. The
machine's apt lists must be those of bookworm, as on this Debian 12 host."""

import argparse
import os
import re
import subprocess
import tempfile

import checklib
import dockerfile_check

# debian:bookworm-slim on amd64 takes about 75 MB unpacked (`docker images`).
# Not measurable here without a Docker engine: a stated figure, not a reading.
SLIM_BASE_MB = 75.0


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def apt_show(packages):
    """Return {package: {field: value}} for the candidate versions."""
    output = run(["apt-cache", "show", "--no-all-versions", *packages]).stdout
    stanzas = {}
    for block in output.strip().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", block, re.MULTILINE))
        if "Package" in fields:
            stanzas[fields["Package"]] = (fields, block)
    return stanzas


def simulate_install(packages, status_file):
    """Return (installed packages, error text) of apt-get --dry-run."""
    result = run(["apt-get", "install", "--dry-run", "--no-install-recommends", "-q",
                  "-o", f"Dir::State::status={status_file}", *packages])
    if result.returncode != 0:
        return None, (result.stdout + result.stderr).strip()
    return sorted(set(re.findall(r"^Inst (\S+)", result.stdout, re.MULTILINE))), ""


def slim_status(directory):
    """Write a dpkg status file with bookworm-slim's packages; return
    (path, package set)."""
    available = run(["apt-cache", "dumpavail"]).stdout
    required = set()
    for block in available.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", block, re.MULTILINE))
        if fields.get("Priority") == "required" or fields.get("Essential") == "yes":
            required.add(fields["Package"])
    empty = os.path.join(directory, "empty-status")
    open(empty, "w").close()
    slim, error = simulate_install(sorted(required) + ["usr-is-merged"], empty)
    if slim is None:
        raise RuntimeError(f"cannot resolve the bookworm-slim package set: {error}")
    stanzas = apt_show(slim)
    path = os.path.join(directory, "slim-status")
    with open(path, "w", encoding="utf-8") as f:
        for name in slim:
            _, block = stanzas[name]
            lines = block.splitlines()
            lines.insert(1, "Status: install ok installed")
            f.write("\n".join(lines) + "\n\n")
    return path, set(slim)


def library_packages(binary, report, where):
    """Return the packages that own the shared libraries binary loads."""
    result = run(["ldd", binary])
    libraries = {}
    for line in result.stdout.splitlines():
        if "not found" in line:
            report.error(f"{where}: ldd cannot find {line.split()[0]}")
            continue
        match = re.search(r"=> (/\S+)", line)
        if not match:
            continue  # the vDSO and the dynamic loader itself
        path = match.group(1)
        candidates = {path, os.path.realpath(path)}
        for candidate in list(candidates):
            # Debian 12 has a merged /usr: dpkg may know a file under either prefix.
            candidates.add(candidate[4:] if candidate.startswith("/usr/") else "/usr" + candidate)
        libraries[path] = candidates
    # One dpkg -S for all candidates: it prints "package: path" for each
    # path that a package owns, and an error for the others.
    everything = sorted(set().union(*libraries.values())) if libraries else []
    output = run(["dpkg", "-S", *everything]).stdout if everything else ""
    owners = {}
    for line in output.splitlines():
        package, _, path = line.partition(": ")
        owners[path.strip()] = package.split(":")[0].strip()
    packages = set()
    for path, candidates in libraries.items():
        found = sorted(owners[c] for c in candidates if c in owners)
        if found:
            packages.add(found[0])
        else:
            report.error(f"{where}: no Debian package owns {path}")
    return packages


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dockerfile")
    parser.add_argument("stage_root")
    parser.add_argument("--max-worker-mb", type=float, default=120.0)
    args = parser.parse_args()
    report = checklib.Report("runtime packages")
    stages = dockerfile_check.parse(args.dockerfile)

    with tempfile.TemporaryDirectory() as directory:
        status, slim = slim_status(directory)
        report.ok(f"bookworm-slim rebuilt as {len(slim)} packages (priority required and dependencies)")
        for name in ("simulator", "worker"):
            stage = dockerfile_check.stage_named(stages, name)
            packages = dockerfile_check.apt_packages(stages, stage)
            added, error = simulate_install(packages, status)
            if added is None:
                report.error(f"{name}: apt-get install --dry-run of {' '.join(packages)} failed:\n{error}")
                continue
            report.ok(f"{name}: apt-get install --dry-run of {' '.join(packages)} on bookworm-slim "
                      f"adds {len(added)} packages: {' '.join(added)}")
            sizes = apt_show(added)
            added_kib = sum(int(sizes[p][0].get("Installed-Size", 0)) for p in added)

            binary_bytes = 0
            needed = set()
            for source in dockerfile_check.copies_from_build(stage):
                binary = os.path.join(args.stage_root, source.lstrip("/"))
                binary_bytes += os.path.getsize(binary)
                needed |= library_packages(binary, report, f"{name}: {os.path.basename(binary)}")
            outside = sorted(needed - slim - set(added))
            report.expect(not outside,
                          f"{name}: every library the binary loads comes from bookworm-slim or the "
                          f"installed set ({len(needed)} packages)",
                          f"{name}: the binary needs packages the image does not install: {', '.join(outside)}")
            estimate = SLIM_BASE_MB + added_kib / 1024 + binary_bytes / 1e6
            report.ok(f"{name}: image size estimate {estimate:.0f} MB = bookworm-slim ~{SLIM_BASE_MB:.0f} MB "
                      f"+ packages {added_kib / 1024:.1f} MiB (Installed-Size) + binaries "
                      f"{binary_bytes / 1e6:.2f} MB")
            if name == "worker":
                report.expect(estimate <= args.max_worker_mb,
                              f"worker: estimate within the {args.max_worker_mb:.0f} MB budget",
                              f"worker: estimate {estimate:.0f} MB exceeds the {args.max_worker_mb:.0f} MB "
                              "budget; a heavy package came in")
    report.finish()


if __name__ == "__main__":
    main()
