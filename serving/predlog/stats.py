"""``aiinfra predlog stats``: per model count, error rate and latency, computed by Postgres.

The query filters on ``created_at`` (partition pruning) and, with ``--model``, on
``(model, created_at)``: both served by the table's index, never a scan of the whole log.
"""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg
from psycopg.rows import dict_row

_SINCE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

STATS_SQL = """
SELECT model,
       count(*) AS requests,
       count(*) FILTER (WHERE status NOT IN ('ok', 'cancelled')) AS errors,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       coalesce(avg((status <> 'ok')::int) FILTER (WHERE status <> 'cancelled'),
                0)::float8 AS error_rate,
       (percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
            FILTER (WHERE status = 'ok'))::float8 AS p50_ms,
       (percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
            FILTER (WHERE status = 'ok'))::float8 AS p95_ms,
       (sum(cached_rows)::float8 / nullif(sum(request_rows), 0)) AS cache_hit_rate
FROM predictions
WHERE created_at >= now() - %(since)s AND (%(model)s::text IS NULL OR model = %(model)s)
GROUP BY model
ORDER BY model
"""


def parse_since(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` (or several: ``1h30m``) as a duration."""
    compact = text.strip().lower()
    parts = _SINCE.findall(compact)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != compact.replace(" ", ""):
        raise ValueError(f"--since {text!r}: use a number and a unit (s, m, h, d, w), e.g. 1h")
    return sum((timedelta(**{_UNITS[unit]: float(number)}) for number, unit in parts),
               timedelta())


def query_stats(dsn: str, *, since: timedelta, model: str | None = None,
                connect_timeout_s: int = 5) -> list[dict]:
    """One row per model with requests in the window; latencies are of successful requests.
    A request whose client left (``cancelled``) is counted apart: the error rate is over the
    requests that were answered."""
    with psycopg.connect(dsn, connect_timeout=connect_timeout_s, autocommit=True,
                         row_factory=dict_row) as conn:
        present = conn.execute("SELECT to_regclass('predictions') IS NOT NULL AS present"
                               ).fetchone()
        if not present["present"]:
            return []
        return conn.execute(STATS_SQL, {"since": since, "model": model}).fetchall()
