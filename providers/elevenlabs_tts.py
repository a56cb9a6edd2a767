"""ElevenLabs streaming TTS through the official ``elevenlabs`` SDK.

We ask ElevenLabs for ``ulaw_8000`` — exactly what a Twilio call plays — so the engine neither decodes
nor resamples this provider's audio. Bytes are yielded as the HTTP body streams in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
from elevenlabs import AsyncElevenLabs, VoiceSettings
from elevenlabs.core.api_error import ApiError

from providers.base import AudioFormat, ProviderError, TTSOptions, TTSProvider
from providers.egress import EgressPolicy
from providers.egress_http import httpx_client
from providers.urls import is_path_segment

NAME = "elevenlabs"
DEFAULT_MODEL = "eleven_flash_v2_5"
DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", a premade voice every account has
DEFAULT_TIMEOUT_S = 10.0
_OUTPUT_FORMAT = "ulaw_8000"
_SPEED_RANGE = (0.7, 1.2)  # what ElevenLabs accepts for voice_settings.speed
_LANGUAGE_CODE_MODELS = ("eleven_flash_v2_5", "eleven_turbo_v2_5")  # multilingual_v2 rejects language_code
_NOT_AUDIO_TYPES = ("application/json", "text/")
# The SDK re-chunks the body into 1024-byte pieces (128 ms of μ-law) before yielding, which would hold back
# the first audio; 160 bytes is one 20 ms telephony frame.
_CHUNK_BYTES = 160


def _error_message(body: Any) -> str:
    """ElevenLabs errors look like ``{"detail": {"status": ..., "message": ...}}``; keep the message."""
    if isinstance(body, dict):
        detail = body.get("detail", body)
        if isinstance(detail, dict):
            return str(detail.get("message") or detail.get("status") or detail)
        if detail:
            return str(detail)
    return str(body)[:200] if body else "no details"


def _api_error(exc: ApiError) -> ProviderError:
    status = exc.status_code
    message = _error_message(exc.body)
    if status in (401, 403):
        return ProviderError(NAME, f"authentication failed ({status}): {message}", retryable=False, status=status)
    retryable = status is None or status >= 500 or status in (408, 409, 429)
    return ProviderError(NAME, f"HTTP {status}: {message}", retryable=retryable, status=status)


class ElevenLabsTTS(TTSProvider):
    """Speaks with one voice (the agent's ttsModelId) on one synthesis model; speed comes from TTSOptions."""

    name = NAME
    output_format = AudioFormat("mulaw", 8000)

    def __init__(
        self,
        api_key: str,
        model: str = DEFAULT_MODEL,
        *,
        voice: str = DEFAULT_VOICE_ID,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        egress: EgressPolicy | None = None,
    ) -> None:
        if not api_key:
            raise ProviderError(NAME, "an API key is required", retryable=False, status=401)
        if not is_path_segment(voice):  # it becomes a segment of the request's URL path
            raise ProviderError(NAME, f"invalid voice id {voice!r}", retryable=False, status=400)
        self.model = model
        self.voice = voice
        self.timeout_s = timeout_s
        # The timeout bounds connecting and every read, so a server that stops sending mid-stream fails too.
        # One pooled HTTP client per adapter: later sentences of a call reuse the warm connection. A tenant's
        # endpoint (``egress`` given) is reached only at the addresses the policy checked; never a redirect.
        self._http = httpx_client(egress, timeout_s)
        self._client = AsyncElevenLabs(api_key=api_key, base_url=base_url, timeout=timeout_s, httpx_client=self._http)

    def _request(self, text: str, options: TTSOptions) -> dict[str, Any]:
        request: dict[str, Any] = {
            "voice_id": quote(self.voice, safe=""),  # checked above; quoted in case the check ever loosens
            "text": text,
            "model_id": self.model,
            "output_format": _OUTPUT_FORMAT,
            "request_options": {"chunk_size": _CHUNK_BYTES},
        }
        if options.speed != 1.0:
            low, high = _SPEED_RANGE
            request["voice_settings"] = VoiceSettings(speed=min(high, max(low, options.speed)))
        if self.model in _LANGUAGE_CODE_MODELS and options.language:
            request["language_code"] = options.language.split("-")[0].lower()
        return request

    async def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        request = self._request(text, options)
        received = 0
        try:
            async with self._client.text_to_speech.with_raw_response.stream(**request) as response:
                content_type = response.headers.get("content-type", "").lower()
                if content_type.startswith(_NOT_AUDIO_TYPES):
                    raise ProviderError(NAME, f"expected audio, got {content_type!r}", retryable=True, status=200)
                async for chunk in response.data:
                    if chunk:
                        received += len(chunk)
                        yield chunk
        except ApiError as exc:
            raise _api_error(exc) from exc
        except httpx.TimeoutException as exc:
            message = f"timed out after {self.timeout_s:g} s ({type(exc).__name__})"
            raise ProviderError(NAME, message, kind="timeout") from exc
        except httpx.TransportError as exc:
            raise ProviderError(NAME, f"connection failed: {type(exc).__name__}: {exc}", kind="unreachable") from exc
        if received == 0:
            raise ProviderError(NAME, "the response carried no audio", retryable=True, status=200)

    async def aclose(self) -> None:
        """Close the pooled HTTP connections (the SDK keeps them for lower latency between sentences)."""
        await self._http.aclose()


def create(
    category: str, model: str, credentials: dict[str, Any], settings: dict[str, Any], egress: EgressPolicy | None = None
) -> ElevenLabsTTS:
    """Registry factory: ``model`` is the voice id; credentials ``{"apiKey"}``; settings ``ttsModel`` (the
    synthesis model), ``baseUrl``, ``timeoutSec``."""
    if category != "tts":
        raise ProviderError(NAME, f"ElevenLabs provides tts, not {category}", retryable=False)
    return ElevenLabsTTS(
        api_key=str(credentials.get("apiKey") or ""),
        model=str(settings.get("ttsModel") or DEFAULT_MODEL),
        voice=model or DEFAULT_VOICE_ID,
        base_url=settings.get("baseUrl") or None,
        timeout_s=float(settings.get("timeoutSec") or DEFAULT_TIMEOUT_S),
        egress=egress,
    )
