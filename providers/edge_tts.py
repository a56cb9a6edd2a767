"""Microsoft Edge "read aloud" TTS through the ``edge-tts`` package, decoded from MP3 to PCM as it streams.

Edge needs no key and only speaks MP3 (24 kHz, 48 kbit/s mono). PyAV's bundled FFmpeg decodes each chunk
as it arrives — an MP3 frame is 24 ms — so the first PCM leaves long before the sentence has been sent.
Decoding a frame takes microseconds, so it runs on the event loop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import av
import edge_tts
from edge_tts.exceptions import EdgeTTSException, NoAudioReceived, SkewAdjustmentError

from providers.base import AudioFormat, ProviderError, TTSOptions, TTSProvider

NAME = "edge"
DEFAULT_VOICE = "en-US-AriaNeural"
DEFAULT_TIMEOUT_S = 10.0
SAMPLE_RATE = 24000  # Edge's audio-24khz-48kbitrate-mono-mp3


def rate_for_speed(speed: float) -> str:
    """Edge's prosody rate, a signed percentage: 1.1 → "+10%", 0.8 → "-20%"."""
    return f"{round((speed - 1.0) * 100):+d}%"


class Mp3Decoder:
    """Incremental MP3 → 16-bit mono PCM at ``rate``: feed bytes as they come, get whole frames back."""

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        self._codec = av.CodecContext.create("mp3", "r")
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def feed(self, data: bytes) -> bytes:
        return self._decode(self._codec.parse(data))

    def flush(self) -> bytes:
        """Whatever the parser and decoder still hold once the stream has ended."""
        pcm = self._decode(self._codec.parse(None))
        frames = self._codec.decode(None)
        return pcm + self._resample([*frames, None])

    def _decode(self, packets: list[av.Packet[Any]]) -> bytes:
        return self._resample([frame for packet in packets for frame in self._codec.decode(packet)])

    def _resample(self, frames: list[Any]) -> bytes:
        out = bytearray()
        for frame in frames:
            for converted in self._resampler.resample(frame):
                out += converted.to_ndarray().tobytes()
        return bytes(out)


def _error(exc: BaseException, timeout_s: float) -> ProviderError:
    """Map aiohttp / edge-tts / FFmpeg failures to the one error type the engine knows."""
    if isinstance(exc, aiohttp.WSServerHandshakeError | aiohttp.ClientResponseError):
        status = exc.status
        if status in (401, 403):
            message = f"the service refused the connection ({status}); edge-tts may need an update"
            return ProviderError(NAME, message, retryable=False, status=status)
        return ProviderError(NAME, f"HTTP {status} on connect", retryable=status >= 500 or status == 429, status=status)
    if isinstance(exc, SkewAdjustmentError):
        return ProviderError(NAME, f"the service refused the connection (403): {exc}", retryable=False, status=403)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return ProviderError(NAME, f"timed out: no data for {timeout_s:g} s", kind="timeout")
    if isinstance(exc, NoAudioReceived):
        return ProviderError(NAME, "the service returned no audio")
    if isinstance(exc, EdgeTTSException):
        return ProviderError(NAME, f"malformed response: {type(exc).__name__}: {exc}")
    if isinstance(exc, av.FFmpegError):
        return ProviderError(NAME, f"undecodable audio: {exc}")
    return ProviderError(NAME, f"connection failed: {type(exc).__name__}: {exc}", kind="unreachable")


class EdgeTTS(TTSProvider):
    """Speaks with an Edge neural voice: the model id (e.g. en-US-AriaNeural).

    The voice fixes the language, so ``TTSOptions.language`` is not sent.
    """

    name = NAME
    output_format = AudioFormat("pcm16", SAMPLE_RATE)

    def __init__(self, voice: str = DEFAULT_VOICE, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.voice = voice
        self.timeout_s = timeout_s  # for connecting, and for each wait for the next message
        self._sdk_timeout = max(1, math.ceil(timeout_s))  # edge-tts takes whole seconds

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        try:
            communicate = edge_tts.Communicate(
                text,
                self.voice,
                rate=rate_for_speed(options.speed),
                connect_timeout=self._sdk_timeout,
                receive_timeout=self._sdk_timeout,
            )
        except ValueError as exc:  # a voice name or rate edge-tts rejects
            raise ProviderError(NAME, f"invalid request: {exc}", retryable=False) from exc
        decoder = Mp3Decoder()
        mp3_bytes = pcm_bytes = 0
        messages = communicate.stream()
        try:
            while True:
                # edge-tts's receive_timeout does not reach WebSocket reads, so bound each wait here.
                async with asyncio.timeout(self.timeout_s):
                    message = await anext(messages, None)
                if message is None:
                    break
                if message["type"] != "audio":
                    continue  # word / sentence boundaries
                data = message["data"]
                mp3_bytes += len(data)
                pcm = decoder.feed(data)
                if pcm:
                    pcm_bytes += len(pcm)
                    yield pcm
            # edge-tts ends quietly when the socket closes early; every turn.end it saw moved the byte count
            # into cumulative_audio_bytes, so leftover bytes mean the last turn never ended.
            if communicate.state["cumulative_audio_bytes"] != mp3_bytes:
                raise ProviderError(NAME, "the connection closed before the audio was complete")
            tail = decoder.flush()
        except ProviderError:
            raise
        except (EdgeTTSException, aiohttp.ClientError, TimeoutError, av.FFmpegError, OSError) as exc:
            raise _error(exc, self.timeout_s) from exc
        finally:
            await messages.aclose()
        if tail:
            pcm_bytes += len(tail)
            yield tail
        if pcm_bytes == 0:
            raise ProviderError(NAME, f"undecodable audio: {mp3_bytes} bytes gave no MP3 frames")


def create(category: str, model: str, credentials: dict[str, Any], settings: dict[str, Any]) -> EdgeTTS:
    """Registry factory: the model is the voice name; no credentials; settings ``timeoutSec``."""
    if category != "tts":
        raise ProviderError(NAME, f"Edge provides tts, not {category}", retryable=False)
    return EdgeTTS(voice=model or DEFAULT_VOICE, timeout_s=float(settings.get("timeoutSec") or DEFAULT_TIMEOUT_S))
