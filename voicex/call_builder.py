"""Turn an agent document into a running conversation: providers from the registry, settings, persona.

The only place where stored configuration (agent, provider documents, plan, turn-taking table) meets the
engine's types; the engine itself never sees MongoDB documents.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from pipelines.context import Persona
from pipelines.session import SessionConfig
from pipelines.turn_settings import TurnSettings
from pipelines.vad import Vad, make_vad
from providers.base import LLMOptions, LLMProvider, ProviderError, STTProvider, TTSOptions, TTSProvider
from providers.registry import build
from voicex.agent_status import plan_of
from voicex.context import Services
from voicex.crypto import SecretBox
from voicex.db import Document
from voicex.global_providers import global_credentials


@dataclass
class CallParts:
    config: SessionConfig
    stt: STTProvider
    llm: LLMProvider
    tts: TTSProvider
    vad: Vad


def turn_settings(services: Services, agent: Document, org: Document) -> TurnSettings:
    table = services.catalog.turn_taking
    rules = {name: rule.model_dump() for name, rule in table.sensitivity.items()}
    plan = plan_of(org, services.catalog)
    return TurnSettings.resolve(
        table.defaults(), rules, table.backchannels, agent.get("thresholds") or {}, plan.limits.maxCallDurationSec
    )


def session_config(services: Services, agent: Document, org: Document) -> SessionConfig:
    persona = agent.get("persona") or {}
    llm_config = agent.get("llmConfig") or {}
    tts_config = agent.get("ttsConfig") or {}
    language = persona.get("language") or "en"
    return SessionConfig(
        persona=Persona(
            system_prompt=persona.get("systemPrompt") or Persona.system_prompt,
            greeting=persona.get("greeting") or "",
            personality=persona.get("personality") or "",
            language=language,
            guardrails=persona.get("guardrails") or "",
        ),
        opening_mode=agent.get("openingMode") or "agent_first",
        turn=turn_settings(services, agent, org),
        llm_options=LLMOptions(
            temperature=float(llm_config.get("temperature", 0.7)), max_tokens=int(llm_config.get("maxTokens", 256))
        ),
        tts_options=TTSOptions(
            voice=tts_config.get("voice"), speed=float(tts_config.get("speed", 1.0)), language=language
        ),
    )


def _credentials(services: Services, provider: Document) -> dict[str, Any]:
    if provider.get("orgId") is None:
        provider_type = services.catalog.provider_types.get(provider["providerKey"])
        if provider_type is None:
            raise ProviderError(provider["providerKey"], "provider type no longer exists", retryable=False)
        credentials = global_credentials(provider_type, services.settings)
        if credentials is None:
            raise ProviderError(
                provider["providerKey"], "no API key configured for this global provider", retryable=False, status=401
            )
        return credentials
    token = provider.get("credentials")
    return SecretBox(services.settings.encryption_key or "").decrypt(token) if token else {}


async def build_parts(services: Services, agent: Document, org: Document) -> CallParts:
    """Providers for the agent's three slots (ProviderError says which failed) and its settings."""
    ids = [agent.get(f"{slot}ProviderId") for slot in ("stt", "llm", "tts")]
    found = {
        doc["_id"]: doc
        async for doc in services.db.providers.find({"_id": {"$in": ids}, "orgId": {"$in": [None, org["_id"]]}})
    }
    built: dict[str, Any] = {}
    for slot, provider_id in zip(("stt", "llm", "tts"), ids, strict=True):
        provider = found.get(provider_id) if isinstance(provider_id, ObjectId) else None
        if provider is None or not provider.get("active", True):
            raise ProviderError(slot, f"the agent's {slot.upper()} provider is missing or inactive", retryable=False)
        built[slot] = build(
            provider["providerKey"],
            slot,
            agent.get(f"{slot}ModelId") or "",
            _credentials(services, provider),
            provider.get("settings") or {},
        )
    config = session_config(services, agent, org)
    vad = await asyncio.to_thread(make_vad, config.turn.vad, config.turn.vad_aggressiveness)  # Silero loads a model
    return CallParts(config=config, stt=built["stt"], llm=built["llm"], tts=built["tts"], vad=vad)
