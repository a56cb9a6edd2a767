"""Twilio's outbound audio buffer as a pure model with an injected clock: what the caller hears, and when.

Media is "buffered and played in the order received" (TWILIO.md §1.4); a mark comes back when the audio queued
before it has played, at once when nothing is buffered, and every pending mark comes back on ``clear`` (§1.5).
Times are seconds on one monotonic clock; nothing here sleeps, so the semantics are unit-testable exactly.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipelines.audio import TELEPHONY_RATE, ulaw_to_pcm16

AUDIBLE_PEAK = 256  # PCM16 peak above which a sample counts as sound (about -42 dBFS; μ-law silence decodes to ≤8)


def first_audible_sample(pcm16: bytes, threshold: int = AUDIBLE_PEAK) -> int | None:
    """Index of the first sample louder than ``threshold``, or None for silence."""
    samples = np.frombuffer(pcm16, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    return int(loud[0]) if loud.size else None


def _loud_ulaw_table(threshold: int = AUDIBLE_PEAK) -> bytes:
    """A ``bytes.translate`` table: 1 for each μ-law byte that decodes louder than ``threshold``, else 0."""
    pcm = np.frombuffer(ulaw_to_pcm16(bytes(range(256))), dtype="<i2").astype(np.int32)
    return bytes((np.abs(pcm) > threshold).astype(np.uint8))


_LOUD_ULAW = _loud_ulaw_table()


def first_audible_ulaw(ulaw: bytes) -> int | None:
    """``first_audible_sample`` of the decoded audio, read from the μ-law bytes in C (no numpy per message)."""
    i = ulaw.translate(_LOUD_ULAW).find(1)
    return None if i < 0 else i


@dataclass
class Segment:
    """One media message as played: ``start`` on the clock, its PCM, and where sound begins inside it."""

    received_at: float
    start: float
    pcm: bytes
    audible_offset: int | None  # samples from start to the first audible sample

    @property
    def end(self) -> float:
        return self.start + len(self.pcm) / 2 / TELEPHONY_RATE

    @property
    def audible_at(self) -> float | None:
        """Clock time the caller first hears sound from this segment (None: silent or cut before it)."""
        if self.audible_offset is None or self.audible_offset * 2 >= len(self.pcm):
            return None
        return self.start + self.audible_offset / TELEPHONY_RATE


class PlaybackBuffer:
    """Plays μ-law back to back from the moment it arrives; marks are due when the audio before them ends."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self._received: list[float] = []  # segments' received_at and start, both non-decreasing: bisect, not scan
        self._starts: list[float] = []
        self.play_end = 0.0  # when the last queued audio finishes
        self._marks: deque[tuple[float, str]] = deque()  # (due, name), due times non-decreasing

    def enqueue(self, ulaw: bytes, now: float) -> Segment:
        """Queue audio behind whatever is still playing (or start it now if the buffer ran dry)."""
        pcm = ulaw_to_pcm16(ulaw)
        segment = Segment(now, max(now, self.play_end), pcm, first_audible_ulaw(ulaw))
        self.segments.append(segment)
        self._received.append(segment.received_at)
        self._starts.append(segment.start)
        self.play_end = segment.end
        return segment

    def mark(self, name: str, now: float) -> float:
        """Queue a mark; returns when it is due (``now`` when nothing is buffered)."""
        due = max(now, self.play_end)
        self._marks.append((due, name))
        return due

    def next_mark_due(self) -> float | None:
        return self._marks[0][0] if self._marks else None

    def pop_due_marks(self, now: float) -> list[str]:
        """Names of marks whose audio has finished playing by ``now``, in order."""
        names = []
        while self._marks and self._marks[0][0] <= now:
            names.append(self._marks.popleft()[1])
        return names

    def clear(self, now: float) -> list[str]:
        """Drop unplayed audio (cutting the segment playing now) and return every pending mark's name."""
        kept: list[Segment] = []
        for segment in self.segments:
            if segment.end <= now:
                kept.append(segment)
            elif segment.start < now:
                samples = int((now - segment.start) * TELEPHONY_RATE)
                segment.pcm = segment.pcm[: samples * 2]
                kept.append(segment)
        self.segments = kept
        self._received = [s.received_at for s in kept]
        self._starts = [s.start for s in kept]
        self.play_end = min(self.play_end, now)
        names = [name for _, name in self._marks]
        self._marks.clear()
        return names

    def playing_at(self, t: float) -> bool:
        """True when queued audio (audible or not) covers time ``t``."""
        i = bisect_right(self._starts, t) - 1
        return i >= 0 and t < self.segments[i].end

    def audible_since(self, t: float, before: float = float("inf")) -> float | None:
        """Clock time of the first sound heard from audio received in ``[t, before)`` (a reply to what ended at t)."""
        for i in range(bisect_left(self._received, t), len(self.segments)):
            segment = self.segments[i]
            if segment.received_at >= before:
                return None
            if (at := segment.audible_at) is not None:
                return at
        return None

    def render(self, origin: float, end: float) -> bytes:
        """PCM16 timeline of what was heard from ``origin`` to ``end``: audio where it played, silence elsewhere."""
        total = max(0, round((end - origin) * TELEPHONY_RATE))
        out = np.zeros(total, dtype="<i2")
        for segment in self.segments:
            pcm = np.frombuffer(segment.pcm, dtype="<i2")
            first = round((segment.start - origin) * TELEPHONY_RATE)
            lo, hi = max(0, first), min(total, first + pcm.size)
            if hi > lo:
                out[lo:hi] = pcm[lo - first : hi - first]
        return out.tobytes()
