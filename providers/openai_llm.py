"""Streaming chat completions through the official ``openai`` SDK — for OpenAI and, via its
OpenAI-compatible ``/v1`` API, for Ollama.

The SDK's retries are off by default: a caller is waiting on the line, and a fallback provider (or the
engine's apology) serves them sooner than a backed-off second attempt would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from openai import AsyncOpenAI

from providers.base import ChatMessage, LLMChunk, LLMOptions, LLMProvider, ProviderError
from providers.egress import EgressPolicy
from providers.egress_http import httpx2_client
from providers.openai_compat import OPENAI, relay_chat_stream, usage_of, wire_messages

OPENAI_BASE_URL = "https://api.openai.com/v1"
OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"
OLLAMA_API_KEY = "ollama"  # Ollama ignores the key, but the SDK insists on one
DEFAULT_TIMEOUT = 10.0


class OpenAILLM(LLMProvider):
    """One model on one OpenAI-compatible endpoint; ``name`` is what errors and logs call it."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str = OPENAI_BASE_URL,
        name: str = "openai",
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 0,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.name = name
        self.model = model
        # ``timeout`` bounds connecting and each read, so it also catches a stream that stalls mid-reply.
        # A tenant's endpoint (``egress`` given) gets a client pinned to the addresses the policy checked.
        http_client = httpx2_client(egress, timeout) if egress is not None else None
        self._client = AsyncOpenAI(
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
                stream_options={"include_usage": True},
            )
        except OPENAI.caught as exc:
            raise OPENAI.provider_error(self.name, exc) from exc
        async for chunk in relay_chat_stream(self.name, stream, OPENAI, lambda c: usage_of(c.usage)):
            yield chunk

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        await self._client.close()


def create(
    category: str, model: str, credentials: dict[str, Any], settings: dict[str, Any], egress: EgressPolicy | None = None
) -> OpenAILLM:
    """Factory for providerKey ``openai`` and ``ollama`` (category ``llm``).

    The two are told apart by their credentials: the catalog gives OpenAI an API key and Ollama none, so a
    keyless provider is Ollama, at ``settings["baseUrl"]`` or its local default, with a placeholder key.
    ``egress``: the policy for a tenant's own endpoint (None: an operator's provider, trusted).
    """
    if category != "llm":
        raise ProviderError("openai", f"no {category} adapter in openai_llm", retryable=False)
    api_key = str(credentials.get("apiKey") or "")
    base_url = settings.get("baseUrl") or (OPENAI_BASE_URL if api_key else OLLAMA_BASE_URL)
    name = "openai" if api_key else "ollama"
    return OpenAILLM(api_key=api_key or OLLAMA_API_KEY, model=model, base_url=str(base_url), name=name, egress=egress)
