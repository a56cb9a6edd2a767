"""Build the labelled turn-taking audio set: caller audio as the server receives it, with exact labels.

Each scenario is one WAV (8 kHz PCM16 after a μ-law round trip) plus an entry in ``manifest.json`` with the true
speech onsets/ends (ms from the file start), the hesitation pauses, the noise bursts, the agent's playout span,
the transcripts an STT would deliver (words ``--stt-delay-ms`` after the speech they belong to; none for
noise) and the expected outcome. Kinds:

    turn             the agent is silent; the caller says one sentence, or two phrases with a 300/500/700 ms
                     hesitation between them; the turn ends after the last phrase
    backchannel      the agent speaks; the caller says "uh-huh", "yeah", "mm-hmm", "okay" or "right" (no barge-in)
    interruption     the agent speaks; the caller interrupts with a sentence of at least 600 ms (barge-in)
    burst            the agent speaks; a cough, thump or hiss of 100-400 ms (no barge-in)
    burst_listening  the agent is silent; a noise burst (no caller turn should start)
    callstart        the agent speaks from the first frame of the call with the line noise starting with it; the
                     noisy variant uses fixed background levels (CALLSTART_NOISE_DBFS), not an SNR

Every scenario comes in two variants: ``quiet`` (a -65 dBFS line-noise floor) and ``noisy`` (stationary pink
background noise at ``--snr-db`` below the caller's speech level). Before the labelled part, ``warmup_ms`` of
the same background lets the VAD settle, as it would have during the earlier part of a call (not ``callstart``).

Callers are espeak-ng voices (Debian: espeak-ng) and, when installed, Festival voices built from real speakers
(festival, festvox-us-slt-hts, festvox-kallpc16k). Docs and measured results: docs/turn-taking.md.

Usage: python -m scripts.turn_quality.make_set [--out data/turn_quality] [--seed 7] [--tiny] [--no-festival]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scripts.turn_quality.synth import (
    Voice,
    have_festival,
    ms_to_samples,
    noise_burst,
    pink_noise,
    samples_to_ms,
    set_level,
    synthesize,
    telephone,
    write_wav,
)

ESPEAK_VOICES = (
    Voice("espeak", "en-us", 0.94, 50, -20.0),
    Voice("espeak", "en-gb+f3", 1.03, 60, -24.0),
    Voice("espeak", "en-gb-scotland+m3", 0.86, 40, -28.0),
    Voice("espeak", "en-029+f2", 1.0, 55, -22.0),
    Voice("espeak", "en-us+m7", 1.11, 35, -26.0),
    Voice("espeak", "en-gb-x-rp+f4", 0.91, 65, -30.0),
)
# Festival's voices are built from recordings of real speakers, so they check that results do not hinge on
# espeak's formant synthesis (Silero, trained on real speech, hears espeak differently).
FESTIVAL_VOICES = (
    Voice("festival", "slt", 1.0, 0, -23.0),
    Voice("festival", "slt", 1.12, -4, -29.0),
    Voice("festival", "kal", 0.95, 0, -21.0),
)
TURN_PHRASES: tuple[tuple[str, str], ...] = (
    ("I'd like to book a table", "for four people on Friday evening"),
    ("my account number is", "four five seven two nine"),
    ("I was calling about my order", "it hasn't arrived yet"),
    ("can you tell me", "what time you close today"),
)
PAUSES_MS = (0, 300, 500, 700)  # 0: the two phrases as one sentence, no hesitation
BACKCHANNELS = ("uh-huh", "yeah", "mm-hmm", "okay", "right")
BACKCHANNEL_SPEEDS = (1.15, 1.5)  # times the voice's speed: quick, as acknowledgements are (140-905 ms of sound)
INTERRUPTIONS = (
    "wait, can I change the time?",
    "no no, that's not what I said",
    "hold on a second",
    "sorry, I need to stop you there",
    "actually I want the other one",
    "excuse me, can you repeat that",
    "stop, that's wrong",
    "can I speak to a person",
)
BURST_KINDS = ("cough", "thump", "hiss")
BURST_MS = (100, 200, 300, 400)
BURST_LEVELS_DBFS = (-14.0, -24.0)  # 20 ms peak RMS: a loud cough close to the handset, and a distant one
NOMINAL_SPEECH_DBFS = -24.0  # speech level that sets the noise level in scenarios without speech
CALLSTART_NOISE_DBFS = (-45.0, -38.0, -32.0, -26.0)  # a quiet room up to a loud street or car
QUIET_FLOOR_DBFS = -65.0
WARMUP_MS = 2000
LEAD_MS = 1000  # ambient before the first labelled event (after the warm-up)
EVENT_AT_MS = 1000  # agent scenarios: the caller's event starts this long into the agent's speech
TAIL_MS = 2500


@dataclass
class Span:
    onset_ms: int
    end_ms: int
    text: str = ""


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
    agent: Span | None = None
    speech: list[Span] = field(default_factory=list)
    pauses_ms: list[int] = field(default_factory=list)
    bursts: list[Span] = field(default_factory=list)  # text holds the burst kind
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    expect: dict[str, bool] = field(default_factory=dict)
    duration_ms: int = 0
    file: str = ""


class Timeline:
    """Places clean sources at exact millisecond offsets, then renders the telephone channel."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, np.ndarray]] = []

    def add(self, at_ms: int, audio: np.ndarray) -> int:
        """Place ``audio`` at ``at_ms``; returns its end in ms (the audio is already trimmed to its sound)."""
        self.parts.append((ms_to_samples(at_ms), audio))
        return at_ms + samples_to_ms(len(audio))

    def render(self, duration_ms: int, noise: np.ndarray) -> bytes:
        mix = noise[: ms_to_samples(duration_ms)].copy()
        for start, audio in self.parts:
            mix[start : start + len(audio)] += audio
        return telephone(mix)


def stt_words(span: Span, delay_ms: int) -> list[dict[str, Any]]:
    """Interim transcripts as the words arrive (the first ``delay_ms`` after the onset), then the final one."""
    words = span.text.replace(",", "").replace("?", "").split()
    step = (span.end_ms - span.onset_ms) / len(words)
    interim = [
        {"at_ms": span.onset_ms + delay_ms + round(i * step), "text": " ".join(words[: i + 1]), "final": False}
        for i in range(len(words))
    ]
    return [*interim, {"at_ms": span.end_ms + delay_ms, "text": " ".join(words), "final": True}]


class SetBuilder:
    def __init__(self, out: Path, seed: int, snr_db: float, stt_delay_ms: int, variants: list[str]) -> None:
        self.out, self.snr_db, self.stt_delay_ms, self.variants = out, snr_db, stt_delay_ms, variants
        self.rng = np.random.default_rng(seed)
        self.scenarios: list[Scenario] = []
        self._speech_cache: dict[tuple[str, Voice, float], np.ndarray] = {}

    def speech(self, text: str, voice: Voice, speed: float) -> np.ndarray:
        key = (text, voice, speed)
        if key not in self._speech_cache:
            self._speech_cache[key] = synthesize(text, voice, speed)
        return set_level(self._speech_cache[key], voice.level_dbfs)

    def prefetch(self, jobs: list[tuple[str, Voice, float]]) -> None:
        """Synthesize ahead in parallel (each synthesizer call is its own process)."""
        todo = list(dict.fromkeys(job for job in jobs if job not in self._speech_cache))
        with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
            for job, audio in zip(todo, pool.map(lambda job: synthesize(*job), todo), strict=True):
                self._speech_cache[job] = audio

    def emit(self, base: Scenario, timeline: Timeline, duration_ms: int) -> None:
        """Render ``base`` once per variant, with the variant's background noise, and record it."""
        for variant in self.variants:
            scenario = replace(base, name=f"{base.name}.{variant}", variant=variant, duration_ms=duration_ms)
            samples = ms_to_samples(duration_ms)
            noise_dbfs = QUIET_FLOOR_DBFS
            if variant == "noisy" and base.noise_dbfs is not None:
                noise_dbfs = base.noise_dbfs
            elif variant == "noisy":
                noise_dbfs, scenario.snr_db = base.level_dbfs - self.snr_db, self.snr_db
            scenario.noise_dbfs = noise_dbfs
            noise = pink_noise(samples, self.rng) * 10 ** (noise_dbfs / 20)
            scenario.file = f"{scenario.name}.wav"
            write_wav(self.out / scenario.file, timeline.render(duration_ms, noise))
            self.scenarios.append(scenario)

    # --- kinds ---------------------------------------------------------------------------------------

    def turn(self, phrases: tuple[str, str], pause_ms: int, voice: Voice, index: int) -> None:
        timeline, at = Timeline(), WARMUP_MS + LEAD_MS
        texts = [f"{phrases[0]} {phrases[1]}"] if pause_ms == 0 else list(phrases)
        scenario = Scenario(
            f"turn{index:03d}_p{pause_ms}", "turn", "", WARMUP_MS, voice.label, voice.speed, voice.level_dbfs
        )
        for text in texts:
            end = timeline.add(at, self.speech(text, voice, voice.speed))
            span = Span(at, end, text)
            scenario.speech.append(span)
            scenario.transcripts += stt_words(span, self.stt_delay_ms)
            at = end + pause_ms
        if pause_ms:
            scenario.pauses_ms = [pause_ms]
        scenario.expect = {"end_of_turn": True, "barge_in": False}
        self.emit(scenario, timeline, scenario.speech[-1].end_ms + TAIL_MS)

    def during_agent(self, kind: str, index: int, make: Any, voice_level: float = NOMINAL_SPEECH_DBFS) -> None:
        """An agent scenario: ``make(timeline, at_ms, scenario)`` places the caller's event and labels it."""
        timeline = Timeline()
        scenario = Scenario(f"{kind}{index:03d}", kind, "", WARMUP_MS, level_dbfs=voice_level)
        event_end = make(timeline, WARMUP_MS + EVENT_AT_MS, scenario)
        agent_end = event_end + 1500
        scenario.agent = Span(WARMUP_MS, agent_end, "agent")
        scenario.expect = {"end_of_turn": kind == "interruption", "barge_in": kind == "interruption"}
        self.emit(scenario, timeline, agent_end + TAIL_MS)

    def spoken(self, text: str, voice: Voice, speed: float, kind: str, index: int) -> None:
        def make(timeline: Timeline, at: int, scenario: Scenario) -> int:
            end = timeline.add(at, self.speech(text, voice, speed))
            span = Span(at, end, text)
            scenario.voice, scenario.speed = voice.label, speed
            scenario.speech.append(span)
            scenario.transcripts += stt_words(span, self.stt_delay_ms)
            return end

        self.during_agent(kind, index, make, voice.level_dbfs)

    def burst(self, kinds: list[str], duration_ms: int, level: float, index: int, *, listening: bool) -> None:
        def make(timeline: Timeline, at: int, scenario: Scenario) -> int:
            end = at
            for kind in kinds:
                end = timeline.add(at, noise_burst(duration_ms, self.rng, kind) * 10 ** (level / 20))
                scenario.bursts.append(Span(at, end, kind))
                at = end + 150
            return end

        if not listening:
            self.during_agent("burst", index, make)
            return
        timeline = Timeline()
        scenario = Scenario(f"burst_listening{index:03d}", "burst_listening", "", WARMUP_MS)
        end = make(timeline, WARMUP_MS + LEAD_MS, scenario)
        scenario.expect = {"end_of_turn": False, "barge_in": False}
        self.emit(scenario, timeline, end + TAIL_MS)

    def callstart(self, index: int, noise_dbfs: float) -> None:
        scenario = Scenario(f"callstart{index:03d}", "callstart", "", 0, agent=Span(0, 4000, "agent"))
        scenario.noise_dbfs = noise_dbfs
        scenario.expect = {"end_of_turn": False, "barge_in": False}
        self.emit(scenario, Timeline(), 4000 + TAIL_MS)


def build(
    out: Path, seed: int = 7, snr_db: float = 15.0, stt_delay_ms: int = 300, tiny: bool = False, festival: bool = True
) -> Path:
    """Write the set's WAVs and ``manifest.json`` under ``out``; returns the manifest's path.

    ``festival`` adds Festival's voices when they are installed (espeak-ng alone otherwise).
    """
    festival = festival and have_festival() and not tiny
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.wav"):
        old.unlink()
    builder = SetBuilder(out, seed, snr_db, stt_delay_ms, ["quiet", "noisy"])
    voices = ESPEAK_VOICES[:1] if tiny else ESPEAK_VOICES + (FESTIVAL_VOICES if festival else ())
    if tiny:
        builder.turn(TURN_PHRASES[0], 300, voices[0], 0)
        builder.spoken(BACKCHANNELS[0], voices[0], voices[0].speed * BACKCHANNEL_SPEEDS[0], "backchannel", 0)
        builder.spoken(INTERRUPTIONS[0], voices[0], voices[0].speed, "interruption", 0)
    else:
        jobs = [(text, v, v.speed) for v in voices for a, b in TURN_PHRASES for text in (f"{a} {b}", a, b)]
        jobs += [(word, v, v.speed * speed) for v in voices for word in BACKCHANNELS for speed in BACKCHANNEL_SPEEDS]
        jobs += [(text, v, v.speed) for v in voices for text in INTERRUPTIONS]
        builder.prefetch(jobs)
        index = 0
        for phrases in TURN_PHRASES:
            for pause in PAUSES_MS:
                for voice in voices:
                    builder.turn(phrases, pause, voice, index)
                    index += 1
        index = 0
        for word in BACKCHANNELS:
            for voice in voices:
                for speed in BACKCHANNEL_SPEEDS:
                    builder.spoken(word, voice, voice.speed * speed, "backchannel", index)
                    index += 1
        index = 0
        for text in INTERRUPTIONS:
            for voice in voices:
                builder.spoken(text, voice, voice.speed, "interruption", index)
                index += 1
        index = 0
        for kind in BURST_KINDS:
            for duration in BURST_MS:
                for level in BURST_LEVELS_DBFS:
                    builder.burst([kind], duration, level, index, listening=False)
                    builder.burst([kind], duration, level, index, listening=True)
                    index += 1
        for level in BURST_LEVELS_DBFS:  # a double cough
            builder.burst(["cough", "cough"], 200, level, index, listening=False)
            index += 1
        for index, noise_dbfs in enumerate(CALLSTART_NOISE_DBFS):
            builder.callstart(index, noise_dbfs)
    short = [s.name for s in builder.scenarios if s.kind == "interruption" and _spoken_ms(s) < 600]
    if short:
        raise RuntimeError(f"interruptions must last at least 600 ms: {short}")
    manifest = out / "manifest.json"
    engines = sorted({voice.engine for voice in voices})
    meta = {"seed": seed, "snr_db": snr_db, "stt_delay_ms": stt_delay_ms, "tiny": tiny, "engines": engines}
    payload = {"meta": meta, "scenarios": [asdict(s) for s in builder.scenarios]}
    manifest.write_text(json.dumps(payload, indent=1))
    return manifest


def _spoken_ms(scenario: Scenario) -> int:
    return sum(span.end_ms - span.onset_ms for span in scenario.speech)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/turn_quality"), help="output directory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--snr-db", type=float, default=15.0, help="speech-to-background ratio of the noisy variant")
    parser.add_argument("--stt-delay-ms", type=int, default=300, help="words arrive this long after their speech")
    parser.add_argument("--tiny", action="store_true", help="three scenarios (for the smoke test)")
    parser.add_argument("--no-festival", action="store_true", help="espeak-ng voices only")
    args = parser.parse_args()
    started = time.perf_counter()
    manifest = build(args.out, args.seed, args.snr_db, args.stt_delay_ms, args.tiny, not args.no_festival)
    scenarios = json.loads(manifest.read_text())["scenarios"]
    kinds: dict[str, int] = {}
    for scenario in scenarios:
        kinds[scenario["kind"]] = kinds.get(scenario["kind"], 0) + 1
    summary = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
    print(f"{len(scenarios)} scenarios ({summary}) in {time.perf_counter() - started:.1f} s -> {manifest}")


if __name__ == "__main__":
    main()
