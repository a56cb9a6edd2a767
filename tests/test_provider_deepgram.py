"""Deepgram live STT: the adapter and the real deepgram-sdk against a loopback Deepgram (tests/loopback)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest

from pipelines.stt_stream import SttStream
from providers.base import TELEPHONY_FORMAT, ProviderError, STTSession, Transcript
from providers.deepgram_stt import DeepgramSTT, create
from tests.loopback.deepgram_server import DeepgramLoopback, Utterance
from tests.turn_table import turn_settings

KEY = "dg-test-key"
CHUNK = 160  # 20 ms of 8 kHz μ-law, as Twilio sends it


def chunk(index: int) -> bytes:
    """Distinct bytes per chunk, so reordering or corruption shows."""
    return bytes((index * 31 + offset) % 256 for offset in range(CHUNK))


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Collector:
    """Reads a session's transcripts in the background, like the engine does."""

    def __init__(self, session: STTSession) -> None:
        self.items: list[Transcript] = []
        self.error: ProviderError | None = None
        self.ended = False
        self.task = asyncio.create_task(self._read(session))

    async def _read(self, session: STTSession) -> None:
        try:
            async for transcript in session.transcripts():
                self.items.append(transcript)
        except ProviderError as exc:
            self.error = exc
        self.ended = True


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., DeepgramLoopback]]:
    started: list[DeepgramLoopback] = []

    async def start(**options: object) -> DeepgramLoopback:
        server = await DeepgramLoopback(KEY, **options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        await server.close()


def stt(server: DeepgramLoopback, **options: object) -> DeepgramSTT:
    return DeepgramSTT(KEY, "nova-2", base_url=server.base_url, **options)  # type: ignore[arg-type]


async def send(session: STTSession, first: int, count: int, gap: float = 0.0) -> bytes:
    sent = b""
    for index in range(first, first + count):
        await session.send_audio(chunk(index))
        sent += chunk(index)
        await asyncio.sleep(gap)
    return sent


async def test_factory_connects_with_telephony_params_and_audio_arrives_unchanged(servers) -> None:
    server = await servers()
    provider = create("stt", "nova-2-phonecall", {"apiKey": KEY}, {"baseUrl": server.base_url})
    assert provider.input_format == TELEPHONY_FORMAT
    session = await provider.open_session(language="en-US")
    collector = Collector(session)
    sent = await send(session, 0, 25)
    await session.close()

    [connection] = server.connections
    assert connection.query == {
        "model": "nova-2-phonecall",
        "language": "en-US",
        "encoding": "mulaw",
        "sample_rate": "8000",
        "channels": "1",
        "interim_results": "true",
        "endpointing": "300",
        "utterance_end_ms": "1000",
        "vad_events": "true",
        "smart_format": "true",
        "punctuate": "true",
    }
    assert connection.headers["Authorization"] == f"Token {KEY}"
    assert bytes(connection.audio) == sent
    assert connection.controls == ["CloseStream"]
    await until(lambda: collector.ended)
    assert collector.error is None


async def test_the_agents_endpointing_is_the_sessions_endpointing_parameter(servers) -> None:
    server = await servers()
    provider = stt(server)
    settings = turn_settings({"silenceTimeoutMs": 700, "endpointingMs": 200})  # an agent's knobs
    stream = SttStream(
        provider, language="en", endpointing_ms=settings.endpointing_ms, on_transcript=lambda text, final: None
    )
    await stream.start()  # the engine opens the call's session as a call does
    await stream.close()
    plain = await provider.open_session()  # no endpointing given: the adapter's own 300 ms
    await plain.close()

    assert [c.query["endpointing"] for c in server.connections] == ["200", "300"]


async def test_interim_then_final_on_finalize(servers) -> None:
    empty_interim = {"type": "Results", "channel": {"alternatives": [{"transcript": "", "confidence": 0}]}}
    server = await servers(
        utterances=[Utterance("hello th", "Hello there.", 0.97), Utterance("i need", "I need a refund.", 0.88)],
        greeting=[json.dumps({**empty_interim, "is_final": False, "speech_final": False})],
    )
    session = await stt(server).open_session()
    collector = Collector(session)
    await send(session, 0, 10)  # 1600 bytes: the loopback shows the interim after 800
    await until(lambda: len(collector.items) == 1)
    await session.finalize()
    await until(lambda: len(collector.items) == 2)
    await send(session, 10, 6)
    await until(lambda: len(collector.items) == 3)
    await session.finalize()
    await until(lambda: len(collector.items) == 4)
    await session.finalize()  # nothing said since: Deepgram answers with an empty final, which ends the wait
    await until(lambda: len(collector.items) == 5)
    await session.close()

    assert collector.items == [
        Transcript("hello th", is_final=False, confidence=0.97),
        Transcript("Hello there.", is_final=True, confidence=0.97),
        Transcript("i need", is_final=False, confidence=0.88),
        Transcript("I need a refund.", is_final=True, confidence=0.88),
        Transcript("", is_final=True, confidence=0.0),
    ]
    assert server.controls == ["Finalize", "Finalize", "Finalize", "CloseStream"]


async def test_speech_final_counts_as_final(servers) -> None:
    endpoint = {
        "type": "Results",
        "is_final": False,
        "speech_final": True,
        "start": 0.0,
        "duration": 1.2,
        "channel": {"alternatives": [{"transcript": "Yes please.", "confidence": 0.9}]},
    }
    server = await servers(greeting=[json.dumps(endpoint)])
    session = await stt(server).open_session()
    collector = Collector(session)
    await until(lambda: len(collector.items) == 1)
    await session.close()
    assert collector.items == [Transcript("Yes please.", is_final=True, confidence=0.9)]


async def test_malformed_messages_are_skipped_and_the_stream_goes_on(servers) -> None:
    server = await servers(
        utterances=[Utterance("book a", "Book a table.")],
        greeting=[
            "{not json",
            "[1, 2, 3]",
            json.dumps({"type": "Results"}),
            json.dumps({"type": "Results", "channel": {"alternatives": []}}),
            json.dumps({"type": "Results", "channel": {"alternatives": [{"transcript": 42}]}, "is_final": True}),
            json.dumps({"type": "Error", "description": "something odd", "message": "odd"}),
            json.dumps({"type": "NewThing", "foo": "bar"}),
        ],
    )
    session = await stt(server).open_session()
    collector = Collector(session)
    await send(session, 0, 10)
    await session.finalize()
    await until(lambda: len(collector.items) == 2)
    await session.close()
    assert [(t.text, t.is_final) for t in collector.items] == [("book a", False), ("Book a table.", True)]
    assert collector.error is None and len(server.connections) == 1


async def test_keep_alive_only_while_no_audio_is_sent(servers) -> None:
    server = await servers(utterances=[Utterance("still", "Still there.")])
    session = await stt(server, keepalive_interval=0.1).open_session()
    collector = Collector(session)
    await session.send_audio(chunk(0))
    await asyncio.sleep(0.45)  # the caller is muted
    during_gap = server.controls.count("KeepAlive")
    assert 3 <= during_gap <= 5
    await send(session, 1, 15, gap=0.02)  # audio flowing: no keep-alives needed
    assert server.controls.count("KeepAlive") == during_gap
    await session.finalize()
    await until(lambda: any(t.is_final for t in collector.items))
    await session.close()
    assert collector.items[-1] == Transcript("Still there.", is_final=True, confidence=0.93)
    assert len(server.connections) == 1


async def test_one_drop_reconnects_and_transcripts_continue(servers) -> None:
    server = await servers(
        utterances=[Utterance("one", "One."), Utterance("two", "Two.")], drop_after_bytes=1600, drops=1
    )
    session = await stt(server).open_session(language="en")
    collector = Collector(session)
    await send(session, 0, 10, gap=0.005)  # the 10th chunk makes the loopback abort the TCP connection
    await until(lambda: len(server.connections) == 2)
    await send(session, 10, 10, gap=0.005)
    await session.finalize()
    await until(lambda: any(t.is_final for t in collector.items))
    await session.close()

    assert collector.error is None
    assert collector.items == [
        Transcript("one", is_final=False, confidence=0.93),
        Transcript("two", is_final=False, confidence=0.93),
        Transcript("Two.", is_final=True, confidence=0.93),
    ]
    first, second = server.connections
    assert first.query == second.query
    assert bytes(second.audio).endswith(b"".join(chunk(index) for index in range(10, 20)))
    assert second.controls == ["Finalize", "CloseStream"]


async def test_second_drop_surfaces_provider_error(servers) -> None:
    server = await servers(drop_after_bytes=CHUNK * 3, drops=100)
    session = await stt(server).open_session()
    collector = Collector(session)
    index = 0
    while not collector.ended:
        await session.send_audio(chunk(index))
        index += 1
        await asyncio.sleep(0.005)
        assert index < 1000, "the session never failed"
    assert collector.error is not None and collector.error.retryable is True
    assert "connection lost" in collector.error.message
    assert len(server.connections) == 2
    with pytest.raises(ProviderError):
        await session.send_audio(chunk(0))
    await session.close()


async def test_reconnect_refused_surfaces_provider_error(servers) -> None:
    server = await servers(drop_after_bytes=CHUNK, drops=1)
    session = await stt(server).open_session()
    collector = Collector(session)
    server.handshake_status = 503
    await session.send_audio(chunk(0))
    await until(lambda: collector.ended)
    assert collector.error is not None and collector.error.retryable is True and collector.error.status == 503
    await session.close()


async def test_bad_api_key_is_not_retryable(servers) -> None:
    server = await servers()
    provider = create("stt", "nova-3", {"apiKey": "wrong"}, {"baseUrl": server.base_url})
    with pytest.raises(ProviderError) as caught:
        await provider.open_session()
    assert caught.value.status == 401 and caught.value.retryable is False
    assert "wrong" not in str(caught.value)
    assert server.connections == [] and len(server.rejected) == 1


async def test_server_error_on_upgrade_is_retryable(servers) -> None:
    server = await servers(handshake_status=503)
    with pytest.raises(ProviderError) as caught:
        await stt(server).open_session()
    assert caught.value.status == 503 and caught.value.retryable is True


async def test_stalled_handshake_times_out(servers) -> None:
    server = await servers(handshake_delay=30)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await stt(server, connect_timeout=0.3).open_session()
    assert caught.value.retryable is True and "timed out" in caught.value.message
    assert time.monotonic() - started < 2


async def test_unreachable_server_is_retryable() -> None:
    server = await DeepgramLoopback(KEY).start()
    url = server.base_url
    await server.close()
    with pytest.raises(ProviderError) as caught:
        await DeepgramSTT(KEY, base_url=url).open_session()
    assert caught.value.retryable is True


async def test_close_sends_close_stream_and_delivers_the_last_words(servers) -> None:
    server = await servers(utterances=[Utterance("good", "Goodbye.")])
    session = await stt(server).open_session()
    collector = Collector(session)
    await send(session, 0, 10)
    await until(lambda: len(collector.items) == 1)
    await session.close()
    await session.close()  # idempotent
    await session.send_audio(chunk(99))  # after close: ignored, not an error

    assert collector.ended and collector.error is None
    assert collector.items == [Transcript("good", False, 0.93), Transcript("Goodbye.", True, 0.93)]
    [connection] = server.connections
    assert connection.controls == ["CloseStream"]
    assert len(connection.audio) == 10 * CHUNK
    assert connection.sent[-1]["type"] == "Metadata"


def test_factory_rejects_missing_key_and_wrong_category() -> None:
    with pytest.raises(ProviderError) as caught:
        create("stt", "nova-2", {}, {})
    assert caught.value.retryable is False
    with pytest.raises(ProviderError):
        create("tts", "nova-2", {"apiKey": KEY}, {})
    provider = create("stt", "nova-3", {"apiKey": KEY}, {})
    assert provider.model == "nova-3" and provider.params("es")["language"] == "es"
