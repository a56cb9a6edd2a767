"""Liveness, request ids, Prometheus metrics and setup status over the real HTTP server."""

from __future__ import annotations

import time

from voicex.server.admin import create_platform_admin


async def test_health_reports_ok_with_epoch_ms_timestamp(client) -> None:
    before = int(time.time() * 1000)
    response = await client.get("/api/health")
    after = int(time.time() * 1000)
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert isinstance(body["timestamp"], int) and before <= body["timestamp"] <= after


async def test_every_response_carries_a_request_id(client) -> None:
    first = await client.get("/api/health")
    second = await client.get("/api/health")
    assert len(first.headers["X-Request-Id"]) >= 16
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    echoed = await client.get("/api/health", headers={"X-Request-Id": "trace-abc-123456"})
    assert echoed.headers["X-Request-Id"] == "trace-abc-123456"
    unsafe = await client.get("/api/health", headers={"X-Request-Id": "bad id\twith spaces"})
    assert unsafe.headers["X-Request-Id"] != "bad id\twith spaces"


async def test_ready_when_database_answers(client) -> None:
    response = await client.get("/api/ready")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "checks": {"database": "ok", "calls": "ok"}}


async def test_metrics_exposition_counts_requests_by_route_template(client) -> None:
    await client.get("/api/health")
    await client.get("/api/health")
    await client.get("/no/such/route")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'voicex_http_requests_total{method="GET",route="/api/health",status="200"} 2.0' in text
    assert 'voicex_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert "voicex_http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text


async def test_setup_status_turns_complete_once_a_platform_admin_exists(client, services) -> None:
    response = await client.get("/api/setup/status")
    assert (await response.json())["setupComplete"] is False
    await create_platform_admin(services.db, "Root@Example.COM ", "correct horse")
    response = await client.get("/api/setup/status")
    assert (await response.json())["setupComplete"] is True
    stored = await services.db.users.find_one({"email": "root@example.com"})
    assert stored is not None and stored["passwordHash"].startswith("$argon2")
