"""The call session with scripted providers and a simulated far end, in loop time (looptime)."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.context import Persona
from pipelines.session import CallSession, SessionConfig
from providers.base import STTSession
from providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.fake_transport import Caller, EnergyVad, FarEnd
from tests.turn_table import turn_settings

pytestmark = pytest.mark.looptime

# The knobs and sensitivity rules these timings are written for; the rest is config/turn_taking.yaml's.
KNOBS = {
    "silenceTimeoutMs": 500,
    "endpointingMs": 300,
    "idleTimeoutMs": 5000,
    "maxCallDurationSec": 600,
    "interruptionSensitivity": "medium",
    "speechStartMs": 60,
    "speechGapToleranceMs": 80,
    "falseInterruptionTimeoutMs": 1000,
    "preemptiveGeneration": "off",
    "speechTailTrimDb": 0,
}
RULES = {"high": {"minSpeechMs": 150, "minWords": 0}, "medium": {"minSpeechMs": 300, "minWords": 0}}
LONG_REPLY = (
    "Our clinic opens at eight in the morning. We close at six in the evening. "
    "On Saturdays we open at nine. On Sundays we are closed. Is there anything else?"
)


def config(**turn: object) -> SessionConfig:
    opening = str(turn.pop("opening", "agent_first"))
    return SessionConfig(
        persona=Persona(system_prompt="You are the clinic's receptionist.", greeting="Hello, clinic here."),
        opening_mode=opening,
        turn=turn_settings({**KNOBS, **turn}, sensitivity=RULES),
    )


async def start(cfg: SessionConfig, stt: ScriptedSTT, llm: ScriptedLLM, tts: ScriptedTTS | None = None):
    far = FarEnd()
    session = CallSession(cfg, stt=stt, llm=llm, tts=tts or ScriptedTTS(), sink=far, vad=EnergyVad())
    far.start(session)
    await session.start()
    return session, far, Caller(session)


async def finish(session: CallSession, far: FarEnd, reason: str = "caller_hangup"):
    result = await session.close(reason)
    await far.stop()
    return result


async def test_agent_first_greets_at_once_and_records_it_once_heard() -> None:
    session, far, caller = await start(config(), ScriptedSTT(), ScriptedLLM())
    await caller.silence(3000)
    assert far.times("media") and far.times("media")[0] < 0.05
    result = await finish(session, far)
    assert [entry["role"] for entry in result.transcript] == ["assistant"]
    assert result.transcript[0]["text"] == "Hello, clinic here."


async def test_the_greeting_does_not_wait_for_a_slow_recognizer_to_connect() -> None:
    class SlowConnectSTT(ScriptedSTT):
        async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
            await asyncio.sleep(2.0)  # a network STT's handshake, here a slow one
            return await super().open_session(language=language, endpointing_ms=endpointing_ms)

    llm = ScriptedLLM(["We open at eight.", "Summary. Sentiment: neutral"])
    session, far, caller = await start(config(), SlowConnectSTT("When do you open?"), llm)
    assert far.times("media") and far.times("media")[0] < 0.05  # greeted while the recognizer connected
    await caller.silence(3000)
    await caller.say(1000)
    await caller.silence(2000)
    result = await finish(session, far)
    assert [(e["role"], e["text"]) for e in result.transcript if e["role"] != "event"] == [
        ("assistant", "Hello, clinic here."),
        ("user", "When do you open?"),
        ("assistant", "We open at eight."),
    ]


async def test_callee_first_waits_then_greets_after_the_idle_timeout() -> None:
    session, far, caller = await start(config(opening="callee_first", idleTimeoutMs=3000), ScriptedSTT(), ScriptedLLM())
    await caller.silence(2900)
    assert far.times("media") == []
    await caller.silence(400)
    assert far.times("media") and 3.0 <= far.times("media")[0] <= 3.1
    await finish(session, far)


async def test_the_call_record_shows_how_long_the_llm_took_to_its_first_sentence() -> None:
    """The caller waits for TTS, and TTS waits for a whole first sentence: a slow one is visible per turn."""
    llm = ScriptedLLM(["We open at eight tomorrow morning. Bye now.", "x"], latency_ms=100, token_interval_ms=50)
    session, far, caller = await start(config(opening="callee_first"), ScriptedSTT("When do you open?"), llm)
    await caller.silence(200)
    await caller.say(1000)
    await caller.silence(3000)
    turn = (await finish(session, far)).turns[0]
    assert turn["llm_ttft"] == pytest.approx(100, abs=1)
    # six words (five gaps), and one more token to see that "morning." ended a sentence (not "3.5" or "Dr.")
    assert turn["llm_first_sentence"] == pytest.approx(100 + 6 * 50, abs=1)


async def test_a_full_turn_answers_from_the_context_with_metrics() -> None:
    stt, llm = (
        ScriptedSTT("When do you open?"),
        ScriptedLLM(["We open at eight.", "Asked about hours. Sentiment: neutral"]),
    )
    session, far, caller = await start(config(opening="callee_first"), stt, llm)
    await caller.silence(200)
    await caller.say(1000)
    speech_end = asyncio.get_running_loop().time()
    await caller.silence(3000)
    result = await finish(session, far)
    first_reply_audio = next(t for t in far.times("media") if t > speech_end)
    assert 0.5 <= first_reply_audio - speech_end <= 0.6  # silenceTimeoutMs 500 + zero-latency providers
    assert llm.requests[0][0].role == "system" and "receptionist" in llm.requests[0][0].content
    # the system prompt at call start, then the conversation once the reply has played (for the next turn)
    assert llm.prefilled[0] == [llm.requests[0][0]]
    assert [(m.role, m.content) for m in llm.prefilled[-1][1:]] == [
        ("user", "When do you open?"),
        ("assistant", "We open at eight."),
    ]
    assert llm.requests[0][-1].content == "When do you open?"
    assert [(e["role"], e["text"]) for e in result.transcript] == [
        ("user", "When do you open?"),
        ("assistant", "We open at eight."),
    ]
    turn = result.turns[0]
    assert turn["end_of_turn_delay"] == 500 and not turn["interrupted"]
    assert 500 <= turn["e2e_latency"] <= 600
    assert turn["llm_ttft"] is not None and turn["tts_ttfb"] is not None
    assert result.metrics["e2e_latency"]["count"] == 1
    assert (result.summary, result.sentiment) == ("Asked about hours.", "neutral")
    assert result.usage["tokens"] > 0 and result.usage["ttsChars"] == len("We open at eight.")


async def test_a_hesitation_is_one_turn_although_the_recognizer_finalized_each_part() -> None:
    stt = ScriptedSTT(["I'd like to", "book a table."])
    llm = ScriptedLLM(["For when?", "Summary. Sentiment: neutral"])
    cfg = config(opening="callee_first", silenceTimeoutMs=700, endpointingMs=200)
    session, far, caller = await start(cfg, stt, llm)
    await caller.silence(200)
    await caller.say(600)
    await caller.silence(400)  # finalized by the recognizer after 200 ms; the turn goes on
    await caller.say(600)
    speech_end = asyncio.get_running_loop().time()
    await caller.silence(3000)
    result = await finish(session, far)
    assert stt.sessions[0].endpointing_ms == 200  # the agent's endpointingMs reached the recognizer
    assert [(e["role"], e["text"]) for e in result.transcript] == [
        ("user", "I'd like to book a table."),
        ("assistant", "For when?"),
    ]
    assert len(llm.requests) == 1 + 1  # one answer (and the summary)
    [turn] = result.turns
    assert turn["end_of_turn_delay"] == 700
    first_reply_audio = next(t for t in far.times("media") if t > speech_end)
    assert 0.7 <= first_reply_audio - speech_end <= 0.75


async def test_barge_in_clears_cancels_and_keeps_only_what_was_heard() -> None:
    stt = ScriptedSTT(["What are your hours?", "Wait, are you open on Sunday?"])
    llm = ScriptedLLM([LONG_REPLY, "No, we are closed on Sundays.", "Summary. Sentiment: neutral"], token_interval_ms=5)
    tts = ScriptedTTS(realtime_factor=0.05)
    session, far, caller = await start(config(opening="callee_first"), stt, llm, tts)
    await caller.say(800)
    await caller.silence(500 + 2500)  # the agent is two and a half seconds into its long reply
    onset = await caller.say(400)
    await caller.silence(100)
    clears = far.times("clear")
    assert len(clears) == 1 and 0.299 <= clears[0] - onset <= 0.35  # medium: 300 ms of speech, then at once
    assert llm.active_streams == 0 and tts.active_streams == 0
    await caller.silence(2000)
    result = await finish(session, far)
    interrupted = [e for e in result.transcript if e["role"] == "assistant" and e.get("interrupted")]
    assert len(interrupted) == 1
    heard = interrupted[0]["text"]
    assert heard and LONG_REPLY.startswith(heard) and len(heard) < len(LONG_REPLY) / 2
    assert llm.requests[1][-2].content == heard  # the LLM only remembers what the caller heard
    assert result.turns[0]["interrupted"] is True


async def test_a_cough_pauses_the_agent_then_it_carries_on_where_it_stopped() -> None:
    stt = ScriptedSTT(["What are your hours?", ""])  # the second "utterance" has no words: a cough
    llm = ScriptedLLM(LONG_REPLY)
    session, far, caller = await start(
        config(opening="callee_first", interruptionSensitivity="high"), stt, llm, ScriptedTTS(realtime_factor=0.05)
    )
    await caller.say(800)
    await caller.silence(3500)
    await caller.say(200)
    cleared = far.times("clear")[0]
    await caller.silence(3000)
    resumed = [t for t in far.times("media") if t > cleared]
    assert resumed and 1.0 <= resumed[0] - cleared <= 1.2  # the false-interruption timeout
    await caller.silence(6000)
    result = await finish(session, far)
    assert any(e["role"] == "event" and e.get("type") == "resume" for e in result.transcript)
    assert len(llm.requests) == 1 + 1  # no new answer for the cough (the other request is the summary)
    said = [(e["text"], e.get("interrupted", False)) for e in result.transcript if e["role"] == "assistant"]
    assert said == [(LONG_REPLY, False)]  # heard in full, nothing repeated


async def _long_reply_call(
    backchannel_ms: int, stt_latency_ms: float = 0
) -> tuple[FarEnd, ScriptedLLM, ScriptedTTS, list[dict]]:
    stt = ScriptedSTT(["What are your hours?", *(["uh-huh"] if backchannel_ms else []), "Thanks."], stt_latency_ms)
    llm = ScriptedLLM([LONG_REPLY, "You're welcome.", "Summary. Sentiment: neutral"])
    tts = ScriptedTTS(realtime_factor=0.05)
    session, far, caller = await start(config(opening="callee_first"), stt, llm, tts)
    await caller.say(800)
    await caller.silence(500 + 2500 + int(stt_latency_ms))  # the agent is two and a half seconds into its long reply
    if backchannel_ms:
        await caller.say(backchannel_ms)
    await caller.silence(10_000)  # the reply plays to its end (before any reprompt)
    await caller.say(600)
    await caller.silence(3000 + int(stt_latency_ms))
    result = await finish(session, far)
    return far, llm, tts, result.transcript


@pytest.mark.parametrize(
    ("stt_latency_ms", "clears"),
    [(0, 0), (400, 1)],  # STT's "uh-huh" in time: the agent never stops; late: it pauses, then carries on
    ids=["words-in-time", "words-late"],
)
async def test_a_backchannel_never_loses_or_repeats_the_agents_audio(stt_latency_ms: float, clears: int) -> None:
    plain_far, _, plain_tts, plain = await _long_reply_call(0, stt_latency_ms)
    far, llm, tts, transcript = await _long_reply_call(400, stt_latency_ms)  # "uh-huh", over the 300 ms rule
    assert len(far.times("clear")) == clears
    assert far.audio_ms_played == plain_far.audio_ms_played  # every millisecond of the reply played, once
    assert tts.requests == plain_tts.requests  # no sentence synthesized twice
    said = [(e["text"], e.get("interrupted", False)) for e in transcript if e["role"] == "assistant"]
    assert said == [(e["text"], False) for e in plain if e["role"] == "assistant"]
    users = [e["text"] for e in transcript if e["role"] == "user"]
    assert users == ["What are your hours?", "Thanks."]  # "uh-huh" never became a turn of its own or a prefix
    assert len(llm.requests) == 2 + 1  # two answers and the summary: the reply's LLM stream was never restarted


async def test_silence_reprompts_then_says_goodbye_and_ends() -> None:
    session, far, caller = await start(config(idleTimeoutMs=3000), ScriptedSTT(), ScriptedLLM())
    caller_task = asyncio.ensure_future(caller.silence(30_000))
    reason = await asyncio.wait_for(session.wait_ended(), 30)
    assert reason == "silence_timeout" and far.closed_reason == "silence_timeout"
    caller_task.cancel()
    result = await finish(session, far, "socket_closed")
    said = [e["text"] for e in result.transcript if e["role"] == "assistant"]
    assert said == ["Hello, clinic here.", "Are you still there?", session.config.goodbye_silence]
    assert result.end_reason == "silence_timeout"


async def test_max_duration_says_goodbye_and_ends() -> None:
    session, far, caller = await start(config(maxCallDurationSec=30, idleTimeoutMs=60000), ScriptedSTT(), ScriptedLLM())
    caller_task = asyncio.ensure_future(caller.silence(40_000))
    reason = await asyncio.wait_for(session.wait_ended(), 40)
    caller_task.cancel()
    assert reason == "max_duration"
    goodbye_at = far.times("media")[-1]
    assert 30 <= goodbye_at <= 35
    result = await finish(session, far, "socket_closed")
    assert result.transcript[-1]["text"] == session.config.goodbye_max_duration


async def test_no_task_is_left_running_after_the_call() -> None:
    before = asyncio.all_tasks()
    stt, llm = ScriptedSTT("Hi"), ScriptedLLM(LONG_REPLY, token_interval_ms=50)
    session, far, caller = await start(config(), stt, llm, ScriptedTTS(realtime_factor=0.2))
    await caller.say(600)
    await caller.silence(700)  # the reply is streaming when the caller hangs up
    await finish(session, far)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
    assert llm.active_streams == 0
