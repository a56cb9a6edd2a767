"""What a call session is given (SessionConfig) and what it reports when the call ends (CallResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.context import Persona
from pipelines.turn_settings import TurnSettings
from providers.base import LLMOptions, TTSOptions


@dataclass(frozen=True, kw_only=True)
class SessionConfig:
    turn: TurnSettings  # built from config/turn_taking.yaml (TurnSettings.from_table): no engine-side default
    persona: Persona = field(default_factory=Persona)
    opening_mode: str = "agent_first"  # or "callee_first"
    llm_options: LLMOptions = field(default_factory=LLMOptions)
    tts_options: TTSOptions = field(default_factory=TTSOptions)
    reprompt: str = "Are you still there?"
    goodbye_silence: str = "I haven't heard from you, so I'll hang up now. Goodbye!"
    goodbye_max_duration: str = "We've reached the time limit for this call. Thank you for calling, goodbye!"
    goodbye_shutdown: str = "I'm sorry, I have to end our call now. Please call back in a moment. Goodbye!"
    stt_final_wait_ms: int = 1200  # longest wait for STT's final after end of turn before using the interim
    stt_apology: str = "Sorry, I can't hear you properly right now. Please call back in a little while."
    summarize: bool = True


@dataclass
class CallResult:
    """The call as it ended.

    ``usage`` is what the call consumed from its vendors, heard or not (pipelines/usage.py): ``tokens`` of every LLM
    request (answers cut by a barge-in, preemptive answers dropped unheard, the summary) and ``ttsChars`` sent to
    TTS. ``metrics["heard"]["ttsChars"]`` is what the caller heard of it (the transcript's agent text), and
    ``metrics["estimatedTokens"]`` the part of ``tokens`` estimated for streams cut before the vendor's count.
    ``errors`` includes a failed start or summary. A call that ended before any conversation (its stream never
    connected, its process was lost) is a result with only its ``end_reason``: this is the one type a call's
    record is finalized from (voicex/store/calls.py).
    """

    end_reason: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    sentiment: str = "neutral"
    usage: dict[str, int] = field(default_factory=lambda: {"tokens": 0, "ttsChars": 0})
    errors: list[str] = field(default_factory=list)
