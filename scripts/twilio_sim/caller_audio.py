"""What the caller says: any WAV, raw PCM16 or espeak-ng text, turned into 20 ms μ-law frames as Twilio sends them.

Each frame is also labelled speech or not (by peak level), so latency is measured from the end of the words and
not from the end of a WAV's trailing silence. :class:`LineNoise` is the line's own background, under the words and
between them; the labels still come from the words alone.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.audio import TELEPHONY_RATE, Resampler, pcm16_to_ulaw, ulaw_to_pcm16

FRAME_SAMPLES = 160
ULAW_SILENCE_FRAME = b"\xff" * FRAME_SAMPLES
SPEECH_PEAK = 500  # PCM16 peak that makes a 20 ms frame "speech" (about -36 dBFS)

AudioSource = str | Path | bytes


@dataclass(frozen=True)
class CallerAudio:
    """160-byte μ-law frames and, per frame, whether it holds speech."""

    frames: list[bytes]
    speech: list[bool]

    @property
    def duration_ms(self) -> int:
        return len(self.frames) * 20


def read_wav(data: bytes | str | Path) -> tuple[bytes, int]:
    """Mono PCM16 and its rate from a WAV (file path or bytes). Stereo is averaged; 8/24/32-bit are converted.

    Tolerates streamed WAVs whose header lies about the length (``espeak-ng --stdout`` writes 0x7fffffff).
    """
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with wave.open(source, "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    usable = len(raw) // (width * channels) * width * channels
    raw = raw[:usable]
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 3:
        bytes3 = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        samples = (bytes3[:, 2].astype(np.int8).astype(np.int32) << 8) | bytes3[:, 1]
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4") >> 16
    else:
        raise ValueError(f"unsupported WAV sample width {width}")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int32)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes(), rate


def to_8k(pcm16: bytes, rate: int) -> bytes:
    """Resample mono PCM16 to 8 kHz with the engine's own streaming resampler (flushed: no lost tail)."""
    if rate == TELEPHONY_RATE:
        return pcm16
    resampler = Resampler(rate, TELEPHONY_RATE)
    return resampler.process(pcm16) + resampler.flush()


def caller_audio(source: AudioSource, rate: int = TELEPHONY_RATE) -> CallerAudio:
    """Frames for ``source``: a WAV path, WAV bytes (RIFF header), or raw PCM16 mono bytes at ``rate``."""
    if isinstance(source, bytes) and source[:4] == b"RIFF":
        pcm, rate = read_wav(source)
    elif isinstance(source, bytes):
        pcm = source[: len(source) // 2 * 2]
    else:
        pcm, rate = read_wav(source)
    pcm8 = to_8k(pcm, rate)
    samples = np.frombuffer(pcm8, dtype="<i2")
    pad = (-samples.size) % FRAME_SAMPLES
    samples = np.concatenate([samples, np.zeros(pad, dtype="<i2")]).reshape(-1, FRAME_SAMPLES)
    peaks = np.abs(samples.astype(np.int32)).max(axis=1) if samples.size else np.zeros(0)
    frames = [pcm16_to_ulaw(row.tobytes()) for row in samples]
    return CallerAudio(frames, [bool(p > SPEECH_PEAK) for p in peaks])


class LineNoise:
    """A telephone line's background: pink noise in the 300-3400 Hz band at ``dbfs`` (RMS re full scale), looped.

    The stream sends :meth:`frame` where the caller is silent and :meth:`under` their words, so the recognizer and
    the VAD hear a continuous floor (no step to digital silence at an utterance's edges).
    """

    def __init__(self, dbfs: float, seconds: float = 10.0, seed: int = 0) -> None:
        count = max(1, round(seconds * 50))
        samples = count * FRAME_SAMPLES
        spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(samples))
        freqs = np.fft.rfftfreq(samples, 1 / TELEPHONY_RATE)
        spectrum = np.where((freqs >= 300) & (freqs <= 3400), spectrum / np.sqrt(np.maximum(freqs, 1.0)), 0)
        noise = np.fft.irfft(spectrum, n=samples)
        noise *= 32768 * 10 ** (dbfs / 20) / max(float(np.sqrt(np.mean(noise**2))), 1e-9)
        self.dbfs = dbfs
        self._pcm = np.clip(np.round(noise), -32768, 32767).astype(np.int32).reshape(count, FRAME_SAMPLES)
        self._frames = [pcm16_to_ulaw(row.astype("<i2").tobytes()) for row in self._pcm]
        self._next = 0

    def _advance(self) -> int:
        index, self._next = self._next, (self._next + 1) % len(self._frames)
        return index

    def frame(self) -> bytes:
        """The next 20 ms of background alone (μ-law)."""
        return self._frames[self._advance()]

    def under(self, frame: bytes) -> bytes:
        """``frame`` (μ-law) with the next 20 ms of background mixed in."""
        pcm = np.frombuffer(ulaw_to_pcm16(frame), dtype="<i2").astype(np.int32) + self._pcm[self._advance()]
        return pcm16_to_ulaw(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())


def silence_audio(ms: int) -> CallerAudio:
    """``ms`` of μ-law silence (0xFF frames), rounded up to whole 20 ms frames."""
    count = -(-max(0, ms) // 20)
    return CallerAudio([ULAW_SILENCE_FRAME] * count, [False] * count)


def synthesize(text: str, words_per_minute: int = 160, voice: str | None = None) -> bytes:
    """WAV bytes of ``text`` spoken by espeak-ng (22.05 kHz mono). Raises RuntimeError when it is not installed."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    command = [binary, "--stdout", "-s", str(words_per_minute)]
    if voice:
        command += ["-v", voice]
    completed = subprocess.run([*command, text], capture_output=True, check=True, timeout=60)
    return completed.stdout
