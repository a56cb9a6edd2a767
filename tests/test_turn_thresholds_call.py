"""The API reference's thresholds on a whole call: ``silenceTimeoutMs`` ends the turn, ``endpointingMs`` only
paces the recognizer's finals.

Real server on 127.0.0.1, the simulated Twilio caller over a real WebSocket, the scripted providers (zero
latency) and the real VAD. The agent has ``{"silenceTimeoutMs": 700, "endpointingMs": 200}``; the caller says
one sentence with a 400 ms hesitation inside it.
"""

from __future__ import annotations

import asyncio

import pytest

from pipelines.audio import frame_rms, ulaw_to_pcm16
from providers.scripted import ScriptedSTTSession
from scripts.twilio_sim import CallerAudio, SimulatedCall
from tests.telephony import make_line, spoken, with_pause
from tests.test_telephony_stream import config, finalized

pytestmark = pytest.mark.scripted_providers

FIRST, SECOND = "I'd like to", "book a table for two."
HESITATION_MS = 400
LOUD_RMS = 500  # what the scripted recognizer counts as sound (providers/scripted.py)


def _last_loud_frame(clip: CallerAudio) -> int:
    """The last frame the scripted recognizer hears as sound: its endpointing counts from the end of it."""
    return max(i for i, frame in enumerate(clip.frames) if frame_rms(ulaw_to_pcm16(frame)) >= LOUD_RMS)


async def test_a_hesitation_is_one_turn_that_ends_at_the_silence_timeout_while_finals_come_at_endpointing(
    server, services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.db.providers.update_one(  # this test's own database: the recognizer hears the two phrases
        {"orgId": None, "providerKey": "scripted", "category": "stt"},
        {"$set": {"settings.transcripts": f"{FIRST}|{SECOND}"}},
    )
    finals: list[tuple[float, str, int]] = []  # (loop time, text, the session's endpointing) of each own final
    close_utterance = ScriptedSTTSession._close_utterance

    def record(self: ScriptedSTTSession) -> None:
        finals.append((asyncio.get_running_loop().time(), self._text or "", self.endpointing_ms))
        close_utterance(self)

    async def engine_finalize(self: ScriptedSTTSession) -> None:  # the engine's request, kept out of ``finals``
        close_utterance(self)

    monkeypatch.setattr(ScriptedSTTSession, "_close_utterance", record)
    monkeypatch.setattr(ScriptedSTTSession, "finalize", engine_finalize)

    first, second = spoken(FIRST), spoken(SECOND)
    gap = HESITATION_MS // 20
    sentence = with_pause(first, second, HESITATION_MS)
    line = await make_line(server, services, thresholds={"silenceTimeoutMs": 700, "endpointingMs": 200})
    assert line.agent["thresholds"]["silenceTimeoutMs"] == 700 and line.agent["thresholds"]["endpointingMs"] == 200
    call = SimulatedCall(config(server, line))
    assert await call.dial()
    assert await call.wait_for_agent_silence(timeout=10)  # the greeting
    assert await call.say(sentence) is not None
    assert await call.wait_for_agent_silence(timeout=10)  # the answer
    await call.hangup()
    result = call.result()
    stream = call.stream
    assert stream is not None
    onset = stream.turns[-1].onset  # the first frame of the sentence carries the sound of [onset, onset + 20 ms)
    await call.close()

    def sound_end(frame: int) -> float:  # loop time at which frame ``frame`` of the sentence was sent
        return onset + (frame + 1) * 0.02

    first_end, second_start = sound_end(len(first.frames) - 1), sound_end(len(first.frames) + gap - 1)
    speech_end = sound_end(len(sentence.frames) - 1)
    # The recognizer finalized each phrase 200 ms after its sound ended: the first inside the hesitation.
    assert [(text, ms) for _, text, ms in finals] == [(FIRST, 200), (SECOND, 200)]
    first_loud_end = sound_end(_last_loud_frame(first))
    second_loud_end = sound_end(len(first.frames) + gap + _last_loud_frame(second))
    slack = result.max_send_lag_ms / 1000  # a busy loop sends the caller's frames late
    assert 0.19 - slack <= finals[0][0] - first_loud_end <= 0.28 + slack and finals[0][0] < second_start
    assert 0.19 - slack <= finals[1][0] - second_loud_end <= 0.28 + slack
    # ... yet the agent did not answer the hesitation: nothing was heard until well after the sentence ended.
    assert stream.playback.audible_since(first_end, before=speech_end + 0.6) is None
    [turn] = result.turns  # the caller's one utterance
    assert result.violations == [] and not turn.interrupted_agent
    assert turn.latency_ms is not None and 650 <= turn.latency_ms < 1000 + 1000 * slack, turn.latency_ms

    record = await finalized(services, result.custom_parameters["callId"])
    said = [(entry["role"], entry["text"]) for entry in record["transcript"] if entry["role"] != "event"]
    assert said == [
        ("assistant", "Hello from Voicex."),
        ("user", f"{FIRST} {SECOND}"),  # one turn: both finals
        ("assistant", "Sure, I can help with that."),
    ]
    [metrics] = record["turns"]
    assert 700 <= metrics["end_of_turn_delay"] < 800  # the silence timeout, not the 200 ms endpointing
    # the server's speech end → first agent audio out (on the loop's clock, so a few ms either side of the 700)
    assert 680 - 1000 * slack <= metrics["e2e_latency"] < 900 + 1000 * slack
    assert metrics["stt_final_latency"] < 50  # the words were final before the turn ended: nothing to wait for
