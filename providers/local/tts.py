"""Embedded TTS: Piper (the en_US joe medium voice) and eSpeak NG as a tiny, robotic fallback.

Both output PCM16 at their native rate (22050 Hz for both; Piper's is read from the voice's config) and
leave resampling to the engine. Piper synthesizes sentence by sentence, so a multi-sentence text starts
playing after its first sentence; audio is handed over in ~200 ms pieces. eSpeak NG runs as a subprocess
(``espeak-ng --stdout``, text on stdin so it is never parsed as options) inside a pool worker as well.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from threading import Event
from typing import Any

from providers.base import AudioFormat, ProviderError, TTSOptions, TTSProvider
from providers.local import models
from providers.local.pool import PROVIDER, WorkerPool, get_pool, run, stream

_PIECE_MS = 200
_ESPEAK_TIMEOUT_SEC = 15


def _pieces(pcm: bytes, fmt: AudioFormat) -> list[bytes]:
    size = fmt.bytes_per_second * _PIECE_MS // 1000
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


class PiperTTS(TTSProvider):
    name = "local"

    def __init__(self, *, voice_path: str | None = None, pool: WorkerPool | None = None) -> None:
        self.voice_path = str(voice_path or models.joe_voice_path())
        config = Path(f"{self.voice_path}.json")
        if not config.is_file():
            raise ProviderError(PROVIDER, f"Piper voice config not found: {config}", retryable=False)
        rate = int(json.loads(config.read_text(encoding="utf-8"))["audio"]["sample_rate"])
        self.output_format = AudioFormat("pcm16", rate)
        self.pool = pool or get_pool()

    async def warm_up(self) -> None:
        """Load the voice now (in a worker) so the first caller does not wait for it."""
        await run(self.pool, models.PIPER_LANE, lambda: models.piper(self.voice_path), "loading piper")

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        fmt = self.output_format

        def produce(emit: Callable[[Any], None], stop: Event) -> None:
            engine = models.piper(self.voice_path)
            if engine.sample_rate != fmt.sample_rate:
                raise ProviderError(PROVIDER, "Piper voice sample rate changed", retryable=False)
            for sentence in engine.synthesize(text, options.speed):
                if stop.is_set():
                    return
                for piece in _pieces(sentence, fmt):
                    emit(piece)

        async for piece in stream(self.pool, models.PIPER_LANE, produce, "piper"):
            yield piece


class EspeakTTS(TTSProvider):
    name = "local"
    output_format = AudioFormat("pcm16", 22050)

    def __init__(self, *, voice: str = "en-us", pool: WorkerPool | None = None) -> None:
        if shutil.which("espeak-ng") is None:
            raise ProviderError(PROVIDER, "espeak-ng is not installed (apt-get install espeak-ng)", retryable=False)
        self.voice = voice
        self.pool = pool or get_pool()

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        voice = self.voice
        words_per_minute = max(80, min(450, round(175 * options.speed)))
        fmt = self.output_format

        def produce(emit: Callable[[Any], None], stop: Event) -> None:
            pcm = _espeak(text, voice, words_per_minute)
            for piece in _pieces(pcm, fmt):
                if stop.is_set():
                    return
                emit(piece)

        async for piece in stream(self.pool, models.ESPEAK_LANE, produce, "espeak-ng"):
            yield piece


def _espeak(text: str, voice: str, words_per_minute: int) -> bytes:
    command = ["espeak-ng", "--stdout", "--stdin", "-v", voice, "-s", str(words_per_minute)]
    done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, timeout=_ESPEAK_TIMEOUT_SEC)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip()[:200]
        raise ProviderError(PROVIDER, f"espeak-ng failed: {message}", retryable=False)
    return wav_pcm16(done.stdout, expected_rate=EspeakTTS.output_format.sample_rate)


def wav_pcm16(wav: bytes, *, expected_rate: int) -> bytes:
    """The PCM16 samples of a mono WAV. espeak-ng streams to stdout, so its size fields are not to be trusted:
    the data chunk runs to the end of the file."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ProviderError(PROVIDER, "espeak-ng did not produce a WAV file", retryable=False)
    offset, rate = 12, None
    while offset + 8 <= len(wav):
        chunk_id, size = wav[offset : offset + 4], struct.unpack("<I", wav[offset + 4 : offset + 8])[0]
        if chunk_id == b"fmt ":
            audio_format, channels, rate = struct.unpack("<HHI", wav[offset + 8 : offset + 16])
            bits = struct.unpack("<H", wav[offset + 22 : offset + 24])[0]
            if (audio_format, channels, bits) != (1, 1, 16):
                raise ProviderError(PROVIDER, "espeak-ng WAV is not mono PCM16", retryable=False)
        elif chunk_id == b"data":
            if rate != expected_rate:
                raise ProviderError(
                    PROVIDER, f"espeak-ng voice speaks at {rate} Hz, not {expected_rate}", retryable=False
                )
            data = wav[offset + 8 :]
            return data[: len(data) - len(data) % 2]
        offset += 8 + size + size % 2
    raise ProviderError(PROVIDER, "espeak-ng WAV has no data", retryable=False)
