"""Edge TTS adapter: the edge-tts package against a loopback Edge WebSocket service, MP3 decoded by PyAV."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import edge_tts.communicate
import numpy as np
import pytest

from providers.base import AudioFormat, ProviderError, TTSOptions
from providers.edge_tts import EdgeTTS, Mp3Decoder, create, rate_for_speed
from tests.loopback.edge_server import EdgeServer, tone_mp3

RATE = 24000
MP3_FRAME = 576  # samples in an MPEG-2 layer III frame at 24 kHz


@pytest.fixture(scope="module")
def tone() -> tuple[bytes, int]:
    return tone_mp3(0.5, freq=440.0)  # ~3 KB of MP3, 12000 samples


@pytest.fixture
async def server(tone: tuple[bytes, int], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EdgeServer]:
    srv = await EdgeServer(audio=tone[0]).start()
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", srv.wss_url)  # the SDK's only endpoint knob
    try:
        yield srv
    finally:
        await srv.close()


def _tts(model: str = "en-US-AriaNeural", timeout_s: float = 0.5) -> EdgeTTS:
    return create("tts", model, {}, {"timeoutSec": timeout_s})


async def _collect(tts: EdgeTTS, text: str = "Hello there.", options: TTSOptions | None = None) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text, options or TTSOptions())]


def _dominant_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum))])


async def test_decodes_the_mp3_stream_to_24khz_pcm(server: EdgeServer, tone: tuple[bytes, int]) -> None:
    tts = _tts()
    chunks = await _collect(tts, "Hello there.")
    pcm = b"".join(chunks)
    assert tts.output_format == AudioFormat("pcm16", 24000)
    assert len(chunks) > 1  # streamed, not one blob at the end
    samples = len(pcm) // 2
    # The encoder adds priming and padding: at most a few frames more than the tone itself.
    assert tone[1] <= samples <= tone[1] + 3 * MP3_FRAME
    assert abs(_dominant_hz(pcm) - 440) < 5
    rms = float(np.sqrt(np.mean(np.frombuffer(pcm, dtype=np.int16).astype(np.float64) ** 2)))
    assert 0.25 * 32767 / np.sqrt(2) < rms < 0.35 * 32767 / np.sqrt(2)  # the tone's loudness survives


async def test_voice_rate_text_and_format_are_sent(server: EdgeServer) -> None:
    await _collect(_tts("en-GB-SoniaNeural"), "Fish & chips <now>.", TTSOptions(speed=1.1))
    await _collect(_tts("en-US-GuyNeural"), "Slowly.", TTSOptions(speed=0.8))
    first, second = server.requests
    assert first.ssml_attribute("voice name") == "Microsoft Server Speech Text to Speech Voice (en-GB, SoniaNeural)"
    assert first.ssml_attribute("rate") == "+10%"
    assert first.text == "Fish &amp; chips &lt;now&gt;."
    assert first.speech_config is not None
    audio_config = first.speech_config["context"]["synthesis"]["audio"]  # type: ignore[index]
    assert audio_config["outputFormat"] == "audio-24khz-48kbitrate-mono-mp3"
    assert second.ssml_attribute("voice name").endswith("(en-US, GuyNeural)")
    assert second.ssml_attribute("rate") == "-20%"


async def test_first_pcm_arrives_before_the_server_finishes(server: EdgeServer) -> None:
    server.gate = asyncio.Event()
    stream = _tts().synthesize("A long sentence.", TTSOptions())
    first = await asyncio.wait_for(anext(stream), 2)
    assert len(first) >= 2 * MP3_FRAME  # the first message's whole frames, already decoded
    assert not server.finished_sending
    server.gate.set()
    rest = [chunk async for chunk in stream]
    assert rest and server.finished_sending


async def test_stopping_early_closes_the_stream_promptly(server: EdgeServer) -> None:
    server.gate = asyncio.Event()  # never set
    stream = _tts().synthesize("Interrupted.", TTSOptions())
    assert await anext(stream)
    await asyncio.wait_for(stream.aclose(), 1)


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_handshake_is_not_retryable(server: EdgeServer, status: int) -> None:
    server.mode, server.reject_status = "reject", status
    with pytest.raises(ProviderError) as info:
        await _collect(_tts(timeout_s=5))  # edge-tts retries a 403 itself: leave it time even on a busy machine
    assert (info.value.retryable, info.value.status) == (False, status)


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(server: EdgeServer, status: int) -> None:
    server.mode, server.reject_status = "reject", status
    with pytest.raises(ProviderError) as info:
        await _collect(_tts())
    assert (info.value.retryable, info.value.status) == (True, status)


async def test_a_stalled_server_times_out(server: EdgeServer) -> None:
    server.mode = "stall"
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        await _collect(_tts())
    assert time.monotonic() - started < 3
    assert info.value.retryable is True
    assert "timed out" in str(info.value)


@pytest.mark.parametrize("mode", ["drop_close", "drop_abort"])
async def test_dropped_connection_mid_stream_is_retryable(server: EdgeServer, mode: str) -> None:
    server.mode = mode  # type: ignore[assignment]
    received: list[bytes] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in _tts().synthesize("Hello.", TTSOptions()):
            received.append(chunk)
    assert info.value.retryable is True
    assert received  # what arrived before the drop was already played


@pytest.mark.parametrize(
    ("mode", "words"), [("bad_frame", "malformed"), ("not_mp3", "undecodable"), ("no_audio", "no audio")]
)
async def test_malformed_responses_are_errors(server: EdgeServer, mode: str, words: str) -> None:
    server.mode = mode  # type: ignore[assignment]
    with pytest.raises(ProviderError) as info:
        await _collect(_tts())
    assert words in str(info.value)
    assert info.value.retryable is True


async def test_unreachable_server_is_retryable(server: EdgeServer) -> None:
    await server.close()
    with pytest.raises(ProviderError) as info:
        await _collect(_tts())
    assert info.value.retryable is True


async def test_an_invalid_voice_is_not_retryable() -> None:
    with pytest.raises(ProviderError) as info:
        await _collect(_tts("JBFqnCBsd6RMkjVDRZzb"))
    assert info.value.retryable is False


def test_decoder_handles_arbitrary_splits(tone: tuple[bytes, int]) -> None:
    mp3, count = tone
    whole = Mp3Decoder()
    expected = whole.feed(mp3) + whole.flush()
    split = Mp3Decoder()
    pieces = [split.feed(mp3[i : i + 7]) for i in range(0, len(mp3), 7)]
    assert b"".join(pieces) + split.flush() == expected
    assert count <= len(expected) // 2


def test_speed_to_rate_and_factory() -> None:
    assert [rate_for_speed(s) for s in (1.0, 1.1, 0.8, 1.5)] == ["+0%", "+10%", "-20%", "+50%"]
    assert create("tts", "", {}, {}).voice == "en-US-AriaNeural"
    with pytest.raises(ProviderError):
        create("llm", "en-US-AriaNeural", {}, {})
