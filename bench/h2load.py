"""Load from ``h2load`` (nghttp2's load generator, in C): gRPC over HTTP/2 cleartext, and
HTTP/1.1 with the same generator, so that transports are compared with one tool.

h2load speaks HTTP/2 but not gRPC: it posts a prepared, already framed ``ModelInferRequest``
and sees every answer as HTTP 200, since a gRPC status travels in trailers it does not read.
So whether a call succeeded is read from the server's own counter,
``aiinfra_inference_requests_total{protocol=...}``, scraped before and after each run; an
answer the server did not count as a success is an error. Latency percentiles come from
h2load's per-request log (its summary has only min, mean and max).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"
GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}

_FINISHED = re.compile(r"finished in ([\d.]+)(s|ms),")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout")
_STATUSES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TRAFFIC = re.compile(r"traffic: \S+ \((\d+)\) total, \S+ \((\d+)\) headers .*?, "
                      r"\S+ \((\d+)\) data")


def available() -> bool:
    return shutil.which("h2load") is not None


def parse_summary(stdout: str) -> dict:
    """h2load's printed summary as numbers."""
    found = {name: pattern.search(stdout) for name, pattern in (
        ("finished", _FINISHED), ("requests", _REQUESTS), ("statuses", _STATUSES),
        ("traffic", _TRAFFIC))}
    missing = [name for name, match in found.items() if match is None]
    if missing:
        raise RuntimeError(f"h2load printed no {', '.join(missing)}:\n{stdout[-2000:]}")
    value, unit = found["finished"].groups()
    seconds = float(value) / (1000 if unit == "ms" else 1)
    total, started, done, succeeded, failed, errored, timeout = map(
        int, found["requests"].groups())
    s2, s3, s4, s5 = map(int, found["statuses"].groups())
    traffic, headers, data = map(int, found["traffic"].groups())
    return {"seconds": seconds, "total": total, "started": started, "done": done,
            "succeeded": succeeded, "failed": failed, "errored": errored, "timeout": timeout,
            "statuses": {"2xx": s2, "3xx": s3, "4xx": s4, "5xx": s5},
            "traffic_bytes": traffic, "header_bytes": headers, "data_bytes": data}


def latencies_ms(log: Path) -> np.ndarray:
    """Each request's time to the end of its answer, from ``--log-file``."""
    values = [int(line.split("\t")[2]) for line in log.read_text().splitlines() if line]
    return np.asarray(values, dtype=np.float64) / 1000.0


def command(url: str, body: Path, headers: dict[str, str], *, connections: int,
            streams: int, duration_s: float, http1: bool, log: Path | None = None
            ) -> list[str]:
    """Closed loop: ``connections`` × ``streams`` requests in flight, one thread."""
    args = ["h2load", "-t1", f"-c{connections}", f"-m{streams}", f"-D{max(duration_s, 1):.0f}",
            "-d", str(body)]
    if http1:
        args.append("--h1")
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if log is not None:
        args.append(f"--log-file={log}")
    return [*args, url]


def outcomes(metrics_url: str, model: str, protocol: str) -> dict[str, float]:
    """The server's ``aiinfra_inference_requests_total`` for ``model`` over ``protocol``, by
    outcome."""
    counts: dict[str, float] = {}
    text = httpx.get(metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (sample.name == "aiinfra_inference_requests_total"
                    and labels.get("model") == model and labels.get("protocol") == protocol):
                counts[labels["outcome"]] = counts.get(labels["outcome"], 0) + sample.value
    return counts


def settled(metrics_url: str, model: str, protocol: str, timeout_s: float = 5.0
            ) -> dict[str, float]:
    """The counts once the requests still in flight when a run stopped have been answered
    (two scrapes in a row agree)."""
    deadline = time.monotonic() + timeout_s
    last = outcomes(metrics_url, model, protocol)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = outcomes(metrics_url, model, protocol)
        if now == last:
            return now
        last = now
    return last


def to_load_result(summary: dict, latencies: np.ndarray, before: dict[str, float] | None,
                   after: dict[str, float] | None, batch: int) -> dict:
    """One run in ``bench.loadgen``'s shape, successes as the server counted them (as
    h2load's statuses say, without the server's counts)."""
    ok_status = summary["statuses"]["2xx"]
    counted = before is not None and after is not None
    delta = ({key: after.get(key, 0) - before.get(key, 0) for key in set(before) | set(after)}
             if counted else {})
    served = delta.get("success", 0) if counted else ok_status
    # A 2xx answer the server did not count a success (a gRPC error rides on HTTP 200) is an
    # error; so is every request h2load saw fail (h2load's "failed" holds non-2xx statuses
    # and its "errored", which holds its timeouts).
    unseen = max(0, ok_status - int(served))
    requests = ok_status - unseen
    seconds = summary["seconds"]
    errors = summary["failed"] + unseen
    done = summary["done"] or 1
    percentiles = (np.percentile(latencies, [50, 90, 95, 99]) if latencies.size
                   else [float("nan")] * 4)
    return {
        "generator": "h2load",
        "requests": requests,
        "errors_total": errors,
        "server_outcomes": ({key: int(value) for key, value in sorted(delta.items()) if value}
                            if counted else None),
        "seconds": round(seconds, 3),
        "rps": requests / seconds if seconds else 0.0,
        "inferences_per_s": requests * batch / seconds if seconds else 0.0,
        "p50_ms": float(percentiles[0]), "p90_ms": float(percentiles[1]),
        "p95_ms": float(percentiles[2]), "p99_ms": float(percentiles[3]),
        "max_ms": float(latencies.max()) if latencies.size else float("nan"),
        "response_header_bytes": summary["header_bytes"] / done,
        "response_body_bytes": summary["data_bytes"] / done,
        "h2load": summary,
    }


def run_h2load(url: str, body: bytes, headers: dict[str, str], *, metrics_url: str | None,
               model: str, protocol: str, connections: int, streams: int = 1,
               duration_s: float, warmup_s: float, http1: bool, batch: int = 1) -> dict:
    """Warm up (unmeasured), then one measured run; ``protocol`` is the server's label for
    this transport (``grpc`` or ``http``). Without ``metrics_url`` (a server that counts
    nothing, the floor) h2load's statuses stand."""
    with tempfile.TemporaryDirectory(prefix="aiinfra-h2load-") as tmp:
        body_path = Path(tmp, "body")
        body_path.write_bytes(body)
        log = Path(tmp, "requests.log")
        timeout = duration_s + warmup_s + 60
        shape = {"connections": connections, "streams": streams, "http1": http1}
        if warmup_s > 0:
            subprocess.run(command(url, body_path, headers, duration_s=warmup_s, **shape),
                           capture_output=True, text=True, check=True, timeout=timeout)
        before = settled(metrics_url, model, protocol) if metrics_url else None
        done = subprocess.run(command(url, body_path, headers, duration_s=duration_s,
                                      log=log, **shape),
                              capture_output=True, text=True, check=True, timeout=timeout)
        after = settled(metrics_url, model, protocol) if metrics_url else None
        summary = parse_summary(done.stdout)
        result = to_load_result(summary, latencies_ms(log), before, after, batch)
    result.update({"connections": connections, "streams": streams,
                   "concurrency": connections * streams, "request_body_bytes": len(body),
                   "batch": batch})
    return result
