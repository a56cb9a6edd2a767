"""Rate limits (shared through MongoDB) and CORS for the dashboard."""

from __future__ import annotations

import asyncio

from tests.factories import make_tenant
from voicex.web.ratelimit import Limit, hit


async def test_signin_guessing_is_rate_limited_per_email_and_ip(client, services) -> None:
    tenant = await make_tenant(client, services)
    attempts = services.settings.signin_attempts_per_15min
    for _ in range(attempts):
        wrong = await client.post("/api/auth/signin", json={"email": tenant.email, "password": "guess-guess"})
        assert wrong.status == 401
    blocked = await client.post("/api/auth/signin", json={"email": tenant.email, "password": tenant.password})
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert (await blocked.json())["error"].startswith("too many sign-in attempts")
    other = await client.post("/api/auth/signin", json={"email": "someone@example.com", "password": "whatever1"})
    assert other.status == 401  # another email is not blocked


async def test_requests_per_organization_are_limited_with_retry_after(make_client, services) -> None:
    services.settings = services.settings.model_copy(update={"rate_limit_per_minute": 3})
    client = await make_client()
    tenant = await make_tenant(client, services)
    statuses = [(await client.get("/api/dashboard/organization", headers=tenant.key)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await client.get("/api/dashboard/organization", headers=tenant.key)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "error" in await limited.json()
    assert (await client.get("/api/dashboard/organization", headers=tenant.jwt)).status == 429  # same org (issue 14)
    other = await make_tenant(client, services)
    assert (await client.get("/api/dashboard/organization", headers=other.key)).status == 200  # another org


async def test_ip_limit_counts_failed_authentication_too(make_client, services) -> None:
    services.settings = services.settings.model_copy(update={"rate_limit_ip_per_minute": 5})
    client = await make_client()
    statuses = [
        (await client.get("/api/dashboard/agents", headers={"x-api-key": "vx_" + "1" * 48})).status for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    assert (await client.get("/api/health")).status == 200  # probes are never limited


async def test_concurrent_hits_count_exactly(services) -> None:
    limit = Limit("test", 10, 60)
    results = await asyncio.gather(*(hit(services.db, limit, "same-key", now=1_000_000.0) for _ in range(25)))
    assert sum(result is None for result in results) == 10


async def test_cors_allows_only_configured_origins(make_client, services) -> None:
    services.settings = services.settings.model_copy(update={"cors_origins": ["https://dash.example.com"]})
    client = await make_client()
    preflight = {"Origin": "https://dash.example.com", "Access-Control-Request-Method": "POST"}
    allowed = await client.options("/api/auth/signin", headers=preflight)
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"
    assert "x-api-key" in allowed.headers["Access-Control-Allow-Headers"]
    refused = await client.options("/api/auth/signin", headers={**preflight, "Origin": "https://evil.example"})
    assert refused.status == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    error = await client.get("/api/dashboard/agents", headers={"Origin": "https://dash.example.com"})
    assert error.status == 401
    assert error.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"  # errors are readable
    plain = await client.get("/api/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in plain.headers
