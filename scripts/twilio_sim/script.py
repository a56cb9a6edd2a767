"""Scripted callers: a list of steps run against one :class:`SimulatedCall`, and many such calls at once.

script = CallScript().say("hello.wav").wait_for_agent_silence().barge_in_after(300, "stop.wav").hangup()
result = await place_call(config, script, wav_path="heard.wav")
summary = await run_calls(10, lambda i: script, config)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from scripts.twilio_sim.call import CallConfig, SimulatedCall
from scripts.twilio_sim.caller_audio import AudioSource, CallerAudio
from scripts.twilio_sim.results import CallResult, RunSummary

Audio = AudioSource | CallerAudio


@dataclass(frozen=True)
class Say:
    audio: Audio
    rate: int = 8000

    async def run(self, call: SimulatedCall) -> None:
        await call.say(self.audio, rate=self.rate)


@dataclass(frozen=True)
class Silence:
    ms: int

    async def run(self, call: SimulatedCall) -> None:
        await call.silence(self.ms)


@dataclass(frozen=True)
class WaitForAgentAudio:
    timeout: float = 10.0

    async def run(self, call: SimulatedCall) -> None:
        await call.wait_for_agent_audio(self.timeout)


@dataclass(frozen=True)
class WaitForAgentSilence:
    timeout: float = 10.0
    quiet_ms: int = 500
    audio_timeout: float | None = None

    async def run(self, call: SimulatedCall) -> None:
        await call.wait_for_agent_silence(self.timeout, self.quiet_ms, self.audio_timeout)


@dataclass(frozen=True)
class BargeInAfter:
    ms_into_agent_speech: int
    audio: Audio
    rate: int = 8000
    timeout: float = 10.0

    async def run(self, call: SimulatedCall) -> None:
        await call.barge_in_after(self.ms_into_agent_speech, self.audio, rate=self.rate, timeout=self.timeout)


@dataclass(frozen=True)
class Dtmf:
    digit: str

    async def run(self, call: SimulatedCall) -> None:
        await call.dtmf(self.digit)


@dataclass(frozen=True)
class WaitClosed:
    """Wait for the server to end the call (e.g. after a goodbye)."""

    timeout: float = 10.0

    async def run(self, call: SimulatedCall) -> None:
        await call.wait_closed(self.timeout)


@dataclass(frozen=True)
class Hangup:
    async def run(self, call: SimulatedCall) -> None:
        await call.hangup()


Step = Say | Silence | WaitForAgentAudio | WaitForAgentSilence | BargeInAfter | Dtmf | WaitClosed | Hangup


class CallScript:
    """An ordered list of steps; the builder methods append one and return the script, so they chain."""

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self.steps: list[Step] = list(steps)

    def say(self, audio: Audio, rate: int = 8000) -> CallScript:
        return self._add(Say(audio, rate))

    def silence(self, ms: int) -> CallScript:
        return self._add(Silence(ms))

    def wait_for_agent_audio(self, timeout: float = 10.0) -> CallScript:
        return self._add(WaitForAgentAudio(timeout))

    def wait_for_agent_silence(
        self, timeout: float = 10.0, quiet_ms: int = 500, audio_timeout: float | None = None
    ) -> CallScript:
        return self._add(WaitForAgentSilence(timeout, quiet_ms, audio_timeout))

    def barge_in_after(self, ms_into_agent_speech: int, audio: Audio, rate: int = 8000) -> CallScript:
        return self._add(BargeInAfter(ms_into_agent_speech, audio, rate))

    def dtmf(self, digit: str) -> CallScript:
        return self._add(Dtmf(digit))

    def wait_closed(self, timeout: float = 10.0) -> CallScript:
        return self._add(WaitClosed(timeout))

    def hangup(self) -> CallScript:
        return self._add(Hangup())

    def _add(self, step: Step) -> CallScript:
        self.steps.append(step)
        return self

    async def run(self, call: SimulatedCall) -> None:
        """Run the steps in order; stops early when the call ends (the server hung up)."""
        for step in self.steps:
            if call.ended:
                return
            await step.run(call)


async def place_call(
    config: CallConfig,
    script: CallScript,
    http: aiohttp.ClientSession | None = None,
    wav_path: str | Path | None = None,
) -> CallResult:
    """Dial, run ``script``, hang up if the script did not, optionally write what was heard; never raises for
    call failures (they come back as ``outcome == "error"``)."""
    call = SimulatedCall(config, http)
    failure: BaseException | None = None
    try:
        if await call.dial():
            await script.run(call)
            await call.hangup()
    except Exception as exc:
        failure = exc
    finally:
        await call.close()
    if wav_path is not None and call.stream is not None:
        call.write_wav(wav_path)
    result = call.result()
    if failure is not None:
        result.outcome, result.error = "error", f"{type(failure).__name__}: {failure}"
    return result


async def run_calls(
    n: int,
    make_script: Callable[[int], CallScript],
    config: CallConfig,
    stagger_ms: int = 0,
    wav_dir: str | Path | None = None,
) -> RunSummary:
    """Place ``n`` calls at once (call i starts ``i * stagger_ms`` later) and summarise them."""

    async def one(i: int) -> CallResult:
        if stagger_ms:
            await asyncio.sleep(i * stagger_ms / 1000)
        wav = None if wav_dir is None else Path(wav_dir) / f"call-{i + 1}.wav"
        return await place_call(config, make_script(i), wav_path=wav)

    return RunSummary(list(await asyncio.gather(*(one(i) for i in range(n)))))
