"""Twilio's half of a bidirectional Media Stream, in real time, over an open aiohttp client WebSocket.

Sends a 20 ms μ-law frame every 20 ms for the whole call (silence when the caller is quiet), plays the server's
audio through :class:`PlaybackBuffer`, echoes marks on its clock, and checks every server message.

Cheap per call, because benchmarks run hundreds of these beside the server on the same cores: the frame clock
and the mark clock are loop timers (no task wake-up per frame), and a message is written at once when the
socket cannot block (nothing buffered), falling back to an ordered, locked async send otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from scripts.twilio_sim.caller_audio import ULAW_SILENCE_FRAME, CallerAudio, LineNoise
from scripts.twilio_sim.messages import (
    ServerClear,
    ServerMark,
    ServerMedia,
    StreamIds,
    TwilioMessages,
    Violation,
    parse_server_message,
    wire,
)
from scripts.twilio_sim.playback import PlaybackBuffer
from scripts.twilio_sim.wire import WIRE_ERRORS as _WIRE_ERRORS
from scripts.twilio_sim.wire import resolve, write_text

FRAME_S = 0.02


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

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        ids: StreamIds,
        timestamp_offset_ms: int = 155,
        noise: LineNoise | None = None,
    ) -> None:
        self.ws = ws
        self.noise = noise  # the line's background, under the caller's words and between them
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
        self._loop = asyncio.get_running_loop()
        self._messages = TwilioMessages(ids, timestamp_offset_ms)
        self._send_lock = asyncio.Lock()
        self._queued_sends = 0  # async sends started and not finished: a direct write now would overtake them
        self._queue: deque[Utterance] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._frame_k = 0
        self._frame_timer: asyncio.TimerHandle | None = None
        self._mark_timer: asyncio.TimerHandle | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        writer = getattr(ws, "_writer", None)  # aiohttp's; without it every send takes the async path
        transport = getattr(writer, "transport", None)
        direct = isinstance(transport, asyncio.WriteTransport) and not getattr(ws, "compress", 0)
        self._transport = transport if direct else None

    async def open(self, custom_parameters: dict[str, str]) -> None:
        await self._send(lambda: wire(TwilioMessages.connected()))
        await self._send(lambda: wire(self._messages.start(custom_parameters)))
        self.t0 = now()
        self._spawn(self._receiver(), f"sim-recv-{self.ids.call_sid}")
        self._frame_timer = self._loop.call_at(self.t0 + FRAME_S, self._on_frame_due)

    @property
    def is_ended(self) -> bool:
        return self.ended.is_set()

    def enqueue(self, clip: CallerAudio) -> Utterance:
        """Queue caller audio after whatever is still being spoken."""
        utterance = Utterance(clip, self._loop.create_future())
        if not clip.frames or self.is_ended:
            utterance.done.set_result(None)
        else:
            self._queue.append(utterance)
        return utterance

    async def send_dtmf(self, digit: str) -> None:
        if not self.is_ended:
            await self._send(lambda: wire(self._messages.dtmf(digit)))
            self.counters.dtmf_sent += 1

    def last_speech_end(self) -> float:
        """When the caller last stopped talking (the stream start if they have not spoken)."""
        for turn in reversed(self.turns):
            if turn.end is not None:
                return turn.end
        return self.t0

    async def wait_change(self, until: float) -> None:
        """Sleep until loop time ``until``, or sooner when agent audio arrives, a clear lands or the call ends.

        Lets the caller's waits wake exactly when something can have changed instead of polling.
        """
        if self.is_ended:
            return
        waiter = self._loop.create_future()
        self._waiters.add(waiter)
        timer = self._loop.call_at(until, resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)

    def _notify(self) -> None:
        if self._waiters:
            for waiter in self._waiters:
                resolve(waiter)
            self._waiters.clear()

    async def hangup(self, timeout: float) -> None:
        """The caller hangs up: ``stop``, then Twilio closes the socket."""
        if self.is_ended:
            return
        self.finish()
        with contextlib.suppress(*_WIRE_ERRORS):
            await self._send(lambda: wire(self._messages.stop()), force=True)
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
        for timer in (self._frame_timer, self._mark_timer):
            if timer is not None:
                timer.cancel()
        self._frame_timer = self._mark_timer = None
        for utterance in self._queue:
            if not utterance.done.done():
                utterance.done.set_result(None)
        self._queue.clear()
        self._notify()

    async def stop_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ----- sending ------------------------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str | None = None) -> asyncio.Task[None]:
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _write_now(self, build: Callable[[], bytes], force: bool = False) -> bool:
        """Build and write at once if the socket cannot block and no async send is ahead; False: not written.

        aiohttp's send waits only while the transport has paused writing; an empty buffer and a message below
        the high-water mark cannot pause it, so the send coroutine finishes in its first step.
        """
        transport = self._transport
        if self._queued_sends or transport is None or transport.get_write_buffer_size():
            return False
        if self.ws.closed or (self.is_ended and not force):
            return True
        unfinished = write_text(self.ws, build())
        if unfinished is not None:  # written, but waiting for the socket to drain: finish it in order
            self._queued_sends += 1
            self._spawn(unfinished).add_done_callback(self._unqueue)
        return True

    def _unqueue(self, _: object) -> None:
        self._queued_sends -= 1

    async def _send(self, build: Callable[[], bytes], force: bool = False) -> None:
        """Build (numbering happens here) and send, so sequence numbers reach the wire in order."""
        if self._write_now(build, force):
            return
        self._queued_sends += 1
        try:
            async with self._send_lock:
                if self.ws.closed or (self.is_ended and not force):
                    return
                await self.ws.send_frame(build(), WSMsgType.TEXT)
        finally:
            self._queued_sends -= 1

    def _on_frame_due(self) -> None:
        """Frame clock: a frame every 20 ms against absolute deadlines (no drift); late frames go out at once."""
        self._frame_timer = None
        try:
            while not self.is_ended:
                self._frame_k += 1
                due = self.t0 + self._frame_k * FRAME_S
                frame, utterance, speech = self._next_frame()
                if not self._write_now(lambda frame=frame: self._messages.media_bytes(frame)):
                    self._spawn(self._send_frame_later(frame, due, utterance, speech))
                    return
                self._frame_sent(due, utterance, speech)
                if self._frame_timer_set():
                    return
        except _WIRE_ERRORS as exc:
            self._send_failed(exc)

    async def _send_frame_later(self, frame: bytes, due: float, utterance: Utterance | None, speech: bool) -> None:
        """The socket was busy: send this frame in order behind the others, then resume the frame clock."""
        try:
            await self._send(lambda: self._messages.media_bytes(frame))
        except _WIRE_ERRORS as exc:
            self._send_failed(exc)
            return
        self._frame_sent(due, utterance, speech)
        if not self.is_ended and not self._frame_timer_set():
            self._on_frame_due()

    def _frame_timer_set(self) -> bool:
        """Arm the frame clock for the next frame's deadline; False when that deadline has already passed."""
        due = self.t0 + (self._frame_k + 1) * FRAME_S
        if due - self._loop.time() <= 0:
            return False
        self._frame_timer = self._loop.call_at(due, self._on_frame_due)
        return True

    def _send_failed(self, exc: BaseException) -> None:
        if not self.is_ended:
            self.error = f"send failed: {type(exc).__name__}: {exc}"
            self.finish()

    def _next_frame(self) -> tuple[bytes, Utterance | None, bool]:
        noise = self.noise
        if not self._queue:
            return (ULAW_SILENCE_FRAME if noise is None else noise.frame()), None, False
        utterance = self._queue[0]
        i = utterance.position
        utterance.position += 1
        frame = utterance.audio.frames[i]
        return (frame if noise is None else noise.under(frame)), utterance, utterance.audio.speech[i]

    def _frame_sent(self, due: float, utterance: Utterance | None, speech: bool) -> None:
        """A frame carries the 20 ms of sound before its send time, so speech onset = first send - 20 ms."""
        sent = self._loop.time()
        counters = self.counters
        counters.frames_sent += 1
        if sent - due > counters.max_send_lag_s:
            counters.max_send_lag_s = sent - due
        if utterance is None:
            return
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

    # ----- receiving ----------------------------------------------------------------------------------------------

    async def _receiver(self) -> None:
        ws = self.ws
        closed_here = False  # CLOSING: our own side closed the socket (possibly behind our back, e.g. a test)
        try:
            while True:
                msg = await ws.receive()
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.counters.violations.append(f"binary frame of {len(msg.data)} bytes (31950)")
                else:  # CLOSE from the server, CLOSED/ERROR when the connection went away, CLOSING from us
                    closed_here = msg.type == WSMsgType.CLOSING
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
        t = self._loop.time()
        try:
            message = parse_server_message(text, self.ids.stream_sid)
        except Violation as exc:
            self.counters.violations.append(str(exc))
            return
        if isinstance(message, ServerMedia):
            self.counters.media_received += 1
            self.counters.media_bytes += len(message.payload)
            self.playback.enqueue(message.payload, t)
            self._notify()
        elif isinstance(message, ServerMark):
            self.counters.marks_received += 1
            self.playback.mark(message.name, t)
            if self._mark_timer is None:
                self._pump_marks()
        elif isinstance(message, ServerClear):
            self.counters.clears.append(t)
            if self._mark_timer is not None:
                self._mark_timer.cancel()
                self._mark_timer = None
            names = self.playback.clear(t)
            self._notify()
            for name in names:
                await self._echo_mark(name)

    async def _echo_mark(self, name: str) -> None:
        await self._send(lambda: wire(self._messages.mark(name)))
        if not self.is_ended:
            self.counters.marks_echoed += 1

    def _pump_marks(self) -> None:
        """Mark clock: echo each mark once the audio queued before it has played (what the server relies on)."""
        self._mark_timer = None
        if self.is_ended:
            return
        for name in self.playback.pop_due_marks(self._loop.time()):
            try:
                if not self._write_now(lambda name=name: wire(self._messages.mark(name))):
                    self._spawn(self._echo_mark(name))
                elif not self.is_ended:
                    self.counters.marks_echoed += 1
            except _WIRE_ERRORS:
                return  # the socket broke: the receiver or the frame clock ends the call
        due = self.playback.next_mark_due()
        if due is not None:
            self._mark_timer = self._loop.call_at(due, self._pump_marks)
