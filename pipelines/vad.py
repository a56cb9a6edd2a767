"""Voice activity detection: one speech/non-speech decision per 20 ms frame of 8 kHz PCM16.

The turn detector needs only ``Vad``; backends are interchangeable. WebRTC's GMM VAD is nearly free per frame;
Silero is a small neural network that is far better at rejecting noise, at a higher (still sub-ms) cost.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol, runtime_checkable

import _webrtcvad  # webrtcvad's C core: its Python wrapper re-checks each frame's length (~1 µs of 3 per frame)
import numpy as np

from pipelines.audio import FRAME_BYTES_PCM16, FRAME_SAMPLES, TELEPHONY_RATE, frame_rms
from pipelines.noise_floor import BackgroundPeaks, NoiseFloor, frame_dbfs
from pipelines.silero_model import SileroStream

VAD_KINDS = ("webrtc", "silero", "adaptive")
_GATE_HOLD_FRAMES = 8  # the gate stays open this long after the last frame above the floor (160 ms)
_RUN_UP_FRAMES = 25  # line audio the gated Silero hears before an onset, to settle on the background
_HANGOVER_FRAMES = 25  # the gated Silero keeps running this long after the gate closes (500 ms)
_RUN_GAP_FRAMES = 15  # a pause this long (300 ms) ends a run of speech
_ENDLESS_FRAMES = 150  # 3 s of speech without such a pause: a talker breathes, a room does not
_NEAR_FLOOR_DB = 12.0  # … and within this of the floor: a caller on a usable line stands further out
_OVER_PEAKS_DB = 1.0  # speech stands at least this far above the background's loud moments
_INT16_SCALE = np.float32(1.0 / 32768.0)


@runtime_checkable
class Vad(Protocol):
    """A stateful per-call detector fed consecutive frames; one instance per audio stream."""

    def is_speech(self, frame: bytes) -> bool:
        """Decide one 20 ms frame of PCM16 at 8 kHz (320 bytes)."""
        ...

    def reset(self) -> None:
        """Forget all history, as if a new stream started."""
        ...


def _check_frame(frame: bytes) -> None:
    if len(frame) != FRAME_BYTES_PCM16:
        raise ValueError(f"VAD frames are 20 ms of 8 kHz PCM16 ({FRAME_BYTES_PCM16} bytes), got {len(frame)}")


class WebRtcVad:
    """WebRTC's VAD (``webrtcvad``); ``aggressiveness`` 0 (lenient) .. 3 (strict about calling noise speech)."""

    __slots__ = ("_vad", "aggressiveness")

    def __init__(self, aggressiveness: int = 2) -> None:
        if isinstance(aggressiveness, bool) or not isinstance(aggressiveness, int) or not 0 <= aggressiveness <= 3:
            raise ValueError(f"WebRTC VAD aggressiveness must be an integer 0..3, got {aggressiveness!r}")
        self.aggressiveness = aggressiveness
        self._vad = self._new()

    def _new(self) -> object:
        """What ``webrtcvad.Vad(aggressiveness)`` builds, without the wrapper object around it."""
        vad = _webrtcvad.create()
        _webrtcvad.init(vad)
        _webrtcvad.set_mode(vad, self.aggressiveness)
        return vad

    def is_speech(self, frame: bytes) -> bool:
        if len(frame) != FRAME_BYTES_PCM16:
            _check_frame(frame)  # raises with the reason
        speech: bool = _webrtcvad.process(self._vad, TELEPHONY_RATE, frame, FRAME_SAMPLES)  # an untyped C module
        return speech

    def reset(self) -> None:
        # webrtcvad keeps adaptive noise estimates and offers no reset; a new instance is cheap.
        self._vad = self._new()


class SileroVad:
    """Silero VAD v6 (a small neural network, far better than WebRTC at rejecting noise), on the process's shared
    model (:mod:`pipelines.silero_model`): a call holds only the model's recurrent state.

    The model runs natively at 8 kHz on 32 ms windows (256 samples), which do not line up with 20 ms frames:
    frames are buffered into windows, the model's recurrent state carries across windows, and each frame gets
    the decision of the latest complete window (the first frame of a stream, before any window, is non-speech).
    The model is loaded on first use, not at module import, so WebRTC users never pay for it.
    """

    __slots__ = ("_buf", "_model", "_window", "_window_samples", "probability", "threshold")

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"Silero VAD threshold must be strictly between 0 and 1, got {threshold!r}")
        self.threshold = threshold
        self._model = SileroStream()
        self._window_samples: int = self._model.window_size_samples
        self._window = np.zeros(self._window_samples, dtype=np.float32)  # reused: one multiply per window
        self._buf = bytearray()
        self.probability = 0.0  # speech probability of the latest complete window

    def _run_windows(self) -> None:
        buf = self._buf
        window_bytes = self._window_samples * 2
        while len(buf) >= window_bytes:
            samples = np.frombuffer(buf, dtype="<i2", count=self._window_samples)
            np.multiply(samples, _INT16_SCALE, out=self._window)
            del samples  # release the export on buf before resizing it
            del buf[:window_bytes]
            self.probability = self._model.process(self._window)

    def is_speech(self, frame: bytes) -> bool:
        _check_frame(frame)
        self._buf += frame
        self._run_windows()
        return self.probability >= self.threshold

    def reset(self) -> None:
        self._model.reset()
        self._buf.clear()
        self.probability = 0.0


class AdaptiveVad(SileroVad):
    """Silero behind a noise-floor gate: a frame is speech only if it stands ``margin_db`` above the line's own
    noise floor (:class:`NoiseFloor`), is louder than ``min_dbfs``, and Silero hears a voice in it.

    The gate answers what Silero alone gets wrong on phone lines: babble and music at a steady level are voices
    to any VAD, but not louder than the background they are; a hiss that starts after the carrier's digital
    silence is not louder than ``min_dbfs``. It also ends speech where the sound ends, not where the model's
    memory of it fades (50-150 ms later). And it makes Silero cheap: the model runs only while the gate is open
    and for ``_HANGOVER_FRAMES`` after, then its state is reset, so quiet stretches of a call cost one RMS.
    Silero's decision has hysteresis (on at ``threshold``, off below ``threshold - 0.15``), as Silero's own
    reference streaming code does.
    """

    __slots__ = (
        "_active",
        "_closed",
        "_floor",
        "_loud_ago",
        "_peaks",
        "_prev",
        "_run",
        "margin_db",
        "min_dbfs",
    )

    def __init__(self, threshold: float = 0.5, *, margin_db: float = 4.0, min_dbfs: float = -58.0) -> None:
        super().__init__(threshold)
        self.margin_db, self.min_dbfs = margin_db, min_dbfs
        self._floor = NoiseFloor()
        self._peaks = BackgroundPeaks()
        self._run = 0  # frames of speech without a pause of _RUN_GAP_FRAMES
        self._active = False
        self._closed = _HANGOVER_FRAMES  # frames since the gate last stood open
        self._prev: deque[bytes] = deque(maxlen=_RUN_UP_FRAMES)
        self._loud_ago = _GATE_HOLD_FRAMES + 1  # frames since one stood above the floor

    def is_speech(self, frame: bytes) -> bool:
        if len(frame) != FRAME_BYTES_PCM16:
            _check_frame(frame)
        level = frame_dbfs(frame_rms(frame))
        floor, peak = self._floor.floor_dbfs, self._peaks.peak_dbfs
        self._floor.update(level)
        loud = (
            level >= self.min_dbfs
            and (floor is None or level >= floor + self.margin_db)
            and (peak is None or level >= peak + _OVER_PEAKS_DB)
        )
        self._loud_ago = 0 if loud else self._loud_ago + 1
        gate = self._loud_ago <= _GATE_HOLD_FRAMES  # syllables dip between loud peaks: hold the gate across
        if gate:
            if self._closed >= _HANGOVER_FRAMES:  # a run-up: the model hears the line before the onset it judges
                self._buf += b"".join(self._prev)
                self._prev.clear()
            self._closed = 0
        elif self._closed >= _HANGOVER_FRAMES:
            self._prev.append(frame)
            self._peaks.update(level)
            return False
        else:
            self._closed += 1
            if self._closed == _HANGOVER_FRAMES:  # quiet for a while: the next sound starts a fresh stream
                super().reset()
                self._active = False
                self._peaks.update(level)
                self._prev.append(frame)
                return False
        self._buf += frame
        self._run_windows()
        probability = self.probability
        self._active = probability >= (self.threshold - 0.15 if self._active else self.threshold)
        speech = gate and self._active
        self._run = self._run + 1 if speech else 0 if self._loud_ago > _RUN_GAP_FRAMES else self._run
        endless = self._run > _ENDLESS_FRAMES and floor is not None and level < floor + _NEAR_FLOOR_DB
        if not speech or endless:
            # Non-speech teaches the background's peaks; so does "speech" that never pauses and barely rises
            # over the floor: a room of voices present from the call's start, which would otherwise lock in.
            self._peaks.update(level)
        return speech

    def reset(self) -> None:
        super().reset()
        self._floor.reset()
        self._peaks.reset()
        self._active, self._closed, self._run = False, _HANGOVER_FRAMES, 0
        self._prev.clear()
        self._loud_ago = _GATE_HOLD_FRAMES + 1


def make_vad(kind: str, aggressiveness: int = 2, *, threshold: float = 0.5) -> Vad:
    """Build a VAD by name: "webrtc" (uses ``aggressiveness``), "silero" or "adaptive" (use ``threshold``)."""
    if kind == "webrtc":
        return WebRtcVad(aggressiveness)
    if kind == "silero":
        return SileroVad(threshold)
    if kind == "adaptive":
        return AdaptiveVad(threshold)
    raise ValueError(f"unknown VAD kind {kind!r}; expected one of {', '.join(VAD_KINDS)}")
