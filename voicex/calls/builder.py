"""Turn an agent document into a running conversation: providers from the registry, settings, persona.

The only place where stored configuration (agent, provider documents, plan, turn-taking table) meets the
engine's types; the engine itself never sees MongoDB documents.

Every TTS chain ends with an *emergency voice* (the embedded eSpeak NG, when installed): if every voice the
agent configured fails, the caller still hears the answer, or at least an apology, instead of silence.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from pipelines.context import Persona
from pipelines.fallback import FallbackLLM, FallbackSTT, FallbackTTS
from pipelines.session import SessionConfig
from pipelines.turn_settings import TurnSettings
from pipelines.vad import Vad, make_vad
from providers.base import LLMOptions, LLMProvider, ProviderError, STTProvider, TTSOptions, TTSProvider
from providers.egress import EgressPolicy
from providers.registry import build
from voicex.agents.schemas import AgentIn, AgentLlmConfig, AgentPersona, AgentTtsConfig
from voicex.calls.status import plan_of
from voicex.catalog.global_providers import global_credentials
from voicex.platform.services import Services
from voicex.platform.settings import Settings
from voicex.store.agents import AgentDoc
from voicex.store.organizations import Organization
from voicex.store.providers import ProviderDoc, visible_providers_by_id


@dataclass
class CallParts:
    config: SessionConfig
    stt: STTProvider
    llm: LLMProvider
    tts: TTSProvider
    vad: Vad


EMERGENCY_VOICE = ("local", "espeak-ng")


def emergency_voice() -> TTSProvider | None:
    """The last TTS of every chain, or None when espeak-ng is not installed."""
    key, model = EMERGENCY_VOICE
    try:
        voice = build(key, "tts", model, {}, {})
    except ProviderError:
        return None
    return voice if isinstance(voice, TTSProvider) else None


def turn_settings(services: Services, agent: AgentDoc, org: Organization) -> TurnSettings:
    plan = plan_of(org, services.catalog)
    table = services.catalog.turn_taking.model_dump()  # config/turn_taking.yaml: the one source of every default
    return TurnSettings.from_table(table, agent.get("thresholds") or {}, plan.limits.maxCallDurationSec)


def session_config(services: Services, agent: AgentDoc, org: Organization) -> SessionConfig:
    """The engine's config from a stored agent. Its defaults are the agent schema's (voicex/agents/schemas.py),
    the one place they are written; a stored agent was validated against it when it was written."""
    persona = AgentPersona.model_validate(agent.get("persona") or {})
    llm_config = AgentLlmConfig.model_validate(agent.get("llmConfig") or {})
    tts_config = AgentTtsConfig.model_validate(agent.get("ttsConfig") or {})
    return SessionConfig(
        persona=Persona(
            system_prompt=persona.systemPrompt,
            greeting=persona.greeting,
            personality=persona.personality,
            language=persona.language,
            guardrails=persona.guardrails,
        ),
        opening_mode=agent.get("openingMode") or AgentIn.model_fields["openingMode"].default,
        turn=turn_settings(services, agent, org),
        llm_options=LLMOptions(temperature=llm_config.temperature, max_tokens=llm_config.maxTokens),
        # The voice's language: ttsConfig.language when the agent sets one (a voice for another language than
        # the persona's), else the persona's.
        tts_options=TTSOptions(speed=tts_config.speed, language=tts_config.language or persona.language),
    )


@functools.cache
def _policy_for(allow: str) -> EgressPolicy:
    return EgressPolicy.from_setting(allow)


def egress_policy(settings: Settings) -> EgressPolicy:
    """The process's outbound policy for orgs' own providers (``VOICEX_EGRESS_ALLOW``), parsed once."""
    return _policy_for(settings.egress_allow)


def provider_egress(services: Services, provider: ProviderDoc) -> EgressPolicy | None:
    """The outbound policy for an org's own provider (it chose where to connect); None for a global one, which the
    operator configured and is trusted."""
    if provider.get("orgId") is None:
        return None
    return egress_policy(services.settings)


def provider_credentials(services: Services, provider: ProviderDoc) -> dict[str, Any]:
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
    return services.box.decrypt(token) if token else {}


async def build_parts(services: Services, agent: AgentDoc, org: Organization) -> CallParts:
    """Providers for the agent's three slots, each a fallback chain when the agent lists fallbacks.

    A provider that cannot even be built (missing key, extra not installed) is skipped in favour of its
    fallbacks; ProviderError says which slot has none left.
    """
    fallbacks = agent.get("fallbacks") or {}
    slots: Mapping[str, Any] = agent  # its slots' fields, read by name
    chains: dict[str, list[tuple[Any, str]]] = {  # an id as stored: checked below
        slot: [(slots.get(f"{slot}ProviderId"), slots.get(f"{slot}ModelId") or "")]
        + [(ref["providerId"], ref.get("modelId") or "") for ref in fallbacks.get(slot, [])]
        for slot in ("stt", "llm", "tts")
    }
    ids = [provider_id for chain in chains.values() for provider_id, _ in chain if isinstance(provider_id, ObjectId)]
    found = await visible_providers_by_id(services.db, org["_id"], ids)
    synthesis_model = (agent.get("ttsConfig") or {}).get("model")
    built: dict[str, list[Any]] = {}
    for slot, chain in chains.items():
        built[slot], problems = [], []
        for index, (provider_id, model) in enumerate(chain):
            provider = found.get(provider_id) if isinstance(provider_id, ObjectId) else None
            if provider is None or not provider.get("active", True):
                problems.append(f"{slot.upper()} provider missing or inactive")
                continue
            settings = provider.get("settings") or {}
            if slot == "tts" and index == 0 and synthesis_model:  # the agent's ttsConfig.model: its main voice only
                settings = {**settings, "ttsModel": synthesis_model}
            try:
                credentials = provider_credentials(services, provider)
                egress = provider_egress(services, provider)
                built[slot].append(build(provider["providerKey"], slot, model, credentials, settings, egress))
            except ProviderError as exc:
                problems.append(str(exc))
        if not built[slot]:
            raise ProviderError(slot, "; ".join(problems) or "no provider", retryable=False)
    voice = emergency_voice()
    if voice is not None:
        built["tts"].append(voice)
    config = session_config(services, agent, org)
    vad = await asyncio.to_thread(make_vad, config.turn.vad, config.turn.vad_aggressiveness)  # Silero loads a model
    return CallParts(
        config=config,
        stt=built["stt"][0] if len(built["stt"]) == 1 else FallbackSTT(built["stt"]),
        llm=built["llm"][0] if len(built["llm"]) == 1 else FallbackLLM(built["llm"]),
        tts=built["tts"][0] if len(built["tts"]) == 1 else FallbackTTS(built["tts"]),
        vad=vad,
    )
