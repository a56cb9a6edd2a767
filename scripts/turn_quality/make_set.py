"""Build the labelled turn-taking audio set: caller audio as the server receives it, with exact labels.

Each scenario is one WAV (8 kHz PCM16 after a μ-law round trip) plus an entry in ``manifest.json`` with the true
speech onsets/ends (ms from the file start), the hesitation pauses, the noise bursts, digital-silence spans, the
agent's playout span, the transcripts a streaming STT would deliver (scripts/turn_quality/stt.py: interims word by
word from ``--stt-delay-ms`` after the onset, a punctuated final ``--stt-delay-ms`` after each phrase; none for
noise), its background and SNR, and the expected outcome. The first study's kinds (this module):

    turn             the agent is silent; the caller says one sentence, or two phrases with a 300/500/700 ms
                     hesitation between them; the turn ends after the last phrase
    backchannel      the agent speaks; the caller says "uh-huh", "yeah", "mm-hmm", "okay" or "right" (no barge-in)
    interruption     the agent speaks; the caller interrupts with a sentence of at least 600 ms (barge-in)
    burst            the agent speaks; a cough, thump or hiss of 100-400 ms (no barge-in)
    burst_listening  the agent is silent; a noise burst (no caller turn should start)
    callstart        the agent speaks from the first frame of the call with the line noise starting with it; the
                     noisy variant uses fixed background levels (CALLSTART_NOISE_DBFS), not an SNR

Each comes in two variants: ``quiet`` (a -65 dBFS line-noise floor) and ``noisy`` (stationary pink background
noise at ``--snr-db`` below the caller's speech level). Before the labelled part, ``warmup_ms`` of the same
background lets the VAD settle, as it would have during the earlier part of a call (not ``callstart``). These
720 scenarios are built first and from the same seed as before, so they are the same audio. Then the kinds of
scenarios.py: noisy turns in babble/music/café/car/pink at 0-20 dB SNR, digital silence → line floor,
backchannels and bursts at several levels, complete and incomplete sentences, numbers and spellings.

Callers are espeak-ng voices (Debian: espeak-ng) and, when installed, Festival voices built from real speakers
(festival, festvox-us-slt-hts, festvox-kallpc16k). Docs and measured results: docs/turn-taking.md.

Usage: python -m scripts.turn_quality.make_set [--out data/turn_quality] [--seed 7] [--tiny] [--no-festival]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from scripts.turn_quality import scenarios as extra
from scripts.turn_quality.builder import (
    LEAD_MS,
    TAIL_MS,
    WARMUP_MS,
    Job,
    Scenario,
    SetBuilder,
    Span,
    Timeline,
)
from scripts.turn_quality.noises import BabbleBank
from scripts.turn_quality.stt import punctuate
from scripts.turn_quality.synth import Voice, have_festival, noise_burst

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
# How STT punctuates each pair's finals: is the first phrase a complete thought, and the sentence's last mark.
TURN_FINALS = ((False, "."), (False, "."), (True, "."), (False, "?"))
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
CALLSTART_NOISE_DBFS = (-45.0, -38.0, -32.0, -26.0)  # a quiet room up to a loud street or car


# --- the first study's kinds -----------------------------------------------------------------------------


def turn(builder: SetBuilder, index: int, pair: int, pause_ms: int, voice: Voice) -> None:
    first, second = TURN_PHRASES[pair]
    first_complete, mark = TURN_FINALS[pair]
    if pause_ms == 0:
        parts = [(f"{first} {second}", punctuate(f"{first} {second}", mark))]
    else:
        parts = [(first, punctuate(first) if first_complete else first), (second, punctuate(second, mark))]
    timeline = Timeline()
    scenario = Scenario(
        f"turn{index:03d}_p{pause_ms}", "turn", "", WARMUP_MS, voice.label, voice.speed, voice.level_dbfs
    )
    end = builder.phrases(timeline, scenario, WARMUP_MS + LEAD_MS, parts, [pause_ms], voice)
    scenario.expect = {"end_of_turn": True, "barge_in": False}
    builder.emit(scenario, timeline, end + TAIL_MS)


def spoken(builder: SetBuilder, text: str, voice: Voice, speed: float, kind: str, index: int) -> None:
    def make(timeline: Timeline, at: int, scenario: Scenario) -> int:
        return builder.phrases(timeline, scenario, at, [(text, punctuate(text))], [], voice, speed)

    builder.during_agent(kind, index, make, voice.level_dbfs)


def burst(
    builder: SetBuilder, kinds: list[str], duration_ms: int, level: float, index: int, *, listening: bool
) -> None:
    def make(timeline: Timeline, at: int, scenario: Scenario) -> int:
        end = at
        for kind in kinds:
            end = timeline.add(at, noise_burst(duration_ms, builder.rng, kind) * 10 ** (level / 20))
            scenario.bursts.append(Span(at, end, kind))
            at = end + 150
        return end

    if not listening:
        builder.during_agent("burst", index, make)
        return
    timeline = Timeline()
    scenario = Scenario(f"burst_listening{index:03d}", "burst_listening", "", WARMUP_MS)
    end = make(timeline, WARMUP_MS + LEAD_MS, scenario)
    scenario.expect = {"end_of_turn": False, "barge_in": False}
    builder.emit(scenario, timeline, end + TAIL_MS)


def callstart(builder: SetBuilder, index: int, noise_dbfs: float) -> None:
    scenario = Scenario(f"callstart{index:03d}", "callstart", "", 0, agent=Span(0, 4000, "agent"))
    scenario.noise_dbfs = noise_dbfs
    scenario.expect = {"end_of_turn": False, "barge_in": False}
    builder.emit(scenario, Timeline(), 4000 + TAIL_MS)


def first_study(builder: SetBuilder, voices: tuple[Voice, ...], tiny: bool) -> None:
    """The first study's 720 scenarios (tiny: a turn, a backchannel and an interruption), in their old order."""
    if tiny:
        turn(builder, 0, 0, 300, voices[0])
        spoken(builder, BACKCHANNELS[0], voices[0], voices[0].speed * BACKCHANNEL_SPEEDS[0], "backchannel", 0)
        spoken(builder, INTERRUPTIONS[0], voices[0], voices[0].speed, "interruption", 0)
        return
    index = 0
    for pair in range(len(TURN_PHRASES)):
        for pause in PAUSES_MS:
            for voice in voices:
                turn(builder, index, pair, pause, voice)
                index += 1
    index = 0
    for word in BACKCHANNELS:
        for voice in voices:
            for speed in BACKCHANNEL_SPEEDS:
                spoken(builder, word, voice, voice.speed * speed, "backchannel", index)
                index += 1
    for index, (text, voice) in enumerate((text, voice) for text in INTERRUPTIONS for voice in voices):
        spoken(builder, text, voice, voice.speed, "interruption", index)
    index = 0
    for kind in BURST_KINDS:
        for duration in BURST_MS:
            for level in BURST_LEVELS_DBFS:
                burst(builder, [kind], duration, level, index, listening=False)
                burst(builder, [kind], duration, level, index, listening=True)
                index += 1
    for level in BURST_LEVELS_DBFS:  # a double cough
        burst(builder, ["cough", "cough"], 200, level, index, listening=False)
        index += 1
    for index, noise_dbfs in enumerate(CALLSTART_NOISE_DBFS):
        callstart(builder, index, noise_dbfs)


def _first_study_jobs(voices: tuple[Voice, ...]) -> list[Job]:
    jobs = [(text, v, v.speed) for v in voices for a, b in TURN_PHRASES for text in (f"{a} {b}", a, b)]
    jobs += [(word, v, v.speed * speed) for v in voices for word in BACKCHANNELS for speed in BACKCHANNEL_SPEEDS]
    return jobs + [(text, v, v.speed) for v in voices for text in INTERRUPTIONS]


def build(
    out: Path,
    seed: int = 7,
    snr_db: float = 15.0,
    stt_delay_ms: int = 300,
    tiny: bool = False,
    festival: bool = True,
    endpointing_ms: int = 300,
) -> Path:
    """Write the set's WAVs and ``manifest.json`` under ``out``; returns the manifest's path.

    ``festival`` adds Festival's voices when they are installed (espeak-ng alone otherwise).
    """
    festival = festival and have_festival() and not tiny
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.wav"):
        old.unlink()
    builder = SetBuilder(out, seed, snr_db, stt_delay_ms, endpointing_ms)
    voices = ESPEAK_VOICES[:1] if tiny else ESPEAK_VOICES + (FESTIVAL_VOICES if festival else ())
    babble = BabbleBank.jobs(festival, talkers=6 if tiny else None)
    jobs = [] if tiny else _first_study_jobs(voices)
    extra_voices = ESPEAK_VOICES[:3] if tiny else voices
    builder.prefetch(jobs + extra.jobs(extra_voices, tiny) + [(text, voice, voice.speed) for text, voice in babble])
    first_study(builder, voices, tiny)  # first, so that its 720 scenarios draw the same noise as before
    builder.make_bank(babble, np.random.default_rng([seed, 1]))
    extra.build_all(builder, extra_voices, tiny)
    short = [s.name for s in builder.scenarios if s.kind == "interruption" and _spoken_ms(s) < 600]
    if short:
        raise RuntimeError(f"interruptions must last at least 600 ms: {short}")
    manifest = out / "manifest.json"
    engines = sorted({voice.engine for voice in voices})
    meta = {
        "seed": seed,
        "snr_db": snr_db,
        "stt_delay_ms": stt_delay_ms,
        "stt_endpointing_ms": endpointing_ms,
        "tiny": tiny,
        "engines": engines,
        "babble_talkers": len(builder.bank.loops) if builder.bank else 0,
    }
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
    parser.add_argument(
        "--stt-endpointing-ms", type=int, default=300, help="a pause this long makes the recognizer send a final"
    )
    parser.add_argument("--tiny", action="store_true", help="a few scenarios of every kind (for the smoke test)")
    parser.add_argument("--no-festival", action="store_true", help="espeak-ng voices only")
    args = parser.parse_args()
    started = time.perf_counter()
    manifest = build(
        args.out, args.seed, args.snr_db, args.stt_delay_ms, args.tiny, not args.no_festival, args.stt_endpointing_ms
    )
    scenarios = json.loads(manifest.read_text())["scenarios"]
    kinds: dict[str, int] = {}
    for scenario in scenarios:
        kinds[scenario["kind"]] = kinds.get(scenario["kind"], 0) + 1
    summary = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
    print(f"{len(scenarios)} scenarios ({summary}) in {time.perf_counter() - started:.1f} s -> {manifest}")


if __name__ == "__main__":
    main()
