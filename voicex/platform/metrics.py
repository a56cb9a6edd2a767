"""Prometheus metrics of one server process, in a registry of its own (one per app, so tests don't clash)."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from voicex.store.pool import PoolStats

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_TURN_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Per-frame and loop-lag times: a 20 ms frame budget, so resolution where it matters (0.1 ms .. 100 ms).
_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
_TURN_FIELDS = ("e2e_latency", "llm_ttft", "tts_ttfb", "end_of_turn_delay", "stt_final_latency")


class Metrics:
    """The server's metric families. Later layers (calls, turns) add theirs here too."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.http_requests = Counter(
            "voicex_http_requests",
            "HTTP requests served, by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "voicex_http_request_duration_seconds",
            "Time to produce an HTTP response, by method and route template.",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.turn_latency = {
            name: Histogram(
                f"voicex_turn_{name}_seconds",
                f"Per caller turn: {name.replace('_', ' ')}.",
                buckets=_TURN_BUCKETS,
                registry=self.registry,
            )
            for name in _TURN_FIELDS
        }
        self.turns = Counter(
            "voicex_turns",
            "Caller turns answered, by whether the caller interrupted the answer.",
            ("interrupted",),
            registry=self.registry,
        )
        self.stream_malformed = Counter(
            "voicex_media_stream_malformed_messages",
            "Media Stream messages skipped as malformed.",
            registry=self.registry,
        )
        self.active_calls = Gauge("voicex_active_calls", "Calls with an open media stream.", registry=self.registry)
        self.draining = Gauge(
            "voicex_draining",
            "1 while the server drains: it admits no calls, the running ones finish.",
            registry=self.registry,
        )
        self.frame_handling = HotHistogram(
            "voicex_media_frame_handling_seconds",
            "Time to process one inbound caller media frame (decode, VAD, STT feed, turn detector).",
            _FAST_BUCKETS,
            self.registry,
        )
        self.loop_lag = Histogram(
            "voicex_event_loop_lag_seconds",
            "How late a periodic event-loop timer fires: the delay every call's audio handling sees.",
            buckets=_FAST_BUCKETS,
            registry=self.registry,
        )

        self.asyncio_tasks = Gauge(
            "voicex_asyncio_tasks",
            "Tasks alive on the event loop (a leak grows it call by call).",
            registry=self.registry,
        )
        self.asyncio_tasks.set_function(_task_count)
        self.db_connections = Gauge(
            "voicex_db_connections", "MongoDB connections the driver holds open.", registry=self.registry
        )
        self.db_connections_in_use = Gauge(
            "voicex_db_connections_in_use", "MongoDB connections checked out by an operation.", registry=self.registry
        )

    def watch_db(self, pool: PoolStats) -> None:
        """Report ``pool``'s connection counts at each scrape."""
        self.db_connections.set_function(lambda: pool.open)
        self.db_connections_in_use.set_function(lambda: pool.in_use)

    def observe_turn(self, turn: object) -> None:
        """Called by the engine once per finished caller turn (pipelines.metrics.TurnMetrics)."""
        for name, histogram in self.turn_latency.items():
            value = getattr(turn, name, None)
            if value is not None:
                histogram.observe(value / 1000)
        self.turns.labels(str(bool(getattr(turn, "interrupted", False))).lower()).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HotHistogram:
    """A label-less histogram for the per-frame path (50 observations a second per call).

    ``prometheus_client.Histogram.observe`` takes a lock and updates two value objects (~1.3 µs); this keeps
    plain per-bucket counts and a sum (~0.2 µs) and builds the histogram when ``/metrics`` is scraped, so
    every observation is in every scrape, exactly as with ``Histogram`` (same samples, ``_created`` included).
    The event loop is single-threaded, so no lock is needed; observe only from the loop's thread.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = tuple(float(b) for b in buckets)
        self._labels = [*(str(floatToGoString(b)) for b in self._bounds), "+Inf"]  # type: ignore[no-untyped-call]
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket, not cumulative; the last one is +Inf
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)

    def observe(self, amount: float) -> None:
        # bisect_left: the first bound >= amount, i.e. the "le" bucket Histogram counts it in.
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for label, count in zip(self._labels, self._counts, strict=True):
            cumulative += count
            buckets.append((label, float(cumulative)))
        family = HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self._sum)
        family.samples.append(Sample(f"{self.name}_created", {}, self._created))
        yield family


def _task_count() -> int:
    """Tasks on the running loop; 0 when scraped outside one (a test rendering the registry directly)."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return 0
