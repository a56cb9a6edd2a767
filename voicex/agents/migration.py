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
from voicex.store.db import Database, Document

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
NOT_MIGRATED = {"schemaVersion": {"$ne": SCHEMA_VERSION}}

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


def provider_voice(provider: Document) -> str:
    """The voice a version-1 adapter of this provider spoke with when the agent named none."""
    key = provider.get("providerKey", "")
    setting = (provider.get("settings") or {}).get(_V1_VOICE_SETTING.get(key, ""))
    return str(setting or _V1_DEFAULT_VOICE.get(key, ""))


def migrate_agent_tts(agent: Document, providers: dict[ObjectId, Document]) -> tuple[dict[str, Any], list[str]]:
    """``($set fields, warnings)`` moving an agent's voice into ``ttsModelId`` (main voice and fallbacks)."""
    fields: dict[str, Any] = {}
    warnings: list[str] = []
    tts_config = dict(agent.get("ttsConfig") or {})
    chosen_voice = tts_config.pop("voice", None)
    main = providers.get(agent.get("ttsProviderId"))  # type: ignore[arg-type]
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
            provider = providers.get(ref.get("providerId"))
            if provider is not None and is_synthesis_model(provider.get("providerKey", ""), ref.get("modelId")):
                ref = {**ref, "modelId": provider_voice(provider)}
            chain.append(ref)
        fields["fallbacks"] = {**fallbacks, "tts": chain}
    return fields, warnings


def migrate_agent(
    agent: Document, providers: dict[ObjectId, Document], endpointing_default: int
) -> tuple[dict[str, Any], list[str]]:
    """The ``$set`` that brings one version-1 agent to version 2, and what could not be kept exactly."""
    fields, warnings = migrate_agent_tts(agent, providers)
    fields["thresholds"] = migrate_thresholds(agent.get("thresholds") or {}, endpointing_default)
    fields["schemaVersion"] = SCHEMA_VERSION
    return fields, warnings


def migrate_provider(provider: Document, voices_in_use: set[str]) -> dict[str, Any]:
    """The ``$set``/``$unset`` update for an org's own version-1 ElevenLabs or OpenAI TTS provider.

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
    return {"$set": {"models": voices, "settings": settings, "schemaVersion": SCHEMA_VERSION}}


async def migrate(db: Database, catalog: Catalog) -> int:
    """Bring every version-1 agent and provider to version 2; returns how many agents changed."""
    knob = catalog.turn_taking.knobs.get("endpointingMs")
    endpointing_default = int(knob.default) if knob is not None else 300  # type: ignore[arg-type]
    providers = {p["_id"]: p async for p in db.providers.find({"category": "tts"})}
    changed = 0
    async for agent in db.agents.find(NOT_MIGRATED):
        fields, warnings = migrate_agent(agent, providers, endpointing_default)
        result = await db.agents.update_one({"_id": agent["_id"], **NOT_MIGRATED}, {"$set": fields})
        changed += result.modified_count
        for warning in warnings:
            log.warning("agent migration: %s", warning, extra={"agentId": str(agent["_id"])})
    for provider in providers.values():
        if provider.get("orgId") is None or provider.get("schemaVersion") == SCHEMA_VERSION:
            continue
        if provider.get("providerKey") not in _V1_DEFAULT_VOICE:
            await db.providers.update_one(
                {"_id": provider["_id"], **NOT_MIGRATED}, {"$set": {"schemaVersion": SCHEMA_VERSION}}
            )
            continue
        voices = await _voices_in_use(db, provider)
        await db.providers.update_one({"_id": provider["_id"], **NOT_MIGRATED}, migrate_provider(provider, voices))
    if changed:
        log.info("migrated %d agents to the API reference's thresholds and voices", changed)
    return changed


async def _voices_in_use(db: Database, provider: Document) -> set[str]:
    """The voices agents ask of this provider, as main voice or in their TTS fallbacks."""
    provider_id, key = provider["_id"], provider.get("providerKey", "")
    voices: set[str] = set()
    query = {"$or": [{"ttsProviderId": provider_id}, {"fallbacks.tts.providerId": provider_id}]}
    async for agent in db.agents.find(query, {"ttsProviderId": 1, "ttsModelId": 1, "fallbacks.tts": 1}):
        if agent.get("ttsProviderId") == provider_id and agent.get("ttsModelId"):
            voices.add(str(agent["ttsModelId"]))
        for ref in (agent.get("fallbacks") or {}).get("tts") or []:
            if ref.get("providerId") == provider_id and ref.get("modelId"):
                voices.add(str(ref["modelId"]))
    return {voice for voice in voices if not is_synthesis_model(key, voice)}
