"""Overload: a model driven far past saturation with a deadline, and at saturation.

The model is served from a copy of the repository whose config sets ``default_timeout_ms``
to the deadline (the model's deadline: what admission judges a request against before its
body is read, and how long a request may queue). Each round measures, with the server alone:

- wrk at ``overload`` × ``saturation`` connections: throughput of answers (against the
  in-process batched ceiling), statuses and socket errors (wrk's 2 s timeout);
- the Python generator at the same concurrency: latency per outcome (answers and refusals
  apart, which wrk cannot tell) and the share of answers within the deadline;
- the Python generator at ``saturation``: what is refused when the load just fills batches;
- wrk and the Python generator again at ``overload`` × ``saturation``, as clients that
  honour ``Retry-After`` (a refused connection waits that long before it sends again):
  what the same overload costs when clients back off as the server asks (``*_backoff``).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

import yaml

from bench.compare import in_process_ceiling, machine
from bench.loadgen import run_against
from bench.process import SERVE, free_port, loopback_url, running
from bench.wrk import available, run_wrk
from serving.demo import build_demo_repository
from serving.settings import Settings

SIDES = ("wrk", "outcomes", "saturated", "wrk_backoff", "outcomes_backoff")


def _with_deadline(repository: Path, model: str, deadline_ms: float, into: Path) -> Path:
    root = into / "repository"
    shutil.copytree(repository / model, root / model, symlinks=True)
    config_path = root / model / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["default_timeout_ms"] = deadline_ms
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _refused(run: dict) -> dict | None:
    by_status = {k: v for k, v in run["latency_by_status"].items() if k not in ("200", "0")}
    if not by_status:
        return None
    counts = sum(v["count"] for v in by_status.values())
    # the slowest refusal status (in practice there is one: 503, or 429 by setting)
    return {"count": counts,
            "p50_ms": max(v["p50_ms"] for v in by_status.values()),
            "p99_ms": max(v["p99_ms"] for v in by_status.values())}


def run_overload(*, model: str, payload: str, saturation: int, overload: int,
                 deadline_ms: float, duration_s: float, warmup_s: float, rounds: int) -> dict:
    settings = Settings()
    repository = settings.model_repository or build_demo_repository(settings.demo_repository)
    concurrency = saturation * overload
    deadline_s = deadline_ms / 1000.0
    result: dict = {"model": model, "payload": payload, "saturation": saturation,
                    "overload": overload, "concurrency": concurrency,
                    "deadline_ms": deadline_ms, "machine": machine(), "rounds": []}
    with tempfile.TemporaryDirectory(prefix="aiinfra-overload-") as tmp:
        served = _with_deadline(repository, model, deadline_ms, Path(tmp))
        result["ceiling"] = in_process_ceiling(served, model, saturation, duration_s,
                                               settings.engine_cache_dir)
        load = {"model": model, "payload": payload, "duration_s": duration_s,
                "warmup_s": warmup_s}
        env = {"AIINFRA_LOG_LEVEL": "warning", "AIINFRA_MODEL_REPOSITORY": str(served)}
        for _ in range(rounds):
            one: dict = {}
            for side in SIDES:
                if side.startswith("wrk") and not available():
                    continue
                backoff = side.endswith("_backoff")
                port = free_port()
                url = loopback_url(port)
                with running([*SERVE, "--port", str(port), "--load", model], url, env=env):
                    if side.startswith("wrk"):
                        one[side] = run_wrk(url, concurrency=concurrency,
                                            honour_retry_after=backoff, **load)
                    else:
                        one[side] = run_against(
                            url, concurrency=saturation if side == "saturated" else concurrency,
                            deadline_s=deadline_s, honour_retry_after=backoff, **load)
            result["rounds"].append(one)
    result["summary"] = summarize_rounds(result)
    return result


def summarize_rounds(result: dict) -> dict:
    """Medians over rounds of what the targets are stated in."""
    rounds = result["rounds"]
    ceiling = result["ceiling"]["inferences_per_s"]
    summary = _outcome_summary(rounds, "outcomes")
    summary.update({
        "no_answer": sum(r["outcomes"]["statuses"].get("0", 0) for r in rounds),
        "saturated_refused": sum(
            sum(v for k, v in r["saturated"]["statuses"].items() if k != "200")
            for r in rounds),
        "saturated_p99_ms": _median([r["saturated"]["p99_ms"] for r in rounds]),
    })
    if all("wrk" in r for r in rounds):
        summary.update(_wrk_summary(rounds, "wrk", ceiling))
    if all("outcomes_backoff" in r for r in rounds):
        summary.update({f"backoff_{k}": v
                        for k, v in _outcome_summary(rounds, "outcomes_backoff").items()})
    if all("wrk_backoff" in r for r in rounds):
        summary.update({f"backoff_{k}": v
                        for k, v in _wrk_summary(rounds, "wrk_backoff", ceiling).items()})
    return summary


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _outcome_summary(rounds: list[dict], side: str) -> dict:
    """Refusal latency and answers within the deadline, from the Python generator's side."""
    refused = [_refused(r[side]) for r in rounds]
    return {
        "within_deadline": _median([r[side].get("within_deadline") for r in rounds]),
        "refusal_p50_ms": _median([r and r["p50_ms"] for r in refused]),
        "refusal_p99_ms": _median([r and r["p99_ms"] for r in refused]),
        "refused_share": _median([
            (r["count"] if r else 0) / max(sum(o[side]["statuses"].values()), 1)
            for r, o in zip(refused, rounds, strict=True)]),
    }


def _wrk_summary(rounds: list[dict], side: str, ceiling: float) -> dict:
    return {
        "served_vs_ceiling": _median([r[side]["inferences_per_s"] / ceiling for r in rounds]),
        "wrk_socket_errors": sum(sum(r[side]["socket_errors"].values()) for r in rounds),
        "wrk_rps": _median([r[side]["rps"] for r in rounds]),
        "wrk_statuses": rounds[-1][side]["statuses"],
    }

