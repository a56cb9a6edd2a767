"""The session's DEBUG lines: the turn detector's decisions and each reply's latencies, for when a call's
turn-taking feels wrong (VOICEX_LOG_LEVEL=DEBUG)."""

from __future__ import annotations

import logging
from typing import Any

from pipelines.metrics import TIMED_FIELDS, TurnMetrics
from pipelines.turn_detector import (
    BargeIn,
    EndOfTurn,
    Event,
    FalseInterruption,
    InterruptionConfirmed,
    SilenceTimeout,
    SpeechStarted,
)

log = logging.getLogger("pipelines.session")  # the session's own logger: the lines read as the session's

_EVENT_LINES: dict[type, str] = {
    SpeechStarted: "caller speech started",
    EndOfTurn: "end of turn",
    BargeIn: "barge-in: agent paused",
    InterruptionConfirmed: "barge-in confirmed: reply given up",
    FalseInterruption: "false interruption: agent resumes",
    SilenceTimeout: "caller silence timeout",
}


def log_event(event: Event) -> None:
    fields: dict[str, Any] = {"mediaMs": event.at_ms}
    if isinstance(event, EndOfTurn):
        fields["silenceMs"] = event.at_ms - event.speech_end_ms
    elif isinstance(event, SilenceTimeout):
        fields["count"] = event.count
    log.debug(_EVENT_LINES.get(type(event), type(event).__name__), extra=fields)


def turn_fields(turn: TurnMetrics | None) -> dict[str, Any]:
    """A turn's number and latencies so far (ms, names as in the call record's ``turns``)."""
    if turn is None:
        return {}
    timed = {name: round(value, 1) for name in TIMED_FIELDS if (value := getattr(turn, name)) is not None}
    return {"turn": turn.turn, "preemptive": turn.preemptive, **timed}
