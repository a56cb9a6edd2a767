"""A call transport in memory: no sockets, no Twilio framing. The caller's audio is a list of 20 ms frames fed in
real time; the far end "plays" agent audio instantly and echoes each mark at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pipelines.output import MediaSink
from voicex.calls.runner import CallInput

FRAME_SEC = 0.02


@dataclass
class MemorySink(MediaSink):
    audio: bytearray = field(default_factory=bytearray)
    marks: list[str] = field(default_factory=list)
    clears: int = 0
    closed_reason: str | None = None
    echo: CallInput | None = None  # where mark echoes go (the runner, once the call runs)

    async def send_audio(self, payload: bytes) -> None:
        self.audio += payload

    async def send_mark(self, name: str) -> None:
        self.marks.append(name)
        if self.echo is not None:
            asyncio.get_running_loop().call_soon(self.echo.on_mark, name)

    async def send_clear(self) -> None:
        self.clears += 1

    async def close(self, reason: str) -> None:
        self.closed_reason = reason


@dataclass
class MemoryTransport:
    """Feeds ``frames`` (μ-law, 160 bytes each) one per 20 ms, then stays silent for ``tail_sec`` and hangs up
    (unless this side closes the wire first)."""

    frames: list[bytes]
    tail_sec: float = 2.0
    sink: MemorySink = field(default_factory=MemorySink)
    closed: bool = False
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def problems(self) -> list[str]:
        return []

    async def receive(self, into: CallInput) -> str:
        self.sink.echo = into
        silence = b"\xff" * 160
        for frame in [*self.frames, *[silence] * int(self.tail_sec / FRAME_SEC)]:
            if self._closing.is_set():
                return "socket_closed"
            into.on_audio(frame)
            await asyncio.sleep(FRAME_SEC)
        return "caller_hangup"

    async def close(self) -> None:
        """This side ends the wire: the far end stops sending."""
        self.closed = True
        self._closing.set()
