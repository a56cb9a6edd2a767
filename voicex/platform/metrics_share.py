"""One ``/metrics`` for all of ``voicex serve --workers N``'s processes.

The workers share one port, so a scrape reaches one of them at random; each therefore publishes its numbers to a
folder the supervisor gives them (``VOICEX_METRICS_DIR``, one file per worker, replaced atomically every second) and
answers a scrape with the sum over every worker: counters and histograms add up (so quantiles are over all calls),
gauges add up (active calls, connections, memory), except ``voicex_draining`` (any worker) and the start times
(the earliest). A worker whose file is older than :data:`STALE_SEC` is gone and left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

PUBLISH_EVERY_SEC = 1.0
STALE_SEC = 10.0
_MAX = ("voicex_draining",)
_MIN_SUFFIXES = ("_created", "_start_time_seconds")


def merge(texts: Iterable[str]) -> bytes:
    """Several processes' expositions as one: samples with the same name and labels combined (see module doc)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            slot = values.setdefault(merged.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                slot[key] = _combine(sample.name, slot.get(key), sample.value)
    for name, metric in families.items():
        metric.samples = [Sample(sample, dict(labels), value) for (sample, labels), value in values[name].items()]
    return generate_latest(_Fixed(families.values()))


def _combine(name: str, old: float | None, new: float) -> float:
    if old is None:
        return new
    if name.startswith(_MAX):
        return max(old, new)
    if name.endswith(_MIN_SUFFIXES):
        return min(old, new)
    return old + new


class _Fixed(CollectorRegistry):
    """A registry that yields the given families as they are."""

    def __init__(self, families: Iterable[Metric]) -> None:
        super().__init__(auto_describe=False)
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def publish(folder: Path, worker: int, exposition: bytes) -> None:
    """Replace this worker's file (never half-written: written aside, then renamed over)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".worker-{worker}-")
    with os.fdopen(fd, "wb") as out:
        out.write(exposition)
    os.replace(tmp, folder / f"worker-{worker}.prom")


def gather(folder: Path, worker: int, own: bytes, now: float | None = None) -> bytes:
    """``own`` (this worker's numbers, fresh) merged with the other live workers' latest files."""
    now = time.time() if now is None else now
    texts = [own.decode()]
    for path in folder.glob("worker-*.prom"):
        if path.name == f"worker-{worker}.prom":
            continue
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime <= STALE_SEC:
                texts.append(path.read_text())
    return merge(texts)


async def publishing(folder: Path, worker: int, render: Callable[[], bytes]) -> AsyncIterator[None]:
    """Publish ``render()`` every :data:`PUBLISH_EVERY_SEC` while the worker runs (an aiohttp cleanup context)."""

    async def loop() -> None:
        while True:
            exposition = render()
            with contextlib.suppress(OSError):
                await asyncio.to_thread(publish, folder, worker, exposition)
            await asyncio.sleep(PUBLISH_EVERY_SEC)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
