"""HTTP load from ``wrk``, an external load generator written in C.

On a small machine a Python load generator takes CPU from the server it measures; wrk costs
a fraction of that, so throughput and latency figures come from it whenever it is installed
(``make bench`` installs the Debian package). It runs closed-loop with ``concurrency``
connections, one thread, the same body on every request; a Lua script counts responses by
status and prints one JSON summary. Latency percentiles are over every response, refusals
included (wrk cannot tell them apart), so the figures that need per-request outcomes come
from ``bench.loadgen``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx

from bench.payloads import build_body

# Lua, run by wrk: every thread counts statuses; ``done`` merges them and prints JSON.
SCRIPT = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  for i = 2, #args, 2 do
    wrk.headers[args[i]] = args[i + 1]
  end
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'AIINFRA-WRK {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d, "mean": %f}, ' ..
    '"statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, table.concat(parts, ", ")))
end
"""

# Appended to SCRIPT for clients that honour Retry-After: the connection refused waits that
# many seconds before its next request (wrk asks ``delay`` right after each response, on the
# same connection, so one variable carries it over).
BACKOFF = r"""
local pause = 0
local count = response

function response(status, headers, body)
  count(status, headers, body)
  if status ~= 200 then
    local after = tonumber(headers["Retry-After"] or headers["retry-after"])
    if after then pause = after * 1000 end
  end
end

function delay()
  local ms = pause
  pause = 0
  return ms
end
"""

MARK = "AIINFRA-WRK "


def available() -> bool:
    return shutil.which("wrk") is not None


def _summary(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"wrk printed no summary:\n{stdout[-2000:]}")


def wrk_once(url: str, script: Path, args: list[str], *, concurrency: int,
             duration_s: float, timeout_s: float) -> dict:
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(duration_s, 1):.0f}s",
               f"--timeout={timeout_s:g}s", "--latency", "-s", str(script), url, "--", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          timeout=duration_s + timeout_s + 30)
    return _summary(done.stdout)


def to_load_result(raw: dict, batch: int) -> dict:
    """wrk's summary in ``bench.loadgen``'s shape (req/s of 200s, percentiles in ms)."""
    seconds = raw["duration_us"] / 1e6
    statuses = {str(k): v for k, v in sorted(raw["statuses"].items(), key=lambda kv: int(kv[0]))}
    ok = raw["statuses"].get("200", 0)
    socket_errors = {k: v for k, v in raw["errors"].items() if k != "status" and v}
    latency = raw["latency_us"]
    return {
        "generator": "wrk",
        "requests": ok,
        "errors_total": raw["requests"] - ok + sum(socket_errors.values()),
        "statuses": statuses,
        "socket_errors": socket_errors,
        "seconds": round(seconds, 3),
        "rps": ok / seconds if seconds else 0.0,
        "inferences_per_s": ok * batch / seconds if seconds else 0.0,
        "p50_ms": latency["p50"] / 1000, "p90_ms": latency["p90"] / 1000,
        "p95_ms": latency["p95"] / 1000, "p99_ms": latency["p99"] / 1000,
        "max_ms": latency["max"] / 1000,
    }


def run_wrk(url: str, *, model: str, concurrency: int, payload: str, duration_s: float,
            warmup_s: float, batch: int = 1, timeout_s: float = 2.0,
            metadata: dict | None = None, honour_retry_after: bool = False) -> dict:
    """Warm up (unmeasured), then one measured wrk run against ``url``'s infer route.

    ``metadata`` (the model's V2 metadata) is asked of the server when not given. With
    ``honour_retry_after`` a refused connection waits the answer's ``Retry-After`` before
    it sends again, as a well-behaved client does; else it resends at once."""
    url = url.rstrip("/")
    if metadata is None:
        metadata = httpx.get(f"{url}/v2/models/{model}", timeout=10).raise_for_status().json()
    body, headers = build_body(metadata, batch, payload)
    with tempfile.TemporaryDirectory(prefix="aiinfra-wrk-") as tmp:
        script = Path(tmp, "post.lua")
        script.write_text(SCRIPT + (BACKOFF if honour_retry_after else ""))
        body_path = Path(tmp, "body")
        body_path.write_bytes(body)
        args = [str(body_path), *(part for item in headers.items() for part in item)]
        infer_url = f"{url}/v2/models/{model}/infer"
        if warmup_s > 0:
            wrk_once(infer_url, script, args, concurrency=concurrency, duration_s=warmup_s,
                     timeout_s=timeout_s)
        raw = wrk_once(infer_url, script, args, concurrency=concurrency,
                       duration_s=duration_s, timeout_s=timeout_s)
    result = to_load_result(raw, batch)
    result.update({"target": url, "model": model, "concurrency": concurrency,
                   "payload": payload, "batch": batch, "wrk": raw,
                   "honour_retry_after": honour_retry_after})
    return result
