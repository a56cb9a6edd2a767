"""OpenAI text to speech through the official ``openai`` SDK, streamed as raw PCM.

``response_format="pcm"`` is headerless 24 kHz 16-bit little-endian mono, so bytes can go to the resampler
the moment they arrive: ``with_streaming_response`` hands them over without buffering the whole reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from openai import AsyncOpenAI

from providers.base import AudioFormat, ProviderError, TTSOptions, TTSProvider
from providers.egress import EgressPolicy
from providers.egress_http import httpx2_client
from providers.openai_compat import OPENAI

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_VOICE = "alloy"
DEFAULT_MODEL = "tts-1"  # the lowest-latency speech model
DEFAULT_TIMEOUT = 10.0
_NOT_AUDIO = ("application/json", "text/")  # a 200 with one of these is a proxy's page, not speech


class OpenAITTS(TTSProvider):
    """One voice (``alloy``, ``nova``…) on one OpenAI speech model (``tts-1``, ``tts-1-hd``, ``gpt-4o-mini-tts``)."""

    name = "openai"
    output_format = AudioFormat("pcm16", 24000)

    def __init__(
        self,
        *,
        api_key: str,
        model: str = DEFAULT_MODEL,
        voice: str = DEFAULT_VOICE,
        base_url: str = OPENAI_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 0,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.model = model
        self.voice = voice
        # ``timeout`` bounds connecting and each read, so a reply that stalls mid-sentence fails too.
        # A tenant's endpoint (``egress`` given) gets a client pinned to the addresses the policy checked.
        http_client = httpx2_client(egress, timeout) if egress is not None else None
        self._client = AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, http_client=http_client
        )

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        """Yield whole 16-bit samples as they arrive (a network chunk may end mid-sample; the byte waits)."""
        request: dict[str, Any] = {
            "model": self.model,
            "voice": self.voice,
            "input": text,
            "response_format": "pcm",
        }
        if options.speed != 1.0:
            request["speed"] = options.speed
        carry = b""
        try:
            async with self._client.audio.speech.with_streaming_response.create(**request) as response:
                content_type = response.headers.get("content-type", "")
                if content_type.startswith(_NOT_AUDIO):
                    raise ProviderError(self.name, f"malformed response: expected PCM audio, got {content_type}")
                async for chunk in response.iter_bytes():
                    data = carry + chunk
                    whole = len(data) - len(data) % 2
                    carry = data[whole:]
                    if whole:
                        yield data[:whole]
        except OPENAI.caught as exc:
            raise OPENAI.provider_error(self.name, exc) from exc

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        await self._client.close()


def create(
    category: str, model: str, credentials: dict[str, Any], settings: dict[str, Any], egress: EgressPolicy | None = None
) -> OpenAITTS:
    """Factory for providerKey ``openai`` (category ``tts``): ``model`` is the voice; ``settings`` may carry
    ``ttsModel`` (the speech model) and ``baseUrl``."""
    if category != "tts":
        raise ProviderError("openai", f"no {category} adapter in openai_tts", retryable=False)
    api_key = str(credentials.get("apiKey") or "")
    if not api_key:
        raise ProviderError("openai", "no API key configured", retryable=False, status=401)
    return OpenAITTS(
        api_key=api_key,
        model=str(settings.get("ttsModel") or DEFAULT_MODEL),
        voice=model or DEFAULT_VOICE,
        base_url=str(settings.get("baseUrl") or OPENAI_BASE_URL),
        egress=egress,
    )
