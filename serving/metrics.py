"""Prometheus metrics, correct with several uvicorn workers.

Metrics take a ``registry`` so tests read values from a fresh ``CollectorRegistry``. With
several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set before the workers start (``aiinfra
serve`` does it) and ``render`` merges every worker's values. Labels are bounded: model name
and, for rejections and cache errors, a fixed set of reasons (a rejection's is the ``reason`` of
its error class in ``serving.errors``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# `_created` series double the exposition for no use in dashboards or alerts.
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Seconds late against a prediction (negative: early).
LATENESS_BUCKETS = (-1.0, -0.5, -0.25, -0.1, -0.05, -0.025, -0.01, 0.0, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5)
LOAD_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def prepare_multiprocess_dir(path: Path) -> None:
    """Create the workers' metrics directory, or empty one an earlier run left behind (its
    counters would be added to this run's, its gauges counted as live). A directory holding
    anything but metric files is refused rather than wiped."""
    path.mkdir(parents=True, exist_ok=True)
    entries = list(path.iterdir())
    foreign = [e.name for e in entries if not (e.is_file() and e.suffix == ".db")]
    if foreign:
        raise ValueError(f"PROMETHEUS_MULTIPROC_DIR {path} is not a metrics directory (it "
                         f"holds {', '.join(sorted(foreign)[:3])}): point it at an empty one")
    for entry in entries:
        entry.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(directory: str) -> list[int]:
    """Drop the live gauges (queue depth, in flight, models loaded) of workers that are gone:
    a worker uvicorn restarted would otherwise count in them forever. Counters stay."""
    dead = sorted({int(m[1]) for name in os.listdir(directory)
                   if (m := _LIVE_FILE.fullmatch(name)) and not _alive(int(m[1]))})
    for pid in dead:
        mark_process_dead(pid, directory)
    return dead


class RequestSeries:
    """One model's per-request series, each bound on first use: a label look-up takes a lock
    and hashes the labels, which the infer path would otherwise pay several times a request
    (an outcome's series still appears only once it happened)."""

    __slots__ = ("_metrics", "_label", "_protocol", "in_flight", "_answered")

    def __init__(self, metrics: ServingMetrics, label: str, protocol: str) -> None:
        self._metrics, self._label, self._protocol = metrics, label, protocol
        self.in_flight = metrics.in_flight.labels(label)
        self._answered: dict[str, tuple] = {}

    def answered(self, outcome: str, seconds: float, *, count: bool = True) -> None:
        """One request's outcome and duration (``count``: False where a refusal was already
        counted with its reason)."""
        bound = self._answered.get(outcome)
        if bound is None:
            bound = self._answered[outcome] = (
                self._metrics.requests.labels(self._label, outcome, self._protocol),
                self._metrics.request_seconds.labels(self._label, outcome, self._protocol))
        if count:
            bound[0].inc()
        bound[1].observe(seconds)


class ServingMetrics:
    """Every metric the server exports, created against one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._series: dict[tuple[str, str], RequestSeries] = {}
        r = self.registry
        self.requests = Counter(
            "aiinfra_inference_requests", "Inference requests by outcome and protocol (http or "
            "grpc; a request may carry a batch)", ["model", "outcome", "protocol"], registry=r)
        self.inferences = Counter(
            "aiinfra_inferences", "Inferences executed (samples; a batch of n counts n)",
            ["model"], registry=r)
        self.executions = Counter(
            "aiinfra_executions", "Model executions (batches run)", ["model"], registry=r)
        self.rejections = Counter(
            "aiinfra_rejections", "Requests refused, by reason", ["model", "reason"], registry=r)
        self.request_seconds = Histogram(
            "aiinfra_request_duration_seconds", "Time from request received to response ready, "
            "by outcome (success, failure, cancelled) and protocol (http, grpc)",
            ["model", "outcome", "protocol"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_seconds = Histogram(
            "aiinfra_queue_duration_seconds", "Time a request waited in the model's queue",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute_seconds = Histogram(
            "aiinfra_compute_duration_seconds", "Time one batch spent in the backend",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram(
            "aiinfra_batch_size", "Samples per executed batch", ["model"],
            buckets=BATCH_BUCKETS, registry=r)
        self.admission_lateness = Histogram(
            "aiinfra_admission_lateness_seconds", "How late each batch's latest answer came "
            "against admission's prediction, before the learnt margin (negative: early)",
            ["model"], buckets=LATENESS_BUCKETS, registry=r)
        self.admission_margin = Gauge(
            "aiinfra_admission_margin_seconds", "The margin admission adds to every "
            "prediction (learnt from recent lateness; the widest of the workers)", ["model"],
            multiprocess_mode="livemax", registry=r)
        self.queue_depth = Gauge(
            "aiinfra_queue_depth", "Requests waiting in the model's queue", ["model"],
            multiprocess_mode="livesum", registry=r)
        self.in_flight = Gauge(
            "aiinfra_inflight_requests", "Inference requests being handled", ["model"],
            multiprocess_mode="livesum", registry=r)
        self.model_load_seconds = Histogram(
            "aiinfra_model_load_duration_seconds", "Time to load and warm a model", ["model"],
            buckets=LOAD_BUCKETS, registry=r)
        self.model_load_failures = Counter(
            "aiinfra_model_load_failures", "Model loads that failed (the index says why)",
            ["model"], registry=r)
        self.models_loaded = Gauge(
            "aiinfra_models_loaded", "Model versions loaded", multiprocess_mode="livesum",
            registry=r)
        # Prediction cache: counts are rows (a request of n rows makes n look-ups).
        self.cache_hits = Counter(
            "aiinfra_cache_hits", "Rows answered from the prediction cache, by tier",
            ["model", "tier"], registry=r)
        self.cache_misses = Counter(
            "aiinfra_cache_misses", "Rows the prediction cache did not hold", ["model"],
            registry=r)
        self.cache_errors = Counter(
            "aiinfra_cache_errors", "Cache failures, each served as a miss or a skipped store",
            ["reason"], registry=r)
        self.cache_lookup_seconds = Histogram(
            "aiinfra_cache_lookup_duration_seconds", "Time one request spent in cache look-ups",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.cache_redis_up = Gauge(
            "aiinfra_cache_redis_up", "1 while the Redis tier is in use, 0 while it is skipped",
            multiprocess_mode="livemin", registry=r)
        self.cache_local_bytes = Gauge(
            "aiinfra_cache_local_bytes", "Bytes held by the in-process cache tier",
            multiprocess_mode="livesum", registry=r)
        # Prediction log: every request makes one record; each is written or dropped.
        self.predlog_records = Counter(
            "aiinfra_predlog_records", "Prediction log records made", registry=r)
        self.predlog_written = Counter(
            "aiinfra_predlog_written", "Prediction log records committed to Postgres",
            registry=r)
        self.predlog_dropped = Counter(
            "aiinfra_predlog_dropped", "Prediction log records dropped (buffer full or shutdown)",
            registry=r)
        self.predlog_failures = Counter(
            "aiinfra_predlog_write_failures", "Batches Postgres did not take (retried)",
            registry=r)
        self.predlog_buffered = Gauge(
            "aiinfra_predlog_buffered_records", "Records waiting to be written",
            multiprocess_mode="livesum", registry=r)
        self.predlog_write_seconds = Histogram(
            "aiinfra_predlog_write_duration_seconds", "Time to COPY one batch to Postgres",
            buckets=LATENCY_BUCKETS, registry=r)
        if not multiprocess_dir():
            GpuCollector.register_if_available(r)

    def series(self, label: str, protocol: str) -> RequestSeries:
        """The model's per-request series over one protocol (created once per pair)."""
        bound = self._series.get((label, protocol))
        if bound is None:
            bound = self._series[(label, protocol)] = RequestSeries(self, label, protocol)
        return bound

    def render(self) -> tuple[bytes, str]:
        """The exposition text; merges all workers' values in multiprocess mode."""
        if directory := multiprocess_dir():
            forget_dead_workers(directory)
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            GpuCollector.register_if_available(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class GpuCollector:
    """GPU memory and utilisation from NVML, read at scrape time (only when a GPU is there)."""

    def __init__(self, nvml) -> None:
        self._nvml = nvml

    @classmethod
    def register_if_available(cls, registry: CollectorRegistry) -> bool:
        try:
            import pynvml  # noqa: PLC0415 - nvidia-ml-py is in the gpu extra only

            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() == 0:
                return False
        except Exception:  # noqa: BLE001 - no NVML, no driver or no GPU: nothing to export
            return False
        registry.register(cls(pynvml))
        return True

    def collect(self):
        nvml = self._nvml
        used = GaugeMetricFamily("aiinfra_gpu_memory_used_bytes", "GPU memory in use",
                                 labels=["gpu"])
        total = GaugeMetricFamily("aiinfra_gpu_memory_total_bytes", "GPU memory", labels=["gpu"])
        util = GaugeMetricFamily("aiinfra_gpu_utilization_ratio",
                                 "Fraction of time a kernel ran (NVML)", labels=["gpu"])
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            used.add_metric([str(index)], memory.used)
            total.add_metric([str(index)], memory.total)
            util.add_metric([str(index)], rates.gpu / 100.0)
        yield from (used, total, util)
