"""A deterministic in-process transport for engine tests: a caller who speaks scripted audio in real
(loop) time, and a far end that plays agent audio like Twilio's buffer: marks echo when their audio has
played; ``clear`` drops the buffer and echoes every pending mark at once. Run under looptime."""

from __future__ import annotations

import array
import asyncio
import math
from collections import deque
from dataclasses import dataclass, field

from pipelines.audio import pcm16_to_ulaw
from pipelines.output import MediaSink
from pipelines.session import CallSession

FRAME = 0.02
SILENCE_FRAME = b"\xff" * 160


def speech_frame(index: int) -> bytes:
    """A loud 20 ms μ-law frame (a 300 Hz tone): what the energy VAD and scripted STT take for speech."""
    samples = array.array("h", (int(9000 * math.sin(2 * math.pi * 300 * (index * 160 + i) / 8000)) for i in range(160)))
    return pcm16_to_ulaw(samples.tobytes())


class EnergyVad:
    """Speech = loud frame. The real VADs are tested on their own; session tests need exact decisions."""

    def is_speech(self, frame: bytes) -> bool:
        samples = array.array("h", frame)
        return max(abs(s) for s in samples) > 2000 if samples else False

    def reset(self) -> None:
        pass


@dataclass
class FarEnd(MediaSink):
    """Twilio's side of the stream: plays what it is sent in real time and echoes marks."""

    session: CallSession | None = None
    log: list[tuple[float, str, object]] = field(default_factory=list)  # (loop time, kind, detail)
    _queue: deque[tuple[str, object]] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    audio_ms_played: float = 0.0
    _generation: int = 0
    closed_reason: str | None = None

    def start(self, session: CallSession) -> None:
        self.session = session
        self._task = asyncio.get_running_loop().create_task(self._play())

    async def send_audio(self, payload: bytes) -> None:
        self._record("media", len(payload))
        self._queue.append(("media", len(payload)))
        self._wake.set()

    async def send_mark(self, name: str) -> None:
        self._record("mark", name)
        self._queue.append(("mark", name))
        self._wake.set()

    async def send_clear(self) -> None:
        self._record("clear", None)
        pending = [detail for kind, detail in self._queue if kind == "mark"]
        self._queue.clear()
        self._generation += 1
        for name in pending:
            self._echo(str(name))

    async def close(self, reason: str) -> None:
        self._record("close", reason)
        self.closed_reason = reason

    async def _play(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            kind, detail = self._queue[0]
            if kind == "media":
                generation = self._generation
                await asyncio.sleep(int(detail) / 8000)  # μ-law 8 kHz: one byte per sample
                if generation == self._generation:
                    self._queue.popleft()
                    self.audio_ms_played += int(detail) / 8
            else:
                self._queue.popleft()
                self._echo(str(detail))

    def _echo(self, name: str) -> None:
        self._record("echo", name)
        assert self.session is not None
        self.session.on_mark(name)

    def _record(self, kind: str, detail: object) -> None:
        self.log.append((asyncio.get_running_loop().time(), kind, detail))

    def times(self, kind: str) -> list[float]:
        return [t for t, k, _ in self.log if k == kind]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Caller:
    """Feeds the session one 20 ms frame per 20 ms of loop time."""

    def __init__(self, session: CallSession) -> None:
        self.session = session
        self.frames = 0

    async def say(self, ms: int) -> float:
        """Speak for ``ms``; returns the loop time speech started."""
        started = asyncio.get_running_loop().time()
        for _ in range(ms // 20):
            await asyncio.sleep(FRAME)  # a frame arrives once its 20 ms have been spoken
            self.session.push_audio(speech_frame(self.frames))
            self.frames += 1
        return started

    async def silence(self, ms: int) -> None:
        for _ in range(ms // 20):
            await asyncio.sleep(FRAME)
            self.session.push_audio(SILENCE_FRAME)
            self.frames += 1
