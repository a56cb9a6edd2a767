"""Streaming conversion between provider audio formats and the call's (μ-law 8 kHz for telephony)."""

from __future__ import annotations

from pipelines.audio import Resampler, pcm16_to_ulaw, ulaw_to_pcm16
from providers.base import AudioFormat


class AudioConverter:
    """Decode, resample (state kept across chunks) and encode one continuous stream of audio."""

    def __init__(self, source: AudioFormat, target: AudioFormat) -> None:
        self.source = source
        self.target = target
        self._passthrough = source == target
        self._resampler = (
            None if source.sample_rate == target.sample_rate else Resampler(source.sample_rate, target.sample_rate)
        )
        self._odd = b""  # a dangling byte of 16-bit PCM kept for the next chunk (when no resampler does it)

    def convert(self, chunk: bytes, decoded: bytes | None = None) -> bytes:
        """Convert ``chunk``; ``decoded`` may carry its PCM16 already (the hot path decodes once for the VAD)."""
        if self._passthrough:
            return chunk
        if self.source.encoding == "mulaw":
            pcm = decoded if decoded is not None else ulaw_to_pcm16(chunk)
        elif self._resampler is not None:
            return self._encode(self._resampler.process(chunk))  # the resampler carries an odd byte itself
        else:
            pcm = self._even(chunk)
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        return self._encode(pcm)

    def flush(self) -> bytes:
        if self._passthrough or self._resampler is None:
            return b""
        return self._encode(self._resampler.flush())

    def _even(self, chunk: bytes) -> bytes:
        data = self._odd + chunk
        if len(data) % 2:
            self._odd, data = data[-1:], data[:-1]
        else:
            self._odd = b""
        return data

    def _encode(self, pcm: bytes) -> bytes:
        return pcm16_to_ulaw(pcm) if self.target.encoding == "mulaw" else pcm
