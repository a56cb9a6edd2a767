"""Shared pieces for adapters that speak OpenAI's API shape: OpenAI itself, Ollama, and Groq.

They turn the SDKs' exceptions and stream chunks into :mod:`providers.base` terms, so each adapter's
module is only its request. Chunk reading is duck-typed because the ``openai`` and ``groq`` SDKs each
generate their own (identically shaped) models, and builds them from the wire without validation.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import anyio
import httpx2
import openai

from providers.base import ChatMessage, LLMChunk, ProviderError, Usage
from providers.egress import egress_refusal

# Raised while reading or parsing a reply whose bytes are not what the API promises (bad JSON, missing fields).
MALFORMED_ERRORS: tuple[type[Exception], ...] = (ValueError, AttributeError, TypeError, KeyError, IndexError)


class _StatusError(Protocol):
    """What both SDKs' ``APIStatusError`` carry."""

    status_code: int
    body: object
    message: str


@dataclass(frozen=True)
class SdkErrors:
    """The exceptions of one OpenAI-shaped SDK: ``openai`` and ``groq`` generate the same hierarchy (root error,
    ``APIStatusError``, ``APITimeoutError`` under ``APIConnectionError``, ``APIError``) in separate classes, and
    each lets some of its transport's errors through unwrapped. :meth:`provider_error` is the one mapping."""

    root: type[Exception]  # OpenAIError / GroqError
    status: type[Exception]  # the server answered with an error status
    timeout: type[Exception]  # no answer in time (a subclass of ``connection``)
    connection: type[Exception]  # could not connect, or the connection dropped
    api: type[Exception]  # an error event inside the stream
    transport_timeouts: tuple[type[Exception], ...] = ()  # the transport's own, let through unwrapped
    transport_errors: tuple[type[Exception], ...] = ()  # the same: every unwrapped transport error

    @property
    def caught(self) -> tuple[type[Exception], ...]:
        """Everything a request or stream of this SDK may raise that :meth:`provider_error` maps."""
        return (self.root, *self.transport_errors, *MALFORMED_ERRORS)

    def provider_error(self, provider: str, exc: BaseException) -> ProviderError:
        """``exc`` (from the SDK, its transport, or parsing) as a ProviderError; the order matters (subclasses)."""
        if isinstance(exc, ProviderError):
            return exc
        refused = egress_refusal(exc)  # the policy refused the destination inside the SDK's transport
        if refused is not None:
            return refused
        if isinstance(exc, self.status):
            error = cast(_StatusError, exc)
            return status_error(provider, error.status_code, body_message(error.body) or error.message)
        if isinstance(exc, (self.timeout, *self.transport_timeouts)):
            return ProviderError(provider, "timed out waiting for the server", kind="timeout")
        if isinstance(exc, (self.connection, *self.transport_errors)):
            return ProviderError(provider, f"connection failed or dropped: {exc}", kind="unreachable")
        if isinstance(exc, self.api):
            message = f"server reported an error mid-stream: {cast(_StatusError, exc).message}"
            return ProviderError(provider, message, kind="bad_response")
        return malformed(provider, exc)


OPENAI = SdkErrors(
    root=openai.OpenAIError,
    status=openai.APIStatusError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    api=openai.APIError,
    transport_timeouts=(httpx2.TimeoutException,),
    # What the ``openai`` SDK lets through unwrapped when reading a raw (non-SSE) streamed body.
    transport_errors=(httpx2.RequestError, anyio.EndOfStream, ssl.SSLError),
)


def status_error(provider: str, status: int, message: str) -> ProviderError:
    """An HTTP error status as a ProviderError: only auth failures forbid a fallback from taking over."""
    retryable = status not in (401, 403)
    return ProviderError(provider, f"HTTP {status}: {message}", retryable=retryable, status=status)


def body_message(body: object) -> str | None:
    """The human-readable ``message`` of an OpenAI-style error body (``{"error": {...}}`` or the inner dict)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return None


def wire_messages(messages: list[ChatMessage]) -> list[Any]:
    """The chat as the API's message dicts (the SDKs' TypedDict unions cannot tell a dict's role statically)."""
    return [{"role": message.role, "content": message.content} for message in messages]


def malformed(provider: str, exc: BaseException) -> ProviderError:
    return ProviderError(provider, f"malformed response: {type(exc).__name__}: {exc}", kind="bad_response")


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
    name: str, stream: Any, sdk: SdkErrors, read_usage: Callable[[Any], Usage | None]
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
            except sdk.caught as exc:
                raise sdk.provider_error(name, exc) from exc
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
