"""Turn-taking settings of one call: the defaults table (config/turn_taking.yaml) with agent overrides on top.

The server loads the table and validates agent overrides against it; the engine only receives the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Sensitivity = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class BargeInRule:
    """Caller speech needed during agent audio before the agent stops, and words for ``low``."""

    min_speech_ms: int
    min_words: int


@dataclass(frozen=True)
class TurnSettings:
    """One call's knobs (the defaults mirror config/turn_taking.yaml, the one source of truth).

    Three silences, three meanings: ``silence_timeout_ms`` of caller silence ends the caller's turn (the
    detector); ``endpointing_ms`` is the recognizer's pause before it finalizes a transcript, which never ends
    a turn; ``idle_timeout_ms`` of silence after the agent finished brings a reprompt, then the goodbye.
    """

    silence_timeout_ms: int = 700
    endpointing_ms: int = 300  # never above silence_timeout_ms (resolve clamps it)
    idle_timeout_ms: int = 8000
    max_call_duration_sec: int = 600
    interruption_sensitivity: Sensitivity = "medium"
    vad: str = "webrtc"
    vad_aggressiveness: int = 2
    speech_start_ms: int = 60
    speech_gap_ms: int = 80
    false_interruption_timeout_ms: int = 1000
    preemptive: bool = False  # start the answer when the caller pauses (knob preemptiveGeneration)
    tail_trim_db: int = 0  # 0: off; else speech quieter than the caller's level by this much ends the speech
    barge_in: BargeInRule = BargeInRule(300, 0)
    backchannels: frozenset[str] = frozenset()

    @classmethod
    def resolve(
        cls,
        defaults: Mapping[str, Any],
        sensitivity_rules: Mapping[str, Mapping[str, int]],
        backchannels: Iterable[str],
        overrides: Mapping[str, Any] | None = None,
        max_call_duration_cap_sec: int | None = None,
    ) -> TurnSettings:
        """Merge ``overrides`` (an agent's thresholds, already validated) over ``defaults`` (the knob table).

        ``max_call_duration_cap_sec`` is the plan's limit, which no agent setting can exceed. ``endpointingMs`` is
        lowered to ``silenceTimeoutMs`` when larger: the recognizer's final must be due by the time the turn ends,
        or every turn would wait for it.
        """
        values = {**defaults, **{k: v for k, v in (overrides or {}).items() if v is not None}}
        sensitivity = values.get("interruptionSensitivity", "medium")
        rule = sensitivity_rules[sensitivity]
        max_duration = int(values.get("maxCallDurationSec", cls.max_call_duration_sec))
        if max_call_duration_cap_sec is not None:
            max_duration = min(max_duration, max_call_duration_cap_sec)
        silence_timeout = int(values.get("silenceTimeoutMs", cls.silence_timeout_ms))
        return cls(
            silence_timeout_ms=silence_timeout,
            endpointing_ms=min(int(values.get("endpointingMs", cls.endpointing_ms)), silence_timeout),
            idle_timeout_ms=int(values.get("idleTimeoutMs", cls.idle_timeout_ms)),
            max_call_duration_sec=max_duration,
            interruption_sensitivity=sensitivity,
            vad=str(values.get("vad", cls.vad)),
            vad_aggressiveness=int(values.get("vadAggressiveness", cls.vad_aggressiveness)),
            speech_start_ms=int(values.get("speechStartMs", cls.speech_start_ms)),
            speech_gap_ms=int(values.get("speechGapToleranceMs", cls.speech_gap_ms)),
            false_interruption_timeout_ms=int(
                values.get("falseInterruptionTimeoutMs", cls.false_interruption_timeout_ms)
            ),
            preemptive=values.get("preemptiveGeneration", "off") == "on",
            tail_trim_db=int(values.get("speechTailTrimDb", cls.tail_trim_db)),
            barge_in=BargeInRule(int(rule["minSpeechMs"]), int(rule["minWords"])),
            backchannels=frozenset(word.lower() for word in backchannels),
        )


_WORD = re.compile(r"[a-z0-9']+(?:-[a-z0-9']+)*")


def meaningful_words(text: str, backchannels: frozenset[str]) -> int:
    """Words in ``text`` that are not backchannels ("uh-huh", "yeah", "got it"…), which never take the turn."""
    tokens = _WORD.findall(text.lower())
    phrases = sorted((tuple(b.split()) for b in backchannels if " " in b), key=len, reverse=True)
    count = index = 0
    while index < len(tokens):
        matched = next((len(p) for p in phrases if tuple(tokens[index : index + len(p)]) == p), 0)
        if matched:
            index += matched
            continue
        if tokens[index] not in backchannels:
            count += 1
        index += 1
    return count
