"""Shared pieces for adapters that speak OpenAI's API shape: OpenAI itself, Ollama, and Groq.

They turn the SDKs' exceptions and stream chunks into :mod:`providers.base` terms, so each adapter's
module is only its request. Chunk reading is duck-typed because the ``openai`` and ``groq`` SDKs each
generate their own (identically shaped) models, and builds them from the wire without validation.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx2
import openai

from providers.base import LLMChunk, ProviderError, Usage

# Raised while reading or parsing a reply whose bytes are not what the API promises (bad JSON, missing fields).
MALFORMED_ERRORS: tuple[type[Exception], ...] = (ValueError, AttributeError, TypeError, KeyError, IndexError)

# What the ``openai`` SDK lets through unwrapped when reading a raw (non-SSE) streamed body.
_HTTPX2_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx2.RequestError, anyio.EndOfStream, ssl.SSLError)

OPENAI_ERRORS: tuple[type[Exception], ...] = (openai.OpenAIError, *_HTTPX2_TRANSPORT_ERRORS, *MALFORMED_ERRORS)


def status_error(provider: str, status: int, message: str) -> ProviderError:
    """An HTTP error status as a ProviderError: only auth failures forbid a fallback from taking over."""
    retryable = status not in (401, 403)
    return ProviderError(provider, f"HTTP {status}: {message}", retryable=retryable, status=status)


def body_message(body: object) -> str | None:
    """The human-readable ``message`` of an OpenAI-style error body (``{"error": {...}}`` or the inner dict)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
    return None


def openai_error(provider: str, exc: BaseException) -> ProviderError:
    """Map an exception raised by the ``openai`` SDK (or its transport, or parsing) to a ProviderError."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return status_error(provider, exc.status_code, body_message(exc.body) or exc.message)
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return ProviderError(provider, "timed out waiting for the server")
    if isinstance(exc, (openai.APIConnectionError, *_HTTPX2_TRANSPORT_ERRORS)):
        return ProviderError(provider, f"connection failed or dropped: {exc}")
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        return ProviderError(provider, f"server reported an error mid-stream: {exc.message}")
    return malformed(provider, exc)


def malformed(provider: str, exc: BaseException) -> ProviderError:
    return ProviderError(provider, f"malformed response: {type(exc).__name__}: {exc}")


def chunk_text(chunk: Any) -> str:
    """The text delta of a chat-completion chunk's first choice ('' for role/finish/usage-only chunks)."""
    if not chunk.choices:
        return ""
    content = chunk.choices[0].delta.content
    if content is None:
        return ""
    if not isinstance(content, str):
        raise TypeError(f"delta content is {type(content).__name__}, not str")
    return content


def finish_reason(chunk: Any) -> str | None:
    """Why generation stopped, on the chunk that ends the reply; a reply never given one was cut short."""
    return chunk.choices[0].finish_reason if chunk.choices else None


def cut_short(provider: str) -> ProviderError:
    return ProviderError(provider, "the stream ended before the reply finished (no finish_reason)")


def usage_of(usage: Any) -> Usage | None:
    """Token counts from a ``CompletionUsage``-shaped object, or None when absent."""
    if usage is None:
        return None
    return Usage(prompt_tokens=int(usage.prompt_tokens or 0), completion_tokens=int(usage.completion_tokens or 0))


async def relay_chat_stream(
    name: str,
    stream: Any,
    errors: tuple[type[BaseException], ...],
    to_error: Callable[[BaseException], ProviderError],
    read_usage: Callable[[Any], Usage | None],
) -> AsyncIterator[LLMChunk]:
    """Yield a chat-completions stream's text, then its usage; the same for every OpenAI-shaped SDK.

    ``async with`` closes the HTTP response however the iteration ends (including cancellation on barge-in),
    so the server stops generating and the connection is not leaked. A stream that ends without any
    ``finish_reason`` was cut short: that is an error, not a complete answer.
    """
    usage: Usage | None = None
    finished = False
    async with stream:
        iterator = aiter(stream)
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                break
            except errors as exc:
                raise to_error(exc) from exc
            try:
                text = chunk_text(chunk)
                finished = finished or finish_reason(chunk) is not None
                usage = read_usage(chunk) or usage
            except MALFORMED_ERRORS as exc:
                raise malformed(name, exc) from exc
            if text:
                yield LLMChunk(text=text)
    if not finished:
        raise cut_short(name)
    if usage is not None:
        yield LLMChunk(usage=usage)
