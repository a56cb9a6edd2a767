"""Scripted providers: deterministic STT, LLM and TTS whose latencies the caller sets.

For tests and benchmarks (like LiveKit's fake session): they run whole calls through the real engine and
server with no vendor and no model, so what is measured is Voicex itself. The server exposes them as
providerKey ``scripted`` only when VOICEX_ENABLE_SCRIPTED_PROVIDERS=true.

The STT segments caller audio by energy like a real recognizer's endpointing: a loud run opens an utterance,
which consumes the next scripted transcript (an empty one stands for a cough or noise: no words), and
``endpointing_ms`` of quiet after it emits its final and closes it, so the next loud run is a new utterance.
``finalize()`` emits the final of the open utterance at once (an empty final when none is open).
"""

from __future__ import annotations

import asyncio
import functools
import math
import warnings
from collections.abc import AsyncIterator, Sequence

import numpy as np

from providers.base import (
    AudioFormat,
    ChatMessage,
    LLMChunk,
    LLMOptions,
    LLMProvider,
    STTProvider,
    STTSession,
    Transcript,
    TTSOptions,
    TTSProvider,
    Usage,
)

with warnings.catch_warnings():
    # Python 3.11/3.12 ship audioop with a DeprecationWarning; 3.13+ get the same module from audioop-lts.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

_PCM16_8K = AudioFormat("pcm16", 8000)
_PCM16_16K = AudioFormat("pcm16", 16000)
_LOUD_RMS = 500  # 16-bit PCM RMS above which a frame counts as sound
_ENDPOINTING_MS = 300  # quiet that finalizes an utterance when the session is opened without endpointing_ms
_INTERIM_AFTER_MS = 100  # loud audio before the utterance's words show up as an interim transcript


def _rms(pcm: bytes) -> int:
    """RMS of PCM16 in one C call (~10x cheaper than numpy per frame), rounded down. Compared with the integer
    ``_LOUD_RMS`` it decides exactly as the float RMS did: both sum the squares exactly in a double."""
    if len(pcm) & 1:
        pcm = pcm[:-1]
    return audioop.rms(pcm, 2)


class _Script:
    def __init__(self, items: str | Sequence[str]) -> None:
        self._items = [items] if isinstance(items, str) else list(items)
        self._index = -1

    def next(self) -> str:
        """The next item; the last one repeats once the script runs out."""
        self._index += 1
        if not self._items:
            return ""
        return self._items[min(self._index, len(self._items) - 1)]


class ScriptedSTTSession(STTSession):
    def __init__(self, provider: ScriptedSTT, endpointing_ms: int) -> None:
        self.provider = provider
        self.endpointing_ms = endpointing_ms
        self._out: asyncio.Queue[Transcript | None] = asyncio.Queue()
        self._loud_ms = 0
        self._quiet_ms = 0  # quiet since the open utterance's last loud audio
        self._text: str | None = None  # the open utterance's scripted transcript; None: no utterance is open
        self._interim_sent = False
        self._closed = False
        self._bytes_per_ms = provider.input_format.bytes_per_second // 1000

    async def send_audio(self, chunk: bytes) -> None:
        self.send_audio_nowait(chunk)

    def send_audio_nowait(self, chunk: bytes) -> bool:
        """No I/O here, so the engine may feed frames synchronously (no task wake-up per frame)."""
        duration_ms = len(chunk) // self._bytes_per_ms
        if _rms(chunk) >= _LOUD_RMS:
            if self._text is None:
                self._text, self._loud_ms, self._interim_sent = self.provider.script.next(), 0, False
            self._loud_ms += duration_ms
            self._quiet_ms = 0
            if self._text and not self._interim_sent and self._loud_ms >= _INTERIM_AFTER_MS:
                self._interim_sent = True
                self._emit(Transcript(self._text, is_final=False))
        elif self._text is not None:
            self._quiet_ms += duration_ms
            if self._quiet_ms >= self.endpointing_ms:  # the recognizer's endpointing: final, utterance closed
                self._close_utterance()
        return True

    async def finalize(self) -> None:
        self._close_utterance()

    def _close_utterance(self) -> None:
        text, self._text = self._text or "", None
        self._emit(Transcript(text, is_final=True))

    def _emit(self, transcript: Transcript) -> None:
        delay = self.provider.latency_ms / 1000
        asyncio.get_running_loop().call_later(delay, self._out.put_nowait, transcript)

    async def transcripts(self) -> AsyncIterator[Transcript]:
        while (item := await self._out.get()) is not None:
            yield item

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.put_nowait(None)


class ScriptedSTT(STTProvider):
    name = "scripted"

    def __init__(
        self,
        transcripts: str | Sequence[str] = "Hello there.",
        latency_ms: float = 0,
        input_format: AudioFormat = _PCM16_8K,
    ) -> None:
        self.script = _Script(transcripts)
        self.latency_ms = latency_ms
        self.input_format = input_format
        self.sessions: list[ScriptedSTTSession] = []

    async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
        session = ScriptedSTTSession(self, _ENDPOINTING_MS if endpointing_ms is None else endpointing_ms)
        self.sessions.append(session)
        return session


class ScriptedLLM(LLMProvider):
    """Streams a fixed (or per-turn scripted) reply word by word after ``latency_ms``."""

    name = "scripted"

    def __init__(
        self,
        replies: str | Sequence[str] = "Sure, I can help with that.",
        latency_ms: float = 0,
        token_interval_ms: float = 0,
    ) -> None:
        self.script = _Script(replies)
        self.latency_ms = latency_ms
        self.token_interval_ms = token_interval_ms
        self.requests: list[list[ChatMessage]] = []
        self.consumed: list[Usage] = []  # per request, what a vendor would bill: its prompt and the words streamed
        self.prefilled: list[list[ChatMessage]] = []
        self.active_streams = 0

    async def prefill(self, messages: list[ChatMessage]) -> None:
        self.prefilled.append(list(messages))

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        self.requests.append(list(messages))
        consumed = Usage(prompt_tokens=sum(len(message.content.split()) for message in messages))
        self.consumed.append(consumed)
        reply = self.script.next()
        self.active_streams += 1
        try:
            await asyncio.sleep(self.latency_ms / 1000)
            words = reply.split(" ")
            for index, word in enumerate(words):
                if index and self.token_interval_ms:
                    await asyncio.sleep(self.token_interval_ms / 1000)
                consumed.completion_tokens += 1
                yield LLMChunk(text=word if index == 0 else " " + word)
            yield LLMChunk(usage=Usage(consumed.prompt_tokens, consumed.completion_tokens))
        finally:
            self.active_streams -= 1


class ScriptedTTS(TTSProvider):
    """A 440 Hz tone per sentence: ``ms_per_char`` of audio per character, first bytes after ``latency_ms``."""

    name = "scripted"

    def __init__(
        self,
        latency_ms: float = 0,
        ms_per_char: float = 60,
        chunk_ms: int = 40,
        output_format: AudioFormat = _PCM16_16K,
        realtime_factor: float = 0,
    ) -> None:
        self.latency_ms = latency_ms
        self.ms_per_char = ms_per_char
        self.chunk_ms = chunk_ms
        self.output_format = output_format
        self.realtime_factor = realtime_factor  # 0: synthesize instantly; 0.1: 10x faster than real time
        self.requests: list[str] = []
        self.active_streams = 0

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        self.requests.append(text)
        self.active_streams += 1
        try:
            await asyncio.sleep(self.latency_ms / 1000)
            total_ms = max(self.chunk_ms, int(len(text) * self.ms_per_char))
            rate = self.output_format.sample_rate
            for start_ms in range(0, total_ms, self.chunk_ms):
                samples = rate * min(self.chunk_ms, total_ms - start_ms) // 1000
                offset = rate * start_ms // 1000
                yield _tone(offset, samples, rate)
                if self.realtime_factor:
                    await asyncio.sleep(self.chunk_ms / 1000 * self.realtime_factor)
        finally:
            self.active_streams -= 1


@functools.lru_cache(maxsize=1024)
def _tone(offset: int, count: int, rate: int, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """Vectorized (a per-sample Python loop blocked the event loop ~20 ms per sentence and skewed benchmarks), and
    cached: every sentence starts at offset 0, so benchmark calls re-use the same chunks (~1.3 MB at most)."""
    step = 2 * math.pi * freq / rate
    tone: bytes = (amplitude * np.sin(step * np.arange(offset, offset + count))).astype("<i2").tobytes()
    return tone


def create(category: str, model: str, credentials: dict[str, object], settings: dict[str, object]) -> object:
    """Registry factory; settings: latencyMs, transcripts ("a|b|c"), reply."""
    latency = float(str(settings.get("latencyMs", 0) or 0))
    if category == "stt":
        return ScriptedSTT(str(settings.get("transcripts", "Hello there.")).split("|"), latency_ms=latency)
    if category == "llm":
        return ScriptedLLM(str(settings.get("reply", "Sure, I can help with that.")), latency_ms=latency)
    if category == "tts":
        return ScriptedTTS(latency_ms=latency)
    raise ValueError(f"unknown category {category!r}")
