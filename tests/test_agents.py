"""Agents API over the real server and database: validation, plan limits, status, isolation, OpenAPI."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId
from openapi_spec_validator import validate

from tests.agent_world import AGENTS, add_provider, body, create, fetch, make_world
from voicex.agents.schemas import AGENT_KNOBS
from voicex.calls.builder import session_config
from voicex.store import quotas

# --- create -----------------------------------------------------------------------------------------


async def test_create_fills_defaults_from_turn_taking_yaml(client, services) -> None:
    world = await make_world(client, services)
    agent = await create(client, world, phoneNumbers=["+15550001111", "+15550001111"])
    knobs = services.catalog.turn_taking.knobs
    assert agent["thresholds"] == {name: knobs[name].default for name in AGENT_KNOBS}
    # The API reference's meanings: 700 ms of caller silence ends a turn, the recognizer finalizes after 300 ms.
    assert agent["thresholds"]["silenceTimeoutMs"] == 700 and agent["thresholds"]["endpointingMs"] == 300
    assert agent["thresholds"]["idleTimeoutMs"] == 8000 and agent["thresholds"]["vad"] == "adaptive"
    assert agent["sttModelId"] == "nova-2-phonecall"  # the provider's first model
    assert agent["openingMode"] == "agent_first" and agent["active"] is True
    assert agent["phoneNumbers"] == ["+15550001111"]
    assert agent["persona"]["systemPrompt"].startswith("You answer") and agent["persona"]["language"] == "en-US"
    assert agent["llmConfig"]["temperature"] == 0.7 and agent["ttsConfig"]["speed"] == 1.0
    assert (agent["status"], agent["pauseReason"]) == ("active", None)
    assert await fetch(client, world, agent["_id"]) == agent
    listed = await (await client.get(AGENTS, headers=world.tenant.jwt)).json()
    assert listed == [agent]  # a bare array, as in the API reference


async def test_default_call_duration_is_capped_by_a_smaller_plan(client, services) -> None:
    world = await make_world(client, services, plan="free")
    agent = await create(client, world)
    assert agent["thresholds"]["maxCallDurationSec"] == services.catalog.plans["free"].limits.maxCallDurationSec


async def test_own_provider_models_are_not_plan_gated(client, services) -> None:
    world = await make_world(client, services, plan="free")
    agent = await create(client, world, llmProviderId=world.own_llm, llmModelId="gpt-4.1")
    assert agent["llmModelId"] == "gpt-4.1" and agent["status"] == "active"


INVALID = [
    # (overrides built from the world, status, expected error message)
    (lambda w: {"llmProviderId": "not-an-id"}, 400, "llmProviderId must be a 24-character hex id"),
    (lambda w: {"sttProviderId": str(ObjectId())}, 400, "sttProviderId: provider not found"),
    (lambda w: {"ttsProviderId": w.foreign_tts}, 400, "ttsProviderId: provider not found"),
    (lambda w: {"llmProviderId": w.stt}, 400, "llmProviderId: provider 'Test Deepgram' is a stt provider, not llm"),
    (lambda w: {"llmModelId": "gpt-9"}, 400, "llmModelId: provider 'Test OpenAI' has no model 'gpt-9'"),
    (lambda w: {"sttModelId": "nova-9"}, 400, "sttModelId: provider 'Test Deepgram' has no model 'nova-9'"),
    (
        lambda w: {"llmModelId": "gpt-4.1"},
        403,
        "llmModelId: model openai/gpt-4.1 needs the Pro plan (this organization is on Starter)",
    ),
    (
        lambda w: {"thresholds": {"silenceTimeoutMs": 50}},
        400,
        "thresholds.silenceTimeoutMs: must be between 100 and 5000",
    ),
    (
        lambda w: {
            "thresholds": {"endpointingMs": 5},
        },
        400,
        "thresholds.endpointingMs: must be between 10 and 5000",
    ),
    (
        lambda w: {"thresholds": {"idleTimeoutMs": 1000}},
        400,
        "thresholds.idleTimeoutMs: must be between 2000 and 60000",
    ),
    (
        lambda w: {"ttsConfig": {"model": "eleven_flash_v2_5"}},
        400,
        "ttsConfig.model: provider 'Test Edge' has no synthesis model to choose",
    ),
    (lambda w: {"ttsConfig": {"voice": "en-US-GuyNeural"}}, 400, "ttsConfig.voice: Extra inputs are not permitted"),
    (lambda w: {"thresholds": {"vad": "energy"}}, 400, "thresholds.vad: must be one of adaptive, silero, webrtc"),
    (
        lambda w: {"thresholds": {"maxCallDurationSec": 1000}},
        403,
        "thresholds.maxCallDurationSec: 1000 s exceeds the Starter plan's limit of 900 s",
    ),
    (lambda w: {"thresholds": {"vadAggressiveness": 3}}, 400, "thresholds.vadAggressiveness: Extra inputs"),
    (lambda w: {"llmConfig": {"temperature": 2.5}}, 400, "llmConfig.temperature: Input should be less than or"),
    (lambda w: {"ttsConfig": {"pitch": 2}}, 400, "ttsConfig.pitch: Extra inputs are not permitted"),
    (lambda w: {"phoneNumbers": ["5550001111"]}, 400, "phoneNumbers.0: use E.164, like +14155550123"),
    (
        lambda w: {"persona": {"systemPrompt": "Hi.", "language": "english"}},
        400,
        "persona.language: use a BCP 47 language tag, like en-US",
    ),
    (lambda w: {"openingMode": "whenever"}, 400, "openingMode: Input should be 'agent_first' or 'callee_first'"),
    (lambda w: {"name": "   "}, 400, "name: must not be blank"),
]


@pytest.mark.parametrize(("overrides", "status", "message"), INVALID)
async def test_create_refuses_invalid_agent(client, services, overrides, status: int, message: str) -> None:
    world = await make_world(client, services)
    response = await client.post(AGENTS, json=body(world, **overrides(world)), headers=world.tenant.jwt)
    assert response.status == status
    assert (await response.json())["error"].startswith(message)
    assert await services.db.agents.count_documents({}) == 0


async def test_plan_gate_names_the_cheapest_plan(client, services) -> None:
    world = await make_world(client, services, plan="free")
    response = await client.post(AGENTS, json=body(world, llmModelId="gpt-4.1-mini"), headers=world.tenant.jwt)
    assert response.status == 403
    error = await response.json()
    assert "needs the Starter plan" in error["error"] and error["requiredPlan"] == "starter"


async def test_max_agents_reached_then_freed_by_delete(client, services) -> None:
    world = await make_world(client, services, plan="free")  # maxAgents: 1
    first = await create(client, world)
    response = await client.post(AGENTS, json=body(world, name="Second"), headers=world.tenant.jwt)
    assert response.status == 403
    assert (await response.json())["error"] == "the Free plan allows at most 1 agent"
    deleted = await client.delete(f"{AGENTS}/{first['_id']}", headers=world.tenant.jwt)
    assert deleted.status == 200 and await deleted.json() == {"deleted": True}
    await create(client, world, name="Second")


async def test_simultaneous_creates_never_exceed_max_agents(client, services) -> None:
    world = await make_world(client, services)  # starter: maxAgents 5
    responses = await asyncio.gather(
        *(client.post(AGENTS, json=body(world, name=f"Agent {n}"), headers=world.tenant.jwt) for n in range(20))
    )
    assert sorted(response.status for response in responses) == [201] * 5 + [403] * 15
    assert await services.db.agents.count_documents({"orgId": ObjectId(world.tenant.org_id)}) == 5


async def test_agent_quota_units_are_claimed_atomically_and_count_existing_agents(services) -> None:
    org_id = (await services.db.organizations.insert_one({"name": "Quota", "status": "active"})).inserted_id
    await services.db.agents.insert_many([{"orgId": org_id, "name": "old 1"}, {"orgId": org_id, "name": "old 2"}])
    claims = await asyncio.gather(*(quotas.claim(services.db, org_id, quotas.AGENTS, 5) for _ in range(20)))
    assert claims.count(True) == 3  # 2 agents existed before the counter did
    await quotas.release(services.db, org_id, quotas.AGENTS)
    assert await quotas.claim(services.db, org_id, quotas.AGENTS, 5) is True
    assert await quotas.claim(services.db, org_id, quotas.AGENTS, 5) is False


async def test_phone_number_belongs_to_one_agent_per_org(client, services) -> None:
    world = await make_world(client, services)
    first = await create(client, world, phoneNumbers=["+15550001111"])
    response = await client.post(
        AGENTS, json=body(world, name="B", phoneNumbers=["+15550002222", "+15550001111"]), headers=world.tenant.jwt
    )
    assert response.status == 409
    error = await response.json()
    assert error["error"] == "phoneNumbers: +15550001111 is already used by agent 'Front desk'"
    assert error["agentId"] == first["_id"]
    # The agent itself keeps its number on PATCH; another organization may use the same number.
    patched = await client.patch(f"{AGENTS}/{first['_id']}", json={"name": "Desk"}, headers=world.tenant.jwt)
    assert patched.status == 200
    other = await make_world(client, services, same_globals_as=world)
    await create(client, other, phoneNumbers=["+15550001111"])


# --- patch ------------------------------------------------------------------------------------------


async def test_patch_merges_nested_objects_and_revalidates(client, services) -> None:
    world = await make_world(client, services)
    agent = await create(client, world, thresholds={"silenceTimeoutMs": 800})
    url = f"{AGENTS}/{agent['_id']}"
    response = await client.patch(
        url, json={"persona": {"greeting": "Hi there"}, "thresholds": {"vad": "silero"}}, headers=world.tenant.jwt
    )
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert patched["persona"]["greeting"] == "Hi there"
    assert patched["persona"]["systemPrompt"] == agent["persona"]["systemPrompt"]
    assert patched["thresholds"]["vad"] == "silero" and patched["thresholds"]["silenceTimeoutMs"] == 800
    assert patched["updatedAt"] > agent["updatedAt"] and patched["createdAt"] == agent["createdAt"]

    refused = await client.patch(url, json={"llmModelId": "gpt-4.1"}, headers=world.tenant.jwt)
    assert refused.status == 403 and "needs the Pro plan" in (await refused.json())["error"]
    too_slow = await client.patch(url, json={"thresholds": {"silenceTimeoutMs": 6000}}, headers=world.tenant.jwt)
    assert too_slow.status == 400
    assert (await too_slow.json())["error"] == "thresholds.silenceTimeoutMs: must be between 100 and 5000"
    unchanged = await fetch(client, world, agent["_id"])
    assert unchanged["llmModelId"] == "gpt-4o-mini" and unchanged["thresholds"]["silenceTimeoutMs"] == 800

    reset = await client.patch(url, json={"thresholds": {"silenceTimeoutMs": None}}, headers=world.tenant.jwt)
    assert (await reset.json())["thresholds"]["silenceTimeoutMs"] == services.catalog.turn_taking.knobs[
        "silenceTimeoutMs"
    ].default
    blank = await client.patch(url, json={"persona": {"systemPrompt": None}}, headers=world.tenant.jwt)
    assert blank.status == 400 and (await blank.json())["error"] == "persona.systemPrompt: Field required"
    empty = await client.patch(url, json={}, headers=world.tenant.jwt)
    assert empty.status == 400


async def test_patch_to_own_provider_and_new_stt_provider_defaults_its_model(client, services) -> None:
    world = await make_world(client, services)
    agent = await create(client, world, sttModelId="nova-2")
    other_stt = await add_provider(services, None, "stt", "local", "Test Local", ["whisper-tiny.en"])
    response = await client.patch(
        f"{AGENTS}/{agent['_id']}",
        json={"sttProviderId": other_stt, "llmProviderId": world.own_llm, "llmModelId": "gpt-4.1"},
        headers=world.tenant.jwt,
    )
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert (patched["sttProviderId"], patched["sttModelId"]) == (other_stt, "whisper-tiny.en")
    assert patched["llmProviderId"] == world.own_llm


# --- isolation and documentation --------------------------------------------------------------------


async def test_another_org_never_sees_or_touches_the_agent(client, services) -> None:
    world = await make_world(client, services)
    agent = await create(client, world)
    intruder = await make_world(client, services, same_globals_as=world)
    url = f"{AGENTS}/{agent['_id']}"
    for headers in (intruder.tenant.jwt, intruder.tenant.key):
        assert (await client.get(url, headers=headers)).status == 404
        assert (await client.patch(url, json={"name": "Mine now"}, headers=headers)).status == 404
        assert (await client.delete(url, headers=headers)).status == 404
        assert await (await client.get(AGENTS, headers=headers)).json() == []
    assert (await client.get(f"{AGENTS}/not-an-id", headers=world.tenant.jwt)).status == 404
    assert (await fetch(client, world, agent["_id"]))["name"] == "Front desk"
    assert (await client.get(AGENTS)).status == 401


async def test_openapi_documents_the_agent_endpoints(client) -> None:
    response = await client.get("/api/openapi.json")
    spec = await response.json()
    validate(spec)
    assert set(spec["paths"][AGENTS]) >= {"get", "post"}
    assert set(spec["paths"][f"{AGENTS}/{{id}}"]) >= {"get", "patch", "delete"}
    assert "403" in spec["paths"][AGENTS]["post"]["responses"]


async def test_fallback_providers_are_validated_like_the_main_ones(client, services) -> None:
    world = await make_world(client, services)
    agent = await create(client, world, fallbacks={"llm": [{"providerId": world.own_llm, "modelId": "gpt-4.1"}]})
    assert agent["fallbacks"]["llm"] == [{"providerId": world.own_llm, "modelId": "gpt-4.1"}]
    fetched = await fetch(client, world, agent["_id"])
    assert fetched["fallbacks"] == agent["fallbacks"]
    patched = await client.patch(f"{AGENTS}/{agent['_id']}", json={"name": "Renamed"}, headers=world.tenant.jwt)
    assert patched.status == 200 and (await patched.json())["fallbacks"] == agent["fallbacks"]
    wrong_category = await client.post(
        AGENTS, json=body(world, fallbacks={"llm": [{"providerId": world.tts}]}), headers=world.tenant.jwt
    )
    assert wrong_category.status == 400
    assert (await wrong_category.json())["error"].startswith("fallbacks.llm[0].providerId:")
    foreign = await client.post(
        AGENTS, json=body(world, fallbacks={"tts": [{"providerId": world.foreign_tts}]}), headers=world.tenant.jwt
    )
    assert await foreign.json() == {"error": "fallbacks.tts[0].providerId: provider not found"}
    gated = await client.post(
        AGENTS,
        json=body(world, fallbacks={"llm": [{"providerId": world.llm, "modelId": "gpt-4.1"}]}),
        headers=world.tenant.jwt,
    )
    assert gated.status == 403 and (await gated.json())["error"].startswith("fallbacks.llm[0].modelId:")


async def test_the_tts_model_is_a_voice_and_the_synthesis_model_a_setting(client, services) -> None:
    world = await make_world(client, services, plan="pro")
    providers = await (await client.get("/api/dashboard/providers?category=tts", headers=world.tenant.jwt)).json()
    eleven = next(p["_id"] for p in providers if p["providerKey"] == "elevenlabs" and p["source"] == "global")
    voice = {"ttsProviderId": eleven, "ttsModelId": "21m00Tcm4TlvDq8ikWAM"}
    agent = await create(client, world, **voice, ttsConfig={"speed": 1.1, "model": "eleven_turbo_v2_5"})
    assert agent["ttsModelId"] == "21m00Tcm4TlvDq8ikWAM" and agent["status"] == "active"
    assert agent["ttsConfig"] == {"speed": 1.1, "model": "eleven_turbo_v2_5"}
    refusals = [
        ({**voice, "ttsModelId": "eleven_flash_v2_5"}, "ttsModelId: provider 'ElevenLabs TTS' has no model"),
        ({**voice, "ttsConfig": {"model": "eleven_v9"}}, "ttsConfig.model: must be one of eleven_flash_v2_5,"),
        ({**voice, "ttsConfig": {"model": "../x"}}, "ttsConfig.model: use letters, digits and . _ : - only"),
    ]
    for overrides, message in refusals:
        response = await client.post(AGENTS, json=body(world, name="Other", **overrides), headers=world.tenant.jwt)
        assert response.status == 400 and (await response.json())["error"].startswith(message), message


async def test_the_engine_gets_the_agent_schema_defaults_and_the_voice_language(client, services) -> None:
    """One source per default: what an agent stores is what the call runs with (maxTokens, language)."""
    world = await make_world(client, services)
    agent = await create(client, world, ttsConfig={"language": "es-ES"})
    stored = await services.db.agents.find_one({"_id": ObjectId(agent["_id"])})
    org = await services.db.organizations.find_one({"_id": ObjectId(world.tenant.org_id)})
    config = session_config(services, stored, org)
    assert config.llm_options.max_tokens == agent["llmConfig"]["maxTokens"] == 512
    assert config.persona.language == "en-US" and config.tts_options.language == "es-ES"  # the voice's own language
    plain = session_config(services, {**stored, "ttsConfig": {"speed": 1.0}, "llmConfig": {}}, org)
    assert plain.tts_options.language == "en-US" and plain.llm_options.max_tokens == 512
