"""A closed-loop load generator: ``concurrency`` requests always in flight, bounded in time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress

import aiohttp
import numpy as np

from bench.payloads import build_body

MAX_REQUESTS = 2_000_000  # a hard stop whatever the duration


def percentiles(latencies_s: list[float]) -> dict:
    lat_ms = np.asarray(latencies_s) * 1000.0
    return {"count": len(latencies_s), "p50_ms": float(np.percentile(lat_ms, 50)),
            "p99_ms": float(np.percentile(lat_ms, 99)), "max_ms": float(lat_ms.max())}


def summarize(latencies_s: list[float], elapsed_s: float, statuses: Counter,
              errors: int, batch: int) -> dict:
    lat_ms = np.asarray(latencies_s) * 1000.0 if latencies_s else np.zeros(1)
    ok = len(latencies_s)
    return {
        "requests": ok,
        "errors_total": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed_s, 3),
        "rps": ok / elapsed_s if elapsed_s else 0.0,
        "inferences_per_s": ok * batch / elapsed_s if elapsed_s else 0.0,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p95_ms": float(np.percentile(lat_ms, 95)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
    }


Probe = Callable[[], dict[str, float | None]]


async def drive(url: str, model: str, *, concurrency: int, payload: str, duration_s: float,
                warmup_s: float, batch: int, cpu_probe: Probe | None = None,
                deadline_s: float | None = None, honour_retry_after: bool = False) -> dict:
    """Warm up, then measure for ``duration_s``; every request is checked for status 200.

    Latencies are kept per status (``latency_by_status``: refusals apart from answers); with
    ``deadline_s``, ``within_deadline`` is the share of 200s answered within it.

    With ``honour_retry_after`` a worker refused with ``Retry-After`` waits that long (never
    past the window's end) before it sends again; else it resends at once.

    ``cpu_probe`` returns CPU seconds used so far by named processes; it is sampled as the
    measured window opens and closes, and each name's CPU per answered request is reported
    as ``<name>_cpu_us_per_request``."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    # Plain bodies, as tritonclient and wrk ask for them (aiohttp would ask for gzip, and the
    # server would spend the measured CPU compressing).
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     skip_auto_headers=("Accept-Encoding",)) as session:
        async with session.get(f"{url}/v2/models/{model}") as response:
            response.raise_for_status()
            metadata = await response.json()
        body, headers = build_body(metadata, batch, payload)
        infer_url = f"{url}/v2/models/{model}/infer"
        latencies: list[float] = []
        refused: dict[int, list[float]] = {}  # latencies of the answers that were not 200
        statuses: Counter = Counter()
        errors = 0
        sent = 0
        measuring = False
        started = time.perf_counter()
        measure_from = started + warmup_s
        stop_at = measure_from + duration_s

        async def worker() -> None:
            nonlocal errors, sent, measuring
            while True:
                now = time.perf_counter()
                if now >= stop_at or sent >= MAX_REQUESTS:
                    return
                sent += 1
                began = time.perf_counter()
                retry_after = None
                try:
                    async with session.post(infer_url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                        retry_after = response.headers.get("Retry-After")
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                done = time.perf_counter()
                if honour_retry_after and status != 200 and retry_after is not None:
                    with suppress(ValueError):
                        await asyncio.sleep(min(float(retry_after),
                                                max(stop_at - time.perf_counter(), 0.0)))
                if not counted(began, done, measure_from, stop_at):
                    continue
                statuses[status] += 1
                if status == 200:
                    latencies.append(done - began)
                else:
                    errors += 1
                    refused.setdefault(status, []).append(done - began)

        cpu_s: dict[str, float] = {}

        async def sample_cpu() -> None:
            await asyncio.sleep(max(measure_from - time.perf_counter(), 0.0))
            before = cpu_probe()
            await asyncio.sleep(max(stop_at - time.perf_counter(), 0.0))
            for name, used in cpu_probe().items():
                if used is not None and before.get(name) is not None:
                    cpu_s[name] = used - before[name]

        tasks = [worker() for _ in range(concurrency)]
        if cpu_probe is not None:
            tasks.append(sample_cpu())
        await asyncio.gather(*tasks)
        result = summarize(latencies, duration_s, statuses, errors, batch)
        result["latency_by_status"] = {
            str(status): percentiles(values) for status, values in sorted(
                {200: latencies, **refused}.items()) if values}
        if deadline_s is not None:
            result["within_deadline"] = (sum(lat <= deadline_s for lat in latencies)
                                         / len(latencies) if latencies else None)
        # Everything sent, warm-up and window edges included (what a prediction log holds).
        result["sent_total"] = sent
        for name, used in cpu_s.items():
            result[f"{name}_cpu_us_per_request"] = (used / result["requests"] * 1e6
                                                   if result["requests"] else None)
        return result


def counted(began: float, done: float, measure_from: float, stop_at: float) -> bool:
    """Whether a request belongs to the measured window: it completed inside it. Dropping
    those that straddle an edge while dividing by the whole window would under-count by
    about latency / window; counting completions is unbiased in a steady state."""
    del began  # when it started does not matter, only that it finished in the window
    return measure_from <= done <= stop_at


def run_against(url: str, *, model: str, concurrency: int, payload: str, duration_s: float,
                warmup_s: float, batch: int = 1, cpu_probe: Probe | None = None,
                deadline_s: float | None = None, honour_retry_after: bool = False) -> dict:
    result = asyncio.run(drive(url.rstrip("/"), model, concurrency=concurrency, payload=payload,
                               duration_s=duration_s, warmup_s=warmup_s, batch=batch,
                               cpu_probe=cpu_probe, deadline_s=deadline_s,
                               honour_retry_after=honour_retry_after))
    result.update({"target": url, "model": model, "concurrency": concurrency,
                   "payload": payload, "batch": batch})
    return result
