"""The one ``aiinfra`` command: each package's own sub-commands, mounted side by side.

| package    | commands                        | installed by              |
|------------|---------------------------------|---------------------------|
| `serving`  | `serve`, `predlog stats`        | `pip install aiinfra`     |
| `bench`    | `bench`                         | the `bench` extra         |
| `infra`    | `preview`, `cost`, `prices`     | the `infra` extra         |
| `policies` | `check` (and preview's verdict) | the `infra` extra         |

An installation may hold only some of them: the serving image holds the runtime alone.
A package that is absent, or whose extra is not installed, is left out of ``--help``; its
commands stay known, and say which extra would bring them instead of failing on an import.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from types import ModuleType

import typer

DISTRIBUTION = "aiinfra"


@dataclass(frozen=True)
class Mount:
    """One package's sub-commands: where they live and what they need installed."""

    package: str
    extra: str | None
    commands: tuple[str, ...]

    @property
    def module(self) -> str:
        return f"{self.package}.cli"


MOUNTS = (
    Mount("serving", None, ("serve", "predlog")),
    Mount("bench", "bench", ("bench",)),
    Mount("infra", "infra", ("preview", "cost", "prices")),
    Mount("policies", "infra", ("check",)),
)

_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def extra_requirements(extra: str, requires: list[str] | None = None) -> list[str]:
    """Distribution names that ``extra`` adds, read from the installed metadata (the
    ``Requires-Dist`` lines that pyproject.toml's optional dependencies become)."""
    if requires is None:
        try:
            requires = importlib.metadata.requires(DISTRIBUTION) or []
        except importlib.metadata.PackageNotFoundError:  # run from a source tree
            return []
    names = []
    for line in requires:
        requirement, _, marker = line.partition(";")
        found = _NAME.match(requirement)
        if found and extra in _EXTRA_MARKER.findall(marker):
            names.append(found[1])
    return names


def missing_for(mount: Mount) -> list[str]:
    """What keeps ``mount`` from working here: its package, or distributions of its extra."""
    if importlib.util.find_spec(mount.package) is None:
        return [mount.package]
    missing = []
    for name in extra_requirements(mount.extra) if mount.extra else ():
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def _absent(app: typer.Typer, mount: Mount, missing: list[str]) -> None:
    """Hidden stand-ins for ``mount``'s commands that name what to install."""
    install = f"pip install '{DISTRIBUTION}[{mount.extra}]'" if mount.extra else (
        f"pip install {DISTRIBUTION}")
    for name in mount.commands:
        message = (f"`aiinfra {name}` is not part of this installation: it needs the "
                   f"{mount.package} package" + (f" and the {mount.extra} extra" if mount.extra
                                                 else "")
                   + f" (missing: {', '.join(missing)}). Install it with {install}.")

        def stand_in(ctx: typer.Context, message: str = message) -> None:
            typer.secho(message, err=True, fg=typer.colors.RED)
            raise typer.Exit(2)

        app.command(name, hidden=True, add_help_option=False, context_settings={
            "allow_extra_args": True, "ignore_unknown_options": True})(stand_in)


def _load(mount: Mount) -> ModuleType | None:
    return None if missing_for(mount) else importlib.import_module(mount.module)


def create_app() -> typer.Typer:
    """``aiinfra``: every package's commands that this installation can run."""
    app = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="aiinfra: serve models on GPUs at the lowest cost.")
    loaded = {mount.package: _load(mount) for mount in MOUNTS}
    policies = loaded["policies"]
    for mount in MOUNTS:
        module = loaded[mount.package]
        if module is None:
            _absent(app, mount, missing_for(mount))
            continue
        if mount.package == "infra":
            footers = [policies.print_summary] if policies is not None else []
            sub = module.create_app(preview_footers=footers)
        else:
            sub = module.app
        # Merged, not nested: `aiinfra preview`, never `aiinfra infra preview`.
        app.registered_commands.extend(sub.registered_commands)
        app.registered_groups.extend(sub.registered_groups)
    return app


app = create_app()


def main() -> None:  # pragma: no cover - console entry point
    app()
