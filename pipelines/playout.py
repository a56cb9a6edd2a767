"""Agent audio out: chunked, a mark after each chunk, paced at most ``lead_ms`` ahead of real time.

Pacing here (not in the transport) keeps ``clear`` cheap and barge-in quick: at most ``lead_ms`` of audio
is ever queued at the far end. Mark echoes drive :class:`HeardTracker`; when they stop coming (a broken
transport) the audio timeline plus a grace period still ends playback, so a call never hangs "speaking".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pipelines.heard import HeardTracker, Segment
from pipelines.output import MediaSink

_MARK_GRACE_SEC = 1.0


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

    @property
    def speaking(self) -> bool:
        return self._speaking

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
            now = self._loop.time()
            duration_ms = len(chunk) // self._bytes_per_ms
            await self.sink.send_audio(chunk)
            name = self.tracker.chunk_sent(segment, duration_ms)
            await self.sink.send_mark(name)
            self._timeline_end = max(self._timeline_end, now) + duration_ms / 1000
            if not self._speaking:
                self._speaking = True
                self.first_audio_at = now
                if self._on_started:
                    self._on_started()
            elif self.first_audio_at is None:
                self.first_audio_at = now
            self._arm_watchdog()

    async def _wait_for_room(self) -> None:
        while True:
            wait = self._timeline_end - self._loop.time() - self.lead_sec
            if wait <= 0.001:  # within a millisecond: close enough, and no busy loop on float dust
                return
            await asyncio.sleep(wait)

    def on_mark(self, name: str) -> None:
        for tracker in self._trackers:
            if tracker.owns(name):
                tracker.acknowledged(name)
                break
        self._check_finished()

    async def clear(self) -> None:
        """Barge-in: drop everything queued at the far end, at once (``on_finished(interrupted=True)``)."""
        await self.sink.send_clear()
        for tracker in self._trackers:
            tracker.cleared()
        self._timeline_end = self._loop.time()
        self._finish(interrupted=True)

    async def wait_idle(self) -> None:
        """Until every open reply has ended and all of its audio has played."""
        await self._idle.wait()

    def _all_played(self) -> bool:
        return all(tracker.all_played for tracker in self._trackers)

    def _check_finished(self) -> None:
        if self._open_replies == 0 and self._all_played():
            if self._speaking:
                self._finish(interrupted=False)
            else:
                self._idle.set()

    def _finish(self, *, interrupted: bool) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        was_speaking, self._speaking = self._speaking, False
        if self._open_replies == 0:
            self._idle.set()
        if was_speaking and self._on_finished:
            self._on_finished(interrupted)

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        delay = max(0.0, self._timeline_end - self._loop.time()) + _MARK_GRACE_SEC
        self._watchdog = self._loop.call_later(delay, self._marks_overdue)

    def _marks_overdue(self) -> None:
        """No echo for audio that must have played by now: treat it as played (heard text stays honest)."""
        self._watchdog = None
        if self._open_replies == 0:
            for tracker in self._trackers:  # unacknowledged audio is not credited as heard
                tracker.cleared()
            self._finish(interrupted=False)
        else:
            self._arm_watchdog()
