"""What the caller has actually heard, from mark acknowledgements: the playback clock of a call.

Agent audio leaves in chunks, each followed by a mark. The transport echoes a mark when the audio before it
has played. After a ``clear`` the transport also echoes every pending mark, but that audio was dropped, so
those echoes must not count: :meth:`HeardTracker.cleared` cancels them first.

Pure bookkeeping, no I/O, so the rules are tested exactly.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

_MS_PER_CHAR = 70  # about 14 characters a second: a fast speaking rate


@dataclass
class Segment:
    """One sentence of an agent reply, with the audio duration sent for it so far."""

    index: int
    text: str
    sent_ms: int = 0
    heard_ms: int = 0
    complete: bool = False  # all of its audio has been sent

    @property
    def fully_heard(self) -> bool:
        return self.complete and self.heard_ms >= self.sent_ms


@dataclass
class _PendingMark:
    name: str
    segment: int
    segment_ms: int  # the segment's audio played once this mark is echoed


@dataclass
class HeardTracker:
    """Marks in flight and, per segment, how much audio the caller has heard."""

    segments: list[Segment] = field(default_factory=list)
    _pending: deque[_PendingMark] = field(default_factory=deque)
    _cancelled: set[str] = field(default_factory=set)
    _counter: int = 0

    def add_segment(self, text: str) -> Segment:
        segment = Segment(index=len(self.segments), text=text)
        self.segments.append(segment)
        return segment

    def chunk_sent(self, segment: Segment, duration_ms: int) -> str:
        """Record ``duration_ms`` of the segment's audio as sent; returns the mark name to send after it."""
        self._counter += 1
        segment.sent_ms += duration_ms
        name = f"m{self._counter}"
        self._pending.append(_PendingMark(name, segment.index, segment.sent_ms))
        return name

    def chunk_resent(self, segment: Segment, segment_ms: int) -> str:
        """Audio already counted in ``segment.sent_ms`` goes out again (after a pause): a new mark, same span."""
        self._counter += 1
        name = f"m{self._counter}"
        self._pending.append(_PendingMark(name, segment.index, segment_ms))
        return name

    def acknowledged(self, name: str) -> bool:
        """A mark came back. True when it proves new audio was heard (not a post-clear echo or unknown)."""
        if name in self._cancelled:
            self._cancelled.discard(name)
            return False
        if not any(mark.name == name for mark in self._pending):
            return False
        while self._pending:  # marks come back in order; an earlier missing echo is implied by a later one
            mark = self._pending.popleft()
            segment = self.segments[mark.segment]
            segment.heard_ms = max(segment.heard_ms, mark.segment_ms)
            if mark.name == name:
                return True
        return True

    def cleared(self) -> None:
        """Audio was flushed: marks still pending will be echoed but were never played."""
        self._cancelled.update(mark.name for mark in self._pending)
        self._pending.clear()

    def owns(self, name: str) -> bool:
        """Whether ``name`` is one of this tracker's marks still expected back (pending or cancelled)."""
        return name in self._cancelled or any(mark.name == name for mark in self._pending)

    @property
    def cancelled_pending(self) -> bool:
        return bool(self._cancelled)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def all_played(self) -> bool:
        return not self._pending

    def heard_text(self) -> str:
        """The reply as far as the caller heard it.

        Whole sentences count once all their audio was acknowledged. In a partly heard sentence, words are
        credited in proportion to acknowledged audio, rounded down, less one: better to repeat a word than to
        claim the caller heard it.
        """
        parts: list[str] = []
        for segment in self.segments:
            if segment.fully_heard:
                parts.append(segment.text)
                continue
            if segment.heard_ms > 0 and segment.sent_ms > 0:
                words = segment.text.split()
                # Until all its audio is sent the segment's length is unknown: assume at least a brisk
                # speaking rate for its text, so a short acknowledged head is never taken for the whole.
                total_ms = (
                    segment.sent_ms if segment.complete else max(segment.sent_ms, len(segment.text) * _MS_PER_CHAR)
                )
                fraction = segment.heard_ms / total_ms
                credited = max(0, math.floor(len(words) * fraction) - 1)
                if credited:
                    parts.append(" ".join(words[:credited]))
            break
        return " ".join(parts)

    def unheard_from(self) -> int | None:
        """Index of the first segment the caller has not fully heard (where a resumed reply starts)."""
        for segment in self.segments:
            if not segment.fully_heard:
                return segment.index
        return None
