"""The turn detector, driven by scripted 20 ms frames with exact expected events and times."""

from __future__ import annotations

import pytest

from pipelines.turn_detector import (
    FRAME_MS,
    Acknowledged,
    BargeIn,
    EndOfTurn,
    Event,
    FalseInterruption,
    InterruptionConfirmed,
    SilenceTimeout,
    SpeechStarted,
    TurnDetector,
    TurnState,
)
from pipelines.turn_settings import KNOB_FIELDS, TurnSettings, meaningful_words
from tests.turn_table import table, turn_settings

# The sensitivity rules and knobs these exact timings are written for; the rest is config/turn_taking.yaml's.
RULES = {
    "high": {"minSpeechMs": 150, "minWords": 0},
    "medium": {"minSpeechMs": 300, "minWords": 0},
    "low": {"minSpeechMs": 600, "minWords": 2},
}
BACKCHANNELS = ["uh-huh", "uh huh", "mm-hmm", "yeah", "okay", "ok", "right", "got it", "yes"]
KNOBS = {
    "silenceTimeoutMs": 500,
    "endpointingMs": 300,
    "idleTimeoutMs": 8000,
    "interruptionSensitivity": "medium",
    "speechStartMs": 60,
    "speechGapToleranceMs": 80,
    "falseInterruptionTimeoutMs": 1000,
    "speechTailTrimDb": 0,
}


def settings(**overrides: object) -> TurnSettings:
    return turn_settings({**KNOBS, **overrides}, sensitivity=RULES, backchannels=BACKCHANNELS)


class Script:
    """Feeds segments of speech/silence frame by frame and records (event, time) pairs."""

    def __init__(self, detector: TurnDetector, start_ms: int = 0) -> None:
        self.detector = detector
        self.now = start_ms
        self.events: list[Event] = []

    def feed(self, ms: int, speech: bool) -> list[Event]:
        produced: list[Event] = []
        for _ in range(ms // FRAME_MS):
            produced += self.detector.on_frame(self.now, speech)
            self.now += FRAME_MS
        self.events += produced
        return produced

    def speech(self, ms: int) -> list[Event]:
        return self.feed(ms, True)

    def silence(self, ms: int) -> list[Event]:
        return self.feed(ms, False)


def test_speech_start_needs_the_confirmation_window() -> None:
    script = Script(TurnDetector(settings()))
    assert script.speech(40) == []
    assert script.speech(20) == [SpeechStarted(at_ms=60, onset_ms=0)]
    assert script.detector.state is TurnState.CALLER_SPEAKING


def test_a_short_blip_is_not_speech() -> None:
    script = Script(TurnDetector(settings()))
    script.speech(40)
    script.silence(200)  # gap longer than the tolerance resets the candidate
    assert script.speech(40) == []
    assert script.detector.state is TurnState.LISTENING


@pytest.mark.parametrize(("silence_timeout_ms", "endpointing_ms"), [(500, 300), (700, 200), (700, 10), (300, 300)])
def test_end_of_turn_exactly_silence_timeout_after_speech_ends(silence_timeout_ms: int, endpointing_ms: int) -> None:
    detector = TurnDetector(settings(silenceTimeoutMs=silence_timeout_ms, endpointingMs=endpointing_ms))
    script = Script(detector)
    script.speech(1000)
    assert script.silence(silence_timeout_ms - 20) == []  # the recognizer's endpointing plays no part
    assert script.silence(20) == [EndOfTurn(at_ms=1000 + silence_timeout_ms, speech_end_ms=1000, after_barge_in=False)]
    assert script.detector.state is TurnState.LISTENING


def test_recognizer_finals_at_short_pauses_never_end_the_turn() -> None:
    script = Script(TurnDetector(settings(silenceTimeoutMs=700, endpointingMs=200)))
    script.speech(800)
    assert script.silence(200) == []
    assert script.detector.on_transcript("I'd like to", True, script.now) == []  # STT's endpointing: a final
    assert script.silence(200) == []
    assert script.speech(600) == []  # the caller goes on: the same turn
    assert script.detector.on_transcript("I'd like to book a table", True, script.now + 200) == []
    assert script.silence(680) == []
    assert script.silence(20) == [EndOfTurn(at_ms=800 + 400 + 600 + 700, speech_end_ms=1800, after_barge_in=False)]


@pytest.mark.parametrize("pause_ms", [300, 480])
def test_hesitation_pauses_shorter_than_the_silence_timeout_never_end_the_turn(pause_ms: int) -> None:
    script = Script(TurnDetector(settings(silenceTimeoutMs=500)))
    script.speech(800)
    assert script.silence(pause_ms) == []
    assert script.speech(600) == []
    assert script.detector.state is TurnState.CALLER_SPEAKING
    events = script.silence(500)
    assert events == [
        EndOfTurn(at_ms=800 + pause_ms + 600 + 500, speech_end_ms=800 + pause_ms + 600, after_barge_in=False)
    ]


def test_a_noise_blip_during_a_pause_does_not_restart_the_silence_count() -> None:
    script = Script(TurnDetector(settings(silenceTimeoutMs=500)))
    script.speech(600)
    script.silence(200)
    script.speech(20)  # one noisy frame: shorter than the confirmation window
    events = script.silence(280)
    assert events == [EndOfTurn(at_ms=1100, speech_end_ms=600, after_barge_in=False)]


@pytest.mark.parametrize(("sensitivity", "needed_ms"), [("high", 150), ("medium", 300)])
def test_barge_in_after_the_sensitivity_speech_time(sensitivity: str, needed_ms: int) -> None:
    detector = TurnDetector(settings(interruptionSensitivity=sensitivity), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.silence(1000)
    frames = -(-needed_ms // FRAME_MS)  # the first whole frame that reaches the rule
    assert script.speech((frames - 1) * FRAME_MS) == []
    assert script.speech(FRAME_MS) == [BargeIn(at_ms=1000 + frames * FRAME_MS, onset_ms=1000)]
    assert detector.state is TurnState.CALLER_SPEAKING


def test_medium_ignores_a_short_backchannel_burst() -> None:
    detector = TurnDetector(settings(interruptionSensitivity="medium"), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.speech(240)  # "mm-hmm": under 300 ms
    script.silence(200)
    script.speech(240)
    assert not any(isinstance(event, BargeIn) for event in script.events)
    assert detector.state is TurnState.AGENT_SPEAKING


def test_low_needs_two_real_words_not_just_long_speech() -> None:
    detector = TurnDetector(settings(interruptionSensitivity="low"), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.speech(800)
    assert detector.on_transcript("uh-huh yeah okay", False, script.now) == [Acknowledged(at_ms=800)]
    script.speech(400)
    assert not any(isinstance(event, BargeIn) for event in script.events)
    assert detector.on_transcript("uh-huh yeah wait stop", False, script.now) == [
        BargeIn(at_ms=1200, onset_ms=0),
        InterruptionConfirmed(at_ms=1200),  # the words are already there: no pause, the agent yields at once
    ]


def test_low_words_before_enough_speech_barge_in_when_the_time_is_reached() -> None:
    detector = TurnDetector(settings(interruptionSensitivity="low"), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.speech(300)
    assert detector.on_transcript("hold on", False, script.now) == []
    assert script.speech(280) == []
    assert script.speech(20) == [BargeIn(at_ms=600, onset_ms=0), InterruptionConfirmed(at_ms=600)]


def test_false_interruption_when_no_words_follow_a_barge_in() -> None:
    detector = TurnDetector(settings(interruptionSensitivity="high"), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.speech(160)  # a cough
    assert script.events == [BargeIn(at_ms=160, onset_ms=0)]
    script.silence(980)
    assert script.events[1:] == []  # end of turn held back: no words yet
    assert script.silence(20) == [FalseInterruption(at_ms=1160)]
    assert detector.state is TurnState.LISTENING


def test_words_after_a_barge_in_release_the_held_end_of_turn() -> None:
    detector = TurnDetector(settings(interruptionSensitivity="medium"), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.speech(400)
    script.silence(500)
    assert script.events == [BargeIn(at_ms=300, onset_ms=0)]
    assert detector.on_transcript("wait", False, script.now) == [
        InterruptionConfirmed(at_ms=900),
        EndOfTurn(at_ms=900, speech_end_ms=400, after_barge_in=True),
    ]
    script.silence(2000)
    assert not any(isinstance(event, FalseInterruption) for event in script.events)


def test_backchannel_words_after_a_barge_in_do_not_confirm_it() -> None:
    detector = TurnDetector(settings(interruptionSensitivity="medium"), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.speech(400)  # a drawn-out "mm-hmm": long enough for medium
    assert script.events == [BargeIn(at_ms=300, onset_ms=0)]
    assert detector.on_transcript("mm-hmm", True, script.now) == []  # only a backchannel: the end of turn stays held
    script.silence(880)
    assert script.events[1:] == []
    assert script.silence(20) == [FalseInterruption(at_ms=1300)]  # the agent resumes
    assert detector.state is TurnState.LISTENING


def test_a_final_with_only_a_backchannel_resumes_the_agent_once_the_caller_stops() -> None:
    detector = TurnDetector(settings(interruptionSensitivity="medium"), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.speech(400)  # "uh-huh"
    assert detector.on_transcript("uh-huh", True, script.now) == []  # still speaking: not yet
    script.silence(200)
    assert detector.on_transcript("uh-huh", True, script.now) == [FalseInterruption(at_ms=600)]  # long before 1300
    assert detector.state is TurnState.LISTENING


def test_an_interim_without_words_does_not_resume_early() -> None:
    detector = TurnDetector(settings(interruptionSensitivity="medium"), wait_for_caller=False)
    detector.agent_started(0)
    script = Script(detector)
    script.speech(400)
    script.silence(200)
    assert detector.on_transcript("", False, script.now) == []  # interim: STT may still find words
    assert detector.on_transcript("wait", True, script.now) == [InterruptionConfirmed(at_ms=600)]
    script.silence(2000)
    assert not any(isinstance(event, FalseInterruption) for event in script.events)


def _frames(detector: TurnDetector, start_ms: int, ms: int, speech: bool, level: float) -> list[Event]:
    events: list[Event] = []
    for now in range(start_ms, start_ms + ms, FRAME_MS):
        events += detector.on_frame(now, speech, level)
    return events


@pytest.mark.parametrize(
    ("trim_db", "tail_ms", "floor", "speech_end_ms"),
    [
        (0, 60, 10, 1460),  # off: the turn-ending silence counts from the VAD's last speech frame
        (20, 60, 10, 1400),  # on: from the last frame within 20 dB of the caller's level
        (20, 300, 10, 1540),  # a long quiet tail on a quiet line (floor 40 dB down) is trimmed by at most 160 ms
        (20, 300, 40, 1620),  # … on a noisier line (floor 28 dB down) by at most 80 ms
    ],
)
def test_tail_trim_counts_the_silence_timeout_from_where_the_sound_faded(
    trim_db: int, tail_ms: int, floor: float, speech_end_ms: int
) -> None:
    detector = TurnDetector(settings(speechTailTrimDb=trim_db), wait_for_caller=False)
    _frames(detector, 0, 1000, False, floor)  # the line's floor
    events = _frames(detector, 1000, 400, True, 1000)  # words at the caller's level until 1400
    events += _frames(detector, 1400, tail_ms, True, 50)  # the VAD's tail: 26 dB down, yet "speech"
    events += _frames(detector, 1400 + tail_ms, 1000, False, floor)
    assert [e for e in events if isinstance(e, EndOfTurn)] == [
        EndOfTurn(at_ms=speech_end_ms + 500, speech_end_ms=speech_end_ms, after_barge_in=False)
    ]


def test_idle_timeouts_count_up_and_reset_when_the_caller_speaks() -> None:
    detector = TurnDetector(settings(idleTimeoutMs=3000), wait_for_caller=False)
    detector.agent_started(0)
    detector.agent_finished(1000)
    script = Script(detector, start_ms=1000)
    assert script.silence(2980) == []
    assert script.silence(20) == [SilenceTimeout(at_ms=4000, count=1)]
    assert script.silence(3000) == [SilenceTimeout(at_ms=7000, count=2)]
    script.speech(100)
    script.silence(500)
    detector.agent_started(script.now)
    detector.agent_finished(script.now)
    start = script.now
    assert script.silence(3000) == [SilenceTimeout(at_ms=start + 3000, count=1)]


def test_callee_first_arms_the_idle_timer_at_start() -> None:
    script = Script(TurnDetector(settings(idleTimeoutMs=2000), now_ms=0, wait_for_caller=True))
    assert script.silence(1980) == []
    assert script.silence(20) == [SilenceTimeout(at_ms=2000, count=1)]


def test_the_idle_timeout_is_not_the_turn_ending_silence() -> None:
    detector = TurnDetector(settings(silenceTimeoutMs=700, idleTimeoutMs=5000), wait_for_caller=False)
    detector.agent_started(0)
    detector.agent_finished(1000)
    script = Script(detector, start_ms=1000)
    assert script.silence(4980) == []  # 700 ms (or 5000 - 700) of silence means nothing while it is idle
    assert script.silence(20) == [SilenceTimeout(at_ms=6000, count=1)]


def test_no_idle_timeout_while_the_agent_is_speaking_or_thinking() -> None:
    detector = TurnDetector(settings(idleTimeoutMs=2000), wait_for_caller=True)
    script = Script(detector)
    script.speech(200)
    script.silence(600)  # end of turn at 700 ms: the agent is now thinking
    assert script.silence(5000) == []
    detector.agent_started(script.now)
    assert script.silence(5000) == []


def test_meaningful_words_skip_backchannels() -> None:
    backchannels = frozenset(["uh-huh", "uh huh", "yeah", "got it", "okay"])
    assert meaningful_words("Uh-huh, yeah. Got it!", backchannels) == 0
    assert meaningful_words("uh huh but wait", backchannels) == 2
    assert meaningful_words("okay stop talking", backchannels) == 2


def test_settings_resolve_agent_overrides_and_the_plan_cap() -> None:
    knobs = table()["knobs"]
    resolved = turn_settings(
        {"interruptionSensitivity": "low", "maxCallDurationSec": 3600, "silenceTimeoutMs": None, "idleTimeoutMs": 9000},
        max_call_duration_cap_sec=900,
    )
    low = table()["sensitivity"]["low"]
    assert (resolved.barge_in.min_speech_ms, resolved.barge_in.min_words) == (low["minSpeechMs"], low["minWords"])
    assert resolved.max_call_duration_sec == 900
    assert (resolved.silence_timeout_ms, resolved.endpointing_ms, resolved.idle_timeout_ms) == (
        knobs["silenceTimeoutMs"]["default"],  # None: the table's default
        knobs["endpointingMs"]["default"],
        9000,
    )


def test_every_knob_of_the_table_reaches_the_engine_with_the_tables_default() -> None:
    """config/turn_taking.yaml is the only source of defaults: a call without overrides runs on exactly its values."""
    knobs = table()["knobs"]
    assert set(KNOB_FIELDS) == set(knobs)
    plain = turn_settings()
    assert plain.silence_timeout_ms == knobs["silenceTimeoutMs"]["default"]
    assert plain.tail_trim_db == knobs["speechTailTrimDb"]["default"]
    assert plain.preemptive is (knobs["preemptiveGeneration"]["default"] == "on")
    medium = table()["sensitivity"][knobs["interruptionSensitivity"]["default"]]
    assert plain.barge_in.min_speech_ms == medium["minSpeechMs"]
    for knob, (field, _) in KNOB_FIELDS.items():
        if knob not in ("preemptiveGeneration", "interruptionSensitivity"):
            assert getattr(plain, field) == knobs[knob]["default"], knob


def test_a_table_with_a_knob_the_engine_does_not_know_or_lacks_is_refused() -> None:
    unknown = table()
    unknown["knobs"]["turboMode"] = {"default": 1}
    with pytest.raises(ValueError, match="turboMode"):
        TurnSettings.from_table(unknown)
    missing = table()
    del missing["knobs"]["speechTailTrimDb"]
    with pytest.raises(ValueError, match="speechTailTrimDb"):
        TurnSettings.from_table(missing)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"silenceTimeoutMs": 700, "endpointingMs": 200}, (700, 200)),  # the API reference's pairing: kept
        ({"silenceTimeoutMs": 400, "endpointingMs": 1000}, (400, 400)),  # a final after the turn ended: clamped
        ({"silenceTimeoutMs": 100}, (100, 100)),  # the default endpointing (300) is clamped too
        ({"endpointingMs": 500}, (500, 500)),  # equal is fine
    ],
)
def test_endpointing_is_clamped_to_the_silence_timeout(overrides: dict, expected: tuple[int, int]) -> None:
    resolved = settings(**overrides)
    assert (resolved.silence_timeout_ms, resolved.endpointing_ms) == expected


def test_a_caller_resuming_one_frame_before_the_vad_says_so_keeps_the_turn() -> None:
    """The tail trim finds where the words stopped; the VAD finds where they start again a frame or two late. A pause
    just under the threshold must not end the turn on that frame: the sudden rise in level holds it."""
    detector = TurnDetector(settings(silenceTimeoutMs=400, speechTailTrimDb=20), wait_for_caller=False)
    _frames(detector, 0, 1000, False, 10)
    events = _frames(detector, 1000, 500, True, 1000)  # "Hi!"
    events += _frames(detector, 1500, 380, False, 0)  # a 380 ms pause (the carrier's digital silence)
    events += _frames(detector, 1880, 40, False, 1000)  # "What…": loud, the VAD two frames behind
    events += _frames(detector, 1920, 800, True, 1000)
    events += _frames(detector, 2720, 1000, False, 10)
    assert [e for e in events if isinstance(e, EndOfTurn)] == [
        EndOfTurn(at_ms=2720 + 400, speech_end_ms=2720, after_barge_in=False)
    ]
