"""The line's noise floor, from frame levels alone: what a speech decision must rise above.

Minimum statistics: the quietest 20 ms frame of each 200 ms block, and the floor is the quietest of the last
eight blocks (1.6 s). Speech has gaps between syllables and words within that time, so the floor follows the
background (a café, a car, a hiss) up within 1.6 s and down at once, and never climbs onto a talker's voice.

Digital silence (μ-law 0xFF runs: silence suppression, mute, the start of a call) is not line noise and is left
out, so a noise floor that starts after it is measured as the new floor, not taken for a jump in level.
"""

from __future__ import annotations

import math
from collections import deque

DIGITAL_SILENCE_DBFS = -80.0  # quieter frames are the carrier's digital silence, not the line
BLOCK_FRAMES = 10
BLOCKS = 8
_FULL_SCALE = 32768.0


def frame_dbfs(rms: float) -> float:
    """A frame's RMS (16-bit PCM units) in dB below full scale; -120 for true zeros."""
    return 20.0 * math.log10(rms / _FULL_SCALE) if rms > 0 else -120.0


class NoiseFloor:
    """Tracks the floor in dBFS; ``floor_dbfs`` is None until one block of line audio has been seen."""

    __slots__ = ("_block_min", "_blocks", "_count", "floor_dbfs")

    def __init__(self) -> None:
        self._blocks: deque[float] = deque(maxlen=BLOCKS)
        self._block_min = math.inf
        self._count = 0
        self.floor_dbfs: float | None = None

    def update(self, level_dbfs: float) -> None:
        if level_dbfs <= DIGITAL_SILENCE_DBFS:
            return
        if level_dbfs < self._block_min:
            self._block_min = level_dbfs
        if self.floor_dbfs is not None and level_dbfs < self.floor_dbfs:
            self.floor_dbfs = level_dbfs  # down at once: the background got quieter
        self._count += 1
        if self._count == BLOCK_FRAMES:
            self._blocks.append(self._block_min)
            self.floor_dbfs = min(self._blocks)
            self._block_min, self._count = math.inf, 0

    def reset(self) -> None:
        self._blocks.clear()
        self._block_min, self._count, self.floor_dbfs = math.inf, 0, None


class BackgroundPeaks:
    """How loud the background gets, not just its floor: the ``PERCENTILE`` of the last ``SPAN`` frames that were
    not speech, recomputed every block.

    A steady hiss stays within a dB or two of its floor, but babble and a café rise and fall by 10 dB with the
    nearer voices in them: speech must stand above those peaks, not only above the floor, or every loud moment of
    the room keeps a turn open.
    """

    PERCENTILE = 90
    SPAN = 100  # 2 s of non-speech frames

    __slots__ = ("_count", "_levels", "peak_dbfs")

    def __init__(self) -> None:
        self._levels: deque[float] = deque(maxlen=self.SPAN)
        self._count = 0
        self.peak_dbfs: float | None = None

    def update(self, level_dbfs: float) -> None:
        """One frame the detector did not take for speech."""
        if level_dbfs <= DIGITAL_SILENCE_DBFS:
            return
        self._levels.append(level_dbfs)
        self._count += 1
        if self._count >= BLOCK_FRAMES and len(self._levels) >= BLOCK_FRAMES * 2:
            self._count = 0
            ordered = sorted(self._levels)
            self.peak_dbfs = ordered[(len(ordered) - 1) * self.PERCENTILE // 100]

    def reset(self) -> None:
        self._levels.clear()
        self._count, self.peak_dbfs = 0, None
