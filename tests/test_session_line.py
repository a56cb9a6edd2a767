"""What callers on real lines hear, through the whole session with the default VAD (config/turn_taking.yaml).

Spoken audio (espeak-ng through the telephone band and μ-law), line noise after the carrier's digital silence,
and scripted providers, in loop time: the session's own path decides every frame, as on a call.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from pipelines.audio import TELEPHONY_RATE, Resampler, pcm16_to_ulaw
from pipelines.context import Persona
from pipelines.session import CallSession, SessionConfig
from pipelines.vad import make_vad
from providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.fake_transport import FRAME, FarEnd
from tests.turn_table import turn_settings

pytestmark = pytest.mark.looptime

DIGITAL_SILENCE = b"\xff" * 160  # μ-law's zero: what carriers send while a line is muted or suppressed
LONG_REPLY = (
    "Our clinic opens at eight in the morning. We close at six in the evening. "
    "On Saturdays we open at nine. On Sundays we are closed. Is there anything else?"
)


def _speak(text: str, tmp: Path, level_dbfs: float = -24.0) -> np.ndarray:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is required (scripts/bootstrap.sh installs it)")
    path = tmp / f"{abs(hash(text))}.wav"
    subprocess.run([espeak, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    with wave.open(str(path), "rb") as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    resampler = Resampler(rate, TELEPHONY_RATE)
    audio = np.frombuffer(resampler.process(pcm) + resampler.flush(), dtype="<i2").astype(np.float64)
    sounding = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
    audio = audio[sounding[0] : sounding[-1] + 1]  # the words only: "ended" is when the caller stopped
    loud = audio[np.abs(audio) > 0.05 * np.abs(audio).max()]
    return audio * (10 ** (level_dbfs / 20) * 32768 / np.sqrt(np.mean(loud**2)))


def _noise(seconds: float, dbfs: float, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 10 ** (dbfs / 20) * 32768, int(seconds * TELEPHONY_RATE))


def _frames(audio: np.ndarray) -> list[bytes]:
    pcm = np.clip(audio, -32768, 32767).round().astype("<i2").tobytes()
    pcm += bytes(-len(pcm) % 320)
    return [pcm16_to_ulaw(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]


class LineCaller:
    """Sends μ-law frames in loop time, one per 20 ms, over a steady line-noise floor."""

    def __init__(self, session: CallSession, floor_dbfs: float = -65.0) -> None:
        self.session, self.floor_dbfs, self.sent = session, floor_dbfs, 0

    async def play(self, frames: list[bytes]) -> None:
        for frame in frames:
            await asyncio.sleep(FRAME)
            self.session.push_audio(frame)
            self.sent += 1

    async def line(self, seconds: float) -> None:
        await self.play(_frames(_noise(seconds, self.floor_dbfs, seed=self.sent)))

    async def say(self, speech: np.ndarray) -> float:
        """Speak over the line's floor; returns the loop time the speech ended."""
        await self.play(_frames(speech + _noise(len(speech) / TELEPHONY_RATE, self.floor_dbfs, seed=self.sent)))
        return asyncio.get_running_loop().time()


async def start_session(
    stt: ScriptedSTT, llm: ScriptedLLM, opening: str = "callee_first", greeting: str = LONG_REPLY, **knobs: object
) -> tuple[CallSession, FarEnd]:
    """A call on the default VAD of config/turn_taking.yaml (``knobs`` over it), with a far end playing its audio."""
    settings = turn_settings({"idleTimeoutMs": 20000, **knobs})
    config = SessionConfig(
        persona=Persona(system_prompt="You are the clinic's receptionist.", greeting=greeting),
        opening_mode=opening,
        turn=settings,
    )
    far = FarEnd()
    session = CallSession(
        config, stt=stt, llm=llm, tts=ScriptedTTS(realtime_factor=0.05), sink=far,
        vad=make_vad(settings.vad, settings.vad_aggressiveness),
    )  # fmt: skip
    far.start(session)
    await session.start()
    return session, far


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    tmp = tmp_path_factory.mktemp("line")
    texts = {
        "hours": "What are your hours?",
        "uh-huh": "uh-huh",
        "yeah": "yeah",
        "complete": "What time do you open tomorrow?",
        "incomplete": "and then I",
    }
    return {key: _speak(text, tmp) for key, text in texts.items()}


@pytest.mark.parametrize("floor_dbfs", [-65.0, -45.0])
@pytest.mark.parametrize("opening", ["agent_first", "callee_first"])
async def test_a_noise_floor_after_digital_silence_is_never_speech(floor_dbfs: float, opening: str) -> None:
    stt = ScriptedSTT("this must never be heard")
    session, far = await start_session(stt, ScriptedLLM(["Never said."]), opening=opening)
    caller = LineCaller(session, floor_dbfs)
    await caller.play([DIGITAL_SILENCE] * 100)  # two seconds of a muted line, then the line's hiss starts
    await caller.line(6.0)
    result = await session.close("caller_hangup")
    await far.stop()
    assert far.times("clear") == []  # the agent (speaking, for agent_first) was never stopped
    assert [e for e in result.transcript if e["role"] == "user"] == []  # and no turn started
    assert not any(e.get("type") == "barge_in" for e in result.transcript)


@pytest.mark.parametrize("word", ["uh-huh", "yeah"])
async def test_a_backchannel_leaves_the_agents_audio_uninterrupted(speech: dict[str, np.ndarray], word: str) -> None:
    stt = ScriptedSTT(["What are your hours?", word, "Thanks."])
    llm = ScriptedLLM([LONG_REPLY, "You're welcome.", "Summary. Sentiment: neutral"])
    session, far = await start_session(stt, llm)
    caller = LineCaller(session)
    await caller.line(0.5)
    await caller.say(speech["hours"])
    await caller.line(3.0)  # the agent is well into its long reply
    assert far.times("media")
    await caller.say(speech[word])
    await caller.line(12.0)  # the reply plays to its end
    result = await session.close("caller_hangup")
    await far.stop()
    assert far.times("clear") == []  # the caller never heard the agent stop
    said = [(e["text"], e.get("interrupted", False)) for e in result.transcript if e["role"] == "assistant"]
    assert said == [(LONG_REPLY, False)]
    assert [e["text"] for e in result.transcript if e["role"] == "user"] == ["What are your hours?"]
    assert [e["type"] for e in result.transcript if e["role"] == "event"] == ["backchannel"]  # shown in the call


async def _reply_delay(speech: np.ndarray, text: str, **knobs: object) -> float:
    """Seconds from the end of the caller's words to the agent's first audio."""
    session, far = await start_session(ScriptedSTT(text), ScriptedLLM(["Okay."]), **knobs)
    caller = LineCaller(session)
    await caller.line(0.5)
    ended = await caller.say(speech)
    await caller.line(3.0)
    await session.close("caller_hangup")
    await far.stop()
    replies = [t for t in far.times("media") if t > ended]
    assert replies, "the agent never answered"
    return replies[0] - ended


async def test_under_the_model_an_unfinished_thought_waits_longer_than_a_finished_one(
    speech: dict[str, np.ndarray],
) -> None:
    model = {"turnDetection": "model", "silenceTimeoutMs": 700}
    complete = await _reply_delay(speech["complete"], "What time do you open tomorrow?", **model)
    incomplete = await _reply_delay(speech["incomplete"], "and then I", **model)
    plain = await _reply_delay(speech["complete"], "What time do you open tomorrow?", silenceTimeoutMs=700)
    assert complete < 0.40 < plain  # a complete question is answered after ~250 ms, not the 700 ms silence
    assert incomplete > 1.45  # "and then I…": the caller gets the long silence to go on
