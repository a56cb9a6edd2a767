"""Telephony audio primitives: the μ-law codec, a streaming resampler, a fixed-size framer, test signals.

Everything here runs on every 20 ms frame of every call, so the hot paths are single C calls (audioop, libsoxr)
with no per-call set-up. PCM16 means signed 16-bit little-endian mono samples throughout.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import soxr

with warnings.catch_warnings():
    # Python 3.11/3.12 ship audioop with a DeprecationWarning; 3.13+ get the same module from audioop-lts.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

TELEPHONY_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = TELEPHONY_RATE * FRAME_MS // 1000  # 160
FRAME_BYTES_ULAW = FRAME_SAMPLES  # one byte per μ-law sample
FRAME_BYTES_PCM16 = FRAME_SAMPLES * 2  # 320

ULAW_SILENCE = b"\xff"  # μ-law code for 0; pads μ-law frames without a click
PCM16_SILENCE = b"\x00"

_SAMPLE_WIDTH = 2
_INT16 = np.dtype("<i2")
_EMPTY_INT16 = np.zeros(0, dtype=_INT16)


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Decode G.711 μ-law (one byte per sample) to PCM16; output is exactly twice as long."""
    return audioop.ulaw2lin(data, _SAMPLE_WIDTH)


def frame_rms(pcm16: bytes) -> int:
    """RMS of PCM16 audio: the frame level the turn detector's tail trim compares (one C call)."""
    return audioop.rms(pcm16, _SAMPLE_WIDTH)


def leading_silence(data: bytes, mulaw: bool, rate: int, threshold: int = 300, keep_ms: int = 10) -> int:
    """How many bytes of ``data`` to drop before a reply's first sound: all but ``keep_ms`` of the samples
    quieter than ``threshold`` (PCM16 peak, about -40 dBFS) at its start. Returns len(data) if all are quiet.

    Why: voices start with 20–50 ms of near-silence; at the start of a reply that is pure wait for the caller.
    """
    pcm = ulaw_to_pcm16(data) if mulaw else data[: len(data) - len(data) % _SAMPLE_WIDTH]
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype=_INT16).astype(np.int32)) >= threshold)
    if loud.size == 0:
        return len(pcm) // (_SAMPLE_WIDTH if mulaw else 1)  # whole samples only: the stream stays aligned
    first = max(0, int(loud[0]) - rate * keep_ms // 1000)
    return first * (1 if mulaw else _SAMPLE_WIDTH)


def pcm16_to_ulaw(data: bytes) -> bytes:
    """Encode PCM16 to G.711 μ-law. ``data`` must hold whole samples (even length), else ValueError."""
    if len(data) & 1:
        raise ValueError(f"PCM16 data must have an even byte count, got {len(data)}")
    return audioop.lin2ulaw(data, _SAMPLE_WIDTH)


class Resampler:
    """Streaming PCM16 mono sample-rate converter (libsoxr) that keeps filter state across chunks.

    Chunks may be any size, including odd byte counts: a dangling byte is carried into the next call, so
    output matches resampling the whole stream at once (to within libsoxr's ±2 LSB of rounding and dither).
    libsoxr works in blocks, so output comes in bursts and lags input by ~40-120 ms at 20 ms chunks;
    ``flush()`` drains that tail at the end of a stream.

    Quality "MQ" (16-bit precision, passband flat to ~91% of the output Nyquist) is the default: it matches
    PCM16's resolution, costs the same per chunk as "HQ", and keeps the 300-3400 Hz telephone band intact,
    which "LQ" does not.
    """

    __slots__ = ("_carry", "_stream", "in_rate", "out_rate", "quality")

    def __init__(self, in_rate: int, out_rate: int, quality: str = "MQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._carry = b""
        self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream | None:
        # A fresh stream rather than clear(): libsoxr dithers int16 output, and a new instance restarts the
        # dither sequence, so the same input always gives the same output. Costs ~50 µs, once per stream.
        if self.in_rate == self.out_rate:
            return None
        return soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="int16", quality=self.quality)

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and audio is returned untouched."""
        return self._stream is None

    def process(self, pcm: bytes) -> bytes:
        """Resample the next chunk of the stream; may return fewer (or zero) bytes while the filter fills."""
        if self._carry:
            pcm = self._carry + pcm
            self._carry = b""
        if len(pcm) & 1:
            self._carry = pcm[-1:]
            pcm = pcm[:-1]
        if self._stream is None or not pcm:
            return pcm
        out: bytes = self._stream.resample_chunk(np.frombuffer(pcm, dtype=_INT16)).tobytes()  # soxr is untyped
        return out

    def flush(self) -> bytes:
        """End the stream: return the samples still inside the filter and get ready for a new stream.

        A dangling odd byte is half a sample and is dropped.
        """
        self._carry = b""
        if self._stream is None:
            return b""
        tail: bytes = self._stream.resample_chunk(_EMPTY_INT16, last=True).tobytes()
        self._stream = self._new_stream()
        return tail

    def reset(self) -> None:
        """Drop buffered audio without output (e.g. on barge-in) and start a fresh stream."""
        self._carry = b""
        if self._stream is not None:
            self._stream = self._new_stream()


class Framer:
    """Cuts an arbitrary byte stream into fixed-size frames (e.g. 160-byte μ-law frames for Twilio)."""

    __slots__ = ("_buf", "frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0:
            raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet fill a frame."""
        return len(self._buf)

    def push(self, data: bytes) -> list[bytes]:
        """Add bytes; return every frame now complete, in order (possibly none)."""
        buf = self._buf
        size = self.frame_bytes
        if not buf and len(data) == size:
            return [data]  # the common case on a call (one whole frame, nothing pending): no copying
        buf += data
        count = len(buf) // size
        if not count:
            return []
        frames = [bytes(buf[i : i + size]) for i in range(0, count * size, size)]
        del buf[: count * size]
        return frames

    def flush(self, pad_byte: bytes | None = None) -> bytes | None:
        """Return the partial last frame padded to full size with ``pad_byte`` (unpadded if None).

        Use ``ULAW_SILENCE`` (b"\\xff") for μ-law and ``PCM16_SILENCE`` (b"\\x00") for PCM16, so the pad is
        silence rather than a click. Returns None when nothing is buffered.
        """
        if not self._buf:
            return None
        if pad_byte is not None and len(pad_byte) != 1:
            raise ValueError(f"pad_byte must be exactly one byte, got {pad_byte!r}")
        frame = bytes(self._buf)
        self._buf.clear()
        if pad_byte is not None:
            frame += pad_byte * (self.frame_bytes - len(frame))
        return frame

    def clear(self) -> None:
        """Drop buffered bytes (e.g. when queued playout is cancelled)."""
        self._buf.clear()


def tone(freq_hz: float, ms: int, rate: int = TELEPHONY_RATE, amplitude: float = 0.5) -> bytes:
    """PCM16 sine of ``ms`` milliseconds; ``amplitude`` is a fraction of full scale (0..1). For tests and scripts."""
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude must be within 0..1, got {amplitude}")
    n = rate * ms // 1000
    t = np.arange(n, dtype=np.float64)
    samples = np.round(np.sin(2.0 * math.pi * freq_hz * t / rate) * amplitude * 32767.0)
    return samples.astype(_INT16).tobytes()


def silence(ms: int, rate: int = TELEPHONY_RATE) -> bytes:
    """PCM16 digital silence of ``ms`` milliseconds."""
    return bytes(rate * ms // 1000 * 2)
