"""POST /api/dashboard/providers/:id/test: a real minimal request reports ok/latency or the provider's error."""

from __future__ import annotations

import pytest
from bson import ObjectId

from tests.factories import make_tenant

pytestmark = pytest.mark.scripted_providers


async def _provider_id(client, tenant, key: str, category: str) -> str:
    items = await (await client.get(f"/api/dashboard/providers?category={category}", headers=tenant.key)).json()
    return next(item["_id"] for item in items if item["providerKey"] == key)


@pytest.mark.parametrize("category", ["stt", "llm", "tts"])
async def test_a_working_provider_reports_ok_with_latency(client, services, category: str) -> None:
    tenant = await make_tenant(client, services)
    provider_id = await _provider_id(client, tenant, "scripted", category)
    response = await client.post(f"/api/dashboard/providers/{provider_id}/test", headers=tenant.key)
    assert response.status == 200
    body = await response.json()
    assert body["ok"] is True and body["error"] is None and body["latencyMs"] >= 0


async def test_a_global_provider_without_a_key_reports_why(client, services) -> None:
    tenant = await make_tenant(client, services)
    provider_id = await _provider_id(client, tenant, "deepgram", "stt")
    body = await (await client.post(f"/api/dashboard/providers/{provider_id}/test", headers=tenant.jwt)).json()
    assert body == {"ok": False, "latencyMs": None, "error": "no API key configured for this global provider"}


async def test_another_orgs_provider_is_404(client, services) -> None:
    owner, other = await make_tenant(client, services), await make_tenant(client, services)
    created = await client.post(
        "/api/dashboard/providers",
        headers=owner.jwt,
        json={"category": "llm", "providerKey": "ollama", "name": "Mine", "credentials": {}},
    )
    provider_id = (await created.json())["_id"]
    assert (await client.post(f"/api/dashboard/providers/{provider_id}/test", headers=other.jwt)).status == 404
    assert (await client.post(f"/api/dashboard/providers/{ObjectId()}/test", headers=owner.jwt)).status == 404
