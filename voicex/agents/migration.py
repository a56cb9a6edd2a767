"""Stored agents and providers move to the meanings of the API reference (schema version 2), at start-up.

Version 1 documents meant other things by the same fields (docs/api-reference.md, "Migration"):

- ``thresholds.endpointingMs`` ended the caller's turn and ``thresholds.silenceTimeoutMs`` timed the reprompt.
  Now ``silenceTimeoutMs`` ends the turn, ``idleTimeoutMs`` times the reprompt and ``endpointingMs`` is the
  recognizer's own endpointing, which version 1 fixed at 300 ms (the catalog default).
- An agent's ``ttsModelId`` on ElevenLabs or OpenAI named the vendor's synthesis model and ``ttsConfig.voice``
  the voice. Now ``ttsModelId`` is the voice and ``ttsConfig.model`` the synthesis model; the org's own
  providers of those vendors list voices as their models and keep the synthesis model in ``settings.ttsModel``.

Each agent keeps its behaviour: same turn end, same reprompt, same voice and synthesis model. The migration is
idempotent and safe with several processes starting at once: each document is rewritten by a compare-and-set
on its ``schemaVersion``, and what a provider needs is read back from the agents as they stand, so a crash half
way leaves nothing that the next start cannot finish. The conversions are pure functions; :func:`migrate`
does the I/O.
"""

from __future__ import annotations

import logging
from typing import Any

from bson import ObjectId

from voicex.catalog.config import Catalog
from voicex.store.agents import AgentDoc, agents_before_version, list_tts_users, migrate_agent_once
from voicex.store.db import Database
from voicex.store.providers import ProviderDoc, list_in_category, migrate_provider_once

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

# The voice a version-1 adapter used when neither the agent nor the provider named one.
_V1_DEFAULT_VOICE = {"elevenlabs": "JBFqnCBsd6RMkjVDRZzb", "openai": "alloy"}
_V1_VOICE_SETTING = {"elevenlabs": "voiceId", "openai": "voice"}
_SYNTHESIS_PREFIXES = {"elevenlabs": ("eleven_",), "openai": ("tts-", "gpt-")}


def is_synthesis_model(provider_key: str, model_id: str | None) -> bool:
    """Whether a version-1 TTS model id names a vendor's synthesis model rather than a voice."""
    return bool(model_id) and str(model_id).startswith(_SYNTHESIS_PREFIXES.get(provider_key, ("\0",)))


def migrate_thresholds(old: dict[str, Any], endpointing_default: int) -> dict[str, Any]:
    """Version-1 thresholds with the same behaviour under the version-2 names."""
    new = {key: value for key, value in old.items() if key not in ("endpointingMs", "silenceTimeoutMs")}
    if old.get("endpointingMs") is not None:
        new["silenceTimeoutMs"] = old["endpointingMs"]
    if old.get("silenceTimeoutMs") is not None:
        new["idleTimeoutMs"] = old["silenceTimeoutMs"]
    new["endpointingMs"] = endpointing_default
    return new


def provider_voice(provider: ProviderDoc) -> str:
    """The voice a version-1 adapter of this provider spoke with when the agent named none."""
    key = provider.get("providerKey", "")
    setting = (provider.get("settings") or {}).get(_V1_VOICE_SETTING.get(key, ""))
    return str(setting or _V1_DEFAULT_VOICE.get(key, ""))


def migrate_agent_tts(agent: AgentDoc, providers: dict[ObjectId, ProviderDoc]) -> tuple[AgentDoc, list[str]]:
    """``($set fields, warnings)`` moving an agent's voice into ``ttsModelId`` (main voice and fallbacks)."""
    fields: AgentDoc = {}
    warnings: list[str] = []
    tts_config = dict(agent.get("ttsConfig") or {})
    chosen_voice = tts_config.pop("voice", None)
    main_id = agent.get("ttsProviderId")
    main = providers.get(main_id) if main_id is not None else None
    main_key = main.get("providerKey", "") if main is not None else ""
    model_id = agent.get("ttsModelId")
    if main is not None and is_synthesis_model(main_key, model_id):
        tts_config["model"] = model_id
        voice = chosen_voice or provider_voice(main)
        if main.get("orgId") is None and voice not in {m.get("modelId") for m in main.get("models") or []}:
            warnings.append(f"voice {voice!r} is not offered by the global provider: using {provider_voice(main)!r}")
            voice = provider_voice(main)
        fields["ttsModelId"] = voice
    elif chosen_voice and main_key == "edge":
        fields["ttsModelId"] = chosen_voice  # Edge spoke ttsConfig.voice over the model when both were set
    elif chosen_voice:
        warnings.append(f"ttsConfig.voice {chosen_voice!r} dropped: the voice is ttsModelId ({model_id!r})")
    fields["ttsConfig"] = tts_config
    fallbacks = agent.get("fallbacks") or {}
    if fallbacks.get("tts"):
        chain = []
        for ref in fallbacks["tts"]:
            provider = providers.get(ref["providerId"]) if "providerId" in ref else None
            if provider is not None and is_synthesis_model(provider.get("providerKey", ""), ref.get("modelId")):
                ref = {**ref, "modelId": provider_voice(provider)}
            chain.append(ref)
        fields["fallbacks"] = {**fallbacks, "tts": chain}
    return fields, warnings


def migrate_agent(
    agent: AgentDoc, providers: dict[ObjectId, ProviderDoc], endpointing_default: int
) -> tuple[AgentDoc, list[str]]:
    """The ``$set`` that brings one version-1 agent to version 2, and what could not be kept exactly."""
    fields, warnings = migrate_agent_tts(agent, providers)
    fields["thresholds"] = migrate_thresholds(agent.get("thresholds") or {}, endpointing_default)
    fields["schemaVersion"] = SCHEMA_VERSION
    return fields, warnings


def migrate_provider(provider: ProviderDoc, voices_in_use: set[str]) -> ProviderDoc:
    """The fields to set on an org's own version-1 ElevenLabs or OpenAI TTS provider.

    Its synthesis models leave the model list for ``settings.ttsModel`` (the first one); the voices its agents
    speak with (and the voice it spoke by default) become the models, so every agent stays valid.
    """
    key = provider.get("providerKey", "")
    models = provider.get("models") or []
    synthesis = [m["modelId"] for m in models if is_synthesis_model(key, m.get("modelId"))]
    voices = [m for m in models if not is_synthesis_model(key, m.get("modelId"))]
    known = {m["modelId"] for m in voices}
    for voice in [provider_voice(provider), *sorted(voices_in_use)]:
        if voice and voice not in known:
            voices.append({"modelId": voice, "label": voice})
            known.add(voice)
    settings = {k: v for k, v in (provider.get("settings") or {}).items() if k != _V1_VOICE_SETTING.get(key)}
    if synthesis and not settings.get("ttsModel"):
        settings["ttsModel"] = synthesis[0]
    return {"models": voices, "settings": settings, "schemaVersion": SCHEMA_VERSION}


async def migrate(db: Database, catalog: Catalog) -> int:
    """Bring every version-1 agent and provider to version 2; returns how many agents changed."""
    endpointing_default = int(catalog.turn_taking.knobs["endpointingMs"].default)  # the catalog checks it exists
    providers = {p["_id"]: p for p in await list_in_category(db, "tts")}
    changed = 0
    async for agent in agents_before_version(db, SCHEMA_VERSION):
        fields, warnings = migrate_agent(agent, providers, endpointing_default)
        if await migrate_agent_once(db, agent["_id"], SCHEMA_VERSION, fields):
            changed += 1
        for warning in warnings:
            log.warning("agent migration: %s", warning, extra={"agentId": str(agent["_id"])})
    for provider in providers.values():
        if provider.get("orgId") is None or provider.get("schemaVersion") == SCHEMA_VERSION:
            continue
        if provider.get("providerKey") not in _V1_DEFAULT_VOICE:
            await migrate_provider_once(db, provider["_id"], SCHEMA_VERSION, {"schemaVersion": SCHEMA_VERSION})
            continue
        voices = await _voices_in_use(db, provider)
        await migrate_provider_once(db, provider["_id"], SCHEMA_VERSION, migrate_provider(provider, voices))
    if changed:
        log.info("migrated %d agents to the API reference's thresholds and voices", changed)
    return changed


async def _voices_in_use(db: Database, provider: ProviderDoc) -> set[str]:
    """The voices agents ask of this provider, as main voice or in their TTS fallbacks."""
    provider_id, key = provider["_id"], provider.get("providerKey", "")
    voices: set[str] = set()
    for agent in await list_tts_users(db, provider_id):
        if agent.get("ttsProviderId") == provider_id and agent.get("ttsModelId"):
            voices.add(str(agent["ttsModelId"]))
        for ref in (agent.get("fallbacks") or {}).get("tts") or []:
            if ref.get("providerId") == provider_id and ref.get("modelId"):
                voices.add(str(ref["modelId"]))
    return {voice for voice in voices if not is_synthesis_model(key, voice)}
