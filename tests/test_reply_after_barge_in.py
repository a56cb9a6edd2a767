"""The reply to an interruption comes as soon as the reply to a plain turn: silenceTimeoutMs after the caller stops.

The whole session in loop time with the default VAD (config/turn_taking.yaml), the scripted providers, spoken
caller audio and a line noise floor the scripted recognizer takes for sound (−34 dBFS: it keeps an utterance open
between the caller's words, as a real recognizer may hear a noisy line). So the recognizer has already sent the
interruption's words (its interim for the utterance in progress) when the agent's barge-in registers, and has nothing
new to send until the caller stops. Before the fix the barge-in then waited for *new* words, got none within
falseInterruptionTimeoutMs, and the agent resumed its old reply over the caller: the interruption went unanswered,
and what the caller heard after it was the old reply coming back (here 260 ms later than a normal reply; anywhere
from talking over the caller to ~1 s late, by the interruption's length) instead of an answer.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest

from pipelines.context import Persona
from pipelines.session import CallSession, SessionConfig
from providers import scripted
from providers.base import ChatMessage, LLMChunk, LLMOptions
from providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from scripts.twilio_sim import CallerAudio, LineNoise
from tests.fake_transport import FRAME, Caller, EnergyVad, FarEnd
from tests.telephony import spoken
from tests.test_session_line import start_session
from tests.turn_table import turn_settings

pytestmark = [
    pytest.mark.looptime,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the caller's speech needs espeak-ng"),
]

THRESHOLD_MS = 200  # the agent's silenceTimeoutMs
NOISE_DBFS = -34.0
QUESTION, INTERRUPTION = "What are your hours?", "Wait, are you open on Sunday?"  # 1.8 s of speech
LONG_REPLY = (
    "Our clinic opens at eight in the morning. We close at six in the evening. "
    "On Saturdays we open at nine. On Sundays we are closed. Is there anything else?"
)
SUNDAY = "No, we are closed on Sundays."


class AnsweringLLM(ScriptedLLM):
    """Answers by the caller's last words: held answers, started while the caller pauses, do not shift a script."""

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        self.requests.append(list(messages))
        answer = {QUESTION: LONG_REPLY, INTERRUPTION: SUNDAY}.get(messages[-1].content, "Summary. Sentiment: neutral")
        async for chunk in ScriptedLLM(answer).stream_chat(messages, options):
            yield chunk


class NoisyLineCaller:
    """One μ-law frame per 20 ms of loop time, over the line's noise floor (the simulated Twilio caller's)."""

    def __init__(self, session: CallSession, noise: LineNoise) -> None:
        self.session, self.noise = session, noise

    async def line(self, ms: int) -> None:
        for _ in range(ms // 20):
            await asyncio.sleep(FRAME)
            self.session.push_audio(self.noise.frame())

    async def say(self, clip: CallerAudio) -> float:
        """Speak ``clip`` over the floor; returns the loop time its last frame (the end of the words) arrived."""
        for frame in clip.frames:
            await asyncio.sleep(FRAME)
            self.session.push_audio(self.noise.under(frame))
        return asyncio.get_running_loop().time()


async def _call(preemptive: str) -> tuple[float, float, list[float], AnsweringLLM, list[dict]]:
    """A plain turn, then an interruption of the agent's reply 300 ms into its sound: each reply's delay (s), and
    the loop times of agent audio sent while the caller was interrupting."""
    stt = ScriptedSTT([QUESTION, INTERRUPTION])
    llm = AnsweringLLM()
    knobs = {"silenceTimeoutMs": THRESHOLD_MS, "preemptiveGeneration": preemptive}
    session, far = await start_session(stt, llm, greeting="Hello.", **knobs)
    caller = NoisyLineCaller(session, LineNoise(NOISE_DBFS))
    await caller.line(1000)
    asked = await caller.say(spoken(QUESTION))
    await caller.line(THRESHOLD_MS + 300)  # the reply starts at the threshold; the caller talks 300 ms into it
    assert [t for t in far.times("media") if t > asked], "no reply to the question"
    interruption = spoken(INTERRUPTION)
    interrupted = await caller.say(interruption)
    await caller.line(3000)
    cleared = next(t for t in far.times("clear") if t > interrupted - interruption.duration_ms / 1000)
    over_caller = [t for t in far.times("media") if cleared < t < interrupted]
    result = await session.close("caller_hangup")
    await far.stop()

    def reply_delay(ended: float) -> float:
        return next(t for t in far.times("media") if t > ended) - ended

    return reply_delay(asked), reply_delay(interrupted), over_caller, llm, result.transcript


@pytest.mark.parametrize("preemptive", ["on", "off"])
async def test_the_reply_to_an_interruption_starts_as_fast_as_a_normal_reply(preemptive: str) -> None:
    normal, after_barge_in, over_caller, llm, transcript = await _call(preemptive)
    threshold = THRESHOLD_MS / 1000
    assert normal - threshold < 0.06, normal  # the plain turn: at the threshold, plus the VAD's frames
    assert after_barge_in <= normal + 2 * FRAME, (normal, after_barge_in)  # the interruption: just as fast
    assert over_caller == []  # once stopped, the agent stayed quiet while the caller spoke
    # …and what came is the answer to the interruption, not the old reply coming back
    assert [r[-1].content for r in llm.requests if r[-1].content == INTERRUPTION]
    said = [(e["role"], e["text"], e.get("interrupted", False)) for e in transcript if e["role"] != "event"]
    assert said[:2] == [("user", QUESTION, False), ("assistant", said[1][1], True)]
    assert LONG_REPLY.startswith(said[1][1]) and said[1][1] != LONG_REPLY  # only what was heard of it
    assert said[2:] == [("user", INTERRUPTION, False), ("assistant", SUNDAY, False)]


async def test_the_reply_to_an_interruption_whose_words_came_late_can_itself_be_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Words that come only with the recognizer's final, after the caller stopped, confirm the barge-in and end the
    turn at once; the interrupted reply is given up before the answer starts, so the answer is the call's reply
    and a second interruption stops it (it once went on talking over the caller)."""
    monkeypatch.setattr(scripted, "_INTERIM_AFTER_MS", 10**9)  # no interims: the first interruption's words are final
    stt = ScriptedSTT([QUESTION, INTERRUPTION, "Stop, that's not what I asked."])
    llm = ScriptedLLM([LONG_REPLY, LONG_REPLY, "Sorry.", "Summary. Sentiment: neutral"])
    config = SessionConfig(
        persona=Persona(system_prompt="You are the clinic's receptionist.", greeting="Hello."),
        opening_mode="callee_first",
        turn=turn_settings({"silenceTimeoutMs": THRESHOLD_MS, "idleTimeoutMs": 20000, "preemptiveGeneration": "off"}),
    )
    far = FarEnd()
    session = CallSession(config, stt=stt, llm=llm, tts=ScriptedTTS(realtime_factor=0.05), sink=far, vad=EnergyVad())
    far.start(session)
    await session.start()
    caller = Caller(session)
    await caller.silence(500)
    await caller.say(800)
    await caller.silence(THRESHOLD_MS + 500)  # the agent is half a second into its long reply
    await caller.say(400)  # "Wait…": paused at once, confirmed by the final only after the caller stopped
    await caller.silence(THRESHOLD_MS + 800)
    assert len(llm.requests) == 2  # the interruption was answered…
    monkeypatch.setattr(scripted, "_INTERIM_AFTER_MS", 100)  # (words while the caller speaks, from here on)
    second = await caller.say(1200)  # …and that answer is interrupted in turn, its words coming at once
    cleared = next(t for t in far.times("clear") if t > second)
    spoke_over = [t for t in far.times("media") if cleared < t < second + 1.2]
    await caller.silence(2000)
    result = await session.close("caller_hangup")
    await far.stop()
    assert spoke_over == []  # the agent stayed quiet while the caller spoke
    said = [(e["role"], e.get("interrupted", False)) for e in result.transcript if e["role"] != "event"]
    interrupted_twice = [("user", False), ("assistant", True)] * 2
    assert said == [*interrupted_twice, ("user", False), ("assistant", False)]
