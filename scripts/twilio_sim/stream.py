"""Twilio's half of a bidirectional Media Stream, in real time, over an open aiohttp client WebSocket.

Sends a 20 ms μ-law frame every 20 ms for the whole call (silence when the caller is quiet), plays the server's
audio through :class:`PlaybackBuffer`, echoes marks on its clock, and checks every server message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from scripts.twilio_sim.caller_audio import ULAW_SILENCE_FRAME, CallerAudio
from scripts.twilio_sim.messages import (
    ServerClear,
    ServerMark,
    ServerMedia,
    StreamIds,
    TwilioMessages,
    Violation,
    parse_server_message,
)
from scripts.twilio_sim.playback import PlaybackBuffer

FRAME_S = 0.02
_WIRE_ERRORS = (aiohttp.ClientError, ConnectionError, RuntimeError)


@dataclass
class Utterance:
    """Caller audio queued for sending; ``done`` resolves after its last frame went out (or the call ended)."""

    audio: CallerAudio
    done: asyncio.Future[None]
    position: int = 0
    turn: int | None = None


@dataclass
class TurnClock:
    """Loop-clock times of one caller utterance's first and last speech frames."""

    onset: float
    end: float | None = None
    interrupted: bool = False


@dataclass
class Counters:
    frames_sent: int = 0
    dtmf_sent: int = 0
    media_received: int = 0
    media_bytes: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    max_send_lag_s: float = 0.0


def now() -> float:
    return asyncio.get_running_loop().time()


class MediaStream:
    """One stream: ``open()`` sends connected + start and starts the clocks; ``hangup()`` sends stop and closes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, ids: StreamIds, timestamp_offset_ms: int = 155) -> None:
        self.ws = ws
        self.ids = ids
        self.playback = PlaybackBuffer()
        self.counters = Counters()
        self.turns: list[TurnClock] = []
        self.ended = asyncio.Event()
        self.t0 = 0.0
        self.end_time: float | None = None
        self.server_closed = False
        self.close_code: int | None = None
        self.error: str | None = None
        self._messages = TwilioMessages(ids, timestamp_offset_ms)
        self._send_lock = asyncio.Lock()
        self._queue: deque[Utterance] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._mark_wake = asyncio.Event()

    async def open(self, custom_parameters: dict[str, str]) -> None:
        await self._send(TwilioMessages.connected)
        await self._send(lambda: self._messages.start(custom_parameters))
        self.t0 = now()
        sid = self.ids.call_sid
        self._tasks = [
            asyncio.create_task(self._sender(), name=f"sim-send-{sid}"),
            asyncio.create_task(self._receiver(), name=f"sim-recv-{sid}"),
            asyncio.create_task(self._mark_pump(), name=f"sim-marks-{sid}"),
        ]

    @property
    def is_ended(self) -> bool:
        return self.ended.is_set()

    def enqueue(self, clip: CallerAudio) -> Utterance:
        """Queue caller audio after whatever is still being spoken."""
        utterance = Utterance(clip, asyncio.get_running_loop().create_future())
        if not clip.frames or self.is_ended:
            utterance.done.set_result(None)
        else:
            self._queue.append(utterance)
        return utterance

    async def send_dtmf(self, digit: str) -> None:
        if not self.is_ended:
            await self._send(lambda: self._messages.dtmf(digit))
            self.counters.dtmf_sent += 1

    def last_speech_end(self) -> float:
        """When the caller last stopped talking (the stream start if they have not spoken)."""
        for turn in reversed(self.turns):
            if turn.end is not None:
                return turn.end
        return self.t0

    async def hangup(self, timeout: float) -> None:
        """The caller hangs up: ``stop``, then Twilio closes the socket."""
        if self.is_ended:
            return
        self.finish()
        with contextlib.suppress(*_WIRE_ERRORS):
            await self._send(self._messages.stop, force=True)
        await self.close(timeout)

    async def close(self, timeout: float) -> None:
        """Close the socket (without ``stop`` if the call had not ended) and stop the clocks."""
        self.finish()
        if not self.ws.closed:
            with contextlib.suppress(*_WIRE_ERRORS, TimeoutError):
                await asyncio.wait_for(self.ws.close(), timeout)
        await self.stop_tasks()

    def finish(self) -> None:
        """Mark the call over: no more sends; pending ``say()`` calls return."""
        if self.is_ended:
            return
        self.end_time = now()
        self.ended.set()
        for utterance in self._queue:
            if not utterance.done.done():
                utterance.done.set_result(None)
        self._queue.clear()

    async def stop_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, build: Callable[[], dict[str, Any]], force: bool = False) -> None:
        """Build (numbering happens here) and send under one lock, so sequence numbers reach the wire in order."""
        async with self._send_lock:
            if self.ws.closed or (self.is_ended and not force):
                return
            await self.ws.send_str(json.dumps(build(), separators=(",", ":")))

    async def _sender(self) -> None:
        """A frame every 20 ms against absolute deadlines (no drift); late frames go out at once, like a burst."""
        k = 0
        try:
            while not self.is_ended:
                k += 1
                due = self.t0 + k * FRAME_S
                delay = due - now()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.is_ended:
                    return
                frame, utterance, speech = self._next_frame()
                await self._send(lambda frame=frame: self._messages.media(frame))
                sent = now()
                self.counters.frames_sent += 1
                self.counters.max_send_lag_s = max(self.counters.max_send_lag_s, sent - due)
                if utterance is not None:
                    self._frame_sent(utterance, speech, sent)
        except _WIRE_ERRORS as exc:
            if not self.is_ended:
                self.error = f"send failed: {type(exc).__name__}: {exc}"
                self.finish()

    def _next_frame(self) -> tuple[bytes, Utterance | None, bool]:
        if not self._queue:
            return ULAW_SILENCE_FRAME, None, False
        utterance = self._queue[0]
        i = utterance.position
        utterance.position += 1
        return utterance.audio.frames[i], utterance, utterance.audio.speech[i]

    def _frame_sent(self, utterance: Utterance, speech: bool, sent: float) -> None:
        """A frame carries the 20 ms of sound before its send time, so speech onset = first send - 20 ms."""
        if speech:
            if utterance.turn is None:
                onset = sent - FRAME_S
                utterance.turn = len(self.turns)
                self.turns.append(TurnClock(onset, interrupted=self.playback.playing_at(onset)))
            self.turns[utterance.turn].end = sent
        if utterance.position >= len(utterance.audio.frames):
            if self._queue and self._queue[0] is utterance:
                self._queue.popleft()
            if not utterance.done.done():
                utterance.done.set_result(None)

    async def _receiver(self) -> None:
        ws = self.ws
        closed_here = False  # CLOSING: our own side closed the socket (possibly behind our back, e.g. a test)
        try:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.counters.violations.append(f"binary frame of {len(msg.data)} bytes (31950)")
                else:  # CLOSE from the server, CLOSED/ERROR when the connection went away, CLOSING from us
                    closed_here = msg.type == aiohttp.WSMsgType.CLOSING
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:
            self.error = f"receive failed: {type(exc).__name__}: {exc}"
        if closed_here:
            self.finish()
        elif not self.is_ended:
            self.server_closed = True
            self.close_code = ws.close_code
            self.finish()
            with contextlib.suppress(*_WIRE_ERRORS):
                await ws.close()

    async def _on_text(self, text: str) -> None:
        t = now()
        try:
            message = parse_server_message(text, self.ids.stream_sid)
        except Violation as exc:
            self.counters.violations.append(str(exc))
            return
        if isinstance(message, ServerMedia):
            self.counters.media_received += 1
            self.counters.media_bytes += len(message.payload)
            self.playback.enqueue(message.payload, t)
        elif isinstance(message, ServerMark):
            self.counters.marks_received += 1
            self.playback.mark(message.name, t)
            self._mark_wake.set()
        elif isinstance(message, ServerClear):
            self.counters.clears.append(t)
            for name in self.playback.clear(t):
                await self._echo_mark(name)
            self._mark_wake.set()

    async def _echo_mark(self, name: str) -> None:
        await self._send(lambda: self._messages.mark(name))
        if not self.is_ended:
            self.counters.marks_echoed += 1

    async def _mark_pump(self) -> None:
        """Echo each mark once the audio queued before it has played: the playback clock the server relies on."""
        with contextlib.suppress(*_WIRE_ERRORS):
            while not self.is_ended:
                due = self.playback.next_mark_due()
                delay = None if due is None else due - now()
                if delay is None or delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._mark_wake.wait(), delay)
                    self._mark_wake.clear()
                    continue
                for name in self.playback.pop_due_marks(now()):
                    await self._echo_mark(name)
