"""Every object endpoint, with another organization's JWT and API key: 404 every time, and no list leaks."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import ObjectId

from tests.factories import make_tenant


async def _objects_of(client, services, tenant) -> dict[str, str]:
    """One of everything for ``tenant``; returns their ids."""
    provider = await (
        await client.post(
            "/api/dashboard/providers",
            json={"category": "llm", "providerKey": "ollama", "name": "Private Ollama", "credentials": {}},
            headers=tenant.jwt,
        )
    ).json()
    providers = await (await client.get("/api/dashboard/providers", headers=tenant.jwt)).json()
    tts = next(p for p in providers if p["providerKey"] == "edge")
    stt = next(p for p in providers if p["providerKey"] == "local" and p["category"] == "stt")
    agent_response = await client.post(
        "/api/dashboard/agents",
        json={
            "name": "Private agent",
            "persona": {"systemPrompt": "Be brief."},
            "llmProviderId": provider["_id"],
            "llmModelId": "llama3.2:3b",
            "ttsProviderId": tts["_id"],
            "ttsModelId": "en-US-AriaNeural",
            "sttProviderId": stt["_id"],
            "phoneNumbers": ["+15005550099"],
        },
        headers=tenant.jwt,
    )
    assert agent_response.status == 201, await agent_response.text()
    agent = await agent_response.json()
    key = await (await client.post("/api/dashboard/api-keys", json={"name": "private"}, headers=tenant.jwt)).json()
    call = await services.db.calls.insert_one(
        {
            "orgId": ObjectId(tenant.org_id),
            "agentId": ObjectId(agent["_id"]),
            "status": "completed",
            "startedAt": dt.datetime.now(dt.UTC),
            "transcript": [{"role": "user", "text": "my secret", "atMs": 0}],
            "callSid": "CA" + "2" * 32,
        }
    )
    return {"provider": provider["_id"], "agent": agent["_id"], "key": key["_id"], "call": str(call.inserted_id)}


@pytest.mark.parametrize("credential", ["jwt", "key"])
async def test_another_org_gets_404_on_every_object_endpoint_and_sees_nothing_in_lists(
    client, services, credential: str
) -> None:
    owner = await make_tenant(client, services)
    ids = await _objects_of(client, services, owner)
    intruder = await make_tenant(client, services)
    headers = getattr(intruder, credential)

    matrix = [
        ("GET", f"/api/dashboard/providers/{ids['provider']}", None),
        ("PATCH", f"/api/dashboard/providers/{ids['provider']}", {"name": "pwned"}),
        ("DELETE", f"/api/dashboard/providers/{ids['provider']}", None),
        ("GET", f"/api/dashboard/agents/{ids['agent']}", None),
        ("PATCH", f"/api/dashboard/agents/{ids['agent']}", {"name": "pwned"}),
        ("DELETE", f"/api/dashboard/agents/{ids['agent']}", None),
        ("DELETE", f"/api/dashboard/api-keys/{ids['key']}", None),
        ("GET", f"/api/dashboard/calls/{ids['call']}", None),
    ]
    for method, path, payload in matrix:
        response = await client.request(method, path, json=payload, headers=headers)
        assert response.status == 404, f"{method} {path} -> {response.status}"
        assert "error" in await response.json()

    lists = [
        "/api/dashboard/providers",
        "/api/dashboard/providers?client=true",
        "/api/dashboard/agents",
        "/api/dashboard/api-keys",
        "/api/dashboard/calls",
        "/api/dashboard/models/search?category=llm&limit=100",
        "/api/dashboard/analytics/usage",
        "/api/dashboard/stats",
        "/api/dashboard/organization",
    ]
    for path in lists:
        response = await client.get(path, headers=headers)
        assert response.status == 200, path
        text = await response.text()
        for name, object_id in ids.items():
            assert object_id not in text, f"{path} leaks the owner's {name}"
        assert "Private Ollama" not in text and "Private agent" not in text and owner.org_id not in text
    assert (await (await client.get("/api/dashboard/calls/count", headers=headers)).json()) == {"count": 0}

    # The owner still has everything, untouched.
    agent = await client.get(f"/api/dashboard/agents/{ids['agent']}", headers=owner.jwt)
    assert agent.status == 200 and (await agent.json())["name"] == "Private agent"
    assert (await client.get(f"/api/dashboard/providers/{ids['provider']}", headers=owner.key)).status == 200
    # The same phone number may belong to an agent of another org.
    assert (await client.get("/api/dashboard/calls/count", headers=owner.jwt)).status == 200
