"""Size of what an image adds to its base, measured without Docker, against its budget.

    python image/measure.py cpu [--vendor-index URL|DIR|none] [--report image/size-cpu.json]
    python image/measure.py gpu --built aiinfra-serving:gpu      # a built image, through Docker

Without ``--built`` it does what the builder stage does, in a temporary directory: a virtual
environment from the image's lock (``uv pip sync --require-hashes``), the package built against
the hashed build constraints, the same pruning, the same byte-compilation. It then reports the
size of that environment (the runtime stage's largest layer): on disk, gzip-compressed as a
registry stores a layer, and by top-level entry of site-packages. Exit status 1 over budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from check import COMPILE_EXCLUDE, LOCKS, PRUNED, copy_installed_sources, read_lock

MIB = 1 << 20
# Budgets in MiB, uncompressed: the venv layer (measured here) and the whole image (--built).
# The GPU budgets are provisional: they allow 3,200 MiB for the TensorRT libraries, which the
# incomplete GPU lock leaves out (image/README.md, "GPU lock").
BUDGETS_MIB = {
    "cpu": {"layer": 900, "image": 1024},
    "gpu": {"layer": 8000, "image": 8400},
}
VENDOR_INDEX = {"cpu": "https://download.pytorch.org/whl/cpu", "gpu": "https://pypi.nvidia.com"}
PYPI_INDEX = "https://pypi.org/simple"


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise SystemExit("uv not found: pip install uv")
    return found


def _index_options(vendor: str) -> list[str]:
    options = ["--default-index", PYPI_INDEX, "--index-strategy", "unsafe-best-match"]
    if vendor == "none":
        return options
    return [*options, "--find-links" if Path(vendor).is_dir() else "--index", vendor]


def build_venv(kind: str, work: Path, vendor: str, python: str) -> tuple[Path, list[str]]:
    """The builder stage's venv under ``work``; returns it and `uv pip check`'s complaints."""
    uv, venv = _uv(), work / "venv"
    source = work / "src"
    source.mkdir(parents=True)
    copy_installed_sources(kind, source)
    constraints = ["--build-constraints", str(LOCKS["build"]), "--require-build-hashes"]
    target = ["--python", str(venv / "bin" / "python")]
    index = _index_options(vendor)
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run([uv, "pip", "sync", "--quiet", *target, *index, "--require-hashes",
                    *constraints, str(LOCKS[kind])], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", *target, *index, "--no-deps",
                    *constraints, str(source)], check=True)
    check = subprocess.run([uv, "pip", "check", *target], capture_output=True, text=True)
    complaints = [line.strip() for line in (check.stdout + check.stderr).splitlines()
                  if check.returncode and line.startswith("The package")]
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    for pattern in PRUNED:
        for path in site.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "0",
                    "--invalidation-mode", "unchecked-hash", "-x", COMPILE_EXCLUDE, str(site)],
                   check=True, stdout=subprocess.DEVNULL)
    return venv, complaints


def tree_bytes(path: Path) -> tuple[int, int]:
    """Apparent size and file count of a tree (symlinks count as links, not their targets)."""
    total = files = 0
    for directory, _, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(directory, name)).st_size
            files += 1
    return total, files


def gzip_bytes(path: Path) -> int:
    """Size of ``path`` as a gzip-compressed tar, the way a registry stores an image layer."""

    class Counter:
        size = 0

        def write(self, data: bytes) -> int:
            self.size += len(data)
            return len(data)

        def flush(self) -> None:
            pass

    counter = Counter()
    with gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=6, mtime=0) as stream, \
            tarfile.open(fileobj=stream, mode="w|") as archive:
        archive.add(path, arcname=path.name)
    return counter.size


def largest(site: Path, count: int = 12) -> list[dict[str, object]]:
    entries = [(tree_bytes(p)[0] if p.is_dir() else p.lstat().st_size, p.name)
               for p in site.iterdir()]
    return [{"name": name, "mib": round(size / MIB, 1)}
            for size, name in sorted(entries, reverse=True)[:count]]


def measure_lock(kind: str, vendor: str, python: str, compressed: bool) -> dict[str, object]:
    lock = read_lock(LOCKS[kind])
    with tempfile.TemporaryDirectory(prefix=f"aiinfra-size-{kind}-") as work:
        venv, complaints = build_venv(kind, Path(work), vendor, python)
        size, files = tree_bytes(venv)
        site = next((venv / "lib").glob("python3*/site-packages"))
        report = {
            "image": kind,
            "measured": dt.date.today().isoformat(),
            "lock": LOCKS[kind].name,
            "lock_sha256": hashlib.sha256(LOCKS[kind].read_bytes()).hexdigest(),
            "packages": len(lock.pins) + 1,
            "python": subprocess.run([str(venv / "bin" / "python"), "--version"], check=True,
                                     capture_output=True, text=True).stdout.split()[-1],
            "venv_mib": round(size / MIB, 1),
            "venv_files": files,
            "venv_gzip_mib": round(gzip_bytes(venv) / MIB, 1) if compressed else None,
            "budget_mib": BUDGETS_MIB[kind]["layer"],
            "largest": largest(site),
            "missing_from_lock": lock.excluded,
            "pip_check": complaints,
        }
    report["within_budget"] = (size <= BUDGETS_MIB[kind]["layer"] * MIB and not lock.excluded
                               and not complaints)
    return report


def measure_built(kind: str, reference: str) -> dict[str, object]:
    output = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", reference],
                            check=True, capture_output=True, text=True).stdout
    size = int(output.strip())
    budget = BUDGETS_MIB[kind]["image"]
    return {"image": kind, "reference": reference, "image_mib": round(size / MIB, 1),
            "budget_mib": budget, "within_budget": size <= budget * MIB}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(BUDGETS_MIB))
    parser.add_argument("--vendor-index", help="PyTorch CPU / NVIDIA index: a URL, a directory "
                        "of wheels, or none (default: the public index of the image's kind)")
    parser.add_argument("--python", default="3.11", help="interpreter of the venv (uv syntax)")
    parser.add_argument("--report", type=Path, help="also write the report here as JSON")
    parser.add_argument("--no-compressed", action="store_true", help="skip the gzip estimate")
    parser.add_argument("--built", metavar="IMAGE", help="measure a built image with Docker")
    args = parser.parse_args(argv)
    if args.built:
        report = measure_built(args.kind, args.built)
    else:
        vendor = args.vendor_index or VENDOR_INDEX[args.kind]
        report = measure_lock(args.kind, vendor, args.python, not args.no_compressed)
    text = json.dumps(report, indent=2) + "\n"
    print(text, end="")
    if args.report:
        args.report.write_text(text)
    return 0 if report["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
