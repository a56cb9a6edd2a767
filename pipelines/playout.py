"""Agent audio out: chunked, a mark after each chunk, paced at most ``lead_ms`` ahead of real time.

Pacing here (not in the transport) keeps ``clear`` cheap and barge-in quick: at most ``lead_ms`` of audio
is ever queued at the far end. Mark echoes drive :class:`HeardTracker`; when they stop coming (a broken
transport) the audio timeline plus a grace period still ends playback, so a call never hangs "speaking".

A possible barge-in *pauses* playback: the far end's queue is flushed at once, but the audio it held (sent,
not yet acknowledged) is kept, and :meth:`Playout.resume` plays it again from there, so an agent stopped by
an "uh-huh" carries on mid-sentence instead of repeating itself. :meth:`Playout.clear` drops it for good.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.heard import HeardTracker, Segment
from pipelines.output import MediaSink

_MARK_GRACE_SEC = 1.0


@dataclass(slots=True)
class _InFlight:
    """A chunk sent but not yet acknowledged: what a pause must play again."""

    tracker: HeardTracker
    mark: str
    segment: Segment
    segment_ms: int
    audio: bytes


class Playout:
    def __init__(
        self,
        sink: MediaSink,
        *,
        chunk_ms: int = 100,
        lead_ms: int = 200,
        on_started: Callable[[], None] | None = None,
        on_finished: Callable[[bool], None] | None = None,
    ) -> None:
        self.sink = sink
        self.tracker = HeardTracker()  # the current reply's; older ones stay until their marks are back
        self._trackers: list[HeardTracker] = [self.tracker]
        self.chunk_ms = chunk_ms
        self.lead_sec = lead_ms / 1000
        self._bytes_per_ms = sink.format.bytes_per_second // 1000
        self._chunk_bytes = chunk_ms * self._bytes_per_ms
        self._on_started = on_started
        self._on_finished = on_finished
        self._loop = asyncio.get_running_loop()
        self._timeline_end = 0.0  # loop time at which everything sent so far will have played
        self._speaking = False
        self._open_replies = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._watchdog: asyncio.TimerHandle | None = None
        self.first_audio_at: float | None = None  # loop time of the first chunk of the current reply
        self._in_flight: deque[_InFlight] = deque()
        self._paused = False
        self._replay: list[_InFlight] = []
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._epoch = 0  # bumped by pause, resume and clear: a replay in progress sees it was overtaken

    @property
    def speaking(self) -> bool:
        """Agent audio is playing, or paused and not yet given up."""
        return self._speaking

    @property
    def paused(self) -> bool:
        return self._paused

    def begin_reply(self) -> HeardTracker:
        """A reply is coming: playback is not finished until :meth:`end_reply` and all its marks are back."""
        self._open_replies += 1
        self._idle.clear()
        self.first_audio_at = None
        self._trackers = [t for t in self._trackers if not t.all_played or t.cancelled_pending]
        self.tracker = HeardTracker()
        self._trackers.append(self.tracker)
        return self.tracker

    def end_reply(self) -> None:
        self._open_replies = max(0, self._open_replies - 1)
        self._check_finished()

    def begin_segment(self, text: str) -> Segment:
        return self.tracker.add_segment(text)

    async def write(self, segment: Segment, audio: bytes) -> None:
        """Send ``audio`` (sink format) for ``segment`` in paced chunks, each followed by a mark."""
        for start in range(0, len(audio), self._chunk_bytes):
            chunk = audio[start : start + self._chunk_bytes]
            await self._wait_for_room()
            name = self.tracker.chunk_sent(segment, len(chunk) // self._bytes_per_ms)
            # Booked before the awaits below, so a pause that lands during them still replays this chunk.
            self._booked(_InFlight(self.tracker, name, segment, segment.sent_ms, chunk))
            await self.sink.send_audio(chunk)
            await self.sink.send_mark(name)

    def _booked(self, item: _InFlight) -> None:
        now = self._loop.time()
        self._in_flight.append(item)
        self._timeline_end = max(self._timeline_end, now) + len(item.audio) / self._bytes_per_ms / 1000
        if not self._speaking:
            self._speaking = True
            if self._on_started:
                self._on_started()
        if self.first_audio_at is None:
            self.first_audio_at = now
        self._arm_watchdog()

    async def pause(self) -> None:
        """Possible barge-in: silence the far end now, keeping what it had not played for :meth:`resume`."""
        if self._paused or not self._speaking:
            return
        self._paused = True
        self._epoch += 1
        self._resumed.clear()
        self._replay = list(self._in_flight)
        self._in_flight.clear()
        for tracker in self._trackers:
            tracker.cleared()
        self._timeline_end = self._loop.time()
        self._disarm_watchdog()
        await self.sink.send_clear()

    async def resume(self) -> None:
        """False alarm: play again what the pause flushed, then let the reply go on.

        The sends yield, so a new pause or a clear can land mid-replay: then this replay stops (a pause keeps
        what was not re-sent for its own resume) and the writer stays held, never woken while paused.
        """
        if not self._paused:
            return
        self._paused = False
        self._epoch += 1
        epoch = self._epoch
        replay, self._replay = self._replay, []
        for i, item in enumerate(replay):
            name = item.tracker.chunk_resent(item.segment, item.segment_ms)
            self._booked(_InFlight(item.tracker, name, item.segment, item.segment_ms, item.audio))
            await self.sink.send_audio(item.audio)
            if self._epoch == epoch:
                await self.sink.send_mark(name)
            if self._epoch != epoch:  # overtaken; this item was booked, so a pause already holds it
                if self._paused:
                    self._replay.extend(replay[i + 1 :])
                return
        self._resumed.set()
        self._check_finished()

    async def _wait_for_room(self) -> None:
        while True:
            if self._paused:
                await self._resumed.wait()
                continue
            wait = self._timeline_end - self._loop.time() - self.lead_sec
            if wait <= 0.001:  # within a millisecond: close enough, and no busy loop on float dust
                return
            await asyncio.sleep(wait)

    def on_mark(self, name: str) -> None:
        for tracker in self._trackers:
            if tracker.owns(name):
                if tracker.acknowledged(name):
                    self._drop_in_flight(name)
                break
        self._check_finished()

    def _drop_in_flight(self, name: str) -> None:
        """Marks come back in order: this one and every chunk before it have played."""
        if not any(item.mark == name for item in self._in_flight):
            return
        while self._in_flight and self._in_flight.popleft().mark != name:
            pass

    async def clear(self) -> None:
        """Barge-in: drop everything queued at the far end, at once (``on_finished(interrupted=True)``).

        Call it after cancelling the reply that was writing: a paused writer is released here.
        """
        was_paused = self._paused
        self._paused = False
        self._epoch += 1
        self._replay = []
        self._in_flight.clear()
        self._resumed.set()
        for tracker in self._trackers:
            tracker.cleared()
        self._timeline_end = self._loop.time()
        self._finish(interrupted=True)
        if not was_paused:  # a pause already flushed the far end and nothing was sent since
            await self.sink.send_clear()

    async def wait_idle(self) -> None:
        """Until every open reply has ended and all of its audio has played."""
        await self._idle.wait()

    def _all_played(self) -> bool:
        return all(tracker.all_played for tracker in self._trackers)

    def _check_finished(self) -> None:
        if self._paused:
            return
        if self._open_replies == 0 and self._all_played():
            if self._speaking:
                self._finish(interrupted=False)
            else:
                self._idle.set()

    def _disarm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _finish(self, *, interrupted: bool) -> None:
        self._disarm_watchdog()
        was_speaking, self._speaking = self._speaking, False
        if self._open_replies == 0:
            self._idle.set()
        if was_speaking and self._on_finished:
            self._on_finished(interrupted)

    def _arm_watchdog(self) -> None:
        self._disarm_watchdog()
        delay = max(0.0, self._timeline_end - self._loop.time()) + _MARK_GRACE_SEC
        self._watchdog = self._loop.call_later(delay, self._marks_overdue)

    def _marks_overdue(self) -> None:
        """No echo for audio that must have played by now: treat it as played (heard text stays honest)."""
        self._watchdog = None
        if self._open_replies == 0:
            for tracker in self._trackers:  # unacknowledged audio is not credited as heard
                tracker.cleared()
            self._in_flight.clear()
            self._finish(interrupted=False)
        else:
            self._arm_watchdog()
