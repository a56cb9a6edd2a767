"""Per-turn latency metrics (names as LiveKit's) and their per-call percentiles."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

TIMED_FIELDS = ("end_of_turn_delay", "stt_final_latency", "llm_ttft", "llm_first_sentence", "tts_ttfb", "e2e_latency")


@dataclass
class TurnMetrics:
    """Milliseconds, measured per caller turn; None when the step did not happen."""

    turn: int
    end_of_turn_delay: float | None = None  # caller speech end → end of turn decided
    stt_final_latency: float | None = None  # end of turn → final transcript
    llm_ttft: float | None = None  # LLM request → first token
    llm_first_sentence: float | None = None  # LLM request → first sentence (or clause) handed to TTS
    tts_ttfb: float | None = None  # first clause to TTS → first audio byte
    e2e_latency: float | None = None  # caller speech end → first agent audio out
    interrupted: bool = False
    preemptive: bool = False  # the answer was started before the turn ended (pipelines/preemptive.py)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: (round(value, 1) if isinstance(value, float) else value) for key, value in data.items()}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(turns: list[TurnMetrics]) -> dict[str, Any]:
    """``{"e2e_latency": {"p50": …, "p95": …, "count": n}, …, "turns": n, "interruptions": k}``."""
    summary: dict[str, Any] = {"turns": len(turns), "interruptions": sum(turn.interrupted for turn in turns)}
    for name in TIMED_FIELDS:
        values = [value for turn in turns if (value := getattr(turn, name)) is not None]
        if values:
            summary[name] = {
                "p50": round(percentile(values, 50), 1),
                "p95": round(percentile(values, 95), 1),
                "count": len(values),
            }
    return summary


class TurnLog:
    """A call's finished turns, each recorded once and handed to ``on_turn`` (the server's metrics)."""

    def __init__(self, on_turn: Callable[[TurnMetrics], None] | None = None) -> None:
        self.turns: list[TurnMetrics] = []
        self._on_turn = on_turn

    def next_number(self) -> int:
        return len(self.turns) + 1

    def finish(self, turn: TurnMetrics | None, first_audio_at: float | None, speech_end_wall: float) -> None:
        """Record ``turn``, with its voice-to-voice latency once its first audio went out (loop time)."""
        if turn is None:
            return
        if first_audio_at is not None and turn.e2e_latency is None:
            turn.e2e_latency = (first_audio_at - speech_end_wall) * 1000
        if turn in self.turns:
            return
        self.turns.append(turn)
        if self._on_turn is not None:
            self._on_turn(turn)

    def errors(self) -> list[str]:
        return [error for turn in self.turns for error in turn.errors]
