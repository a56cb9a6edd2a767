"""A loopback Deepgram live-transcription server (``/v1/listen``) for testing the adapter through the real SDK.

It speaks the wire protocol the deepgram-sdk client expects: ``Authorization: Token <key>`` checked on the
WebSocket upgrade (HTTP 401 otherwise), query parameters recorded, binary audio frames, JSON control messages
(KeepAlive, Finalize, CloseStream) and Deepgram-shaped replies (Results, SpeechStarted, UtteranceEnd,
Metadata). The test scripts what is "said": each :class:`Utterance` shows up as an interim transcript once
enough audio arrived, and as a final one on Finalize (or CloseStream). It can also misbehave on request:
drop connections, answer the upgrade with an error status, stall the handshake, send malformed frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestServer


@dataclass(frozen=True)
class Utterance:
    interim: str
    final: str
    confidence: float = 0.93


@dataclass
class Connection:
    """What one WebSocket connection carried."""

    query: dict[str, str]
    headers: dict[str, str]
    audio: bytearray = field(default_factory=bytearray)
    controls: list[str] = field(default_factory=list)  # the "type" of each JSON message, in order
    sent: list[dict[str, Any]] = field(default_factory=list)  # the JSON messages the server sent
    close_code: int | None = None


class DeepgramLoopback:
    """Scriptable Deepgram stand-in; ``base_url`` goes into the adapter's ``baseUrl`` setting."""

    def __init__(
        self,
        api_key: str = "dg-test-key",
        *,
        utterances: list[Utterance] | None = None,
        interim_after_bytes: int = 800,
        drop_after_bytes: int | None = None,
        drops: int = 0,
        greeting: list[str] | None = None,
        handshake_status: int | None = None,
        handshake_delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.utterances = list(utterances or [])
        self.interim_after_bytes = interim_after_bytes
        self.drop_after_bytes = drop_after_bytes  # abort the TCP connection once this much audio arrived...
        self.drops = drops  # ...on this many connections (a big number: always)
        self.greeting = list(greeting or [])  # raw text frames sent as soon as a connection opens
        self.handshake_status = handshake_status
        self.handshake_delay = handshake_delay  # stall the upgrade this long (released early by close())
        self._unstall = asyncio.Event()
        self.connections: list[Connection] = []
        self.rejected: list[dict[str, str]] = []  # headers of upgrades refused with 401
        self._next_utterance = 0
        self._open: set[web.WebSocketResponse] = set()
        self._server: TestServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.make_url("")).rstrip("/")

    @property
    def audio(self) -> bytes:
        """All audio received, over every connection."""
        return b"".join(bytes(connection.audio) for connection in self.connections)

    @property
    def controls(self) -> list[str]:
        return [kind for connection in self.connections for kind in connection.controls]

    async def start(self) -> DeepgramLoopback:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def close(self) -> None:
        self._unstall.set()
        for ws in list(self._open):  # a test that failed half-way must not leave teardown waiting on sockets
            await ws.close(code=WSCloseCode.GOING_AWAY)
        if self._server is not None:
            await self._server.close()

    async def __aenter__(self) -> DeepgramLoopback:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the endpoint ------------------------------------------------------------------------------

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        if self.handshake_delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._unstall.wait(), self.handshake_delay)
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            self.rejected.append(dict(request.headers))
            return web.json_response({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}, status=401)
        if self.handshake_status is not None:
            return web.json_response({"err_msg": "unavailable"}, status=self.handshake_status)
        connection = Connection(query=dict(request.query), headers=dict(request.headers))
        self.connections.append(connection)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._open.add(ws)
        stream = _Stream(self, connection, ws, request)
        for frame in self.greeting:
            await ws.send_str(frame)
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                if await stream.on_audio(message.data):
                    break
            elif message.type == WSMsgType.TEXT:
                if await stream.on_control(message.data):
                    break
        connection.close_code = ws.close_code
        self._open.discard(ws)
        return ws

    def take_utterance(self) -> Utterance | None:
        if self._next_utterance >= len(self.utterances):
            return None
        utterance = self.utterances[self._next_utterance]
        self._next_utterance += 1
        return utterance


class _Stream:
    """One connection's recognition state: audio time, the current utterance, what was sent for it."""

    def __init__(
        self, server: DeepgramLoopback, connection: Connection, ws: web.WebSocketResponse, request: web.Request
    ):
        self.server = server
        self.connection = connection
        self.ws = ws
        self.request = request
        rate = int(connection.query.get("sample_rate", "16000"))
        self.bytes_per_second = rate * (1 if connection.query.get("encoding") in ("mulaw", "alaw") else 2)
        self.request_id = str(uuid.uuid4())
        self.utterance: Utterance | None = None
        self.utterance_bytes = 0
        self.start_bytes = 0  # audio position where the current utterance began

    def _seconds(self, count: int) -> float:
        return round(count / self.bytes_per_second, 3)

    async def on_audio(self, data: bytes) -> bool:
        """Record audio; returns True when the connection was dropped."""
        self.connection.audio.extend(data)
        self.utterance_bytes += len(data)
        server = self.server
        if self.utterance is None and self.utterance_bytes >= server.interim_after_bytes:
            self.utterance = server.take_utterance()
            if self.utterance is not None:
                await self._send(
                    {"type": "SpeechStarted", "channel": [0], "timestamp": self._seconds(self.start_bytes)}
                )
                await self._results(self.utterance.interim, is_final=False)
        if server.drop_after_bytes is not None and server.drops > 0:
            if len(self.connection.audio) >= server.drop_after_bytes:
                server.drops -= 1
                transport = self.request.transport
                if transport is not None:
                    transport.abort()  # no close frame: what a network failure looks like to the client
                return True
        return False

    async def on_control(self, data: str) -> bool:
        """Handle a JSON control message; returns True when the server closed the stream."""
        try:
            kind = str(json.loads(data).get("type"))
        except (ValueError, AttributeError):
            kind = "<invalid>"
        self.connection.controls.append(kind)
        if kind == "Finalize":
            await self._final(from_finalize=True)
        elif kind == "CloseStream":
            if self.utterance_bytes:
                await self._final(from_finalize=False)
            await self._send(
                {
                    "type": "Metadata",
                    "transaction_key": "deprecated",
                    "request_id": self.request_id,
                    "sha256": "0" * 64,
                    "created": "2025-01-01T00:00:00.000Z",
                    "duration": self._seconds(len(self.connection.audio)),
                    "channels": 1,
                }
            )
            await self.ws.close()
            return True
        return False

    async def _final(self, *, from_finalize: bool) -> None:
        text = self.utterance.final if self.utterance is not None else ""
        await self._results(text, is_final=True, from_finalize=from_finalize)
        if text:
            await self._send({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self._end()})
        self.utterance, self.utterance_bytes = None, 0
        self.start_bytes = len(self.connection.audio)

    def _end(self) -> float:
        return self._seconds(len(self.connection.audio))

    async def _results(self, text: str, *, is_final: bool, from_finalize: bool = False) -> None:
        confidence = self.utterance.confidence if self.utterance is not None and text else 0.0
        words = [
            {"word": word.strip(".,?!").lower(), "start": 0.0, "end": 0.0, "confidence": confidence}
            for word in text.split()
        ]
        start = self._seconds(self.start_bytes)
        message: dict[str, Any] = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(self._end() - start, 3),
            "start": start,
            "is_final": is_final,
            "speech_final": False,
            "channel": {"alternatives": [{"transcript": text, "confidence": confidence, "words": words}]},
            "metadata": {
                "request_id": self.request_id,
                "model_info": {"name": "2-general-nova", "version": "2024-01-01.0", "arch": "nova-2"},
                "model_uuid": str(uuid.uuid4()),
            },
            "from_finalize": from_finalize,
        }
        await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        self.connection.sent.append(message)
        await self.ws.send_str(json.dumps(message))
