"""Streaming chat completions through the official ``groq`` SDK.

Groq reports a stream's token usage in ``x_groq.usage`` on its final chunk (the SDK has no
``stream_options``); an OpenAI-style top-level ``usage`` is read too, so either shape is counted, once.
Unlike the ``openai`` SDK, ``groq`` lets transport errors raised mid-stream (``httpx``) through unwrapped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from groq import APIConnectionError, APIError, APIStatusError, APITimeoutError, AsyncGroq, GroqError

from providers.base import ChatMessage, LLMChunk, LLMOptions, LLMProvider, ProviderError, Usage
from providers.egress import EgressPolicy
from providers.egress_http import httpx_client
from providers.openai_compat import SdkErrors, relay_chat_stream, usage_of, wire_messages

DEFAULT_TIMEOUT = 10.0
GROQ = SdkErrors(
    root=GroqError,
    status=APIStatusError,
    timeout=APITimeoutError,
    connection=APIConnectionError,
    api=APIError,
    transport_timeouts=(httpx.TimeoutException,),
    transport_errors=(httpx.HTTPError,),
)


class GroqLLM(LLMProvider):
    """One Groq model. Retries are off by default for the same reason as in :mod:`providers.openai_llm`."""

    name = "groq"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 0,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.model = model
        # base_url None → the SDK's https://api.groq.com (it appends /openai/v1/chat/completions).
        # A tenant's endpoint (``egress`` given) gets a client pinned to the addresses the policy checked.
        http_client = httpx_client(egress, timeout) if egress is not None else None
        self._client = AsyncGroq(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, http_client=http_client
        )

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        try:
            stream = await self._client.chat.completions.create(
                model=self.model,
                messages=wire_messages(messages),
                temperature=options.temperature,
                max_tokens=options.max_tokens,
                stream=True,
            )
        except GROQ.caught as exc:
            raise GROQ.provider_error(self.name, exc) from exc
        async for chunk in relay_chat_stream(self.name, stream, GROQ, self._usage):
            yield chunk

    def _usage(self, chunk: Any) -> Usage | None:
        """Groq reports usage in ``x_groq.usage`` on the last chunk (and sometimes as ``usage`` too)."""
        extra = chunk.x_groq
        if extra is not None and extra.error:
            raise ProviderError(self.name, f"server stopped the stream: {extra.error}")
        return usage_of(extra.usage if extra is not None else None) or usage_of(chunk.usage)

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        await self._client.close()


def create(
    category: str, model: str, credentials: dict[str, Any], settings: dict[str, Any], egress: EgressPolicy | None = None
) -> GroqLLM:
    """Factory for providerKey ``groq`` (category ``llm``); settings ``baseUrl`` (the API host) and ``timeoutSec``."""
    if category != "llm":
        raise ProviderError("groq", f"no {category} adapter in groq_llm", retryable=False)
    api_key = str(credentials.get("apiKey") or "")
    if not api_key:
        raise ProviderError("groq", "no API key configured", retryable=False, status=401)
    timeout = float(settings.get("timeoutSec") or DEFAULT_TIMEOUT)
    base_url = settings.get("baseUrl") or None
    return GroqLLM(api_key=api_key, model=model, base_url=base_url, timeout=timeout, egress=egress)
