"""The two decisions words make: whether caller sound over the agent stops it, and when a caller's turn ends.

Exact frame-by-frame expectations on the pure detector (pipelines/turn_detector.py) with the rules of
config/turn_taking.yaml's shape: medium waits ``wordWaitMs`` for STT's first words before pausing the agent,
and ``turnDetection: model`` ends a complete thought sooner and an unfinished one later than the silence alone.
"""

from __future__ import annotations

from pipelines.turn_detector import (
    Acknowledged,
    BargeIn,
    EndOfTurn,
    InterruptionConfirmed,
    TurnDetector,
    TurnState,
)
from tests.test_turn_detector import BACKCHANNELS, KNOBS, Script
from tests.turn_table import turn_settings

RULES = {
    "high": {"minSpeechMs": 20, "minWords": 0},
    "medium": {"minSpeechMs": 60, "minWords": 0, "wordWaitMs": 80},
    "low": {"minSpeechMs": 600, "minWords": 2},
}


def detector(**knobs: object) -> TurnDetector:
    settings = turn_settings({**KNOBS, **knobs}, sensitivity=RULES, backchannels=BACKCHANNELS)
    return TurnDetector(settings, wait_for_caller=False)


def speaking_agent() -> tuple[TurnDetector, Script]:
    turn = detector()
    turn.agent_started(0)
    return turn, Script(turn)


def test_a_backchannel_heard_in_time_never_stops_the_agent() -> None:
    turn, script = speaking_agent()
    script.speech(80)
    assert turn.on_transcript("uh-huh", False, script.now) == [Acknowledged(at_ms=80)]
    script.speech(700)  # however long the "mm-hmm, yeah, right" goes on
    assert not any(isinstance(event, BargeIn) for event in script.events)
    assert turn.state is TurnState.AGENT_SPEAKING


def test_real_words_stop_the_agent_at_once_and_for_good() -> None:
    turn, script = speaking_agent()
    script.speech(80)
    assert turn.on_transcript("wait, stop", False, script.now) == [
        BargeIn(at_ms=80, onset_ms=0),
        InterruptionConfirmed(at_ms=80),
    ]


def test_a_backchannel_that_becomes_an_interruption_stops_the_agent() -> None:
    turn, script = speaking_agent()
    script.speech(80)
    turn.on_transcript("yeah", False, script.now)
    script.speech(300)
    assert turn.on_transcript("yeah but wait", False, script.now) == [
        BargeIn(at_ms=380, onset_ms=0),
        InterruptionConfirmed(at_ms=380),
    ]


def test_without_words_the_agent_pauses_after_min_speech_plus_the_word_wait() -> None:
    _, script = speaking_agent()
    assert script.speech(120) == []  # 60 ms rule + up to 80 ms for words
    assert script.speech(20) == [BargeIn(at_ms=140, onset_ms=0)]  # paused; words will confirm or resume


def test_a_short_sound_over_the_agent_is_ignored() -> None:
    turn, script = speaking_agent()
    script.speech(100)  # a cough: over the 60 ms rule, gone before the word wait ran out
    script.silence(400)
    assert script.events == []
    assert turn.state is TurnState.AGENT_SPEAKING


def _turn_end(text: str, **knobs: object) -> int:
    """Media time of the end of a 1 s caller turn whose STT says ``text``, then silence."""
    turn = detector(silenceTimeoutMs=700, **knobs)
    script = Script(turn)
    script.speech(1000)
    turn.on_transcript(text, True, script.now)
    ends = [e for e in script.silence(3000) if isinstance(e, EndOfTurn)]
    assert len(ends) == 1 and ends[0].speech_end_ms == 1000
    return ends[0].at_ms - 1000


def test_silence_detection_ignores_the_words() -> None:
    assert _turn_end("What time do you open tomorrow?") == 700
    assert _turn_end("and then I") == 700


def test_model_answers_a_complete_thought_sooner_and_waits_for_an_unfinished_one() -> None:
    model = {"turnDetection": "model", "completeTurnSilenceMs": 250, "incompleteTurnSilenceMs": 1500}
    assert _turn_end("What time do you open tomorrow?", **model) == 260  # 250 ms, at a 20 ms frame boundary
    assert _turn_end("my number is four one five", **model) == 1500
    assert _turn_end("I was wondering if um", **model) == 1500
    assert _turn_end("sure thing", **model) == 700  # not sure either way: the agent's silenceTimeoutMs


def test_model_never_goes_past_the_agents_own_silence_limits() -> None:
    knobs = {"turnDetection": "model", "completeTurnSilenceMs": 900, "incompleteTurnSilenceMs": 300}
    assert _turn_end("What time do you open tomorrow?", **knobs) == 700
    assert _turn_end("and then I", **knobs) == 700


def test_speech_after_a_barge_in_turn_that_waits_for_words_is_the_same_turn() -> None:
    turn, script = speaking_agent()
    script.speech(300)  # paused at 140 ms: no words yet
    script.silence(600)  # the turn ends, held until words tell whether it was real
    assert [type(e) for e in script.events] == [BargeIn]
    script.speech(200)  # the caller goes on before the false-interruption deadline
    assert turn.state is TurnState.CALLER_SPEAKING
    events = turn.on_transcript("wait, I need to change it", False, script.now)
    assert [type(e) for e in events] == [InterruptionConfirmed]
    script.silence(600)
    ends = [e for e in script.events if isinstance(e, EndOfTurn)]
    assert len(ends) == 1 and ends[0].after_barge_in  # one turn, answered as the interruption it was
