"""Schemathesis over the whole OpenAPI document, bounded for the suite: no 5xx, every error ``{"error": ...}``,
declared responses conform. The longer run is ``scripts/fuzz_http.py`` (docs/reliability.md)."""

from __future__ import annotations

import asyncio

import pytest

from scripts.http_fuzz import fuzz
from tests.factories import make_tenant
from voicex.server.admin import create_platform_admin


async def test_a_body_that_is_not_utf8_is_a_400_not_a_500(client, services) -> None:
    tenant = await make_tenant(client, services)
    for path, headers in (("/api/auth/signin", {}), ("/api/dashboard/api-keys", tenant.key)):
        response = await client.post(
            path, data=b'{"name": "\xff\xfe"}', headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status == 400, path
        assert (await response.json())["error"].startswith("malformed JSON body")


async def test_a_skip_past_64_bits_is_a_400_not_a_500(client, services) -> None:
    tenant = await make_tenant(client, services)
    for path in ("/api/dashboard/calls", "/api/dashboard/models/search"):  # the lists that take skip/limit
        response = await client.get(path, params={"skip": str(10**30), "category": "llm"}, headers=tenant.key)
        assert response.status == 400, path
        assert "skip" in (await response.json())["error"]


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_nonconforming_response(client, services) -> None:
    tenant = await make_tenant(client, services)
    await create_platform_admin(services.db, "root@fuzz.example.com", "root-password-1")
    signin = await client.post(
        "/api/auth/signin", json={"email": "root@fuzz.example.com", "password": "root-password-1"}
    )
    admin = {"Authorization": f"Bearer {(await signin.json())['token']}"}
    auths = {"platform_admin": admin, "jwt": tenant.jwt, "api_key": tenant.key, "anonymous": {}}
    base = f"http://127.0.0.1:{client.server.port}"

    report = await asyncio.to_thread(fuzz, base, auths, examples=1)

    assert report.operations >= 29 and report.requests >= 200
    assert report.server_errors == 0 and report.findings == {}
    assert report.statuses[200] > 0 and report.statuses[400] > 0 and report.statuses[401] > 0
