"""/metrics: reads the same whichever histogram class records the per-frame times; asks for
VOICEX_METRICS_TOKEN when one is set."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from voicex.platform.errors import SettingsError
from voicex.platform.metrics import _FAST_BUCKETS, HotHistogram, Metrics
from voicex.platform.settings import load_settings


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


METRICS_TOKEN = "scrape-token-6b1e0f4c9a2d7e35"


async def test_metrics_ask_for_the_token_once_one_is_set(client, services) -> None:
    assert (await client.get("/metrics")).status == 200  # unset: open, as before
    services.settings = services.settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    for headers in ({}, {"Authorization": "Bearer wrong-token-0000000000"}, {"Authorization": METRICS_TOKEN}):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status == 401, headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        body = await refused.json()
        assert "VOICEX_METRICS_TOKEN" in body["error"] and METRICS_TOKEN not in body["error"]
    for scheme in ("Bearer", "bearer"):
        scraped = await client.get("/metrics", headers={"Authorization": f"{scheme} {METRICS_TOKEN}"})
        assert scraped.status == 200, scheme
        assert "voicex_http_requests_total" in await scraped.text()
    assert (await client.get("/api/health")).status == 200  # probes never need it


def test_a_metrics_token_too_short_to_be_safe_stops_the_server() -> None:
    with pytest.raises(SettingsError, match="VOICEX_METRICS_TOKEN"):
        load_settings(metrics_token="short")
