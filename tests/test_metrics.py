"""/metrics must read the same whichever histogram class records the per-frame times."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from voicex.metrics import _FAST_BUCKETS, HotHistogram, Metrics


def test_the_per_frame_histogram_scrapes_exactly_like_a_prometheus_histogram() -> None:
    reference_registry, hot_registry = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    reference = Histogram("frames_seconds", "Per frame.", buckets=_FAST_BUCKETS, registry=reference_registry)
    hot = HotHistogram("frames_seconds", "Per frame.", _FAST_BUCKETS, hot_registry)
    hot._created = reference._created
    rng = random.Random(7)
    # Every bound exactly (a value on a bound is in that "le" bucket), zero, beyond the last bound, and a spread.
    values = [*_FAST_BUCKETS, 0.0, 5.0, *(rng.expovariate(2000) for _ in range(5000))]
    for value in values:
        reference.observe(value)
        hot.observe(value)
    assert generate_latest(hot_registry) == generate_latest(reference_registry)
    assert generate_openmetrics(hot_registry) == generate_openmetrics(reference_registry)


def test_each_frame_shows_up_in_the_next_scrape() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.frame_handling.observe(0.00004)
    text = metrics.render().decode()
    assert 'voicex_media_frame_handling_seconds_bucket{le="0.0001"} 3.0' in text
    assert "voicex_media_frame_handling_seconds_count 3.0" in text
    metrics.frame_handling.observe(0.03)
    text = metrics.render().decode()
    assert 'voicex_media_frame_handling_seconds_bucket{le="0.02"} 3.0' in text
    assert 'voicex_media_frame_handling_seconds_bucket{le="0.05"} 4.0' in text
