"""Move every digest-pinned image of the Dockerfiles to the digest its tag points at now.

    python image/pin_digests.py            # rewrite image/Dockerfile and image/Dockerfile.cpu
    python image/pin_digests.py --check    # only report; exit status 1 if a pin is behind
    python image/pin_digests.py FILE...    # other files

Pins are `name:tag@sha256:<digest>` in `ARG` lines and in the `# syntax=` directive. The tag is
what gets resolved, with `docker buildx imagetools inspect` (Docker with buildx, registry access),
to its multi-platform index digest. To move to another tag, edit the tag first, then run this.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parent
DOCKERFILES = (IMAGE_DIR / "Dockerfile", IMAGE_DIR / "Dockerfile.cpu")
PIN = re.compile(r"(?P<tag>[a-z0-9][\w./-]*:[\w][\w.-]*)@(?P<digest>sha256:[0-9a-f]{64})")
_PINNED_LINE = re.compile(r"^(ARG\s+\w+=|#\s*syntax=)", re.IGNORECASE)


def resolve(tag: str) -> str:
    """The digest `tag` points at in its registry."""
    output = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", tag, "--format", "{{json .Manifest}}"],
        check=True, capture_output=True, text=True).stdout
    digest = json.loads(output)["digest"]
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"{tag}: unexpected digest {digest!r}")
    return digest


def pins(text: str) -> list[tuple[str, str]]:
    """(tag, digest) of every pin in `text`, in order."""
    return [(m["tag"], m["digest"]) for line in text.splitlines() if _PINNED_LINE.match(line)
            for m in PIN.finditer(line)]


def repin(text: str, digests: dict[str, str]) -> str:
    def replace(line: str) -> str:
        if not _PINNED_LINE.match(line):
            return line
        return PIN.sub(lambda m: f"{m['tag']}@{digests.get(m['tag'], m['digest'])}", line)

    return "".join(replace(line) for line in text.splitlines(keepends=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, default=list(DOCKERFILES))
    parser.add_argument("--check", action="store_true", help="report only, rewrite nothing")
    args = parser.parse_args(argv)
    texts = {path: path.read_text() for path in args.files}
    current: dict[str, str] = {}
    behind = 0
    for path, text in texts.items():
        for tag, digest in pins(text):
            if tag not in current:
                current[tag] = resolve(tag)
            if current[tag] != digest:
                behind += 1
                print(f"{path.name}: {tag} {digest[:19]}… -> {current[tag][:19]}…")
        if not args.check:
            path.write_text(repin(text, current))
    if not behind:
        print("every pin is at its tag's current digest")
    return 1 if args.check and behind else 0


if __name__ == "__main__":
    sys.exit(main())
