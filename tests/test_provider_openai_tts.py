"""The OpenAI TTS adapter through the real ``openai`` SDK against a loopback ``/v1/audio/speech``: exact
PCM out in whole samples, streamed as it arrives, and failures as ProviderErrors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from providers import openai_tts
from providers.base import AudioFormat, ProviderError, TTSOptions
from providers.openai_tts import OpenAITTS
from tests.loopback.openai_server import OpenAILoopback

TIMEOUT = 0.5


@pytest.fixture
async def server() -> AsyncIterator[OpenAILoopback]:
    loopback = await OpenAILoopback().start()
    try:
        yield loopback
    finally:
        await loopback.close()


@pytest.fixture
async def tts(server: OpenAILoopback) -> AsyncIterator[OpenAITTS]:
    adapter = OpenAITTS(api_key="sk-test", model="gpt-4o-mini-tts", base_url=server.openai_base_url, timeout=TIMEOUT)
    yield adapter
    await adapter.aclose()


async def synthesize(tts: OpenAITTS, text: str = "Hello there.", options: TTSOptions | None = None) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text, options or TTSOptions())]


async def test_streams_the_exact_pcm_in_whole_samples(server: OpenAILoopback, tts: OpenAITTS) -> None:
    chunks = await synthesize(tts, "Your order ships tomorrow.")

    assert tts.output_format == AudioFormat("pcm16", 24000)
    assert b"".join(chunks) == server.audio
    assert len(chunks) > 1
    assert all(len(chunk) % 2 == 0 for chunk in chunks)  # the server's chunks are 1001 bytes
    [request] = server.requests
    assert request.path == "/v1/audio/speech"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": "Your order ships tomorrow.",
        "response_format": "pcm",
    }


async def test_speed_comes_from_the_options(server: OpenAILoopback, tts: OpenAITTS) -> None:
    await synthesize(tts, options=TTSOptions(speed=1.25))
    body = server.requests[0].body
    assert (body["voice"], body["speed"]) == ("alloy", 1.25)


async def test_factory_takes_the_voice_as_model_and_the_speech_model_from_settings(server: OpenAILoopback) -> None:
    adapter = openai_tts.create(
        "tts", "echo", {"apiKey": "sk-org"}, {"baseUrl": server.openai_base_url, "ttsModel": "tts-1-hd"}
    )
    try:
        audio = b"".join(await synthesize(adapter))
    finally:
        await adapter.aclose()
    assert audio == server.audio
    request = server.requests[0]
    assert (request.body["model"], request.body["voice"]) == ("tts-1-hd", "echo")
    assert request.headers["authorization"] == "Bearer sk-org"
    with pytest.raises(ProviderError) as no_key:
        openai_tts.create("tts", "alloy", {}, {})
    assert no_key.value.retryable is False
    default = openai_tts.create("tts", "", {"apiKey": "sk-org"}, {})
    try:
        assert (default.model, default.voice) == ("tts-1", "alloy")
    finally:
        await default.aclose()


async def test_audio_arrives_before_the_server_finishes(server: OpenAILoopback, tts: OpenAITTS) -> None:
    server.mode = "hold"  # first chunk, then wait for the test
    stream = tts.synthesize("Hello there.", TTSOptions())
    first = await asyncio.wait_for(anext(stream), 2)
    assert first == server.audio[:1000]
    server.release.set()
    rest = [chunk async for chunk in stream]
    assert first + b"".join(rest) == server.audio


async def test_bad_key_is_a_non_retryable_401(server: OpenAILoopback, tts: OpenAITTS) -> None:
    server.mode = "unauthorized"
    with pytest.raises(ProviderError) as caught:
        await synthesize(tts)
    assert (caught.value.retryable, caught.value.status) == (False, 401)
    assert "Incorrect API key" in caught.value.message


async def test_server_error_is_retryable_and_not_retried(server: OpenAILoopback, tts: OpenAITTS) -> None:
    server.mode = "server_error"
    with pytest.raises(ProviderError) as caught:
        await synthesize(tts)
    assert (caught.value.retryable, caught.value.status) == (True, 500)
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", ["stall_headers", "stall"])
async def test_a_stalled_server_times_out(server: OpenAILoopback, tts: OpenAITTS, mode: str) -> None:
    server.mode = mode  # type: ignore[assignment]
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in tts.synthesize("Hello there.", TTSOptions()):
            received.append(chunk)

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await consume()
    assert time.monotonic() - started < TIMEOUT + 1.5
    assert caught.value.retryable is True
    assert "timed out" in caught.value.message
    assert b"".join(received) == (b"" if mode == "stall_headers" else server.audio[:1000])


async def test_a_dropped_connection_mid_audio_is_retryable(server: OpenAILoopback, tts: OpenAITTS) -> None:
    server.mode = "drop"
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in tts.synthesize("Hello there.", TTSOptions()):
            received.append(chunk)

    with pytest.raises(ProviderError) as caught:
        await consume()
    assert caught.value.retryable is True
    assert "connection" in caught.value.message
    assert b"".join(received) == server.audio[:1000]


async def test_a_page_instead_of_audio_is_malformed(server: OpenAILoopback, tts: OpenAITTS) -> None:
    server.mode = "malformed"  # status 200, but an HTML page: played as PCM it would be a burst of noise
    with pytest.raises(ProviderError) as caught:
        await synthesize(tts)
    assert "malformed" in caught.value.message
    assert "text/html" in caught.value.message


async def test_stopping_synthesis_closes_the_http_connection(server: OpenAILoopback, tts: OpenAITTS) -> None:
    server.mode = "endless"
    stream = tts.synthesize("Hello there.", TTSOptions())
    assert await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(server.disconnected.wait(), 1)
