"""An organization with providers to build agents on, shared by the agent test modules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from tests.factories import Tenant, make_tenant
from voicex.platform.crypto import SecretBox

AGENTS = "/api/dashboard/agents"


@dataclass
class World:
    tenant: Tenant
    llm: str  # global openai LLM: gpt-4o-mini (free), gpt-4.1-mini (starter), gpt-4.1 (pro)
    tts: str  # global edge TTS
    stt: str  # global deepgram STT
    own_llm: str  # the tenant's own openai LLM (its own key: no plan gating)
    foreign_tts: str  # another organization's TTS provider


async def add_provider(services, org_id: ObjectId | None, category: str, key: str, name: str, models: list[str]) -> str:
    """A provider document; an org's own one carries an (encrypted) API key, as one made through the API does."""
    now = dt.datetime.now(dt.UTC)
    own_key = SecretBox(services.settings.encryption_key).encrypt({"apiKey": "sk-own-test-key"})
    result = await services.db.providers.insert_one(
        {
            "orgId": org_id,
            "category": category,
            "providerKey": key,
            "name": name,
            "credentials": None if org_id is None else own_key,
            "models": [{"modelId": model, "label": model} for model in models],
            "settings": {},
            "active": True,
            "createdAt": now,
            "updatedAt": now,
        }
    )
    return str(result.inserted_id)


# The vendor keys the server was started with: without them its global providers could not authenticate
# (agents on them are paused, voicex/calls/status.py).
SERVER_KEYS = {
    "openai_api_key": "sk-global-test",
    "deepgram_api_key": "dg-global-test",
    "groq_api_key": "gsk-global-test",
    "elevenlabs_api_key": "xi-global-test",
}


async def make_world(client, services, plan: str = "starter", same_globals_as: World | None = None) -> World:
    """A tenant with providers; a second tenant in the same test shares the first one's global providers."""
    services.settings = services.settings.model_copy(update=SERVER_KEYS)
    tenant = await make_tenant(client, services, plan=plan)
    org = ObjectId(tenant.org_id)
    if same_globals_as is None:
        llm = await add_provider(
            services, None, "llm", "openai", "Test OpenAI", ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1"]
        )
        tts = await add_provider(services, None, "tts", "edge", "Test Edge", ["en-US-AriaNeural", "en-US-GuyNeural"])
        stt = await add_provider(services, None, "stt", "deepgram", "Test Deepgram", ["nova-2-phonecall", "nova-2"])
    else:
        llm, tts, stt = same_globals_as.llm, same_globals_as.tts, same_globals_as.stt
    return World(
        tenant=tenant,
        llm=llm,
        tts=tts,
        stt=stt,
        own_llm=await add_provider(services, org, "llm", "openai", "Our OpenAI", ["gpt-4.1"]),
        foreign_tts=await add_provider(services, ObjectId(), "tts", "edge", "Their Edge", ["en-US-AriaNeural"]),
    )


def body(world: World, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Front desk",
        "persona": {"systemPrompt": "You answer the phone for a dental clinic.", "greeting": "Hello!"},
        "llmProviderId": world.llm,
        "llmModelId": "gpt-4o-mini",
        "ttsProviderId": world.tts,
        "ttsModelId": "en-US-AriaNeural",
        "sttProviderId": world.stt,
    }
    data.update(overrides)
    return data


async def create(client, world: World, **overrides: Any) -> dict[str, Any]:
    response = await client.post(AGENTS, json=body(world, **overrides), headers=world.tenant.jwt)
    assert response.status == 201, await response.text()
    return await response.json()


async def fetch(client, world: World, agent_id: str) -> dict[str, Any]:
    response = await client.get(f"{AGENTS}/{agent_id}", headers=world.tenant.key)
    assert response.status == 200, await response.text()
    return await response.json()
