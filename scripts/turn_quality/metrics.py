"""Judging one scenario's detector events against its labels, and summing outcomes into the report's numbers.

Definitions (all times are media milliseconds from the start of the scenario's file):
    premature end of turn   an EndOfTurn before the caller's last word that falls in a labelled pause shorter
                            than ``silence_timeout_ms`` (or within ONSET_SLACK_MS after it), or inside speech
    end-of-turn delay       first EndOfTurn at or after the true end of the last word, minus that end
    missed end of turn      no EndOfTurn after the last word before the file ends (≥ 2.5 s of silence)
    false barge-in          an InterruptionConfirmed in a backchannel, noise-burst or call-start scenario: the agent
                            gave up its turn (its reply was cancelled) for something that was not an interruption
    paused                  a BargeIn in such a scenario: the agent went quiet and later carried on where it
                            stopped (FalseInterruption); "pause" is that silence, BargeIn to FalseInterruption
    missed barge-in         no InterruptionConfirmed at or after the onset of a real interruption
    barge-in reaction       the first BargeIn (the agent goes quiet: ``clear``) minus the interruption's true onset
    unanswered              a caller turn (kinds turn, complete, incomplete, numbers, floor_onset with speech) with
                            no EndOfTurn within ``silence_timeout_ms`` + UNANSWERED_GRACE_MS after the true end of
                            the last word (while the background goes on); None when the file ends sooner
    premature (incomplete)  in ``incomplete`` and ``numbers`` every pause is inside an unfinished thought: any
                            EndOfTurn before the end of the last word is premature, whatever the pause's length
    floor-onset false       in a ``floor_onset`` scenario without speech: any SpeechStarted, BargeIn or EndOfTurn
    audible stop            any BargeIn in a ``backchannel_level``/``burst_level`` scenario (the agent went quiet)
The first study's numbers (summarize) keep their kinds; conditions.py sums the new ones.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.turn_detector import (
    BargeIn,
    EndOfTurn,
    Event,
    FalseInterruption,
    InterruptionConfirmed,
    SpeechStarted,
)

NOISE_KINDS = ("burst", "callstart")
# An EndOfTurn caused by a pause can fire a little after the caller resumes, before the VAD has caught the onset.
ONSET_SLACK_MS = 200
AGENT_NEGATIVE_KINDS = ("backchannel", *NOISE_KINDS)
LEVEL_KINDS = ("backchannel_level", "burst_level")
TURN_KINDS = ("turn", "complete", "incomplete", "numbers")
UNFINISHED_KINDS = ("incomplete", "numbers")  # every pause is inside the caller's thought
UNANSWERED_GRACE_MS = 1500


@dataclass
class Outcome:
    name: str
    kind: str
    variant: str
    engine: str  # the caller's synthesizer, or "" for noise-only scenarios
    premature_eot: int = 0
    short_pauses: int = 0  # labelled pauses shorter than the silence timeout (the turn-ending silence)
    pause_eot: dict[int, bool] = field(default_factory=dict)  # pause length -> an EndOfTurn fell inside it
    eot_delay_ms: int | None = None
    missed_eot: bool = False
    spurious_start: bool = False  # SpeechStarted before any caller speech (turn) or on noise (burst_listening)
    barge_in: bool = False  # the agent gave up its turn
    paused: bool = False
    pause_ms: list[int] = field(default_factory=list)
    missed_barge_in: bool = False
    reaction_ms: int | None = None
    background: str = ""
    snr_db: float | None = None
    labels: dict[str, Any] = field(default_factory=dict)  # the scenario's kind-specific labels
    has_speech: bool = False
    agent: bool = False  # the agent speaks in the scenario
    unanswered: bool | None = None
    premature_pauses: list[int] = field(default_factory=list)  # pauses (ms) an EndOfTurn fell in (unfinished kinds)
    false_events: list[str] = field(default_factory=list)  # floor_onset: event types that should not have come


def judge(scenario: dict[str, Any], events: list[Event], silence_timeout_ms: int) -> Outcome:
    engine = scenario["voice"].split(":")[0] if scenario["voice"] else ""
    outcome = Outcome(scenario["name"], scenario["kind"], scenario["variant"], engine)
    outcome.background, outcome.snr_db = scenario.get("background", ""), scenario["snr_db"]
    outcome.labels, outcome.has_speech = dict(scenario.get("labels", {})), bool(scenario["speech"])
    outcome.agent = scenario["agent"] is not None
    kind = scenario["kind"]
    if kind in TURN_KINDS or (kind == "floor_onset" and scenario["speech"]):
        _judge_turn(scenario, events, silence_timeout_ms, outcome)
    elif kind == "floor_onset":
        wrong = (SpeechStarted, BargeIn, EndOfTurn)
        outcome.false_events = sorted({type(e).__name__ for e in events if isinstance(e, wrong)})
        outcome.spurious_start = bool(outcome.false_events)
        _judge_negative(events, outcome)
    elif kind == "burst_listening":
        outcome.spurious_start = any(isinstance(e, SpeechStarted) for e in events)
    elif kind == "interruption":
        onset = scenario["speech"][0]["onset_ms"]
        reactions = [e.at_ms - onset for e in events if isinstance(e, BargeIn) and e.at_ms >= onset]
        confirmed = any(isinstance(e, InterruptionConfirmed) and e.at_ms >= onset for e in events)
        outcome.barge_in = confirmed
        outcome.missed_barge_in = not confirmed
        outcome.reaction_ms = reactions[0] if reactions and confirmed else None
    elif kind in AGENT_NEGATIVE_KINDS or kind in LEVEL_KINDS:
        _judge_negative(events, outcome)
    return outcome


def _judge_negative(events: list[Event], outcome: Outcome) -> None:
    """Nothing should have taken the agent's turn: did it give up (barge_in), go quiet (paused), for how long."""
    outcome.barge_in = any(isinstance(e, InterruptionConfirmed) for e in events)
    paused_at: int | None = None
    for event in events:
        if isinstance(event, BargeIn):
            outcome.paused, paused_at = True, event.at_ms
        elif isinstance(event, FalseInterruption) and paused_at is not None:
            outcome.pause_ms.append(event.at_ms - paused_at)
            paused_at = None


def _judge_turn(scenario: dict[str, Any], events: list[Event], silence_timeout_ms: int, outcome: Outcome) -> None:
    spans = scenario["speech"]
    first_onset, last_end = spans[0]["onset_ms"], spans[-1]["end_ms"]
    outcome.spurious_start = any(isinstance(e, SpeechStarted) and e.at_ms < first_onset for e in events)
    gaps = [(a["end_ms"], b["onset_ms"]) for a, b in itertools.pairwise(spans)]
    for start, end in gaps:
        outcome.pause_eot[end - start] = False
        if end - start < silence_timeout_ms:
            outcome.short_pauses += 1
    every_pause = outcome.kind in UNFINISHED_KINDS
    for event in events:
        if not isinstance(event, EndOfTurn) or event.at_ms < first_onset:
            continue
        if event.at_ms >= last_end:
            if outcome.eot_delay_ms is None:
                outcome.eot_delay_ms = event.at_ms - last_end
            continue
        pause = next((end - start for start, end in gaps if start <= event.at_ms < end + ONSET_SLACK_MS), None)
        if pause is not None:
            outcome.pause_eot[pause] = True
            if every_pause and pause not in outcome.premature_pauses:
                outcome.premature_pauses.append(pause)
        if pause is None or pause < silence_timeout_ms or every_pause:
            outcome.premature_eot += 1
    outcome.missed_eot = outcome.eot_delay_ms is None
    window = silence_timeout_ms + UNANSWERED_GRACE_MS
    if scenario["duration_ms"] - last_end >= window:
        outcome.unanswered = outcome.eot_delay_ms is None or outcome.eot_delay_ms > window


def percentile(values: list[int], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), or None for no values."""
    return float(np.percentile(values, q)) if values else None


def _rate(hits: int, total: int) -> float | None:
    return round(100.0 * hits / total, 1) if total else None


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """The report's numbers for a group of outcomes (one VAD, one sensitivity, one variant or all)."""
    turns = [o for o in outcomes if o.kind == "turn"]
    interruptions = [o for o in outcomes if o.kind == "interruption"]
    backchannels = [o for o in outcomes if o.kind == "backchannel"]
    noises = [o for o in outcomes if o.kind in NOISE_KINDS]
    listening = [o for o in outcomes if o.kind == "burst_listening"]
    delays = [o.eot_delay_ms for o in turns if o.eot_delay_ms is not None]
    pause_lengths = [ms for o in backchannels + noises for ms in o.pause_ms]
    reactions = [o.reaction_ms for o in interruptions if o.reaction_ms is not None]
    pauses: dict[str, dict[str, int]] = {}
    for outcome in turns:
        for pause, ended in outcome.pause_eot.items():
            row = pauses.setdefault(str(pause), {"pauses": 0, "ended_turn": 0})
            row["pauses"] += 1
            row["ended_turn"] += int(ended)
    negatives = backchannels + noises
    return {
        "turns": len(turns),
        "premature_eot": sum(o.premature_eot for o in turns),
        "short_pauses": sum(o.short_pauses for o in turns),
        "pauses": dict(sorted(pauses.items(), key=lambda item: int(item[0]))),
        "eot_delay_p50_ms": percentile(delays, 50),
        "eot_delay_p95_ms": percentile(delays, 95),
        "eot_delay_max_ms": max(delays) if delays else None,
        "missed_eot": sum(o.missed_eot for o in turns),
        "spurious_turn_starts": sum(o.spurious_start for o in turns),
        "interruptions": len(interruptions),
        "missed_barge_in": sum(o.missed_barge_in for o in interruptions),
        "barge_in_reaction_p50_ms": percentile(reactions, 50),
        "barge_in_reaction_p95_ms": percentile(reactions, 95),
        "backchannels": len(backchannels),
        "false_barge_in_backchannel_pct": _rate(sum(o.barge_in for o in backchannels), len(backchannels)),
        "noise_events": len(noises),
        "false_barge_in_noise_pct": _rate(sum(o.barge_in for o in noises), len(noises)),
        **{
            f"false_barge_in_{kind}_pct": _rate(sum(o.barge_in for o in group), len(group))
            for kind in NOISE_KINDS
            for group in [[o for o in noises if o.kind == kind]]
        },
        "false_barge_in_pct": _rate(sum(o.barge_in for o in negatives), len(negatives)),
        "paused_backchannel_pct": _rate(sum(o.paused for o in backchannels), len(backchannels)),
        "paused_noise_pct": _rate(sum(o.paused for o in noises), len(noises)),
        "pause_p50_ms": percentile(pause_lengths, 50),
        "pause_p95_ms": percentile(pause_lengths, 95),
        "noise_while_listening": len(listening),
        "spurious_start_on_noise_pct": _rate(sum(o.spurious_start for o in listening), len(listening)),
    }


def check_targets(summary: dict[str, Any], sensitivity: str, silence_timeout_ms: int) -> dict[str, bool]:
    """The issue's targets that apply to ``sensitivity`` (reaction at medium and high; the rest at medium)."""
    checks: dict[str, bool] = {}
    if sensitivity == "medium":
        delay = summary["eot_delay_p95_ms"]
        checks["no_premature_eot"] = summary["premature_eot"] == 0
        checks["eot_delay_p95"] = delay is not None and delay <= silence_timeout_ms + 40 and summary["missed_eot"] == 0
        checks["no_missed_barge_in"] = summary["missed_barge_in"] == 0
        checks["false_barge_in_le_5pct"] = (summary["false_barge_in_pct"] or 0.0) <= 5.0
    limit = {"medium": 250, "high": 150}.get(sensitivity)
    if limit is not None:
        reaction = summary["barge_in_reaction_p95_ms"]
        checks[f"reaction_p95_le_{limit}"] = reaction is not None and reaction <= limit
    return checks
