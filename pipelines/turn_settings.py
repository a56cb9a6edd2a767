"""Turn-taking settings of one call: the knob table (config/turn_taking.yaml) with agent overrides on top.

The server loads the table and validates agent overrides against it; the engine only receives the result. The
table is the one source of every default: :data:`KNOB_FIELDS` only says which field each knob sets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Sensitivity = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class BargeInRule:
    """Caller speech needed during agent audio before the agent stops, and words for ``low``."""

    min_speech_ms: int
    min_words: int
    word_wait_ms: int = 0  # after min_speech_ms, how much more speech may pass waiting for STT's words


def _on(value: object) -> bool:
    """An on/off knob (YAML 1.1 also reads a bare ``on`` as True)."""
    return value is True or value == "on"


# Every knob of config/turn_taking.yaml and the TurnSettings field it sets: that file holds the defaults.
KNOB_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "silenceTimeoutMs": ("silence_timeout_ms", int),
    "endpointingMs": ("endpointing_ms", int),
    "idleTimeoutMs": ("idle_timeout_ms", int),
    "maxCallDurationSec": ("max_call_duration_sec", int),
    "interruptionSensitivity": ("interruption_sensitivity", str),
    "vad": ("vad", str),
    "vadAggressiveness": ("vad_aggressiveness", int),
    "speechStartMs": ("speech_start_ms", int),
    "speechGapToleranceMs": ("speech_gap_ms", int),
    "falseInterruptionTimeoutMs": ("false_interruption_timeout_ms", int),
    "preemptiveGeneration": ("preemptive", _on),
    "speechTailTrimDb": ("tail_trim_db", int),
    "turnDetection": ("turn_detection", str),
    "completeTurnSilenceMs": ("complete_silence_ms", int),
    "incompleteTurnSilenceMs": ("incomplete_silence_ms", int),
}


@dataclass(frozen=True)
class TurnSettings:
    """One call's knobs, built from the knob table (:meth:`from_table`): no default lives here, so none can drift.

    Three silences, three meanings: ``silence_timeout_ms`` of caller silence ends the caller's turn (the
    detector); ``endpointing_ms`` is the recognizer's pause before it finalizes a transcript, which never ends
    a turn; ``idle_timeout_ms`` of silence after the agent finished brings a reprompt, then the goodbye.
    """

    silence_timeout_ms: int
    endpointing_ms: int  # never above silence_timeout_ms (resolve clamps it)
    idle_timeout_ms: int
    max_call_duration_sec: int
    interruption_sensitivity: Sensitivity
    vad: str
    vad_aggressiveness: int
    speech_start_ms: int
    speech_gap_ms: int
    false_interruption_timeout_ms: int
    preemptive: bool  # start the answer when the caller pauses (knob preemptiveGeneration)
    tail_trim_db: int  # 0: off; else speech quieter than the caller's level by this much ends the speech
    turn_detection: str  # "silence" or "model" (pipelines/end_of_turn.py)
    complete_silence_ms: int  # "model": the silence that ends a complete thought (at most silence_timeout_ms)
    incomplete_silence_ms: int  # "model": the silence that ends an unfinished one (at least silence_timeout_ms)
    barge_in: BargeInRule  # the rule of interruption_sensitivity
    backchannels: frozenset[str]

    @classmethod
    def from_table(
        cls,
        table: Mapping[str, Any],
        overrides: Mapping[str, Any] | None = None,
        max_call_duration_cap_sec: int | None = None,
    ) -> TurnSettings:
        """``table`` is config/turn_taking.yaml as loaded (``knobs`` with their ``default``, ``sensitivity``,
        ``backchannels``); see :meth:`resolve` for the rest."""
        defaults = {name: knob["default"] for name, knob in table["knobs"].items()}
        return cls.resolve(defaults, table["sensitivity"], table["backchannels"], overrides, max_call_duration_cap_sec)

    @classmethod
    def resolve(
        cls,
        defaults: Mapping[str, Any],
        sensitivity_rules: Mapping[str, Mapping[str, int]],
        backchannels: Iterable[str],
        overrides: Mapping[str, Any] | None = None,
        max_call_duration_cap_sec: int | None = None,
    ) -> TurnSettings:
        """Merge ``overrides`` (an agent's thresholds, already validated) over ``defaults`` (every knob's default).

        ``max_call_duration_cap_sec`` is the plan's limit, which no agent setting can exceed. ``endpointingMs`` is
        lowered to ``silenceTimeoutMs`` when larger: the recognizer's final must be due by the time the turn ends,
        or every turn would wait for it. A table with a knob missing or unknown here is refused (ValueError).
        """
        missing, unknown = KNOB_FIELDS.keys() - defaults.keys(), defaults.keys() - KNOB_FIELDS.keys()
        if missing or unknown:
            raise ValueError(f"turn-taking knobs: missing {sorted(missing)}, unknown to the engine {sorted(unknown)}")
        values = {**defaults, **{k: v for k, v in (overrides or {}).items() if v is not None and k in KNOB_FIELDS}}
        fields = {field: convert(values[knob]) for knob, (field, convert) in KNOB_FIELDS.items()}
        if max_call_duration_cap_sec is not None:
            fields["max_call_duration_sec"] = min(fields["max_call_duration_sec"], max_call_duration_cap_sec)
        fields["endpointing_ms"] = min(fields["endpointing_ms"], fields["silence_timeout_ms"])
        rule = sensitivity_rules[fields["interruption_sensitivity"]]
        return cls(
            **fields,
            barge_in=BargeInRule(int(rule["minSpeechMs"]), int(rule["minWords"]), int(rule.get("wordWaitMs", 0))),
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
