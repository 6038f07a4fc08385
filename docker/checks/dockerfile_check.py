"""Checks docker/Dockerfile without a Docker engine.

Usage:
  dockerfile_check.py structure ROOT DOCKERFILE
      The stages, targets, COPY sources, user, labels, HEALTHCHECK,
      ENTRYPOINT, STOPSIGNAL and version of the Dockerfile.
  dockerfile_check.py build ROOT DOCKERFILE SCRATCH
      Runs the RUN lines of the build stage on this machine, in a copy of
      what its COPY lines copy, with the stage's ENV. Absolute paths in ENV
      values are moved under SCRATCH/fs, and WORKDIR becomes SCRATCH/fs/WORKDIR,
      so the commands write nothing outside SCRATCH. They are the same
      scripts CI runs (scripts/install-deps, scripts/build).
  dockerfile_check.py packages DOCKERFILE STAGE
      Prints the packages that the stage's `apt-get install` lines install.
  dockerfile_check.py copies DOCKERFILE STAGE
      Prints the files the stage copies from the build stage, one per line.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import checklib

REQUIRED_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
)
WORKER_UID = "10001"


class Instruction:
    def __init__(self, keyword, arguments, line):
        self.keyword = keyword
        self.arguments = arguments
        self.line = line

    def json_form(self):
        """Return the exec-form argument list, or None for shell form."""
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None

    def flags_and_rest(self):
        """Split leading --name=value flags (COPY, HEALTHCHECK) from the rest."""
        flags = {}
        rest = self.arguments
        while True:
            match = re.match(r"--([a-z-]+)(?:=(\S+))?\s+", rest)
            if not match:
                return flags, rest
            flags[match.group(1)] = match.group(2)
            rest = rest[match.end():]


class Stage:
    def __init__(self, base, name, line):
        self.base = base
        self.name = name
        self.line = line
        self.instructions = []

    def all(self, keyword):
        return [i for i in self.instructions if i.keyword == keyword]


def parse(path):
    """Parse a Dockerfile into stages. Handles comments, parser directives
    and backslash continuations; heredocs are not used here."""
    stages = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    logical, start = "", 0
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not logical:
            start = number
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, arguments = logical.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, start))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments, start))
        logical = ""
    return stages


def stage_named(stages, name):
    for stage in stages:
        if stage.name == name:
            return stage
    sys.exit(f"dockerfile_check: no stage named {name}")


def stage_chain(stages, stage):
    """Return the stage and the stages it is built FROM, base first."""
    names = {s.name: s for s in stages if s.name}
    chain = [stage]
    while chain[0].base in names:
        chain.insert(0, names[chain[0].base])
    return chain


def apt_packages(stages, stage):
    packages = []
    for part in stage_chain(stages, stage):
        for run in part.all("RUN"):
            for command in re.split(r"&&|;|\|\|", run.arguments):
                words = shlex.split(command)
                if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
                    after = words[words.index("install") + 1:]
                    packages += [w for w in after if not w.startswith("-")]
    return packages


def copies_from_build(stage):
    paths = []
    for copy in stage.all("COPY"):
        flags, rest = copy.flags_and_rest()
        if flags.get("from") == "build":
            paths += rest.split()[:-1]
    return paths


def env_values(instruction):
    """Return the variables an ENV instruction sets (key=value form)."""
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', instruction.arguments))


def check_structure(root, path):
    report = checklib.Report("dockerfile")
    stages = parse(path)
    names = [s.name for s in stages]
    report.expect(names[:1] == ["build"] and {"simulator", "worker"} <= set(names) and names[-1] == "worker",
                  f"stages {', '.join(str(n) for n in names)}: multi-stage, targets worker (the default, last) "
                  "and simulator",
                  f"stages {names}: expected a first stage 'build', a 'simulator' and a last stage 'worker'")
    build = stage_named(stages, "build")
    report.expect(build.base == "debian:bookworm", "build stage on debian:bookworm, like CI",
                  f"build stage is FROM {build.base}, expected debian:bookworm")

    runs = " ".join(r.arguments for r in build.all("RUN"))
    for script in ("scripts/install-deps", "scripts/build"):
        report.expect(script in runs and os.access(os.path.join(root, script), os.R_OK),
                      f"build stage runs {script}, the script CI runs",
                      f"build stage must run {script}, and it must exist")
    for copy in build.all("COPY"):
        _, rest = copy.flags_and_rest()
        for source in rest.split()[:-1]:
            report.expect(os.path.exists(os.path.join(root, source)),
                          f"COPY source {source} exists in the build context",
                          f"line {copy.line}: COPY source {source} does not exist in the repository root")

    for name in ("simulator", "worker"):
        stage = stage_named(stages, name)
        chain = stage_chain(stages, stage)
        report.expect(chain[0].base == "debian:bookworm-slim",
                      f"{name}: runtime on debian:bookworm-slim",
                      f"{name}: runtime stage should start from debian:bookworm-slim, not {chain[0].base}")
        users = [i.arguments for s in chain for i in s.all("USER")]
        report.expect(users[-1:] == [f"{WORKER_UID}:{WORKER_UID}"],
                      f"{name}: runs as UID:GID {WORKER_UID}:{WORKER_UID}",
                      f"{name}: last USER must be {WORKER_UID}:{WORKER_UID}, found {users}")
        useradd = " ".join(i.arguments for s in chain for i in s.all("RUN"))
        report.expect(f"--uid {WORKER_UID}" in useradd and f"--gid {WORKER_UID}" in useradd,
                      f"{name}: the user and group exist with ID {WORKER_UID}",
                      f"{name}: no useradd/groupadd with ID {WORKER_UID}")
        entrypoint = stage.all("ENTRYPOINT")
        report.expect(entrypoint and entrypoint[-1].json_form(),
                      f"{name}: ENTRYPOINT in exec form, so the program is PID 1 and gets SIGTERM",
                      f"{name}: ENTRYPOINT must use the exec (JSON) form")
        stop = stage.all("STOPSIGNAL")
        report.expect(stop and stop[-1].arguments == "SIGTERM", f"{name}: STOPSIGNAL SIGTERM",
                      f"{name}: STOPSIGNAL SIGTERM is missing")
        health = stage.all("HEALTHCHECK")
        report.expect(health, f"{name}: has a HEALTHCHECK", f"{name}: HEALTHCHECK is missing")
        labels = " ".join(i.arguments for i in stage.all("LABEL"))
        missing = [label for label in REQUIRED_LABELS if label not in labels]
        report.expect(not missing, f"{name}: OCI labels {', '.join(l.rsplit('.', 1)[1] for l in REQUIRED_LABELS)}",
                      f"{name}: missing OCI labels {', '.join(missing)}")
        version = [i.arguments.split("=", 1)[1] for i in stage.all("ARG") if i.arguments.startswith("VERSION=")]
        with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
            project_version = re.search(r"project\([^)]*VERSION\s+([\d.]+)", f.read()).group(1)
        report.expect(version == [project_version],
                      f"{name}: default VERSION {project_version} equals the CMake project version",
                      f"{name}: ARG VERSION {version} differs from the CMake project version {project_version}")
        for source in copies_from_build(stage):
            report.expect(source.startswith("/stage/"), f"{name}: copies {source} from the build stage",
                          f"{name}: COPY --from=build {source} is not under the build stage's /stage")

    worker = stage_named(stages, "worker")
    health = worker.all("HEALTHCHECK")[-1]
    _, command = health.flags_and_rest()
    form = Instruction("CMD", command[len("CMD"):].strip(), health.line).json_form() if command.startswith("CMD") else None
    report.expect(form and form[-1] == "--healthcheck" and form[0].endswith("chatt2me-worker"),
                  "worker: HEALTHCHECK runs chatt2me-worker --healthcheck (no curl in the image)",
                  "worker: HEALTHCHECK must run chatt2me-worker --healthcheck in exec form")
    report.finish()


def emulate_build(root, path, scratch):
    """Run the build stage's RUN lines in a scratch copy; see the module doc."""
    stages = parse(path)
    build = stage_named(stages, "build")
    fs = os.path.join(scratch, "fs")
    workdir = fs
    environment = dict(os.environ)
    shell = ["/bin/sh", "-c"]

    def mapped(value):
        return os.path.join(fs, value.lstrip("/")) if value.startswith("/") else value

    source_tree_reset = set()
    for instruction in build.instructions:
        keyword = instruction.keyword
        if keyword == "SHELL":
            shell = instruction.json_form()
        elif keyword == "WORKDIR":
            workdir = mapped(instruction.arguments)
            os.makedirs(workdir, exist_ok=True)
        elif keyword == "ENV":
            for key, value in env_values(instruction).items():
                environment[key] = mapped(value.strip('"'))
        elif keyword == "COPY":
            _, rest = instruction.flags_and_rest()
            *sources, destination = rest.split()
            target_dir = os.path.join(workdir, destination)
            for source in sources:
                src = os.path.join(root, source.rstrip("/"))
                if os.path.isdir(src):
                    # As in Docker, a directory's contents go into the
                    # destination. The copy is made afresh on every run with
                    # the file times kept, so the persistent build directory
                    # rebuilds only what changed.
                    dst = os.path.normpath(target_dir)
                    if dst != os.path.normpath(workdir) and dst not in source_tree_reset \
                            and os.path.exists(dst):
                        shutil.rmtree(dst)
                    source_tree_reset.add(dst)
                    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
                else:
                    dst = os.path.join(target_dir, os.path.basename(src)) \
                        if destination.endswith("/") or destination == "." else target_dir
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copy2(src, dst)
            print(f"  COPY {' '.join(sources)} -> {os.path.relpath(target_dir, fs)}")
        elif keyword == "RUN":
            command = instruction.arguments
            # Absolute paths would escape the scratch directory; the
            # Dockerfile keeps them in ENV variables for that reason.
            stray = re.findall(r"(?<![\w}\"'$])/[A-Za-z]\S*", command)
            if stray:
                print(f"  error: line {instruction.line}: RUN uses absolute paths {stray}; put them in ENV "
                      "so that scripts/check-deploy can run the line in a scratch copy")
                return 1
            print(f"  RUN {command}", flush=True)
            result = subprocess.run(shell + [command], cwd=workdir, env=environment)
            if result.returncode != 0:
                print(f"  error: line {instruction.line}: RUN exited with status {result.returncode}")
                return 1
        elif keyword in ("ARG", "LABEL", "EXPOSE", "USER"):
            continue
        else:
            print(f"  error: line {instruction.line}: {keyword} in the build stage is not emulated")
            return 1
    missing = []
    for name in ("simulator", "worker"):
        for source in copies_from_build(stage_named(stages, name)):
            staged = mapped(source)
            if not os.access(staged, os.X_OK):
                missing.append(source)
            else:
                print(f"  ok: the build stage produced {source}")
    for source in missing:
        print(f"  error: the build stage did not produce {source}, which a runtime stage copies")
    return 1 if missing else 0


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "structure" and len(sys.argv) == 4:
        check_structure(sys.argv[2], sys.argv[3])
    elif command == "build" and len(sys.argv) == 5:
        sys.exit(emulate_build(*sys.argv[2:5]))
    elif command == "packages" and len(sys.argv) == 4:
        stages = parse(sys.argv[2])
        print("\n".join(apt_packages(stages, stage_named(stages, sys.argv[3]))))
    elif command == "copies" and len(sys.argv) == 4:
        stages = parse(sys.argv[2])
        print("\n".join(copies_from_build(stage_named(stages, sys.argv[3]))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
