"""The OpenAI, Ollama and Groq LLM adapters, run through the real ``openai``/``groq`` SDKs against a loopback
server speaking their wire protocol: what the engine receives, what the vendor is sent, and how failures look.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from providers import groq_llm, openai_llm
from providers.base import ChatMessage, LLMChunk, LLMOptions, LLMProvider, ProviderError, Usage
from providers.groq_llm import GroqLLM
from providers.openai_llm import OpenAILLM
from tests.loopback.openai_server import OpenAILoopback

MESSAGES = [
    ChatMessage("system", "You are a helpful phone agent."),
    ChatMessage("user", "Hi, can you help me?"),
]
REPLY = "Hello there! How can I help?"
TIMEOUT = 0.5

MakeLLM = Callable[[str], LLMProvider]


@pytest.fixture
async def server() -> AsyncIterator[OpenAILoopback]:
    loopback = await OpenAILoopback().start()
    try:
        yield loopback
    finally:
        await loopback.close()


@pytest.fixture
async def make_llm(server: OpenAILoopback) -> AsyncIterator[MakeLLM]:
    """Builds the adapter for a vendor, pointed at the loopback server, with a short timeout."""
    built: list[OpenAILLM | GroqLLM] = []

    def make(vendor: str) -> LLMProvider:
        llm: OpenAILLM | GroqLLM
        if vendor == "groq":
            llm = GroqLLM(
                api_key="gsk-test", model="llama-3.1-8b-instant", base_url=server.groq_base_url, timeout=TIMEOUT
            )
        else:
            llm = OpenAILLM(api_key="sk-test", model="gpt-4o-mini", base_url=server.openai_base_url, timeout=TIMEOUT)
        built.append(llm)
        return llm

    yield make
    for llm in built:
        await llm.aclose()


async def collect(llm: LLMProvider, options: LLMOptions | None = None) -> list[LLMChunk]:
    return [chunk async for chunk in llm.stream_chat(MESSAGES, options or LLMOptions())]


async def failure(stream: Awaitable[list[LLMChunk]]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await stream
    return caught.value


async def text_before_failure(llm: LLMProvider) -> tuple[str, ProviderError]:
    """The text the engine got before the stream failed, and the failure."""
    received: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in llm.stream_chat(MESSAGES, LLMOptions()):
            received.append(chunk.text)
    return "".join(received), caught.value


# --- happy path ---------------------------------------------------------------------------------------


async def test_openai_streams_text_then_usage_and_sends_the_request_it_should(
    server: OpenAILoopback, make_llm: MakeLLM
) -> None:
    chunks = await collect(make_llm("openai"), LLMOptions(temperature=0.3, max_tokens=99))

    assert [chunk.text for chunk in chunks[:-1]] == ["Hello", " there", "! How", " can I", " help?"]
    assert "".join(chunk.text for chunk in chunks) == REPLY
    assert chunks[-1] == LLMChunk(text="", usage=Usage(prompt_tokens=17, completion_tokens=5))
    assert all(chunk.usage is None for chunk in chunks[:-1])
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["temperature"] == 0.3
    assert request.body["max_tokens"] == 99
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["messages"] == [
        {"role": "system", "content": "You are a helpful phone agent."},
        {"role": "user", "content": "Hi, can you help me?"},
    ]


@pytest.mark.parametrize("where", ["x_groq", "usage", "both"])
async def test_groq_streams_text_and_counts_usage_once_wherever_groq_puts_it(
    server: OpenAILoopback, make_llm: MakeLLM, where: str
) -> None:
    server.groq_usage = where  # type: ignore[assignment]
    chunks = await collect(make_llm("groq"), LLMOptions(temperature=0.5, max_tokens=64))

    assert "".join(chunk.text for chunk in chunks) == REPLY
    assert [chunk.usage for chunk in chunks if chunk.usage] == [Usage(prompt_tokens=17, completion_tokens=5)]
    assert chunks[-1].usage is not None
    [request] = server.requests
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer gsk-test"
    assert (request.body["model"], request.body["temperature"], request.body["max_tokens"]) == (
        "llama-3.1-8b-instant",
        0.5,
        64,
    )
    assert request.body["messages"][1] == {"role": "user", "content": "Hi, can you help me?"}


async def test_groq_without_usage_yields_only_text(server: OpenAILoopback, make_llm: MakeLLM) -> None:
    server.groq_usage = "none"
    chunks = await collect(make_llm("groq"))
    assert "".join(chunk.text for chunk in chunks) == REPLY
    assert all(chunk.usage is None for chunk in chunks)


async def test_ollama_factory_uses_base_url_and_a_placeholder_key(server: OpenAILoopback) -> None:
    llm = openai_llm.create("llm", "llama3.2", {}, {"baseUrl": server.openai_base_url})
    try:
        chunks = await collect(llm)
    finally:
        await llm.aclose()

    assert llm.name == "ollama"
    assert "".join(chunk.text for chunk in chunks) == REPLY
    assert chunks[-1].usage == Usage(prompt_tokens=17, completion_tokens=5)
    [request] = server.requests
    assert request.body["model"] == "llama3.2"
    assert request.headers["authorization"] == "Bearer ollama"


async def test_a_server_that_ignores_include_usage_still_streams_text(server: OpenAILoopback) -> None:
    server.honor_include_usage = False  # like an older Ollama
    llm = openai_llm.create("llm", "llama3.2", {"apiKey": ""}, {"baseUrl": server.openai_base_url})
    try:
        chunks = await collect(llm)
    finally:
        await llm.aclose()
    assert "".join(chunk.text for chunk in chunks) == REPLY
    assert all(chunk.usage is None for chunk in chunks)


async def test_openai_factory_with_a_key_is_openai(server: OpenAILoopback) -> None:
    llm = openai_llm.create("llm", "gpt-4o", {"apiKey": "sk-org"}, {"baseUrl": server.openai_base_url})
    try:
        await collect(llm)
    finally:
        await llm.aclose()
    assert llm.name == "openai"
    assert server.requests[0].headers["authorization"] == "Bearer sk-org"
    assert server.requests[0].body["model"] == "gpt-4o"


def test_factories_refuse_what_they_cannot_build() -> None:
    with pytest.raises(ProviderError) as no_key:
        groq_llm.create("llm", "llama-3.1-8b-instant", {}, {})
    assert (no_key.value.retryable, no_key.value.status) == (False, 401)
    with pytest.raises(ProviderError):
        openai_llm.create("tts", "tts-1", {"apiKey": "sk"}, {})


@pytest.mark.parametrize("vendor", ["openai", "groq"])
async def test_text_arrives_while_the_model_is_still_generating(
    server: OpenAILoopback, make_llm: MakeLLM, vendor: str
) -> None:
    server.mode = "hold"  # the server sends the first words, then waits for the test
    stream = make_llm(vendor).stream_chat(MESSAGES, LLMOptions())
    first = await asyncio.wait_for(anext(stream), 2)
    assert first.text == "Hello"
    server.release.set()
    rest = [chunk async for chunk in stream]
    assert first.text + "".join(chunk.text for chunk in rest) == REPLY


# --- failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("vendor", "says"), [("openai", "Incorrect API key"), ("groq", "Invalid API Key")])
async def test_bad_key_is_a_non_retryable_401(
    server: OpenAILoopback, make_llm: MakeLLM, vendor: str, says: str
) -> None:
    server.mode = "unauthorized"
    error = await failure(collect(make_llm(vendor)))
    assert (error.retryable, error.status, error.provider) == (False, 401, vendor)
    assert says in error.message
    assert "sk-test" not in str(error) and "gsk-test" not in str(error)
    assert len(server.requests) == 1


@pytest.mark.parametrize("vendor", ["openai", "groq"])
async def test_server_error_is_retryable_and_not_retried_behind_the_callers_back(
    server: OpenAILoopback, make_llm: MakeLLM, vendor: str
) -> None:
    server.mode = "server_error"
    error = await failure(collect(make_llm(vendor)))
    assert (error.retryable, error.status) == (True, 500)
    assert len(server.requests) == 1  # an SDK retry with backoff would keep the caller waiting


@pytest.mark.parametrize("vendor", ["openai", "groq"])
@pytest.mark.parametrize("mode", ["stall_headers", "stall"])
async def test_a_stalled_server_times_out(server: OpenAILoopback, make_llm: MakeLLM, vendor: str, mode: str) -> None:
    server.mode = mode  # type: ignore[assignment]
    started = time.monotonic()
    received, error = await text_before_failure(make_llm(vendor))
    assert time.monotonic() - started < TIMEOUT + 1.5
    assert error.retryable is True
    assert "timed out" in error.message
    assert received == ("" if mode == "stall_headers" else "Hello")


@pytest.mark.parametrize("vendor", ["openai", "groq"])
async def test_a_dropped_connection_mid_stream_is_retryable(
    server: OpenAILoopback, make_llm: MakeLLM, vendor: str
) -> None:
    server.mode = "drop"
    received, error = await text_before_failure(make_llm(vendor))
    assert error.retryable is True
    assert "connection" in error.message
    assert received == "Hello"


@pytest.mark.parametrize("vendor", ["openai", "groq"])
async def test_a_reply_that_ends_without_finishing_is_an_error(
    server: OpenAILoopback, make_llm: MakeLLM, vendor: str
) -> None:
    server.mode = "cut_short"  # a clean end of stream, but the model never said it was done
    received, error = await text_before_failure(make_llm(vendor))
    assert error.retryable is True
    assert "before the reply finished" in error.message
    assert received == "Hello"


@pytest.mark.parametrize("vendor", ["openai", "groq"])
async def test_malformed_stream_data_is_a_provider_error(
    server: OpenAILoopback, make_llm: MakeLLM, vendor: str
) -> None:
    server.mode = "malformed"
    error = await failure(collect(make_llm(vendor)))
    assert "malformed" in error.message
    assert error.provider == vendor


@pytest.mark.parametrize("vendor", ["openai", "groq"])
@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_stopping_the_stream_closes_the_http_connection(
    server: OpenAILoopback, make_llm: MakeLLM, vendor: str, how: str
) -> None:
    server.mode = "endless"  # generates until the client hangs up, like a model that would talk forever
    stream = make_llm(vendor).stream_chat(MESSAGES, LLMOptions())
    if how == "aclose":
        assert (await anext(stream)).text
        await stream.aclose()  # type: ignore[attr-defined]
    else:
        first = asyncio.Event()

        async def consume() -> None:
            async for _chunk in stream:
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.wait_for(server.disconnected.wait(), 1)
