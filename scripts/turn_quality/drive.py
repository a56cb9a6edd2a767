"""Driving the real VAD and TurnDetector through one scenario the way the call session does (score.py's core).

The session (pipelines/session.py) feeds each 20 ms frame's VAD decision and RMS level to the detector, hands
it STT's best text so far (the turn's finals joined with the latest interim, pipelines/stt_stream.py), starts
and finishes the agent's playout, pauses it on BargeIn, gives it up on InterruptionConfirmed and resumes it on
FalseInterruption; so does :func:`simulate`, on the scenario's labelled transcripts and agent span.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipelines.audio import FRAME_BYTES_PCM16, FRAME_MS, frame_rms
from pipelines.turn_detector import (
    BargeIn,
    EndOfTurn,
    Event,
    FalseInterruption,
    InterruptionConfirmed,
    TurnDetector,
)
from pipelines.turn_settings import TurnSettings
from pipelines.vad import make_vad
from scripts.turn_quality.metrics import Outcome, judge
from scripts.turn_quality.stt import TranscriptFeed
from scripts.turn_quality.synth import read_wav

Run = tuple[TurnSettings, int]  # the detector's settings, the silence timeout the outcome is judged against


def vad_decisions(pcm: bytes, vad_name: str, aggressiveness: int, threshold: float) -> list[bool]:
    """One decision per whole 20 ms frame from a fresh VAD, as a call would have."""
    vad = make_vad(vad_name, aggressiveness, threshold=threshold)
    count = len(pcm) // FRAME_BYTES_PCM16
    return [vad.is_speech(pcm[i * FRAME_BYTES_PCM16 : (i + 1) * FRAME_BYTES_PCM16]) for i in range(count)]


def frame_levels(pcm: bytes) -> list[float]:
    """Each whole frame's RMS, as the session hands it to the detector."""
    count = len(pcm) // FRAME_BYTES_PCM16
    return [float(frame_rms(pcm[i * FRAME_BYTES_PCM16 : (i + 1) * FRAME_BYTES_PCM16])) for i in range(count)]


def simulate(
    scenario: dict[str, Any], decisions: list[bool], settings: TurnSettings, levels: list[float] | None = None
) -> list[Event]:
    """Drive one TurnDetector through the scenario like the call session does; returns every event."""
    start = scenario["warmup_ms"]
    agent = scenario["agent"]
    detector = TurnDetector(settings, start, wait_for_caller=agent is None)
    transcripts = sorted(scenario["transcripts"], key=lambda t: t["at_ms"])
    feed = TranscriptFeed()
    events: list[Event] = []
    playing = started = given_up = False
    paused_at: int | None = None
    agent_end = agent["end_ms"] if agent is not None else 0
    next_transcript = 0

    def handle(produced: list[Event], now: int) -> None:
        nonlocal playing, paused_at, given_up, agent_end
        for event in produced:
            events.append(event)
            if isinstance(event, BargeIn):
                playing, paused_at = False, now  # paused; the detector gets no agent_finished, as in the session
            elif isinstance(event, InterruptionConfirmed):
                given_up, paused_at = True, None
            elif isinstance(event, EndOfTurn):
                feed.end_of_turn()  # the session takes the turn's words
            elif isinstance(event, FalseInterruption):
                feed.discard_turn()  # its words (a backchannel) do not open the next turn
                if paused_at is not None and not given_up:
                    agent_end += now - paused_at  # the session carries on where the pause stopped
                    paused_at = None
                    detector.agent_started(now)
                    playing = True

    for index in range(start // FRAME_MS, len(decisions)):
        now = index * FRAME_MS
        if agent is not None and not started and now >= agent["onset_ms"]:
            detector.agent_started(now)
            playing = started = True
        if agent is not None and playing and now >= agent_end:
            detector.agent_finished(now)
            playing = False
        while next_transcript < len(transcripts) and transcripts[next_transcript]["at_ms"] <= now:
            item = transcripts[next_transcript]
            next_transcript += 1
            text = feed.receive(item["text"], item["final"])
            if text is not None:
                handle(detector.on_transcript(text, item["final"], now), now)
        handle(detector.on_frame(now, decisions[index], levels[index] if levels else None), now)
    return events


def score_chunk(
    set_dir: Path, scenarios: list[dict[str, Any]], vad: str, aggressiveness: int, threshold: float, runs: list[Run]
) -> tuple[float, list[list[Outcome]]]:
    """One process's share: each scenario through one VAD once, then every run of the detector over it."""
    vad_seconds = 0.0
    outcomes: list[list[Outcome]] = [[] for _ in runs]
    for scenario in scenarios:
        pcm = read_wav(set_dir / scenario["file"])
        started = time.perf_counter()
        decisions = vad_decisions(pcm, vad, aggressiveness, threshold)
        vad_seconds += time.perf_counter() - started
        levels = frame_levels(pcm)
        for index, (settings, silence_timeout) in enumerate(runs):
            outcomes[index].append(judge(scenario, simulate(scenario, decisions, settings, levels), silence_timeout))
    return vad_seconds, outcomes
