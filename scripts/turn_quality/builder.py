"""The set's building blocks: labelled spans and scenarios, the timeline that renders the caller's line, and the
builder that synthesizes speech (cached, in parallel), lays out scenarios and writes them once per background.

Backgrounds: ``quiet`` is a -65 dBFS pink line floor; ``noisy`` pink noise ``snr_db`` below the caller's speech
level; the sweep's ``babble``/``music``/``cafe``/``car``/``pink`` at a given SNR; ``floor`` a fixed line noise. An
SNR is always against the scenario's ``level_dbfs`` (the caller's active speech level, telephone band).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scripts.turn_quality.noises import BabbleBank, background
from scripts.turn_quality.stt import stt_stream
from scripts.turn_quality.synth import (
    Voice,
    ms_to_samples,
    samples_to_ms,
    set_level,
    synthesize,
    telephone,
    write_wav,
)

NOMINAL_SPEECH_DBFS = -24.0  # speech level that sets the noise level in scenarios without speech
QUIET_FLOOR_DBFS = -65.0
WARMUP_MS = 2000
LEAD_MS = 1000  # ambient before the first labelled event (after the warm-up)
EVENT_AT_MS = 1000  # agent scenarios: the caller's event starts this long into the agent's speech
TAIL_MS = 2500


@dataclass
class Span:
    onset_ms: int
    end_ms: int
    text: str = ""  # speech: the recognizer's final for it (punctuated); bursts: the burst kind


@dataclass
class Scenario:
    name: str
    kind: str
    variant: str
    warmup_ms: int
    voice: str = ""
    speed: float = 0.0
    level_dbfs: float = NOMINAL_SPEECH_DBFS
    snr_db: float | None = None
    noise_dbfs: float | None = None  # the noisy variant's background level, when fixed rather than set by snr_db
    background: str = ""  # quiet, pink, babble, music, cafe, car or floor
    agent: Span | None = None
    speech: list[Span] = field(default_factory=list)
    pauses_ms: list[int] = field(default_factory=list)
    bursts: list[Span] = field(default_factory=list)  # text holds the burst kind
    digital: list[Span] = field(default_factory=list)  # exact digital silence (PCM zeros, μ-law 0xFF)
    labels: dict[str, Any] = field(default_factory=dict)  # kind-specific: event level, floor colour, context…
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    expect: dict[str, bool] = field(default_factory=dict)
    duration_ms: int = 0
    file: str = ""


@dataclass(frozen=True)
class Background:
    """One rendering of a scenario: ``variant`` names it, ``kind`` is the noise, at ``dbfs`` or ``snr_db``."""

    variant: str
    kind: str
    name: str  # the scenario's ``background`` label
    snr_db: float | None = None
    dbfs: float | None = None


QUIET = Background("quiet", "pink", "quiet", dbfs=QUIET_FLOOR_DBFS)


def noisy(snr_db: float) -> Background:
    return Background("noisy", "pink", "pink", snr_db=snr_db)


class Timeline:
    """Places clean sources at exact millisecond offsets, then renders the telephone channel."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, np.ndarray]] = []

    def add(self, at_ms: int, audio: np.ndarray) -> int:
        """Place ``audio`` at ``at_ms``; returns its end in ms (the audio is already trimmed to its sound)."""
        self.parts.append((ms_to_samples(at_ms), audio))
        return at_ms + samples_to_ms(len(audio))

    def render(self, duration_ms: int, noise: np.ndarray, digital: list[Span] | None = None) -> bytes:
        """The line as PCM16; ``digital`` spans carry exact zeros, as a carrier inserts them (after the codec)."""
        mix = noise[: ms_to_samples(duration_ms)].copy()
        for start, audio in self.parts:
            mix[start : start + len(audio)] += audio
        pcm = bytearray(telephone(mix))
        for span in digital or []:
            pcm[2 * ms_to_samples(span.onset_ms) : 2 * ms_to_samples(span.end_ms)] = bytes(
                2 * (ms_to_samples(span.end_ms) - ms_to_samples(span.onset_ms))
            )
        return bytes(pcm)


Job = tuple[str, Voice, float]


class SetBuilder:
    def __init__(self, out: Path, seed: int, snr_db: float, stt_delay_ms: int, endpointing_ms: int = 300) -> None:
        self.out, self.snr_db, self.stt_delay_ms, self.endpointing_ms = out, snr_db, stt_delay_ms, endpointing_ms
        self.variants = [QUIET, noisy(snr_db)]
        self.rng = np.random.default_rng(seed)
        self.scenarios: list[Scenario] = []
        self.bank: BabbleBank | None = None
        self._speech_cache: dict[Job, np.ndarray] = {}

    def raw(self, text: str, voice: Voice, speed: float) -> np.ndarray:
        """``text`` as synthesized (cached), at the synthesizer's level."""
        key = (text, voice, speed)
        if key not in self._speech_cache:
            self._speech_cache[key] = synthesize(text, voice, speed)
        return self._speech_cache[key]

    def speech(self, text: str, voice: Voice, speed: float, level_dbfs: float | None = None) -> np.ndarray:
        """``text`` at ``level_dbfs`` (default: the voice's level), active level in the telephone band."""
        return set_level(self.raw(text, voice, speed), voice.level_dbfs if level_dbfs is None else level_dbfs)

    def prefetch(self, jobs: list[Job]) -> None:
        """Synthesize ahead in parallel (each synthesizer call is its own process)."""
        todo = list(dict.fromkeys(job for job in jobs if job not in self._speech_cache))
        with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
            for job, audio in zip(todo, pool.map(lambda job: synthesize(*job), todo), strict=True):
                self._speech_cache[job] = audio

    def make_bank(self, jobs: list[tuple[str, Voice]], rng: np.random.Generator) -> None:
        """The babble's talkers (``BabbleBank.jobs``; prefetch them first), one loop per voice."""
        talkers: dict[Voice, list[np.ndarray]] = {}
        for text, voice in jobs:
            talkers.setdefault(voice, []).append(self.raw(text, voice, voice.speed))
        self.bank = BabbleBank(list(talkers.values()), rng)

    def emit(
        self, base: Scenario, timeline: Timeline, duration_ms: int, variants: list[Background] | None = None
    ) -> None:
        """Render ``base`` once per background (default: quiet and noisy) and record it."""
        for bg in variants or self.variants:
            scenario = replace(base, name=f"{base.name}.{bg.variant}", variant=bg.variant, duration_ms=duration_ms)
            scenario.background = bg.name
            if bg.dbfs is not None:
                noise_dbfs = bg.dbfs
            elif base.noise_dbfs is not None:
                noise_dbfs = base.noise_dbfs
            else:
                assert bg.snr_db is not None
                noise_dbfs, scenario.snr_db = base.level_dbfs - bg.snr_db, bg.snr_db
            scenario.noise_dbfs = noise_dbfs
            noise = background(bg.kind, ms_to_samples(duration_ms), self.rng, self.bank) * 10 ** (noise_dbfs / 20)
            scenario.file = f"{scenario.name}.wav"
            write_wav(self.out / scenario.file, timeline.render(duration_ms, noise, scenario.digital))
            self.scenarios.append(scenario)

    def phrases(
        self,
        timeline: Timeline,
        scenario: Scenario,
        at_ms: int,
        parts: list[tuple[str, str]],
        pauses_ms: list[int],
        voice: Voice,
        speed: float | None = None,
        level_dbfs: float | None = None,
    ) -> int:
        """Say ``parts`` ((spoken text, final transcript) pairs) from ``at_ms`` with ``pauses_ms`` between them;
        labels the spans, pauses and transcripts; returns the end of the last word."""
        speed = voice.speed if speed is None else speed
        scenario.voice, scenario.speed = voice.label, speed
        end = at_ms
        for index, (spoken, final) in enumerate(parts):
            end = timeline.add(at_ms, self.speech(spoken, voice, speed, level_dbfs))
            scenario.speech.append(Span(at_ms, end, final))
            if index < len(parts) - 1:
                at_ms = end + pauses_ms[index]
        scenario.pauses_ms = list(pauses_ms[: len(parts) - 1])
        scenario.transcripts = stt_stream(scenario.speech, self.stt_delay_ms, self.endpointing_ms)
        return end

    def during_agent(
        self,
        kind: str,
        index: int,
        make: Callable[[Timeline, int, Scenario], int],
        voice_level: float = NOMINAL_SPEECH_DBFS,
    ) -> Scenario:
        """An agent scenario: ``make(timeline, at_ms, scenario)`` places the caller's event and labels it."""
        timeline = Timeline()
        scenario = Scenario(f"{kind}{index:03d}", kind, "", WARMUP_MS, level_dbfs=voice_level)
        event_end = make(timeline, WARMUP_MS + EVENT_AT_MS, scenario)
        agent_end = event_end + 1500
        scenario.agent = Span(WARMUP_MS, agent_end, "agent")
        scenario.expect = {"end_of_turn": kind == "interruption", "barge_in": kind == "interruption"}
        self.emit(scenario, timeline, agent_end + TAIL_MS)
        return scenario
