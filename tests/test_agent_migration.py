"""Agents and providers stored with the version-1 meanings keep their behaviour after the start-up migration."""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from pipelines.fallback import FallbackTTS
from providers.elevenlabs_tts import ElevenLabsTTS
from tests.agent_world import AGENTS, add_provider, fetch, make_world
from voicex.agents.migration import SCHEMA_VERSION, migrate, migrate_agent, migrate_thresholds
from voicex.calls.builder import build_parts, turn_settings
from voicex.platform.crypto import SecretBox

V1_THRESHOLDS = {
    "endpointingMs": 450,  # version 1: the caller silence that ended the turn
    "silenceTimeoutMs": 9000,  # version 1: the reprompt timer
    "maxCallDurationSec": 600,
    "interruptionSensitivity": "low",
    "vad": "silero",
}
# The same behaviour under the version-2 names; the recognizer's endpointing is what version 1 used (300 ms).
V2_THRESHOLDS = {
    "silenceTimeoutMs": 450,
    "idleTimeoutMs": 9000,
    "endpointingMs": 300,
    "maxCallDurationSec": 600,
    "interruptionSensitivity": "low",
    "vad": "silero",
}


def test_thresholds_move_to_the_names_that_mean_what_they_did() -> None:
    assert migrate_thresholds(V1_THRESHOLDS, 300) == V2_THRESHOLDS
    assert migrate_thresholds({}, 300) == {"endpointingMs": 300}


def test_a_synthesis_model_and_voice_become_config_model_and_voice() -> None:
    eleven = {
        "_id": ObjectId(),
        "orgId": None,
        "providerKey": "elevenlabs",
        "models": [{"modelId": "pNInz6obpgDQGcFmaJgB"}],
    }
    openai = {"_id": ObjectId(), "orgId": ObjectId(), "providerKey": "openai", "settings": {"voice": "nova"}}
    edge = {"_id": ObjectId(), "orgId": None, "providerKey": "edge", "models": [{"modelId": "en-US-GuyNeural"}]}
    providers = {p["_id"]: p for p in (eleven, openai, edge)}

    chosen = {
        "ttsProviderId": eleven["_id"],
        "ttsModelId": "eleven_turbo_v2_5",
        "ttsConfig": {"voice": "pNInz6obpgDQGcFmaJgB"},
    }
    fields, warnings = migrate_agent(chosen, providers, 300)
    assert fields["ttsModelId"] == "pNInz6obpgDQGcFmaJgB" and warnings == []
    assert fields["ttsConfig"] == {"model": "eleven_turbo_v2_5"} and fields["schemaVersion"] == SCHEMA_VERSION

    # No voice chosen: the adapter's version-1 default (George), or the provider's own voice setting.
    fields, _ = migrate_agent({"ttsProviderId": eleven["_id"], "ttsModelId": "eleven_flash_v2_5"}, providers, 300)
    assert fields["ttsModelId"] == "JBFqnCBsd6RMkjVDRZzb"
    fields, _ = migrate_agent(
        {"ttsProviderId": openai["_id"], "ttsModelId": "tts-1-hd", "ttsConfig": {"speed": 1.2}}, providers, 300
    )
    assert (fields["ttsModelId"], fields["ttsConfig"]) == ("nova", {"speed": 1.2, "model": "tts-1-hd"})

    # Edge spoke ttsConfig.voice over its model; a global provider cannot speak a voice it does not list.
    fields, _ = migrate_agent(
        {"ttsProviderId": edge["_id"], "ttsModelId": "en-US-AriaNeural", "ttsConfig": {"voice": "en-US-GuyNeural"}},
        providers,
        300,
    )
    assert fields["ttsModelId"] == "en-US-GuyNeural" and fields["ttsConfig"] == {}
    fields, warnings = migrate_agent(
        {"ttsProviderId": eleven["_id"], "ttsModelId": "eleven_flash_v2_5", "ttsConfig": {"voice": "clonedVoice42"}},
        providers,
        300,
    )
    assert fields["ttsModelId"] == "JBFqnCBsd6RMkjVDRZzb" and "clonedVoice42" in warnings[0]

    # Fallback voices move the same way.
    fallbacks = {"tts": [{"providerId": openai["_id"], "modelId": "tts-1"}], "llm": []}
    fields, _ = migrate_agent(
        {"ttsProviderId": edge["_id"], "ttsModelId": "en-US-AriaNeural", "fallbacks": fallbacks}, providers, 300
    )
    assert fields["fallbacks"] == {"tts": [{"providerId": openai["_id"], "modelId": "nova"}], "llm": []}


async def _v1_agent(services, world, **fields) -> ObjectId:
    """An agent document as version 1 stored it (no schemaVersion)."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    doc = {
        "orgId": ObjectId(world.tenant.org_id),
        "name": "Old desk",
        "persona": {"systemPrompt": "You answer the phone.", "greeting": "Hello!", "language": "en-US"},
        "llmProviderId": ObjectId(world.llm),
        "llmModelId": "gpt-4o-mini",
        "llmConfig": {"temperature": 0.7, "maxTokens": 512},
        "ttsProviderId": ObjectId(world.tts),
        "ttsModelId": "en-US-AriaNeural",
        "ttsConfig": {"speed": 1.0, "voice": None, "language": None},
        "sttProviderId": ObjectId(world.stt),
        "sttModelId": "nova-2",
        "thresholds": dict(V1_THRESHOLDS),
        "openingMode": "agent_first",
        "phoneNumbers": [],
        "active": True,
        "fallbacks": {"llm": [], "tts": [], "stt": []},
        "createdAt": now,
        "updatedAt": now,
        **fields,
    }
    return (await services.db.agents.insert_one(doc)).inserted_id


async def test_start_up_migration_keeps_each_agent_working_and_is_idempotent(client, services) -> None:
    world = await make_world(client, services, plan="pro")
    org = ObjectId(world.tenant.org_id)
    # The org's own ElevenLabs provider as version 1 stored it: synthesis models as models, a voice setting.
    own_eleven = ObjectId(
        await add_provider(
            services, org, "tts", "elevenlabs", "Our ElevenLabs", ["eleven_turbo_v2_5", "eleven_flash_v2_5"]
        )
    )
    await services.db.providers.update_one({"_id": own_eleven}, {"$set": {"settings": {"voiceId": "brandVoice01"}}})
    plain = await _v1_agent(services, world)
    voiced = await _v1_agent(
        services,
        world,
        name="Branded",
        ttsProviderId=own_eleven,
        ttsModelId="eleven_turbo_v2_5",
        ttsConfig={"speed": 1.1, "voice": "clonedVoice42"},
        thresholds={**V1_THRESHOLDS, "endpointingMs": 900},
    )

    assert await migrate(services.db, services.catalog) == 2
    assert await migrate(services.db, services.catalog) == 0  # a second start (or a second process) changes nothing

    agent = await fetch(client, world, str(plain))
    assert agent["thresholds"] == V2_THRESHOLDS
    assert (agent["status"], agent["pauseReason"]) == ("active", None)
    branded = await fetch(client, world, str(voiced))
    assert branded["ttsModelId"] == "clonedVoice42" and branded["ttsConfig"] == {
        "speed": 1.1,
        "model": "eleven_turbo_v2_5",
    }
    assert branded["thresholds"]["silenceTimeoutMs"] == 900 and branded["status"] == "active"
    provider = await services.db.providers.find_one({"_id": own_eleven})
    assert provider["settings"] == {"ttsModel": "eleven_turbo_v2_5"}
    assert [m["modelId"] for m in provider["models"]] == ["brandVoice01", "clonedVoice42"]

    # The engine ends turns and reprompts exactly as before; the voice and synthesis model are the same.
    org_doc = await services.db.organizations.find_one({"_id": org})
    stored = await services.db.agents.find_one({"_id": plain})
    settings = turn_settings(services, stored, org_doc)
    assert (settings.silence_timeout_ms, settings.idle_timeout_ms, settings.endpointing_ms) == (450, 9000, 300)
    branded_doc = await services.db.agents.find_one({"_id": voiced})
    key = SecretBox(services.settings.encryption_key).encrypt({"apiKey": "xi-test-key"})
    await services.db.providers.update_one({"_id": own_eleven}, {"$set": {"credentials": key}})
    keys = {"openai_api_key": "sk-test-key", "deepgram_api_key": "dg-test-key"}  # the global LLM and STT
    services.settings = services.settings.model_copy(update=keys)
    parts = await build_parts(services, branded_doc, org_doc)
    voice = parts.tts.providers[0] if isinstance(parts.tts, FallbackTTS) else parts.tts
    assert isinstance(voice, ElevenLabsTTS)
    assert (voice.voice, voice.model) == ("clonedVoice42", "eleven_turbo_v2_5")
    for provider_part in (parts.stt, parts.llm, parts.tts):
        await provider_part.aclose()

    # A migrated agent validates like a new one: a PATCH that changes nothing else succeeds.
    for agent_id in (plain, voiced):
        response = await client.patch(f"{AGENTS}/{agent_id}", json={"name": "Renamed"}, headers=world.tenant.jwt)
        assert response.status == 200, await response.text()
