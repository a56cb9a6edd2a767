"""The set's second part: the conditions the first study lacked (docs/turn-taking.md, "The labelled set").

    turn (sweep)       the agent is silent; one complete sentence in babble, music, café, car or pink noise at
                       0/5/10/20 dB SNR, the background going on for 4.5 s after the last word (variant: the
                       background's name; labels ``background``, ``snr_db``)
    floor_onset        exact digital silence (PCM zeros) for 1-3 s, at the call's start or mid-call, then a
                       steady white or pink line floor at -65/-55/-45 dBFS for 4.5 s; the agent silent or
                       speaking; no speech (nothing should happen), or a sentence 1.5 s into the floor (one turn)
    backchannel_level  the agent speaks; "uh-huh", "yeah", "mm-hmm", "okay", "right", "yep", "I see" at -20/-30/-40
                       dBFS active level (no audible stop: no BargeIn)
    burst_level        the agent speaks; a cough, thump or hiss (150/300 ms) or a double cough at -14/-24/-34 dBFS
    complete           the agent is silent; one complete sentence, then silence
    incomplete         the agent is silent; an unfinished thought, a 300/500/700/1000/1500 ms pause, its end
    numbers            the agent is silent; a number or a spelling read in groups with 400-900 ms pauses

All but the sweep and ``floor_onset`` come in the quiet and noisy (pink, ``--snr-db``) variants. In the level
kinds the noisy background is set by the nominal speech level (-24 dBFS), not by the quiet backchannel.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import partial

from scripts.turn_quality.builder import (
    LEAD_MS,
    WARMUP_MS,
    Background,
    Job,
    Scenario,
    SetBuilder,
    Span,
    Timeline,
)
from scripts.turn_quality.noises import BACKGROUNDS, FLOOR_COLOURS
from scripts.turn_quality.stt import punctuate
from scripts.turn_quality.synth import Voice, noise_burst

SWEEP_SNR_DB = (0, 5, 10, 20)
SWEEP_TURNS = 6  # per background and SNR
SWEEP_TAIL_MS = 4500  # the background keeps going after the caller's last word
COMPLETE = (
    "I'd like to book a table for two.",
    "What time do you close today?",
    "My order hasn't arrived yet.",
    "Can I speak to someone about my bill?",
    "That's all, thank you.",
    "Yes, that works for me.",
    "I need to change my address.",
    "No, I meant the other one.",
)
INCOMPLETE = (  # (unfinished first part, its end)
    ("And then I", "went to the store."),
    ("My number is four one five", "five five five one two one two."),
    ("I was wondering if", "you have a table for tonight?"),
    ("So the thing is um", "my card was charged twice."),
    ("Can you", "send me the receipt by email?"),
    ("I'd like to book a", "room for two nights."),
    ("The address is twenty two", "Baker Street in London."),
)
INCOMPLETE_PAUSES_MS = (300, 500, 700, 1000, 1500)
NUMBERS = (
    ("My number is four one five", "five five five", "one two one two."),
    ("It's spelled J", "O", "H", "N."),
    ("The code is seven", "three", "nine", "two."),
    ("My zip code is nine four", "one zero", "seven."),
    ("My last name is S", "M", "I", "T", "H."),
    ("The reference is K B", "four five", "six."),
)
NUMBER_PAUSE_MS = (400, 900)
VOICES_PER_ITEM = 3
TURN_TAIL_MS = 3500
LEVEL_BACKCHANNELS = ("uh-huh", "yeah", "mm-hmm", "okay", "right", "yep", "I see")
BACKCHANNEL_LEVELS_DBFS = (-20.0, -30.0, -40.0)
BACKCHANNEL_SPEED = 1.15  # times the voice's speed: acknowledgements are quick
LEVEL_BURSTS = (("cough", 150), ("cough", 300), ("thump", 150), ("thump", 300), ("hiss", 150), ("hiss", 300))
BURST_LEVELS_DBFS = (-14.0, -24.0, -34.0)
FLOOR_DBFS = (-65.0, -55.0, -45.0)
FLOOR_ZEROS_MS = (1000, 2000, 3000)
FLOOR_CONTEXTS = ("callstart", "midcall")
FLOOR_MS = 4500  # the floor runs this long (no speech)
FLOOR_SPEECH_AT_MS = 1500  # the caller speaks this long after the floor started


def _voices(voices: Sequence[Voice], item: int, count: int = VOICES_PER_ITEM) -> list[Voice]:
    """``count`` voices for item ``item``, rotating through all of them."""
    return [voices[(item * count + k) % len(voices)] for k in range(count)]


def jobs(voices: Sequence[Voice], tiny: bool) -> list[Job]:
    """Everything the kinds below will synthesize, for ``SetBuilder.prefetch``."""
    todo: list[Job] = [(text, v, v.speed) for i, text in enumerate(COMPLETE) for v in _voices(voices, i)]
    todo += [(text, v, v.speed) for v in voices for text in COMPLETE]  # the sweep's and the floor's callers
    todo += [(t, v, v.speed) for i, parts in enumerate(INCOMPLETE) for v in _voices(voices, i) for t in parts]
    todo += [(t, v, v.speed) for i, parts in enumerate(NUMBERS) for v in _voices(voices, i) for t in parts]
    todo += [
        (word, v, v.speed * BACKCHANNEL_SPEED) for i, word in enumerate(LEVEL_BACKCHANNELS) for v in _voices(voices, i)
    ]
    return todo[:8] if tiny else todo


Turn = tuple[Scenario, Timeline]


def _turn(builder: SetBuilder, name: str, kind: str, parts: list[str], pauses: list[int], voice: Voice) -> Turn:
    """A caller turn with the agent silent, laid out after the warm-up and the lead; transcripts labelled."""
    timeline = Timeline()
    scenario = Scenario(name, kind, "", WARMUP_MS, level_dbfs=voice.level_dbfs)
    builder.phrases(timeline, scenario, WARMUP_MS + LEAD_MS, [(p, p) for p in parts], pauses, voice)
    scenario.expect = {"end_of_turn": True, "barge_in": False}
    return scenario, timeline


def _emit(builder: SetBuilder, turn: Turn, tail_ms: int, variants: list[Background] | None = None) -> None:
    scenario, timeline = turn
    builder.emit(scenario, timeline, scenario.speech[-1].end_ms + tail_ms, variants)


def sweep(builder: SetBuilder, voices: Sequence[Voice], tiny: bool) -> None:
    """Noisy turns: every background at every SNR, ``SWEEP_TURNS`` sentences each (tiny: one of each background)."""
    index = 0
    for b, kind in enumerate(BACKGROUNDS):
        for s, snr in enumerate(SWEEP_SNR_DB):
            if tiny and s != b % len(SWEEP_SNR_DB):
                continue
            for _ in range(1 if tiny else SWEEP_TURNS):
                voice = voices[index % len(voices)]
                turn = _turn(builder, f"sweep{index:03d}", "turn", [COMPLETE[index % len(COMPLETE)]], [], voice)
                _emit(builder, turn, SWEEP_TAIL_MS, [Background(kind, kind, kind, snr_db=float(snr))])
                index += 1


def complete_and_incomplete(builder: SetBuilder, voices: Sequence[Voice], tiny: bool) -> None:
    """Complete sentences, unfinished thoughts with a pause, and numbers/spellings read in groups."""
    for i, text in enumerate(COMPLETE[:1] if tiny else COMPLETE):
        for k, voice in enumerate(_voices(voices, i)[: 1 if tiny else None]):
            _emit(builder, _turn(builder, f"complete{i:02d}_{k}", "complete", [text], [], voice), TURN_TAIL_MS)
    for i, (first, rest) in enumerate(INCOMPLETE[:1] if tiny else INCOMPLETE):
        for pause in (500,) if tiny else INCOMPLETE_PAUSES_MS:
            for k, voice in enumerate(_voices(voices, i)[: 1 if tiny else None]):
                name = f"incomplete{i:02d}_p{pause}_{k}"
                _emit(builder, _turn(builder, name, "incomplete", [first, rest], [pause], voice), TURN_TAIL_MS)
    low, high = NUMBER_PAUSE_MS
    for i, parts in enumerate(NUMBERS[:1] if tiny else NUMBERS):
        for k, voice in enumerate(_voices(voices, i)[: 1 if tiny else None]):
            pauses = [int(round(builder.rng.uniform(low, high), -1)) for _ in parts[1:]]
            _emit(builder, _turn(builder, f"numbers{i:02d}_{k}", "numbers", list(parts), pauses, voice), TURN_TAIL_MS)


def levels(builder: SetBuilder, voices: Sequence[Voice], tiny: bool) -> None:
    """Backchannels and bursts at several levels while the agent speaks: no BargeIn expected."""

    def say(word: str, voice: Voice, dbfs: float, timeline: Timeline, at: int, scenario: Scenario) -> int:
        scenario.labels = {"event": word, "event_dbfs": dbfs}
        part = [(word, punctuate(word))]
        return builder.phrases(timeline, scenario, at, part, [], voice, voice.speed * BACKCHANNEL_SPEED, dbfs)

    def hit(kinds: list[str], ms: int, dbfs: float, timeline: Timeline, at: int, scenario: Scenario) -> int:
        scenario.labels = {"event": "+".join(kinds), "event_dbfs": dbfs}
        end = at
        for kind in kinds:
            end = timeline.add(at, noise_burst(ms, builder.rng, kind) * 10 ** (dbfs / 20))
            scenario.bursts.append(Span(at, end, kind))
            at = end + 150
        return end

    index = 0
    for i, word in enumerate(LEVEL_BACKCHANNELS[:1] if tiny else LEVEL_BACKCHANNELS):
        for level in BACKCHANNEL_LEVELS_DBFS[:1] if tiny else BACKCHANNEL_LEVELS_DBFS:
            for voice in _voices(voices, i)[: 1 if tiny else None]:
                builder.during_agent("backchannel_level", index, partial(say, word, voice, level))
                index += 1
    index = 0
    bursts: list[tuple[list[str], int]] = [([kind], ms) for kind, ms in LEVEL_BURSTS] + [(["cough", "cough"], 200)]
    for kinds, duration in bursts[:1] if tiny else bursts:
        for level in BURST_LEVELS_DBFS[:1] if tiny else BURST_LEVELS_DBFS:
            builder.during_agent("burst_level", index, partial(hit, kinds, duration, level))
            index += 1


def floor_onsets(builder: SetBuilder, voices: Sequence[Voice], tiny: bool) -> None:
    """Digital silence, then a steady line floor; no speech (agent silent or speaking), or a turn on the floor."""
    index = 0
    combos = list(itertools.product(FLOOR_CONTEXTS, FLOOR_ZEROS_MS, FLOOR_DBFS, FLOOR_COLOURS))
    for context, zeros_ms, floor_dbfs, colour in combos[-1:] if tiny else combos:
        for agent in (False, True):
            _floor(builder, index, context, zeros_ms, floor_dbfs, colour, agent=agent, voice=None)
            index += 1
    speaking = list(itertools.product(FLOOR_CONTEXTS, FLOOR_DBFS, FLOOR_COLOURS))
    for i, (context, floor_dbfs, colour) in enumerate(speaking[-1:] if tiny else speaking):
        _floor(builder, index, context, 2000, floor_dbfs, colour, agent=False, voice=voices[i % len(voices)])
        index += 1


def _floor(
    builder: SetBuilder,
    index: int,
    context: str,
    zeros_ms: int,
    floor_dbfs: float,
    colour: str,
    *,
    agent: bool,
    voice: Voice | None,
) -> None:
    warmup = 0 if context == "callstart" else WARMUP_MS  # mid-call: the VAD had heard the floor before the mute
    zeros = Span(warmup, warmup + zeros_ms, "digital silence")
    scenario = Scenario(f"floor{index:03d}", "floor_onset", "", warmup, digital=[zeros])
    scenario.labels = {"context": context, "zeros_ms": zeros_ms, "floor_dbfs": floor_dbfs, "colour": colour}
    timeline = Timeline()
    duration = zeros.end_ms + FLOOR_MS
    if voice is not None:
        text = COMPLETE[index % len(COMPLETE)]
        end = builder.phrases(timeline, scenario, zeros.end_ms + FLOOR_SPEECH_AT_MS, [(text, text)], [], voice)
        scenario.level_dbfs = voice.level_dbfs
        duration = end + TURN_TAIL_MS
    if agent:
        scenario.agent = Span(warmup, duration, "agent")  # speaking through the whole file
    scenario.expect = {"end_of_turn": voice is not None, "barge_in": False, "speech_started": voice is not None}
    builder.emit(scenario, timeline, duration, [Background("floor", colour, "floor", dbfs=floor_dbfs)])


def build_all(builder: SetBuilder, voices: Sequence[Voice], tiny: bool) -> None:
    sweep(builder, voices, tiny)
    floor_onsets(builder, voices, tiny)
    levels(builder, voices, tiny)
    complete_and_incomplete(builder, voices, tiny)
