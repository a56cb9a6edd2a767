"""ElevenLabs TTS adapter: the official SDK against a loopback ElevenLabs streaming endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from providers.base import AudioFormat, ProviderError, TTSOptions
from providers.elevenlabs_tts import DEFAULT_VOICE_ID, ElevenLabsTTS, create
from tests.loopback.elevenlabs_server import ElevenLabsServer

AUDIO = bytes(range(256)) * 10  # 2560 bytes: 320 ms of 8 kHz μ-law, every byte value present
KEY = "xi-test-key"


_open: list[ElevenLabsTTS] = []


@pytest.fixture
async def server() -> AsyncIterator[ElevenLabsServer]:
    srv = await ElevenLabsServer(api_key=KEY, audio=AUDIO).start()
    try:
        yield srv
    finally:
        while _open:
            await _open.pop().aclose()
        await srv.close()


def _tts(
    server: ElevenLabsServer, model: str = "eleven_flash_v2_5", key: str = KEY, voice: str = DEFAULT_VOICE_ID
) -> ElevenLabsTTS:
    """The adapter as the registry builds it: the agent's ttsModelId is the voice, the provider's ttsModel
    setting (or the agent's ttsConfig.model) the synthesis model."""
    settings = {"baseUrl": server.base_url, "timeoutSec": 0.5, "ttsModel": model}
    tts = create("tts", voice, {"apiKey": key}, settings)
    _open.append(tts)  # closed at teardown: pooled connections must not outlive the test loop
    return tts


async def _collect(tts: ElevenLabsTTS, text: str = "Hello there.", options: TTSOptions | None = None) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text, options or TTSOptions())]


async def test_streams_the_exact_mulaw_bytes_and_sends_the_request(server: ElevenLabsServer) -> None:
    tts = _tts(server)
    chunks = await _collect(tts, "Hello there.")
    assert b"".join(chunks) == AUDIO
    assert tts.output_format == AudioFormat("mulaw", 8000)
    [request] = server.requests
    assert request.voice_id == DEFAULT_VOICE_ID
    assert request.query["output_format"] == "ulaw_8000"
    assert request.headers["xi-api-key"] == KEY
    assert request.body["text"] == "Hello there."
    assert request.body["model_id"] == "eleven_flash_v2_5"
    assert request.body["language_code"] == "en"
    assert "voice_settings" not in request.body  # speed 1.0: the voice's stored settings apply


async def test_voice_speed_and_language_reach_elevenlabs(server: ElevenLabsServer) -> None:
    tts = _tts(server, model="eleven_turbo_v2_5", voice="customVoice123")
    await _collect(tts, "Hola.", TTSOptions(speed=1.1, language="es-ES"))
    await _collect(tts, "Fast.", TTSOptions(speed=3.0))
    first, second = server.requests
    assert first.voice_id == "customVoice123"
    assert first.body["model_id"] == "eleven_turbo_v2_5"
    assert first.body["voice_settings"] == {"speed": 1.1}
    assert first.body["language_code"] == "es"
    assert second.body["voice_settings"] == {"speed": 1.2}  # clamped to what ElevenLabs accepts


async def test_multilingual_v2_gets_no_language_code(server: ElevenLabsServer) -> None:
    await _collect(_tts(server, model="eleven_multilingual_v2"), "Bonjour.", TTSOptions(language="fr"))
    assert "language_code" not in server.requests[0].body


async def test_first_chunk_arrives_before_the_server_finishes(server: ElevenLabsServer) -> None:
    server.gate = asyncio.Event()
    stream = _tts(server).synthesize("A long sentence.", TTSOptions())
    first = await asyncio.wait_for(anext(stream), 2)
    assert first == AUDIO[: server.chunk_size]
    assert not server.finished_sending
    server.gate.set()
    rest = [chunk async for chunk in stream]
    assert first + b"".join(rest) == AUDIO
    assert server.finished_sending


async def test_stopping_early_closes_the_stream_promptly(server: ElevenLabsServer) -> None:
    """Barge-in: the engine drops the iterator mid-sentence; that must not hang on the rest of the audio."""
    server.gate = asyncio.Event()  # never set: the server would hold the rest forever
    stream = _tts(server).synthesize("Interrupted.", TTSOptions())
    assert await anext(stream)
    await asyncio.wait_for(stream.aclose(), 1)


async def test_bad_api_key_is_not_retryable(server: ElevenLabsServer) -> None:
    with pytest.raises(ProviderError) as info:
        await _collect(_tts(server, key="wrong-key"))
    assert info.value.retryable is False
    assert info.value.status == 401
    assert "Invalid API key" in str(info.value)
    assert "wrong-key" not in str(info.value)


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(server: ElevenLabsServer, status: int) -> None:
    server.mode, server.error_status = "error", status
    with pytest.raises(ProviderError) as info:
        await _collect(_tts(server))
    assert info.value.retryable is True
    assert info.value.status == status
    assert "Something went wrong" in str(info.value)


async def test_unknown_voice_is_not_retryable(server: ElevenLabsServer) -> None:
    server.mode, server.error_status = "error", 400
    server.error_body = {"detail": {"status": "voice_not_found", "message": "A voice with that ID was not found."}}
    with pytest.raises(ProviderError) as info:
        await _collect(_tts(server, voice="nope"))
    assert (info.value.retryable, info.value.status) == (False, 400)
    assert "voice with that ID" in str(info.value)


async def test_rate_limit_is_retryable(server: ElevenLabsServer) -> None:
    server.mode, server.error_status = "error", 429
    server.error_body = {"detail": {"status": "too_many_concurrent_requests", "message": "Too many requests."}}
    with pytest.raises(ProviderError) as info:
        await _collect(_tts(server))
    assert (info.value.retryable, info.value.status) == (True, 429)


@pytest.mark.parametrize("mode", ["stall_before_headers", "stall_mid_stream"])
async def test_a_stalled_server_times_out(server: ElevenLabsServer, mode: str) -> None:
    server.mode = mode  # type: ignore[assignment]
    received: list[bytes] = []
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        async for chunk in _tts(server).synthesize("Hello.", TTSOptions()):
            received.append(chunk)
    assert time.monotonic() - started < 3
    assert info.value.retryable is True
    assert "timed out" in str(info.value)
    assert b"".join(received) == (AUDIO[: server.chunk_size] if mode == "stall_mid_stream" else b"")


async def test_dropped_connection_mid_stream_is_retryable(server: ElevenLabsServer) -> None:
    server.mode = "drop"
    received: list[bytes] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in _tts(server).synthesize("Hello.", TTSOptions()):
            received.append(chunk)
    assert info.value.retryable is True
    assert b"".join(received) == AUDIO[: server.chunk_size]


async def test_unreachable_server_is_retryable(server: ElevenLabsServer) -> None:
    tts = _tts(server)
    await server.close()
    with pytest.raises(ProviderError) as info:
        await _collect(tts)
    assert info.value.retryable is True


@pytest.mark.parametrize("mode", ["json_200", "empty"])
async def test_a_response_without_audio_is_an_error(server: ElevenLabsServer, mode: str) -> None:
    server.mode = mode  # type: ignore[assignment]
    with pytest.raises(ProviderError) as info:
        await _collect(_tts(server))
    assert info.value.status == 200
    assert info.value.retryable is True


def test_factory_requires_an_api_key_and_the_tts_category() -> None:
    with pytest.raises(ProviderError) as info:
        create("tts", DEFAULT_VOICE_ID, {}, {})
    assert info.value.retryable is False
    with pytest.raises(ProviderError):
        create("stt", DEFAULT_VOICE_ID, {"apiKey": "k"}, {})
    tts = create("tts", "", {"apiKey": "k"}, {})
    assert (tts.model, tts.voice) == ("eleven_flash_v2_5", DEFAULT_VOICE_ID)
    assert DEFAULT_VOICE_ID == "21m00Tcm4TlvDq8ikWAM"  # Rachel, the API reference's example voice


@pytest.mark.parametrize("voice", ["../../v1/user", "a/b", "x?y=1", "..", "v#1", "%2e%2e"])
async def test_a_voice_id_that_would_leave_its_url_path_segment_is_refused(
    server: ElevenLabsServer, voice: str
) -> None:
    """The voice id is a segment of the request's path: nothing a tenant writes there reaches another endpoint."""
    with pytest.raises(ProviderError) as info:
        _tts(server, voice=voice)
    assert (info.value.retryable, info.value.status) == (False, 400)
    assert server.requests == []
