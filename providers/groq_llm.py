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
from providers.openai_compat import (
    MALFORMED_ERRORS,
    body_message,
    malformed,
    relay_chat_stream,
    status_error,
    usage_of,
)

DEFAULT_TIMEOUT = 10.0
_ERRORS: tuple[type[Exception], ...] = (GroqError, httpx.HTTPError, *MALFORMED_ERRORS)


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
    ) -> None:
        self.model = model
        # base_url None → the SDK's https://api.groq.com (it appends /openai/v1/chat/completions).
        self._client = AsyncGroq(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        try:
            stream = await self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": message.role, "content": message.content} for message in messages],
                temperature=options.temperature,
                max_tokens=options.max_tokens,
                stream=True,
            )
        except _ERRORS as exc:
            raise _error(exc) from exc
        async for chunk in relay_chat_stream(self.name, stream, _ERRORS, _error, self._usage):
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


def _error(exc: BaseException) -> ProviderError:
    if isinstance(exc, APIStatusError):
        return status_error("groq", exc.status_code, body_message(exc.body) or exc.message)
    if isinstance(exc, APITimeoutError | httpx.TimeoutException):
        return ProviderError("groq", "timed out waiting for the server")
    if isinstance(exc, APIConnectionError | httpx.HTTPError):
        return ProviderError("groq", f"connection failed or dropped: {exc}")
    if isinstance(exc, APIError):  # an error event inside the stream
        return ProviderError("groq", f"server reported an error mid-stream: {exc.message}")
    return malformed("groq", exc)


def create(category: str, model: str, credentials: dict[str, Any], settings: dict[str, Any]) -> GroqLLM:
    """Factory for providerKey ``groq`` (category ``llm``); settings ``baseUrl`` (the API host) and ``timeoutSec``."""
    if category != "llm":
        raise ProviderError("groq", f"no {category} adapter in groq_llm", retryable=False)
    api_key = str(credentials.get("apiKey") or "")
    if not api_key:
        raise ProviderError("groq", "no API key configured", retryable=False, status=401)
    timeout = float(settings.get("timeoutSec") or DEFAULT_TIMEOUT)
    return GroqLLM(api_key=api_key, model=model, base_url=settings.get("baseUrl") or None, timeout=timeout)
