"""Structural checks of the images' Dockerfiles, lock files and build context, without Docker.

    python image/check.py        # prints each problem; exit status 1 if there is any

tests/image runs the same functions. Each check returns a list of problems (empty when
compliant), phrased so that the message says what to change.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parent
ROOT = IMAGE_DIR.parent
DOCKERFILES = {"gpu": IMAGE_DIR / "Dockerfile", "cpu": IMAGE_DIR / "Dockerfile.cpu"}
LOCKS = {"gpu": IMAGE_DIR / "requirements-gpu.txt", "cpu": IMAGE_DIR / "requirements-cpu.txt",
         "build": IMAGE_DIR / "requirements-build.txt"}

# What the builder stages delete from site-packages; image/measure.py deletes the same.
PRUNED = ("torch/include", "torch/test", "torch/bin/test_*", "torch/bin/*Test",
          "torch/bin/protoc*")
# Files compileall leaves alone (torch's test helpers, some in Python 3.12+ syntax).
COMPILE_EXCLUDE = "/torch/testing/_internal/"
OCI_LABELS = ("title", "description", "version", "revision", "created", "source", "licenses")
RUNTIME_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "AIINFRA_HOST": "0.0.0.0"}
# The ports the server listens on by default, which the runtime stage documents with EXPOSE.
EXPOSED_PORTS = {"8000": "HTTP", "8001": "gRPC"}
# Paths the build context must never carry.
NEVER_IN_CONTEXT = (".git", ".venv", "tests", "docs", "infra", "policies", "bench", ".aiinfra",
                    "serving/__pycache__", "image/Dockerfile")
# The Python packages an image holds: the runtime and the command that mounts it. The others
# (bench, infra, policies) need extras the image does not lock; `aiinfra --help` in the image
# leaves their commands out.
RUNTIME_PACKAGES = ("serving", "aiinfra")

_DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[\w][\w.-]*)?@sha256:[0-9a-f]{64}$")
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_BUILD_TOOLS = re.compile(r"\b(apt-get|apk|pip|uv|gcc|g\+\+|make|build-essential)\b")


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str
    flags: dict[str, str] = field(default_factory=dict)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    directives: dict[str, str]
    global_args: dict[str, str]
    stages: list[Stage]


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions by stage, continuation lines joined, comments dropped."""
    directives: dict[str, str] = {}
    logical: list[tuple[int, str]] = []
    pending, start, in_header = "", 0, True
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if in_header and (match := re.match(r"#\s*(\w+)\s*=\s*(\S+)$", line)):
            directives[match[1].lower()] = match[2]
            continue
        in_header = False
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        start = start if pending else number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append((start, pending + line))
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags = {}
        while (match := re.match(r"--([\w-]+)(?:=(\S*))?\s*", rest)):
            flags[match[1]] = match[2] or ""
            rest = rest[match.end():]
        instruction = Instruction(number, keyword, rest.strip(), flags)
        if keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, []))
        elif not stages:
            if keyword == "ARG":
                key, _, default = instruction.args.partition("=")
                global_args[key] = default.strip('"')
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(directives, global_args, stages)


def _key_values(args: str) -> dict[str, str]:
    pairs = re.findall(r'([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)', args)
    return {key: value.strip('"') for key, value in pairs}


def check_dockerfile(dockerfile: Dockerfile, *, gpu: bool) -> list[str]:
    problems: list[str] = []
    syntax = dockerfile.directives.get("syntax", "")
    if not _DIGEST.match(syntax):
        problems.append(f"the syntax directive must name a frontend by digest, not {syntax!r}")
    stages = dockerfile.stages
    if len(stages) < 2:
        return [*problems, "multi-stage build needed: a builder stage and a runtime stage"]
    names = {stage.name for stage in stages if stage.name}
    seen: set[str] = set()
    for stage in stages:
        if stage.base in names | seen:
            continue
        seen.add(stage.base)
        variable = _VARIABLE.fullmatch(stage.base)
        if not variable:
            problems.append(f"FROM {stage.base}: base images are build ARGs (FROM ${{NAME}})")
            continue
        image = dockerfile.global_args.get(variable[1], "")
        if not _DIGEST.match(image):
            problems.append(f"ARG {variable[1]}={image!r} must be pinned: name:tag@sha256:<digest>")
    if "PYTHON_VERSION" not in dockerfile.global_args:
        problems.append("the Python version must be a build ARG (ARG PYTHON_VERSION=...)")
    problems += _check_builders(stages[:-1])
    problems += _check_runtime(stages[-1], names, gpu=gpu)
    return problems


def _check_builders(builders: list[Stage]) -> list[str]:
    problems = []
    runs = [i for stage in builders for i in stage.all("RUN")]
    installs = [i for i in runs if "--require-hashes" in i.args and "sync" in i.args]
    if not installs:
        problems.append("the builder must install the lock with `uv pip sync --require-hashes`")
    if not all(i.flags.get("mount", "").startswith("type=cache") for i in installs):
        problems.append("dependency installs need a BuildKit cache mount (--mount=type=cache)")
    copies = [i for stage in builders for i in stage.all("COPY")]
    problems += _check_packages(copies)
    lock_at = [i.line for i in copies if "requirements-" in i.args and "-build" not in i.args]
    source_at = [i.line for i in copies if re.search(r"\bserving\b", i.args)]
    if not lock_at or not source_at or max(lock_at) > min(source_at):
        problems.append("copy the lock file before the source, so that dependency layers cache")
    text = " ".join(i.args for i in runs)
    if "compileall" not in text or "unchecked-hash" not in text:
        problems.append("byte-compile site-packages: compileall --invalidation-mode "
                        "unchecked-hash")
    problems += [f"the builder must prune {glob}" for glob in PRUNED if glob not in text]
    return problems


def _check_packages(copies: list[Instruction]) -> list[str]:
    """The builder copies every runtime package and no other package of the repository."""
    sources = {source.rstrip("/").split("/")[0] for copy in copies if "from" not in copy.flags
               for source in copy.args.split()[:-1]}
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    problems = [f"copy {package}/: `aiinfra serve` needs it" for package in RUNTIME_PACKAGES
                if package not in sources]
    problems += [f"do not copy {package}/: the image holds the runtime alone "
                 f"({', '.join(RUNTIME_PACKAGES)})"
                 for package in sorted(sources & packages - set(RUNTIME_PACKAGES))]
    return problems


def _check_runtime(runtime: Stage, stage_names: set[str], *, gpu: bool) -> list[str]:
    problems = []
    users = runtime.all("USER")
    uid = users[-1].args.split(":")[0] if users else "root"
    if not uid.isdigit() or int(uid) < 1000:
        problems.append(f"the runtime must run as a numeric UID of 1000 or more, not {uid!r}")
    entrypoints = runtime.all("ENTRYPOINT")
    try:
        argv = json.loads(entrypoints[-1].args) if entrypoints else None
    except json.JSONDecodeError:
        argv = None
    if not (isinstance(argv, list) and argv[:1] and argv[0].endswith("/aiinfra")
            and argv[1:2] == ["serve"]):
        problems.append('ENTRYPOINT must be exec form running `aiinfra serve`: ["…/aiinfra", '
                        '"serve"]')
    if any(not i.args.lstrip().startswith("[") for i in runtime.all("CMD")):
        problems.append("CMD must be exec form (a JSON array)")
    for copy in runtime.all("COPY"):
        if copy.flags.get("from") not in stage_names:
            problems.append(f"line {copy.line}: the runtime copies only from the builder, not "
                            f"the build context ({copy.args})")
    for run in runtime.all("RUN"):
        if tool := _BUILD_TOOLS.search(run.args):
            problems.append(f"line {run.line}: no {tool[0]} in the runtime stage")
    env: dict[str, str] = {}
    for instruction in runtime.all("ENV"):
        env |= _key_values(instruction.args)
    expected = dict(RUNTIME_ENV)
    if gpu:
        expected["AIINFRA_ENGINE_CACHE_DIR"] = env.get("AIINFRA_ENGINE_CACHE_DIR") or "<a path>"
    problems += [f"the runtime needs ENV {key}={value}" for key, value in expected.items()
                 if env.get(key) != value]
    exposed = {port.lower().removesuffix("/tcp") for i in runtime.all("EXPOSE")
               for port in i.args.split()}
    problems += [f"the runtime needs EXPOSE {port} ({protocol})"
                 for port, protocol in EXPOSED_PORTS.items() if port not in exposed]
    labels: dict[str, str] = {}
    for instruction in runtime.all("LABEL"):
        labels |= _key_values(instruction.args)
    problems += [f"the runtime needs LABEL org.opencontainers.image.{label}" for label in OCI_LABELS
                 if f"org.opencontainers.image.{label}" not in labels]
    return problems


# ---- lock files ----

@dataclass
class Lock:
    pins: dict[str, str]
    hashes: dict[str, list[str]]
    excluded: list[str]
    incomplete: bool


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> Lock:
    text = path.read_text()
    pins: dict[str, str] = {}
    hashes: dict[str, list[str]] = {}
    current = None
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        current = normalize(name.split("[")[0])
        pins[current] = version
        hashes[current] = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=")]
    excluded = []
    if "# The following packages were excluded from the output:" in text:
        tail = text.split("# The following packages were excluded from the output:", 1)[1]
        excluded = [normalize(line[1:].strip()) for line in tail.splitlines() if line[1:].strip()]
    return Lock(pins, hashes, excluded, text.startswith("# INCOMPLETE"))


def check_lock(lock: Lock) -> list[str]:
    problems = []
    if not lock.pins:
        problems.append("the lock pins nothing")
    for name, version in lock.pins.items():
        if not re.fullmatch(r"[\w.+!-]+", version):
            problems.append(f"{name} must be pinned with ==, not {version!r}")
        if not lock.hashes[name] or not all(re.fullmatch(r"sha256:[0-9a-f]{64}", h)
                                            for h in lock.hashes[name]):
            problems.append(f"{name} needs sha256 hashes (uv pip compile --generate-hashes)")
    return problems


def check_lock_covers(lock: Lock, pyproject: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """Every dependency declared in pyproject.toml is pinned in the lock, within its range."""
    from packaging.requirements import Requirement  # noqa: PLC0415 - pytest's own dependency

    project = tomllib.loads(pyproject.read_text())["project"]
    declared = list(project["dependencies"])
    for extra in extras:
        declared += project["optional-dependencies"][extra]
    problems = []
    for spec in declared:
        requirement = Requirement(spec)
        name = normalize(requirement.name)
        if name not in lock.pins:
            problems.append(f"{name} is declared in pyproject.toml but not locked: run "
                            f"image/lock.sh")
        elif not requirement.specifier.contains(lock.pins[name], prereleases=True):
            problems.append(f"{name}=={lock.pins[name]} is outside {requirement.specifier}: run "
                            f"image/lock.sh")
    return problems


# ---- build context ----

def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    for index, part in enumerate(re.split(r"(\*\*/?|\*|\?|\[[^]]*\])", pattern.strip("/"))):
        if index % 2 == 0:
            out += re.escape(part)
        elif part.startswith("["):
            out += part
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(part, "(.*/)?" if part.endswith("/") else ".*")
    return re.compile(out + "(/.*)?")


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore `patterns` keep `path` out of the context (the last match wins)."""
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _ignore_regex(pattern.removeprefix("!")).fullmatch(path):
            result = not negated
    return result


def installed_sources(dockerfile: Dockerfile) -> list[str]:
    """The build-context paths the builder copies under /src: what it builds and installs."""
    sources = []
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            *paths, target = copy.args.split()
            if "from" not in copy.flags and target.startswith("/src"):
                sources += [path.rstrip("/") for path in paths]
    return sources


def copy_installed_sources(kind: str, target: Path) -> list[str]:
    """Copy what ``kind``'s builder installs from the repository into ``target``, as the
    builder has it under /src; returns the paths copied."""
    sources = installed_sources(parse_dockerfile(DOCKERFILES[kind].read_text()))
    for name in sources:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))
        else:
            shutil.copy2(ROOT / name, target / name)
    return sources


def read_dockerignore(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def check_context(dockerfile: Dockerfile, patterns: list[str]) -> list[str]:
    problems = []
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            if "from" in copy.flags:
                continue
            for source in copy.args.split()[:-1]:
                if ignored(source.rstrip("/"), patterns):
                    problems.append(f".dockerignore keeps {source} (COPY, line {copy.line}) out")
    problems += [f".dockerignore must keep {path} out of the build context"
                 for path in NEVER_IN_CONTEXT if not ignored(path, patterns)]
    return problems


def problems_everywhere() -> list[str]:
    problems = []
    patterns = read_dockerignore(ROOT / ".dockerignore")
    for kind, path in DOCKERFILES.items():
        dockerfile = parse_dockerfile(path.read_text())
        found = check_dockerfile(dockerfile, gpu=kind == "gpu") + check_context(dockerfile,
                                                                                patterns)
        problems += [f"{path.name}: {problem}" for problem in found]
    for kind, path in LOCKS.items():
        lock = read_lock(path)
        found = check_lock(lock)
        if kind != "build":
            found += check_lock_covers(lock, ROOT / "pyproject.toml",
                                       ("gpu",) if kind == "gpu" else ())
        if lock.incomplete:
            found.append(f"incomplete, lacking {', '.join(lock.excluded)} (see image/README.md)")
        problems += [f"{path.name}: {problem}" for problem in found]
    return problems


if __name__ == "__main__":
    found = problems_everywhere()
    print("\n".join(found) or "image/: no problems")
    sys.exit(1 if found else 0)
