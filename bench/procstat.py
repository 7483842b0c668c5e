"""CPU time used by a process and all its descendants, read from ``/proc`` (Linux).

Throughput on a small shared machine moves by several percent from one run to the next;
the CPU a server spends per request does not. The data-plane bench samples it at the start
and the end of each measured window, for the server and for a throwaway PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def _stat(pid_dir: Path) -> tuple[int, int] | None:
    """(parent pid, clock ticks) of one process: its own user + system time and that of its
    children already waited for (a PostgreSQL autovacuum worker, say, that has exited);
    None once it is gone."""
    try:
        # The command name (field 2) may hold spaces and parentheses: split after its ")".
        fields = (pid_dir / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), sum(int(value) for value in fields[11:15])


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its descendants, live or exited and waited
    for; None off Linux or when ``pid`` is not running."""
    if not PROC.is_dir():
        return None
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(entry)
        if stat is None:
            continue
        child = int(entry.name)
        children.setdefault(stat[0], []).append(child)
        ticks[child] = stat[1]
    if pid not in ticks:
        return None
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += ticks.get(current, 0)
        stack.extend(children.get(current, ()))
    return total / os.sysconf("SC_CLK_TCK")
