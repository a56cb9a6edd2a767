"""Agents' server-computed status: why an agent cannot take calls right now."""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from tests.agent_world import AGENTS, World, create, fetch, make_world
from voicex.calls.status import compute_status
from voicex.store.usage import day_key

# --- status -----------------------------------------------------------------------------------------


async def _status(client, world: World, agent_id: str) -> tuple[str, str | None]:
    listed = await (await client.get(AGENTS, headers=world.tenant.jwt)).json()
    [item] = [item for item in listed if item["_id"] == agent_id]
    single = await fetch(client, world, agent_id)
    assert (single["status"], single["pauseReason"]) == (item["status"], item["pauseReason"])
    return item["status"], item["pauseReason"]


async def test_inactive_agent_is_paused(client, services) -> None:
    world = await make_world(client, services)
    agent = await create(client, world, active=False)
    assert (agent["status"], agent["pauseReason"]) == ("paused", "agent inactive")
    response = await client.patch(f"{AGENTS}/{agent['_id']}", json={"active": True}, headers=world.tenant.jwt)
    assert (await response.json())["status"] == "active"


async def test_exhausted_monthly_minutes_pause_every_agent(client, services) -> None:
    world = await make_world(client, services)  # starter: 1000 minutes a month
    agent = await create(client, world)
    org_id = ObjectId(world.tenant.org_id)
    now = dt.datetime.now(dt.UTC)
    last_month = now.replace(day=1) - dt.timedelta(days=1)
    await services.db.usage_daily.insert_one({"orgId": org_id, "date": day_key(last_month), "minutes": 5000})
    await services.db.usage_daily.insert_one({"orgId": org_id, "date": day_key(now), "minutes": 999})
    assert await _status(client, world, agent["_id"]) == ("active", None)
    await services.db.usage_daily.update_one({"orgId": org_id, "date": day_key(now)}, {"$inc": {"minutes": 1}})
    assert await _status(client, world, agent["_id"]) == ("paused", "monthly minutes exhausted")


async def test_inactive_or_deleted_provider_pauses_the_agent(client, services) -> None:
    world = await make_world(client, services)
    agent = await create(client, world)
    await services.db.providers.update_one({"_id": ObjectId(world.stt)}, {"$set": {"active": False}})
    assert await _status(client, world, agent["_id"]) == ("paused", "STT provider inactive")
    await services.db.providers.update_one({"_id": ObjectId(world.stt)}, {"$set": {"active": True}})
    await services.db.providers.delete_one({"_id": ObjectId(world.tts)})
    assert await _status(client, world, agent["_id"]) == ("paused", "TTS provider deleted")


async def test_plan_downgrade_pauses_agent_on_a_model_it_no_longer_allows(client, services) -> None:
    world = await make_world(client, services)
    agent = await create(client, world, llmModelId="gpt-4.1-mini")
    await services.db.organizations.update_one({"_id": ObjectId(world.tenant.org_id)}, {"$set": {"planSlug": "free"}})
    assert await _status(client, world, agent["_id"]) == ("paused", "plan no longer allows model openai/gpt-4.1-mini")


def test_compute_status_pauses_agents_of_a_suspended_org(services) -> None:
    catalog = services.catalog
    settings = services.settings.model_copy(update={"openai_api_key": "sk-test", "deepgram_api_key": "dg-test"})
    plan = catalog.plans["starter"]
    llm, tts, stt = ObjectId(), ObjectId(), ObjectId()
    providers = {
        pid: {"_id": pid, "orgId": None, "category": category, "providerKey": key, "models": [{"modelId": model}]}
        for pid, category, key, model in (
            (llm, "llm", "openai", "gpt-4o-mini"),
            (tts, "tts", "edge", "en-US-GuyNeural"),
            (stt, "stt", "deepgram", "nova-2"),
        )
    }
    agent = {
        "active": True,
        "llmProviderId": llm,
        "llmModelId": "gpt-4o-mini",
        "ttsProviderId": tts,
        "ttsModelId": "en-US-GuyNeural",
        "sttProviderId": stt,
        "sttModelId": "nova-2",
    }
    org = {"_id": ObjectId(), "status": "active"}
    assert compute_status(agent, org, plan, providers, 0, catalog, settings) == ("active", None)
    for status in ("suspended", "pending"):
        result = compute_status(agent, {**org, "status": status}, plan, providers, 0, catalog, settings)
        assert result == ("paused", "organization not active")
    inactive = compute_status(
        {**agent, "active": False}, {**org, "status": "suspended"}, plan, providers, 0, catalog, settings
    )
    assert inactive == ("paused", "agent inactive")
    assert compute_status(agent, org, plan, {}, 0, catalog, settings) == ("paused", "LLM provider deleted")
