"""The control plane end to end, as a new customer walks through it, over the real server and database."""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from voicex.server.admin import create_platform_admin

SIGNUP = {"name": "Dana", "email": "dana@clinic.example", "password": "clinic-pass-1", "orgName": "Clinic"}


async def _global(client, headers, key: str, category: str) -> dict:
    items = await (await client.get(f"/api/dashboard/providers?category={category}", headers=headers)).json()
    return next(item for item in items if item["providerKey"] == key and item["source"] == "global")


async def test_signup_to_agents_keys_limits_revocation_and_conflicts(client, services) -> None:
    # Sign up: the organization waits for a platform admin.
    signup = await (await client.post("/api/auth/signup", json=SIGNUP)).json()
    user = {"Authorization": f"Bearer {signup['token']}"}
    assert (await client.get("/api/dashboard/agents", headers=user)).status == 403

    await create_platform_admin(services.db, "ops@voicex.example", "ops-password")
    ops = await (
        await client.post("/api/auth/signin", json={"email": "ops@voicex.example", "password": "ops-password"})
    ).json()
    activated = await client.patch(
        f"/api/admin/organizations/{signup['organization']['_id']}",
        json={"status": "active", "planSlug": "starter"},
        headers={"Authorization": f"Bearer {ops['token']}"},
    )
    assert activated.status == 200

    # Plan, an API key, providers.
    plan = await (await client.get("/api/dashboard/plan", headers=user)).json()
    assert plan["slug"] == "starter" and plan["features"]["customProviders"] is True
    created_key = await (await client.post("/api/dashboard/api-keys", json={"name": "server"}, headers=user)).json()
    key = {"x-api-key": created_key["rawKey"]}
    assert (await client.get("/api/dashboard/organization", headers=key)).status == 200

    own = await client.post(
        "/api/dashboard/providers",
        json={"category": "llm", "providerKey": "groq", "name": "Our Groq", "credentials": {"apiKey": "gsk-test-0001"}},
        headers=key,
    )
    assert own.status == 201
    own_llm = await own.json()
    tts = await _global(client, key, "edge", "tts")
    stt = await _global(client, key, "local", "stt")

    search = await (await client.get("/api/dashboard/models/search?category=llm&query=llama", headers=key)).json()
    sources = {(item["providerName"], item["modelId"]): item for item in search["items"]}
    assert sources[("Our Groq", "llama-3.3-70b-versatile")]["allowed"] is True

    # Agents up to the plan's limit, then 403.
    agent_body = {
        "name": "Reception",
        "persona": {"systemPrompt": "You book appointments.", "greeting": "Clinic, hello!"},
        "llmProviderId": own_llm["_id"],
        "llmModelId": "llama-3.1-8b-instant",
        "ttsProviderId": tts["_id"],
        "ttsModelId": "en-US-AriaNeural",
        "sttProviderId": stt["_id"],
        "phoneNumbers": ["+15005550006"],
    }
    first = await client.post("/api/dashboard/agents", json=agent_body, headers=key)
    assert first.status == 201
    agent = await first.json()
    assert agent["status"] == "active" and agent["thresholds"]["silenceTimeoutMs"] == 700
    for n in range(2, plan["limits"]["maxAgents"] + 1):
        extra = {**agent_body, "name": f"Agent {n}", "phoneNumbers": []}
        assert (await client.post("/api/dashboard/agents", json=extra, headers=key)).status == 201
    over = await client.post("/api/dashboard/agents", json={**agent_body, "phoneNumbers": []}, headers=key)
    assert over.status == 403 and "agent" in (await over.json())["error"].lower()

    # Stats and usage reflect calls the telephony layer records.
    now = dt.datetime.now(dt.UTC)
    await services.db.calls.insert_one(
        {
            "orgId": ObjectId(signup["organization"]["_id"]),
            "agentId": ObjectId(agent["_id"]),
            "status": "completed",
            "startedAt": now - dt.timedelta(minutes=2),
            "endedAt": now,
            "durationSec": 120,
            "callSid": "CA" + "1" * 32,
            "from": "+15005550001",
            "to": "+15005550006",
            "direction": "inbound",
            "transcript": [],
        }
    )
    stats = await (await client.get("/api/dashboard/stats", headers=key)).json()
    assert stats["totalCalls"] == 1 and stats["totalMinutes"] == 2 and stats["averageDurationSec"] == 120
    assert stats["activeAgents"] == plan["limits"]["maxAgents"]

    # Deleting a provider in use is a conflict naming the agents.
    conflict = await client.delete(f"/api/dashboard/providers/{own_llm['_id']}", headers=key)
    assert conflict.status == 409
    assert agent["_id"] in [item["_id"] for item in (await conflict.json())["agents"]]

    # Revoking the key: the next request with it is refused at once.
    assert (await client.delete(f"/api/dashboard/api-keys/{created_key['_id']}", headers=user)).status == 200
    assert (await client.get("/api/dashboard/agents", headers=key)).status == 401
    assert (await client.get("/api/dashboard/agents", headers=user)).status == 200
