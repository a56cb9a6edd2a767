"""The agent request bodies: shapes and fixed ranges (turn-taking ranges come from config/turn_taking.yaml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voicex.catalog.config import BCP47
from voicex.platform.errors import hinted
from voicex.platform.fields import NonBlank

E164 = hinted(r"^\+[1-9]\d{6,14}$", "use E.164, like +14155550123")

# The turn-taking knobs an agent may set; the others in config/turn_taking.yaml tune the engine itself and
# stay out of the API so they can change without breaking clients.
AGENT_KNOBS = (
    "silenceTimeoutMs",
    "maxCallDurationSec",
    "interruptionSensitivity",
    "endpointingMs",
    "idleTimeoutMs",
    "vad",
    "turnDetection",
)

Temperature = Annotated[float, Field(ge=0, le=2)]
MaxTokens = Annotated[int, Field(ge=1, le=4096)]
Speed = Annotated[float, Field(ge=0.5, le=2.0)]
Language = Annotated[str, Field(pattern=BCP47, description="BCP 47 tag")]
PhoneNumbers = Annotated[list[Annotated[str, Field(pattern=E164)]], Field(max_length=50, description="E.164")]
SystemPrompt = Annotated[str, Field(min_length=1, max_length=20000)]
Name = Annotated[str, Field(min_length=1, max_length=120)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentPersona(_Body):
    systemPrompt: SystemPrompt
    greeting: str = Field("", max_length=1000, description="first words when openingMode is agent_first")
    personality: str = Field("", max_length=2000)
    language: Language = "en-US"
    guardrails: str = Field("", max_length=5000, description="what the agent must never do or say")


class AgentLlmConfig(_Body):
    temperature: Temperature = 0.7
    maxTokens: MaxTokens = 512


SynthesisModel = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=hinted(r"^[A-Za-z0-9._:-]+$", "use letters, digits and . _ : - only, like eleven_turbo_v2_5"),
        description="the vendor's synthesis model (e.g. eleven_turbo_v2_5, tts-1-hd); default: the provider's",
    ),
]


class AgentTtsConfig(_Body):
    """How the voice (``ttsModelId``) speaks; ``model`` overrides the provider's synthesis model."""

    speed: Speed = 1.0
    model: SynthesisModel | None = None
    language: Language | None = None


class AgentThresholds(_Body):
    """Turn-taking overrides; an omitted (or null) knob takes its default from config/turn_taking.yaml."""

    silenceTimeoutMs: int | None = Field(None, description="caller silence (ms) that ends the caller's turn")
    maxCallDurationSec: int | None = Field(None, description="also capped by the plan's maxCallDurationSec")
    interruptionSensitivity: str | None = Field(None, description="low | medium | high")
    endpointingMs: int | None = Field(
        None, description="the recognizer's endpointing (ms; Deepgram's `endpointing`); never ends a turn by itself"
    )
    idleTimeoutMs: int | None = Field(
        None, description="silence (ms) after the agent finishes before a reprompt; a second one ends the call"
    )
    vad: str | None = Field(None, description="adaptive | silero | webrtc")
    turnDetection: str | None = Field(
        None, description="silence | model: end the turn on silence alone, or sooner after a complete thought"
    )


class FallbackRef(_Body):
    providerId: str = Field(description="24-hex id of a provider of the same category (global or the org's own)")
    modelId: str | None = Field(None, min_length=1, description="defaults to the provider's first model")


class AgentFallbacks(_Body):
    """Providers tried in order when the main one of a category fails before producing anything."""

    llm: list[FallbackRef] = Field(default_factory=list, max_length=3)
    tts: list[FallbackRef] = Field(default_factory=list, max_length=3)
    stt: list[FallbackRef] = Field(default_factory=list, max_length=3)


class AgentIn(_Body):
    name: NonBlank[Name]
    persona: AgentPersona
    llmProviderId: str = Field(description="24-hex id of an LLM provider (global or the org's own)")
    llmModelId: str = Field(min_length=1)
    llmConfig: AgentLlmConfig = Field(default_factory=AgentLlmConfig)
    ttsProviderId: str
    ttsModelId: str = Field(min_length=1, description="a voice of the TTS provider (ElevenLabs voice id, Edge voice…)")
    ttsConfig: AgentTtsConfig = Field(default_factory=AgentTtsConfig)
    sttProviderId: str
    sttModelId: str | None = Field(None, min_length=1, description="defaults to the provider's first model")
    thresholds: AgentThresholds = Field(default_factory=AgentThresholds)
    openingMode: Literal["agent_first", "callee_first"] = "agent_first"
    phoneNumbers: PhoneNumbers = Field(default_factory=list)
    active: bool = True
    fallbacks: AgentFallbacks = Field(default_factory=AgentFallbacks)

    @field_validator("phoneNumbers")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class AgentPersonaPatch(_Body):
    systemPrompt: SystemPrompt | None = None
    greeting: str | None = Field(None, max_length=1000)
    personality: str | None = Field(None, max_length=2000)
    language: Language | None = None
    guardrails: str | None = Field(None, max_length=5000)


class AgentLlmConfigPatch(_Body):
    temperature: Temperature | None = None
    maxTokens: MaxTokens | None = None


class AgentTtsConfigPatch(_Body):
    speed: Speed | None = None
    model: SynthesisModel | None = None
    language: Language | None = None


class AgentPatch(_Body):
    """Any subset of an agent's fields; objects merge key by key, and null resets a field to its default."""

    name: Name | None = None
    persona: AgentPersonaPatch | None = None
    llmProviderId: str | None = None
    llmModelId: str | None = None
    llmConfig: AgentLlmConfigPatch | None = None
    ttsProviderId: str | None = None
    ttsModelId: str | None = None
    ttsConfig: AgentTtsConfigPatch | None = None
    sttProviderId: str | None = None
    sttModelId: str | None = None
    thresholds: AgentThresholds | None = None
    openingMode: Literal["agent_first", "callee_first"] | None = None
    phoneNumbers: PhoneNumbers | None = None
    active: bool | None = None
    fallbacks: AgentFallbacks | None = Field(None, description="replaces the stored fallbacks as a whole")
